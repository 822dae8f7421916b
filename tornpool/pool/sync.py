"""The blocking face of a :class:`~tornpool.Pool`, for worker threads.

Code running in another thread (a thread pool executor, a WSGI worker, a
script without an event loop) gets the very same pool -- same cap, same FIFO
queue, same health checks, same session reset -- through :meth:`Pool.sync`::

    sp = pool.sync()
    with sp.connection() as conn:
        rows = conn.execute("SELECT ...").fetchall()
    sp.execute("UPDATE ...")

Each call is submitted to the pool's event loop with
:func:`asyncio.run_coroutine_threadsafe` and blocks the calling thread only.
If the pool is not bound to a loop yet, :class:`SyncPool` starts one in a
daemon thread and the pool lives there; :meth:`SyncPool.close` stops it.
Calling a blocking method from the pool's own loop thread would deadlock,
so it raises :class:`~tornpool.errors.WrongEventLoop` instead.

Only :class:`tornpool.Pool`'s public API is used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tornpool.errors import WrongEventLoop

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.cursors import Cursor
    from tornpool.pool.connection import PoolConnection
    from tornpool.pool.mysql import Pool

__all__ = ["SyncPool", "SyncConnection"]

T = TypeVar("T")


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    """True if ``loop`` is the loop running in the calling thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class SyncPool:
    """Blocking wrapper around a :class:`~tornpool.Pool`; obtain it with
    :meth:`Pool.sync`.  Thread-safe."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- plumbing ------------------------------------------------------------------

    def _target_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.pool.loop
        if loop is not None:
            return loop
        with self._lock:
            loop = self.pool.loop
            if loop is not None:
                return loop
            if self._own_loop is None:
                own = asyncio.new_event_loop()
                thread = threading.Thread(target=own.run_forever, daemon=True,
                                          name="tornpool-%s" % self.pool.name)
                thread.start()
                self._own_loop, self._thread = own, thread
            return self._own_loop

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` (a factory of an awaitable) on the pool's loop and
        block until it finishes; returns its result or raises its exception.

        :raises WrongEventLoop: called from the pool's own loop thread.
        """
        loop = self._target_loop()
        if _runs_here(loop):
            raise WrongEventLoop(0, "blocking pool call from the pool's own event loop thread "
                                    "would deadlock; await the async API instead")

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    # -- API ---------------------------------------------------------------------------

    def connect(self) -> SyncPool:
        """Open ``size`` connections (see :meth:`Pool.connect`)."""
        self.call(self.pool.connect)
        return self

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[SyncConnection]:
        """``with sp.connection() as conn:`` a connection for this block,
        given back on exit (the pool rolls back a transaction left open and
        restores the session).

        :raises PoolTimeout, PoolClosed: as :meth:`Pool.getconn`.
        """
        lease = self.call(lambda: self.pool.getconn(timeout))
        try:
            yield SyncConnection(self, lease)
        finally:
            self._release(lease)

    @contextlib.contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[SyncConnection]:
        """``with sp.transaction() as conn:`` BEGIN, COMMIT on success,
        ROLLBACK on error -- the pool's own transaction scope, run on its
        loop."""
        scope = self.pool.transaction(timeout=timeout)
        lease = self.call(scope.__aenter__)
        try:
            yield SyncConnection(self, lease)
        except BaseException as exc:
            self.call(lambda: scope.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        self.call(lambda: scope.__aexit__(None, None, None))

    def _release(self, lease: PoolConnection) -> None:
        loop = self._target_loop()
        if _runs_here(loop):
            lease.release()
        else:
            loop.call_soon_threadsafe(lease.release)

    def execute(self, sql: str, args: Any = None, *, timeout: float | None = None) -> Cursor:
        """Blocking :meth:`Pool.execute`; returns a buffered cursor."""
        cursor: Cursor = self.call(lambda: self.pool.execute(sql, args, timeout=timeout))
        return cursor

    def executemany(self, sql: str, seq_of_args: Iterable[Any], *,
                    timeout: float | None = None) -> Cursor:
        """Blocking :meth:`Pool.executemany`."""
        return self.call(lambda: self.pool.executemany(sql, seq_of_args, timeout=timeout))

    def stats(self) -> dict[str, int]:
        """Same as :meth:`Pool.stats` (read on the pool's loop)."""
        return self.call(self._stats)

    async def _stats(self) -> dict[str, int]:
        return self.pool.stats()

    def close(self, timeout: float = 5.0) -> None:
        """Close the pool and stop the background loop if this object
        started one."""
        try:
            if not self.pool.closed:
                self.call(lambda: self.pool.close(timeout))
        finally:
            own, thread = self._own_loop, self._thread
            if own is not None and thread is not None:
                own.call_soon_threadsafe(own.stop)
                thread.join(timeout=5)
                own.close()
                self._own_loop = self._thread = None


class SyncConnection:
    """A leased connection seen from a worker thread: each method blocks
    the calling thread until the pool's loop has run the command."""

    __slots__ = ("_sp", "lease")

    def __init__(self, sp: SyncPool, lease: PoolConnection) -> None:
        self._sp = sp
        self.lease = lease

    def execute(self, sql: str, args: Any = None, *, timeout: float | None = None) -> Cursor:
        """Run one statement; returns a buffered cursor."""
        lease = self.lease
        cursor: Cursor = self._sp.call(lambda: lease.execute(sql, args, timeout=timeout))
        return cursor

    def executemany(self, sql: str, seq_of_args: Iterable[Any], *,
                    timeout: float | None = None) -> Cursor:
        lease = self.lease
        return self._sp.call(lambda: lease.executemany(sql, seq_of_args, timeout=timeout))

    def callproc(self, procname: str, args: Sequence[Any] = (), *,
                 timeout: float | None = None) -> Cursor:
        lease = self.lease
        return self._sp.call(lambda: lease.callproc(procname, args, timeout=timeout))

    def begin(self) -> None:
        self._sp.call(self.lease.begin)

    def commit(self) -> None:
        self._sp.call(self.lease.commit)

    def rollback(self) -> None:
        self._sp.call(self.lease.rollback)

    def ping(self) -> None:
        self._sp.call(self.lease.ping)
