"""What every pool built on a :class:`~tornpool.pool.engine.PoolEngine` shows
of it: its sizes, stats and Prometheus text, latency histograms, per-connection
state, lifecycle listeners, and resize / drain / close.

:class:`PoolFacade` is a base of :class:`tornpool.Pool` and of
:class:`tornpool.dbapi.ExecutorPool`; a driver pool calls
``PoolFacade.__init__(self, engine)`` and adds its own way of running
statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from tornpool.pool.engine import PoolEngine
from tornpool.pool.events import PoolEvent
from tornpool.pool.lease import Poolable
from tornpool.pool.stats import Histogram, render_prometheus

__all__ = ["PoolFacade"]

C = TypeVar("C", bound=Poolable)


class PoolFacade(Generic[C]):
    """The engine-facing half of a pool (see the module docstring)."""

    def __init__(self, engine: PoolEngine[C]) -> None:
        #: The driver-independent engine (for introspection).
        self.engine = engine

    # -- properties -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The pool's name (log lines, the ``pool`` label of its metrics)."""
        return self.engine.name

    @property
    def size(self) -> int:
        """Connections kept open (``pool_min``)."""
        return self.engine.min_size

    @property
    def max_size(self) -> int:
        """Cap on connections (``pool_max``), counted until each is gone."""
        return self.engine.max_size

    @property
    def timeout(self) -> float:
        """Default acquire deadline in seconds."""
        return self.engine.timeout

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.engine.closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the pool is bound to, or None before first use."""
        return self.engine.loop

    @property
    def last_connect_error(self) -> BaseException | None:
        """The last connect error while the server is unreachable, else None."""
        return self.engine.last_connect_error

    # -- observing ------------------------------------------------------------------

    def stats(self, reset: bool = False) -> dict[str, int]:
        """Counters and gauges with psycopg_pool's names (``pool_min``,
        ``pool_max``, ``pool_size``, ``pool_available``, ``requests_waiting``,
        ``requests_num``, ``requests_queued``, ``requests_wait_ms``,
        ``requests_errors``, ``usage_ms``, ``returns_bad``,
        ``connections_num``, ``connections_ms``, ``connections_errors``,
        ``connections_lost``).

        :param reset: zero the counters after reading.
        """
        return self.engine.snapshot(reset)

    def prometheus(self, prefix: str = "tornpool") -> str:
        """:meth:`stats` in the Prometheus text exposition format, labelled
        ``pool="<name>"``, with the histograms ``<prefix>_request_wait_seconds``
        (each request's wait for a connection) and
        ``<prefix>_connection_use_seconds`` (each statement the pool ran for
        its caller, each lease from acquire to release)."""
        stats = self.engine.stats
        return render_prometheus(self.engine.snapshot(), self.name, prefix, (
            ("request_wait_seconds", "Seconds a request waited for a connection.", stats.wait),
            ("connection_use_seconds", "Seconds a connection was in use per request.", stats.usage),
        ))

    def histograms(self) -> dict[str, Histogram]:
        """Copies of the latency histograms: ``wait`` (for a connection) and
        ``use`` (of a connection); subtract two copies (``later.since(earlier)``)
        for a window and ask it for ``quantile(0.99)``."""
        stats = self.engine.stats
        return {"wait": stats.wait.copy(), "use": stats.usage.copy()}

    def errors(self) -> dict[str, int]:
        """Failed requests by exception class (a copy)."""
        return dict(self.engine.stats.errors)

    def connections(self) -> list[dict[str, Any]]:
        """Every connection the pool counts: id, state, age, uses, how long
        idle or held (see :meth:`tornpool.pool.PoolEngine.connections`)."""
        return self.engine.connections()

    def add_listener(self, callback: Callable[[PoolEvent], None]) -> None:
        """Call ``callback(event)`` for every lifecycle event (connect,
        connect_failed, lost, closed, reaped, timeout, error); see
        :mod:`tornpool.pool.events`."""
        self.engine.events.add(callback)

    def remove_listener(self, callback: Callable[[PoolEvent], None]) -> None:
        """Stop calling ``callback``.

        :raises ValueError: it was not added.
        """
        self.engine.events.remove(callback)

    # -- managing -------------------------------------------------------------------

    def resize(self, size: int, max_size: int | None = None) -> None:
        """Change ``size`` and ``max_size``; the pool grows or shrinks in
        the background (leased connections above the new cap close on
        return)."""
        self.engine.resize(size, max_size)

    async def drain(self) -> None:
        """Replace every connection gracefully: idle ones at once, leased
        ones when given back.  Resolves once ``size`` new connections are
        open."""
        self.engine.drain()
        await self.engine.wait_filled()

    async def close(self, timeout: float = 5.0) -> None:
        """Close gracefully: waiters get :class:`~tornpool.errors.PoolClosed`,
        idle connections are closed, leased ones are closed when given back
        or terminated after ``timeout`` seconds (a warning names where they
        were acquired).

        :raises PoolClosed: the pool was already closed.
        """
        await self.engine.close(timeout)
