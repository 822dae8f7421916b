"""Django's MySQL backend on PyMySQL, with connections from tornpool's pool.

``DATABASES = {"default": {"ENGINE": "greentor_compat.django.mysql", ...,
"OPTIONS": {"pool": {"max_size": 10}}}}`` -- see ``docs/django.md``.

What this class changes in Django's MySQL ``DatabaseWrapper``:

* the driver is PyMySQL, whatever ``MySQLdb`` is in this process
  (:mod:`greentor_compat.django.mysqldb`): converters, exception classes
  and the error mapping of the cursor wrapper are PyMySQL's;
* ``get_new_connection`` borrows from the alias's pool
  (:mod:`greentor_compat.django.pooling`) and ``close()`` gives back, or,
  with ``"pool": False``, opens and closes a connection of its own;
* the server's variables Django reads once per wrapper (version, sql_mode,
  ...) are read once per pool;
* its guarded methods pass Django's async-safety guard inside greenlets that
  may wait, and only there (:mod:`greentor_compat.django.guard`);
* its first wrapper makes ``django.db.connections`` greenlet-local
  (:mod:`greentor_compat.django.local`).
"""

from __future__ import annotations

import logging
import weakref
from functools import cached_property
from typing import Any

import pymysql
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError
from django.db.backends import utils as backend_utils
from pymysql.constants import FIELD_TYPE

from greentor_compat.django import guard, local, pooling
from greentor_compat.django.mysqldb import django_mysql_base

_stock: Any = django_mysql_base()
_StockCursorWrapper: Any = _stock.CursorWrapper
_StockDatabaseWrapper: Any = _stock.DatabaseWrapper

__all__ = ["DatabaseWrapper", "CursorWrapper", "CONVERSIONS", "give_back_orphans"]

log = logging.getLogger("greentor_compat.django")

#: PyMySQL's converters, with TIME columns read as ``datetime.time`` as Django expects.
CONVERSIONS: dict[Any, Any] = {**pymysql.converters.conversions, FIELD_TYPE.TIME: backend_utils.typecast_time}


class CursorWrapper(_StockCursorWrapper):  # type: ignore[misc]
    """Django's MySQL cursor wrapper, mapping PyMySQL's errors: the server
    codes Django files under IntegrityError arrive as OperationalError."""

    def _mapped(self, exc: pymysql.err.OperationalError) -> BaseException:
        if exc.args and exc.args[0] in self.codes_for_integrityerror:
            mapped: BaseException = IntegrityError(*exc.args)
            return mapped
        same: BaseException = exc
        return same

    def _run(self, method: Any, query: str, args: Any) -> Any:
        try:
            return method(query, args)
        except pymysql.err.OperationalError as exc:
            mapped = self._mapped(exc)
            if mapped is exc:
                raise
            raise mapped from None

    def execute(self, query: str, args: Any = None) -> Any:
        return self._run(self.cursor.execute, query, args)

    def executemany(self, query: str, args: Any) -> Any:
        return self._run(self.cursor.executemany, query, args)


def give_back_orphans(namespace: dict[str, Any]) -> None:
    """The greenlet (or thread) that owned ``namespace`` ended without
    closing its connections: give pooled ones back (the pool rolls back what
    was left open), without waiting.  A wrapper shared on purpose
    (``inc_thread_sharing()``) is left to whoever shares it."""
    for wrapper in namespace.values():
        if getattr(wrapper, "allow_thread_sharing", False):
            continue
        release = getattr(wrapper, "release_orphan", None)
        if release is not None:
            release()


def _give_back(pool: pooling.AliasPool, conn: Any) -> None:
    try:
        pool.give_back(conn, wait=False)
    except Exception:  # noqa: BLE001 - called from a finalizer: log, never raise
        log.exception("giving back the connection of a Django wrapper that is gone (alias %r)", pool.alias)


@guard.greenlet_safe
class DatabaseWrapper(_StockDatabaseWrapper):  # type: ignore[misc]
    """See the module docstring."""

    Database = pymysql

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        local.install(give_back_orphans)  # before Django's handler stores this first wrapper
        super().__init__(*args, **kwargs)
        self.connection: Any = None
        self.pool: pooling.AliasPool | None = None
        self._orphan: weakref.finalize[Any, Any] | None = None
        self._discard_on_close = False

    def pool_settings(self) -> pooling.PoolSettings:
        """This alias's pool settings (read from ``settings_dict`` each time).

        :raises ImproperlyConfigured: they cannot be used.
        """
        try:
            return pooling.pool_settings(self.settings_dict)
        except pooling.ImproperPool as exc:
            raise ImproperlyConfigured(str(exc)) from None

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        for key in pooling.POOL_OPTION_KEYS:
            params.pop(key, None)
        params["conv"] = CONVERSIONS
        return params

    @guard.guarded
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        settings = self.pool_settings()
        if not settings.enabled:
            self.pool = None
            return pooling.connect_unpooled(conn_params)
        pool = pooling.pool_for(self.alias, conn_params, settings)
        conn = pool.lend()
        self.pool = pool
        # a wrapper collected while it holds the lease gives it back
        self._orphan = weakref.finalize(self, _give_back, pool, conn)
        self._orphan.atexit = False
        return conn

    def release_orphan(self) -> None:
        """Give the lease back now, without Django's bookkeeping (the owner
        of this wrapper ended; see :func:`give_back_orphans`)."""
        orphan, self._orphan = self._orphan, None
        self.pool = self.connection = None
        if orphan is not None:
            orphan()

    def _close(self) -> None:
        conn, pool = self.connection, self.pool
        if conn is None:
            return
        with self.wrap_database_errors:
            if pool is None:
                conn.close()
            else:
                orphan, self._orphan, self.pool = self._orphan, None, None
                if orphan is not None:
                    orphan.detach()
                if self._discard_on_close:
                    pool.discard(conn)
                else:
                    pool.give_back(conn)

    def close_if_health_check_failed(self) -> None:
        # a close in here means Django found the connection unusable: the
        # pool must not lend it again
        self._discard_on_close = True
        try:
            super().close_if_health_check_failed()
        finally:
            self._discard_on_close = False

    def close_if_unusable_or_obsolete(self) -> None:
        # with errors_occurred, Django closes only a connection that failed
        # its check (or whose autocommit is off): drop it rather than pool it
        self._discard_on_close = bool(self.errors_occurred)
        try:
            super().close_if_unusable_or_obsolete()
        finally:
            self._discard_on_close = False

    def close_pool(self) -> None:
        """Close this alias's pool (the next connect makes a new one)."""
        pooling.close_pools(self.alias)

    @guard.guarded
    def create_cursor(self, name: str | None = None) -> CursorWrapper:
        return CursorWrapper(self.connection.cursor())

    def _rollback(self) -> None:
        try:
            super()._rollback()
        except pymysql.err.NotSupportedError:
            pass

    def is_usable(self) -> bool:
        try:
            self.connection.ping(False)  # never reconnect a pooled connection behind the pool
        except pymysql.err.Error:
            return False
        return True

    @cached_property
    def mysql_server_data(self) -> dict[str, Any]:
        pool = pooling.pools().get(self.alias) if self.pool_settings().enabled else None
        if pool is not None and pool.server_data is not None:
            return pool.server_data
        data: dict[str, Any] = super().mysql_server_data
        pool = pooling.pools().get(self.alias) if pool is None else pool
        if pool is not None:
            pool.server_data = data
        return data
