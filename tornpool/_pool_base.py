"""Building blocks shared by the pool's policy core: the connection
protocol the policy needs, the per-connection slot, the lease handed to
callers, and the stats vocabulary (psycopg_pool's key names)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Generic, Optional, Protocol, TypeVar

from .errors import ConnectionReleased, PoolUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from ._policy import PoolPolicy

__all__ = ["Poolable", "Lease", "PoolUnavailable", "STATS_KEYS", "render_prometheus"]

class Poolable(Protocol):
    """What the policy needs from a connection."""

    @property
    def closed(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def has_unread_result(self) -> bool: ...

    async def ping(self, *, timeout: Optional[float] = None) -> None: ...

    async def rollback(self, *, timeout: Optional[float] = None) -> None: ...

    async def close(self) -> None: ...

    def terminate(self) -> None: ...


C = TypeVar("C", bound=Poolable)

STATS_KEYS = (
    "pool_min",
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "usage_ms",
    "returns_bad",
    "connections_num",
    "connections_ms",
    "connections_errors",
    "connections_lost",
)
_GAUGES = frozenset(("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting"))


class _Slot(Generic[C]):
    """Bookkeeping for one connection owned by the pool."""

    __slots__ = ("conn", "created", "expires", "last_used", "uses", "generation",
                 "lease", "acquired_at", "acquired_stack", "leak_reported", "abandoned")

    def __init__(self, conn: C, now: float, expires: float, generation: int) -> None:
        self.conn = conn
        self.created = now
        self.expires = expires
        self.last_used = now
        self.uses = 0
        self.generation = generation
        self.lease: Optional[Lease[C]] = None
        self.acquired_at = 0.0
        self.acquired_stack: Optional[str] = None
        self.leak_reported = False
        self.abandoned = False


class Lease(Generic[C]):
    """One acquisition of a pooled connection.

    The lease is the only handle the caller gets; after :meth:`release`
    (or the pool's ``putconn``) it is detached and :attr:`raw` raises
    :class:`~tornpool.errors.ConnectionReleased`.  Subclasses add the
    driver's methods and forward them to :attr:`raw`.
    """

    __slots__ = ("_slot", "_policy")

    def __init__(self, policy: "PoolPolicy[C]", slot: _Slot[C]) -> None:
        self._policy: Optional[PoolPolicy[C]] = policy
        self._slot: Optional[_Slot[C]] = slot

    @property
    def raw(self) -> C:
        """The underlying connection.

        :raises ConnectionReleased: the lease was given back to the pool.
        """
        slot = self._slot
        if slot is None:
            raise ConnectionReleased("this connection was released to its pool")
        return slot.conn

    @property
    def released(self) -> bool:
        """True once the lease was given back to the pool."""
        return self._slot is None

    def mark_abandoned(self) -> None:
        """Record that a command was cut off (cancelled or timed out) while
        the server may still be running it.  The pool then keeps counting
        the connection against ``max_size`` until it has been reaped."""
        if self._slot is not None:
            self._slot.abandoned = True

    def release(self) -> None:
        """Give the connection back to the pool.  Idempotent; synchronous,
        so cancellation cannot interrupt it."""
        slot = self._slot
        policy = self._policy
        if slot is None or policy is None:
            return
        self._slot = None
        self._policy = None
        policy._release(slot)


def _check_sizes(min_size: int, max_size: int) -> None:
    if min_size < 0:
        raise ValueError("size must be >= 0")
    if max_size < 1 or max_size < min_size:
        raise ValueError("max_size must be >= 1 and >= size")


def render_prometheus(stats: Dict[str, int], name: str, prefix: str = "tornpool") -> str:
    """Render :meth:`PoolPolicy.stats` in the Prometheus text format."""
    label = name.replace("\\", "\\\\").replace('"', '\\"')
    lines = []
    for key in STATS_KEYS:
        metric = "%s_%s" % (prefix, key)
        if key in _GAUGES:
            lines.append("# TYPE %s gauge" % metric)
        else:
            metric += "_total"
            lines.append("# TYPE %s counter" % metric)
        lines.append('%s{pool="%s"} %d' % (metric, label, stats[key]))
    return "\n".join(lines) + "\n"
