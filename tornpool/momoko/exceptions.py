"""Momoko's exception names, on tornpool's exception tree.

* :class:`PoolError` is tornpool's own (:class:`tornpool.errors.PoolError`), so
  ``except momoko.PoolError`` also catches tornpool's pool-state errors
  (:class:`~tornpool.errors.PoolTimeout`, :class:`~tornpool.errors.PoolClosed`).
* :class:`PartiallyConnectedError` is what :meth:`Pool.connect` raises when some
  of its ``size`` connections could not be opened.
* :class:`DatabaseNotAvailable` (also ``Pool.DatabaseNotAvailable``) is raised
  to requests when no connection is alive and none can be opened now; it is a
  :class:`~tornpool.errors.PoolUnavailable`, hence an ``OperationalError`` and
  a ``DatabaseError`` as in Momoko.
"""

from __future__ import annotations

from tornpool.errors import PoolError, PoolUnavailable

__all__ = ["PoolError", "PartiallyConnectedError", "DatabaseNotAvailable"]


class PartiallyConnectedError(PoolError):
    """:meth:`tornpool.momoko.Pool.connect` could not open every one of the
    ``size`` connections (``raise_connect_errors=True``).  The pool stays open
    and keeps trying in the background; the first connect error is chained as
    ``__cause__``."""


class DatabaseNotAvailable(PoolUnavailable):
    """No database connection available: every connection is dead and the
    server cannot be reached now (reconnects are tried in the background, at
    most once per ``reconnect_interval``).  The connect error is chained as
    ``__cause__``."""
