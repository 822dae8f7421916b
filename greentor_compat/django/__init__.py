"""Django's ORM on tornpool: a pooled MySQL backend on PyMySQL, greenlet-local
connections, and two ways to serve.

* ``ENGINE: "greentor_compat.django.mysql"`` -- :mod:`greentor_compat.django.mysql.base`,
  Django's MySQL backend on PyMySQL with connections lent by a pool per alias
  (:mod:`greentor_compat.django.pooling`);
* :func:`greentor_compat.django.local.install` -- Django's connection handler
  keeps one ``DatabaseWrapper`` per greenlet (per thread outside greenlets);
  the backend calls it when it is loaded;
* :mod:`greentor_compat.django.guard` -- why ORM code in a tornpool greenlet
  passes Django's async-safety guard while coroutines on the loop still trip it;
* :class:`greentor_compat.django.tornado.GreenRequestHandler` -- a Tornado
  handler whose methods run in a greenlet, the request's connections going
  back to the pool in ``on_finish``.

Importing this package imports neither Django nor PyMySQL.  The guide is
``docs/django.md``.
"""

__all__ = ["mysql", "local", "guard", "pooling", "tornado"]
