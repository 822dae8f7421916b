"""A small Django app on Tornado through the ORM: ``python -m demos.django_demo``.

* :mod:`demos.django_demo.models` -- ``Note`` and ``Counter``;
* :mod:`demos.django_demo.config` -- ``configure(dsn)``: Django's settings for
  a DSN, pointing ENGINE at ``greentor_compat.django.mysql``;
* :mod:`demos.django_demo.handlers` -- the Tornado handlers
  (:class:`greentor_compat.django.tornado.GreenRequestHandler`);
* :mod:`demos.django_demo.wsgi` -- the same pages as a Django WSGI app (for a
  threaded WSGI server);
* ``__main__`` -- serve it, against a throwaway MariaDB unless ``--dsn`` is given.
"""
