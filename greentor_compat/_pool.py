"""greentor's greenlet-blocking ``Pool``, on tornpool's :class:`~tornpool.pool.PoolEngine`.

greentor's pool was a deque and a counter: a connect that failed kept its
slot forever, and a wait that timed out raised a bare ``Exception``.  Here
the engine does the lending -- FIFO waiters with one deadline, growth in the
background without a lock held, capacity counted until a connection is
really gone, a failed connect giving its slot back, health checks, leak
reports -- and :meth:`Pool.get_conn` only turns its hand-out into a
greenlet-blocking call.  A wait that times out raises
:class:`~tornpool.errors.PoolTimeout` (the last connect error chained).

Subclasses say how to make a connection (:meth:`Pool.create_raw_conn`, as in
greentor) and, optionally, how to tell its state, ping, roll back and close
it (the ``conn_*`` hooks); :class:`greentor_compat.mysql.ConnectionPool` is
the PyMySQL one.  Hooks that talk to the server run in a greenlet of their
own (:func:`tornpool.green.spawn`), so they are written in blocking style.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tornpool import green as tgreen
from tornpool.errors import ConnectionReleased, ForeignConnection, GreenletRequired
from tornpool.pool import RETIRE, LeaseWaiter, PoolEngine
from tornpool.pool.lease import Lease, Slot, capture_site, where_acquired

from greentor_compat import _waiting

__all__ = ["Pool"]

log = logging.getLogger("greentor_compat.pool")

#: Frames of the caller kept for leak and open-transaction warnings.
_SITE_DEPTH = 6


class _Entry:
    """One pooled connection as the engine sees it (its ``Poolable``); the
    caller gets :attr:`raw`."""

    __slots__ = ("pool", "raw", "lease", "_abandoned", "__weakref__")

    def __init__(self, pool: Pool, raw: Any) -> None:
        self.pool = pool
        self.raw = raw
        self.lease: Lease[Any] | None = None
        self._abandoned = False

    @property
    def closed(self) -> bool:
        return self.pool.conn_closed(self.raw)

    @property
    def busy(self) -> bool:
        return self.pool.conn_busy(self.raw)

    @property
    def in_transaction(self) -> bool:
        return self.pool.conn_in_transaction(self.raw)

    @property
    def has_unread_result(self) -> bool:
        return self.pool.conn_unread(self.raw)

    @property
    def abandoned(self) -> bool:
        return self._abandoned or self.pool.conn_abandoned(self.raw)

    @abandoned.setter
    def abandoned(self, value: bool) -> None:
        self._abandoned = value

    @property
    def thread_id(self) -> int | None:
        return self.pool.conn_thread_id(self.raw)

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """Run ``fn(raw, *args)`` -- blocking-style, in a greenlet of its own --
        while the connection is back in the pool (the pool's own use)."""
        pool, raw = self.pool, self.raw
        pool.on_lend(raw)
        try:
            job = tgreen.spawn(fn, raw, *args)
            return await (job if timeout is None else asyncio.wait_for(job, timeout))
        finally:
            if self.lease is None:
                pool.on_return(raw)

    async def ping(self, *, timeout: float | None = None) -> None:
        await self.run(self.pool.ping_conn, timeout=timeout)

    async def rollback(self, timeout: float | None = None) -> None:
        await self.run(self.pool.rollback_conn, timeout=timeout)

    async def close(self) -> None:
        await self.run(self.pool.close_conn)

    def terminate(self) -> None:
        self.pool.terminate_conn(self.raw)

    def __repr__(self) -> str:
        return "<pooled %r>" % (self.raw,)


class Pool:
    """A pool whose :meth:`get_conn` returns a connection synchronously inside
    a green task.

    :param max_size: hard cap on connections (counted until each is gone).
    :param wait_timeout: seconds one :meth:`get_conn` may take in all
        (waiting and connecting); 0 or None: no limit.
    :param params: kept as :attr:`params` for :meth:`create_raw_conn`.
    :param min_size: connections :meth:`init_pool` opens and the pool keeps.
    :param options: more :class:`~tornpool.pool.PoolEngine` options
        (``max_lifetime``, ``max_idle``, ``check_idle``, ``leak_threshold``,
        ``reconnect_interval``, ``name``...).  Unlike tornpool's defaults,
        connections live and idle without limit unless these are given, as in
        greentor.

    Construction touches no event loop; the pool binds to the loop on which
    it is first used.
    """

    def __init__(self, max_size: int = 32, wait_timeout: float | None = 8,
                 params: Mapping[str, Any] | None = None, *, min_size: int = 0,
                 **options: Any) -> None:
        self.params: dict[str, Any] = dict(params or {})
        options.setdefault("max_lifetime", None)
        options.setdefault("max_idle", None)
        options.setdefault("check_idle", None)
        self.engine: PoolEngine[_Entry] = PoolEngine(
            self._connect,
            min_size=min_size,
            max_size=max_size,
            timeout=wait_timeout if wait_timeout else float("inf"),
            recycle=self._recycle,
            **options,
        )
        self._entries: dict[int, weakref.ref[_Entry]] = {}

    @property
    def wait_timeout(self) -> float | None:
        """Seconds one :meth:`get_conn` may take (None: no limit); settable."""
        timeout = self.engine.timeout
        return None if timeout == float("inf") else timeout

    @wait_timeout.setter
    def wait_timeout(self, value: float | None) -> None:
        self.engine.timeout = value if value else float("inf")

    # -- what a subclass provides ----------------------------------------------------

    def create_raw_conn(self) -> Any:
        """Open one connection (blocking style; it runs in a greenlet of its
        own).  Subclasses must override it."""
        raise NotImplementedError("Pool.create_raw_conn() must be overridden")

    def conn_closed(self, conn: Any) -> bool:
        """Whether ``conn`` is closed (default: its ``closed`` attribute, or
        ``not conn.open``)."""
        closed = getattr(conn, "closed", None)
        if closed is not None:
            return bool(closed() if callable(closed) else closed)
        is_open = getattr(conn, "open", True)
        return not (is_open() if callable(is_open) else is_open)

    def conn_busy(self, conn: Any) -> bool:
        """Whether ``conn`` is in the middle of a command (then it is closed
        when given back)."""
        return False

    def conn_in_transaction(self, conn: Any) -> bool:
        """Whether ``conn`` holds an open transaction with changes (then it is
        rolled back, with a warning, when given back)."""
        return False

    def conn_needs_rollback(self, conn: Any) -> bool:
        """Whether ``conn`` must be rolled back when given back, even quietly
        (default: when :meth:`conn_in_transaction`)."""
        return self.conn_in_transaction(conn)

    def conn_unread(self, conn: Any) -> bool:
        """Whether ``conn`` holds an unfinished result (then it is closed)."""
        return False

    def conn_abandoned(self, conn: Any) -> bool:
        """Whether ``conn`` was closed while the server may still be running
        its statement (the pool keeps counting it until reaped)."""
        return False

    def conn_thread_id(self, conn: Any) -> int | None:
        """The server's id of ``conn``, for logs and stats."""
        return None

    def ping_conn(self, conn: Any) -> None:
        """Check ``conn`` is alive (blocking style); raise if it is not."""

    def rollback_conn(self, conn: Any) -> None:
        """Roll back ``conn``'s open transaction (blocking style)."""
        conn.rollback()

    def close_conn(self, conn: Any) -> None:
        """Close ``conn`` gracefully (blocking style)."""
        close = getattr(conn, "close", None)
        if callable(close):
            close()

    def terminate_conn(self, conn: Any) -> None:
        """Close ``conn`` at once, without talking to the server (no waiting)."""
        self.close_conn(conn)

    def on_lend(self, conn: Any) -> None:
        """``conn`` is about to be used (by a caller or by the pool itself)."""

    def on_return(self, conn: Any) -> None:
        """``conn`` came back to the pool."""

    # -- the engine's side -----------------------------------------------------------

    async def _connect(self) -> _Entry:
        raw = await tgreen.spawn(self.create_raw_conn)
        entry = _Entry(self, raw)
        self._entries[id(raw)] = weakref.ref(entry, self._forget(id(raw)))
        self.on_return(raw)
        return entry

    def _forget(self, key: int) -> Callable[[Any], None]:
        entries = self._entries

        def forget(ref: Any) -> None:
            if entries.get(key) is ref:
                del entries[key]

        return forget

    def _recycle(self, entry: _Entry, slot: Slot[_Entry], quiet: bool) -> Any:
        if entry.has_unread_result:
            entry.terminate()  # an unfinished result cannot be skipped cheaply
            return RETIRE
        if not self.conn_needs_rollback(entry.raw):
            return None
        if entry.in_transaction and not quiet:
            log.warning("%s: a connection came back inside a transaction; rolling it back. "
                        "It was taken at:\n%s", self.engine.name, where_acquired(slot.site))
        return entry.rollback(timeout=self.engine.check_timeout)

    def _entry_of(self, conn: Any) -> _Entry:
        ref = self._entries.get(id(conn))
        entry = ref() if ref is not None else None
        if entry is None or entry.raw is not conn:
            raise ForeignConnection(0, "this connection does not belong to %s" % self.engine.name)
        return entry

    # -- greentor's API ----------------------------------------------------------------

    @property
    def size(self) -> int:
        """Idle connections (greentor's meaning)."""
        return len(self.engine.idle_slots())

    def get_conn(self) -> Any:
        """A connection for the calling green task: an idle one, else a new
        one while under ``max_size``, else the next one given back, within
        ``wait_timeout``.  Give it back with :meth:`release`.

        :raises PoolTimeout: none within ``wait_timeout`` (the last connect
            error, if the server is unreachable, is chained).
        :raises PoolClosed: the pool was closed.
        :raises GreenletRequired: not called from a green task.
        :raises: a connect error retrying cannot fix (bad credentials,
            unknown database), at once.
        """
        if not _waiting.can_wait():
            raise GreenletRequired(0, "Pool.get_conn() waits: call it from a green task")
        engine = self.engine
        loop = engine.bind()
        fut: asyncio.Future[Lease[_Entry]] = loop.create_future()
        waiter = LeaseWaiter(engine, fut, capture_site(_SITE_DEPTH) if engine.capture_sites else None)
        engine.submit(waiter, None, loop)
        try:
            lease = _waiting.wait(fut)
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                fut.result().release()  # served just as we were interrupted
            else:
                fut.cancel()
            raise
        entry = lease.connection
        entry.lease = lease
        self.on_lend(entry.raw)
        return entry.raw

    def release(self, conn: Any) -> None:
        """Give ``conn`` back: to the oldest waiter, else to the idle set.
        A transaction left open is rolled back (and logged); a connection
        returned mid-command or with an unfinished result is closed.

        :raises ForeignConnection: ``conn`` is not from this pool.
        :raises ConnectionReleased: it was given back already.
        """
        entry = self._entry_of(conn)
        lease = entry.lease
        if lease is None:
            raise ConnectionReleased(0, "this connection was already given back to its pool")
        entry.lease = None
        self.on_return(conn)
        lease.release()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """``with pool.connection() as conn:`` -- :meth:`get_conn`, then
        :meth:`release` (quietly rolling back if the block raised)."""
        conn = self.get_conn()
        try:
            yield conn
        except BaseException:
            entry = self._entry_of(conn)
            lease, entry.lease = entry.lease, None
            if lease is not None:
                self.on_return(conn)
                lease.release(quiet=True)
            raise
        self.release(conn)

    def init_pool(self) -> None:
        """Open ``min_size`` connections now (at least one), waiting in the
        calling green task.  Optional: :meth:`get_conn` opens what it needs.

        :raises: the first connect error.
        """
        errors = _waiting.wait(self.engine.fill())
        if errors:
            raise errors[0]
        if not self.engine.counted:
            self.release(self.get_conn())

    def quit(self) -> asyncio.Future[None] | None:
        """Close the pool: waiters get :class:`~tornpool.errors.PoolClosed`,
        idle connections close now, connections in use when given back.

        Inside a green task this waits until done and returns None; on the
        loop's own greenlet it returns a Future to await; with no loop
        running it closes at once (running the pool's stopped loop if it has
        one) and returns None.
        """
        closing = self.engine.close()
        if _waiting.can_wait():
            _waiting.wait(closing)
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return asyncio.ensure_future(closing)
        loop = self.engine.loop
        if loop is None or loop.is_closed():
            private = asyncio.new_event_loop()
            try:
                private.run_until_complete(closing)
            finally:
                private.close()
        else:
            loop.run_until_complete(closing)
        return None

    @property
    def closed(self) -> bool:
        return self.engine.closed

    def stats(self) -> dict[str, int]:
        """tornpool's pool statistics (psycopg_pool's key names)."""
        return self.engine.snapshot()

    def __repr__(self) -> str:
        s = self.engine.snapshot()
        return "<%s %s size=%d/%d idle=%d%s>" % (
            type(self).__name__, self.engine.name, s["pool_size"], s["pool_max"],
            s["pool_available"], " closed" if self.closed else "")
