"""greentor's ``mysql`` module: PyMySQL in green tasks, and a pool of PyMySQL
connections.

* :func:`patch_pymysql` -- afterwards every PyMySQL connection opened inside a
  green task (or a :func:`tornpool.green.spawn` greenlet) on a running event
  loop does its I/O through the loop: TCP, unix sockets and TLS.  Anywhere
  else PyMySQL is untouched: a connection opened at import time, in a thread,
  or on a socket the caller made stays a blocking one.  Calling it twice is
  harmless; :func:`unpatch_pymysql` and ``with patched():`` undo it.
* :func:`connect` -- one PyMySQL connection on the bridge, patched or not.
* :class:`ConnectionPool` -- PyMySQL connections lent synchronously inside
  green tasks, on tornpool's pool engine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from pymysql import connections as _conns
from pymysql import err
from tornpool.pool import PERMANENT_CONNECT_ERRORS

from greentor_compat import _pool, _pymysql_io, _waiting
from greentor_compat._task import sleep

__all__ = ("patch_pymysql", "ConnectionPool", "unpatch_pymysql", "patched", "is_patched", "connect")


def patch_pymysql() -> None:
    """Route PyMySQL connections opened inside green tasks through the event
    loop (see the module docstring).  Idempotent."""
    _conns.Connection.connect = _pymysql_io.bridge_connect


def unpatch_pymysql() -> None:
    """Give PyMySQL its own ``connect`` back (connections already on the
    bridge stay there until closed)."""
    _conns.Connection.connect = _pymysql_io.ORIGINAL_CONNECT


def is_patched() -> bool:
    return _conns.Connection.connect is _pymysql_io.bridge_connect


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """``with patched():`` -- :func:`patch_pymysql` for the block, restoring
    the previous state after it."""
    was = is_patched()
    patch_pymysql()
    try:
        yield
    finally:
        if not was:
            unpatch_pymysql()


def connect(*args: Any, **kwargs: Any) -> Any:
    """``pymysql.connect(...)`` on the bridge when called from a green task
    (whether or not :func:`patch_pymysql` was called); a plain blocking
    connection anywhere else.

    :returns: a :class:`pymysql.connections.Connection`.
    :raises pymysql.err.OperationalError: as PyMySQL raises them (2003 when
        the server cannot be reached).
    """
    defer = kwargs.pop("defer_connect", False)
    conn = _conns.Connection(*args, defer_connect=True, **kwargs)
    if not defer:
        if _waiting.can_wait():
            _pymysql_io.connect_over_bridge(conn)
        else:
            _pymysql_io.ORIGINAL_CONNECT(conn)
    return conn


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, err.OperationalError) and bool(exc.args) and exc.args[0] in PERMANENT_CONNECT_ERRORS


def _kill_and_check(live: Any, thread_id: int, kill: bool) -> bool:
    """On ``live``: KILL ``thread_id`` (when ``kill``), then watch the
    processlist for up to a second until it is gone (blocking style)."""
    cur = live.cursor()
    try:
        if kill:
            try:
                cur.execute("KILL %d" % thread_id)
            except err.MySQLError as exc:
                if exc.args and exc.args[0] == 1094:  # unknown thread: gone already
                    return True
                raise
        deadline = time.monotonic() + 1.0
        while True:
            cur.execute("SELECT 1 FROM information_schema.processlist WHERE id = %s", (thread_id,))
            if not cur.fetchall():
                return True
            if time.monotonic() >= deadline:
                return False
            sleep(0.005)
    finally:
        cur.close()


async def _reap(dead: Any, live: Any, kill: bool) -> bool:
    thread_id = dead.thread_id
    if thread_id is None:
        return True
    return bool(await live.run(_kill_and_check, thread_id, kill, timeout=10.0))


class ConnectionPool(_pool.Pool):
    """PyMySQL connections for green tasks, on tornpool's pool engine.

    :param max_size: hard cap on server connections.
    :param keep_alive: a connection idle longer than this (seconds) is pinged
        before it is handed out, and replaced if the ping fails (greentor
        pinged with reconnect); 0 or None: never.
    :param mysql_params: keyword arguments of :func:`pymysql.connect`.
    :param wait_timeout: seconds :meth:`get_conn` may take (greentor's 8).
    :param options: more :class:`greentor_compat.green.Pool` /
        :class:`~tornpool.pool.PoolEngine` options.

    :meth:`get_conn` returns a real :class:`pymysql.connections.Connection`
    on the bridge (whether or not :func:`patch_pymysql` was called).  Once it
    is given back, that object refuses every command with
    :class:`~tornpool.errors.ConnectionReleased` (rows already fetched stay
    readable) until the pool lends it again.  A connection given back inside
    a transaction is rolled back (and logged if it held changes; without
    ``autocommit`` every return is rolled back, since a plain ``SELECT``
    opens a transaction the server does not report), one given back mid-query or
    with an unfinished ``SSCursor`` result is closed, and one closed while
    the server still ran its statement is ``KILL``\\ ed from another
    connection and counted against ``max_size`` until the server let go.
    """

    def __init__(self, max_size: int = 32, keep_alive: float | None = 7200,
                 mysql_params: Mapping[str, Any] | None = None, *,
                 wait_timeout: float | None = 8, **options: Any) -> None:
        options.setdefault("reap", _reap)
        options.setdefault("permanent_error", _permanent)
        options.setdefault("check_idle", keep_alive or None)
        super().__init__(max_size=max_size, wait_timeout=wait_timeout, params=mysql_params, **options)
        self.keep_alive = keep_alive

    def create_raw_conn(self) -> Any:
        params = dict(self.params)
        params.pop("defer_connect", None)
        conn = _conns.Connection(defer_connect=True, **params)
        _pymysql_io.connect_over_bridge(conn)
        return conn

    def conn_closed(self, conn: Any) -> bool:
        sock = _pymysql_io.bridged_socket(conn)
        return sock is None or sock.closed

    def conn_busy(self, conn: Any) -> bool:
        sock = _pymysql_io.bridged_socket(conn)
        return sock is not None and sock.reading

    def conn_in_transaction(self, conn: Any) -> bool:
        return _pymysql_io.in_transaction(conn)

    def conn_needs_rollback(self, conn: Any) -> bool:
        # Without autocommit a plain SELECT opens a transaction the server
        # does not flag (SERVER_STATUS_IN_TRANS stays off on MariaDB): its
        # snapshot and metadata locks would outlive the lease.
        return _pymysql_io.in_transaction(conn) or not conn.get_autocommit()

    def conn_unread(self, conn: Any) -> bool:
        return _pymysql_io.has_unread_result(conn)

    def conn_abandoned(self, conn: Any) -> bool:
        sock = _pymysql_io.bridged_socket(conn)
        return sock is not None and sock.interrupted

    def conn_thread_id(self, conn: Any) -> int | None:
        return _pymysql_io.server_thread_id(conn)

    def ping_conn(self, conn: Any) -> None:
        _pymysql_io.ping(conn)

    def close_conn(self, conn: Any) -> None:
        if conn.open:
            conn.close()

    def terminate_conn(self, conn: Any) -> None:
        _pymysql_io.force_close(conn)

    def on_lend(self, conn: Any) -> None:
        sock = _pymysql_io.bridged_socket(conn)
        if sock is not None:
            sock.released = False

    def on_return(self, conn: Any) -> None:
        sock = _pymysql_io.bridged_socket(conn)
        if sock is not None:
            sock.released = True
