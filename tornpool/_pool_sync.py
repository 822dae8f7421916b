"""The blocking face of a :class:`~tornpool.pool.Pool`, for worker threads.

Code running in another thread (a thread pool executor, a WSGI worker, a
script without an event loop) gets the very same pool -- same cap, same
FIFO queue, same health checks -- through :meth:`Pool.sync`::

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
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from .errors import WrongEventLoop

if TYPE_CHECKING:  # pragma: no cover
    from .cursors import Cursor, _BaseCursor
    from .pool import Pool, PoolConnection

__all__ = ["SyncPool", "SyncConnection"]

T = TypeVar("T")



def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    """True if ``loop`` is the loop running in the calling thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False

class SyncPool:
    """Blocking wrapper around a :class:`~tornpool.pool.Pool`; obtain it
    with :meth:`Pool.sync`.  Thread-safe."""

    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._own_loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    # -- plumbing ------------------------------------------------------------------

    def _target_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.pool.policy.loop
        if loop is not None:
            return loop
        with self._lock:
            loop = self.pool.policy.loop
            if loop is not None:
                return loop
            if self._own_loop is None:
                own = asyncio.new_event_loop()
                thread = threading.Thread(target=own.run_forever, daemon=True,
                                          name="tornpool-%s" % self.pool.name)
                thread.start()
                self._own_loop, self._thread = own, thread

                async def bind() -> None:
                    self.pool.policy._bind()

                asyncio.run_coroutine_threadsafe(bind(), own).result()
            return self._own_loop

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` (a coroutine factory) on the pool's loop and block
        until it finishes; returns its result or raises its exception.

        :raises WrongEventLoop: called from the pool's own loop thread.
        """
        loop = self._target_loop()
        if _runs_here(loop):
            raise WrongEventLoop("blocking pool call from the pool's own event loop thread "
                                 "would deadlock; await the async API instead")

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    # -- API ---------------------------------------------------------------------------

    def connect(self) -> "SyncPool":
        """Open ``size`` connections (see :meth:`Pool.connect`)."""
        self.call(self.pool.connect)
        return self

    @contextlib.contextmanager
    def connection(self, timeout: Optional[float] = None) -> Iterator["SyncConnection"]:
        """``with sp.connection() as conn:`` a connection for this block,
        given back on exit (an open transaction is rolled back).

        :raises PoolTimeout, PoolClosed: as :meth:`Pool.getconn`.
        """
        lease = self.call(lambda: self.pool.getconn(timeout))
        try:
            yield SyncConnection(self, lease)
        finally:
            self._release(lease)

    @contextlib.contextmanager
    def transaction(self, timeout: Optional[float] = None) -> Iterator["SyncConnection"]:
        """``with sp.transaction() as conn:`` BEGIN, COMMIT on success,
        ROLLBACK on error."""
        with self.connection(timeout) as conn:
            conn.begin()
            try:
                yield conn
            except BaseException:
                if not conn.lease.closed:
                    conn.rollback()
                raise
            conn.commit()

    def _release(self, lease: "PoolConnection") -> None:
        loop = self._target_loop()
        if _runs_here(loop):
            lease.release()
        else:
            loop.call_soon_threadsafe(lease.release)

    def execute(self, sql: str, args: Any = None, *, timeout: Optional[float] = None) -> "Cursor":
        """Blocking :meth:`Pool.execute`; returns a buffered cursor."""
        return self.call(lambda: self.pool.execute(sql, args, timeout=timeout))

    def executemany(self, sql: str, seq_of_args: Iterable[Any], *,
                    timeout: Optional[float] = None) -> "_BaseCursor":
        """Blocking :meth:`Pool.executemany`."""
        return self.call(lambda: self.pool.executemany(sql, seq_of_args, timeout=timeout))

    def stats(self) -> Any:
        """Same as :meth:`Pool.stats` (read on the pool's loop)."""
        return self.call(self._stats)

    async def _stats(self) -> Any:
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

    def __init__(self, sp: SyncPool, lease: "PoolConnection") -> None:
        self._sp = sp
        self.lease = lease

    def execute(self, sql: str, args: Any = None, *, timeout: Optional[float] = None) -> "Cursor":
        """Run one statement; returns a buffered cursor."""
        lease = self.lease
        return self._sp.call(lambda: lease.execute(sql, args, timeout=timeout))

    def executemany(self, sql: str, seq_of_args: Iterable[Any], *,
                    timeout: Optional[float] = None) -> "_BaseCursor":
        lease = self.lease
        return self._sp.call(lambda: lease.executemany(sql, seq_of_args, timeout=timeout))

    def callproc(self, procname: str, args: Sequence[Any] = (), *,
                 timeout: Optional[float] = None) -> "_BaseCursor":
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
