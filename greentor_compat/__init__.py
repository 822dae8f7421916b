"""greentor's API on Python 3 and Tornado 6, over tornpool's public API.

``from greentor import green, mysql, glocal`` becomes
``from greentor_compat import green, mysql, glocal``:

* :mod:`greentor_compat.green` -- green tasks, timeouts, events, locks,
  queues, a greenlet-blocking pool;
* :mod:`greentor_compat.mysql` -- ``patch_pymysql()`` and ``ConnectionPool``;
* :mod:`greentor_compat.glocal` -- greenlet-local storage.

Importing the package imports nothing else (``mysql`` imports PyMySQL when
it is imported) and touches no event loop.  Migration notes:
``docs/greentor.md``.
"""

__all__ = ["green", "mysql", "glocal"]
