"""What keeps a :class:`tornpool.Pool` over a host list on the right server.

A pool built from a multi-host DSN (:mod:`tornpool.hosts`) connects through
its :class:`~tornpool.hosts.HostList`, which checks the role of every new
connection.  Between connects, two signs say that a server the pool uses
left its role, and each makes the pool drain (every connection replaced:
idle ones at once, leased ones when given back; the replacements go through
the host list again):

* a write refused with error 1290 because the server is read-only -- seen
  here, on the statements of :meth:`tornpool.Pool.execute` and of the leases
  this module hands out (their ``execute``, ``executemany`` and
  ``callproc``);
* a fresh connection to that server that finds it in another role.

Nothing is retried because of it: the statement that got 1290 reached the
server and fails to its caller as the server answered.

Reaping is kept on the right server too: a connection abandoned mid-statement
is ``KILL``-ed by its thread id, which means something only on the server
that connection went to; after a failover the pool's live connections may be
on another one, so such a connection is let go without a ``KILL`` (the cap
counts connections per server, and the pool no longer connects to that one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from tornpool.errors import ConnectionReleased, MySQLError
from tornpool.pool.connection import PoolConnection
from tornpool.roles import is_read_only_error

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.connection import Connection
    from tornpool.cursors import Cursor
    from tornpool.hosts import HostList

__all__ = ["FailoverConnection", "note_error", "reap_on_same_server"]


def note_error(hosts: HostList, conn: Any, exc: BaseException) -> None:
    """Tell ``hosts`` about a statement error on ``conn`` if it says the
    server turned read-only."""
    if is_read_only_error(exc):
        hosts.read_only_error(conn)


def _checked(hosts: HostList, conn: Any, fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        exc = fut.exception()
        if exc is not None:
            note_error(hosts, conn, exc)


class FailoverConnection(PoolConnection):
    """The lease of a pool over a host list: a :class:`PoolConnection` whose
    statement errors are checked for "the server is read-only" (see the
    module docstring)."""

    __slots__ = ()

    def _watch(self) -> tuple[HostList | None, Connection | None]:
        engine = self.pool_engine
        if engine is None:
            return None, None
        try:
            return getattr(engine.owner, "hosts", None), self.connection
        except ConnectionReleased:
            return None, None

    def execute(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                cursor: type[Any] | None = None) -> asyncio.Future[Any]:
        """:meth:`PoolConnection.execute`; resolves to a cursor bound to this lease."""
        hosts, conn = self._watch()
        fut = super().execute(query, args, timeout=timeout, cursor=cursor)
        if hosts is not None:
            fut.add_done_callback(partial(_checked, hosts, conn))
        return fut

    async def executemany(self, query: str, seq_of_args: Iterable[Any], *,
                          timeout: float | None = None, cursor: type[Any] | None = None) -> Cursor:
        """:meth:`PoolConnection.executemany`; resolves to a cursor."""
        return await self._noting(
            super().executemany(query, seq_of_args, timeout=timeout, cursor=cursor))

    async def callproc(self, procname: str, args: Sequence[Any] = (), *,
                       timeout: float | None = None, cursor: type[Any] | None = None) -> Cursor:
        """:meth:`PoolConnection.callproc`; resolves to a cursor."""
        return await self._noting(super().callproc(procname, args, timeout=timeout, cursor=cursor))

    async def _noting(self, call: Awaitable[Cursor]) -> Cursor:
        hosts, conn = self._watch()
        try:
            return await call
        except MySQLError as exc:
            if hosts is not None:
                note_error(hosts, conn, exc)
            raise


async def reap_on_same_server(hosts: HostList, reap: Callable[[Any, Any, bool], Awaitable[bool]],
                              dead: Any, live: Any, kill: bool) -> bool:
    """``reap(dead, live, kill)`` when both connections went to the same
    server; otherwise resolves to True at once (see the module docstring)."""
    if hosts.host_of(dead) != hosts.host_of(live):
        return True
    return await reap(dead, live, kill)
