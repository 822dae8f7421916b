"""Read-only views of a pool engine: its sizes, connections, leases and a
stats snapshot.  :class:`EngineViews` is a base of
:class:`~tornpool.pool.engine.PoolEngine`; it reads only the engine's public
parts (its :class:`~tornpool.pool.fleet.Fleet`, stats and backoff) and
changes nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tornpool.errors import ConnectionReleased, ForeignConnection
from tornpool.pool.lease import Lease, Poolable, Slot

if TYPE_CHECKING:
    from tornpool.pool.fleet import Fleet
    from tornpool.pool.health import Backoff
    from tornpool.pool.stats import PoolStats

__all__ = ["EngineViews"]

C = TypeVar("C", bound=Poolable)
_monotonic = time.monotonic


class EngineViews(Generic[C]):
    """Sizes, per-connection state and stats of an engine (no side effects)."""

    fleet: Fleet[C]
    stats: PoolStats
    backoff: Backoff

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection."""
        raise NotImplementedError

    @property
    def min_size(self) -> int:
        return self.fleet.min_size

    @property
    def max_size(self) -> int:
        return self.fleet.max_size

    @property
    def counted(self) -> int:
        """Connections counted against ``max_size`` (open, in use, closing,
        being reaped), not counting connects in flight."""
        return self.fleet.counted

    @property
    def reaping(self) -> int:
        """Connections closed mid-command, counted until the server dropped them."""
        return self.fleet.reaping

    @property
    def connecting(self) -> int:
        """Connects in flight."""
        return self.fleet.pending

    @property
    def last_connect_error(self) -> BaseException | None:
        """The last connect error while the server is unreachable, else None."""
        return self.backoff.last_error

    def idle_slots(self) -> list[Slot[C]]:
        """The idle connections, least recently used first (a copy)."""
        return list(self.fleet.idle)

    def slots(self) -> list[Slot[C]]:
        """Every counted connection (a copy)."""
        return list(self.fleet.slots.values())

    def leases(self) -> list[Lease[C]]:
        """The leases currently handed out."""
        out: list[Lease[C]] = []
        for slot in self.fleet.slots.values():
            lease = slot.lease
            if lease is not None:
                out.append(lease)
        return out

    def connections(self) -> list[dict[str, Any]]:
        """One dict per counted connection: ``id`` (the server's, if the
        driver tells), ``state`` (``idle``, ``in use``, ``closing``,
        ``reaping``), ``age_s``, ``uses``, and ``idle_s`` or ``held_s``."""
        now = _monotonic()
        out = []
        for slot in self.fleet.slots.values():
            if slot.reaping:
                state = "reaping"
            elif slot.closing:
                state = "closing"
            elif slot.in_use:
                state = "in use"
            else:
                state = "idle"
            info: dict[str, Any] = {
                "id": getattr(slot.conn, "thread_id", None), "state": state,
                "age_s": now - slot.created, "uses": slot.uses,
            }
            if state == "in use":
                info["held_s"] = now - slot.acquired_at
            elif state == "idle":
                info["idle_s"] = now - slot.last_used
            out.append(info)
        return out

    def snapshot(self, reset: bool = False) -> dict[str, int]:
        """Stats with psycopg_pool's key names (see :mod:`tornpool.pool.stats`)."""
        fleet = self.fleet
        gauges = {
            "pool_min": fleet.min_size,
            "pool_max": fleet.max_size,
            "pool_size": fleet.counted + fleet.pending,
            "pool_available": len(fleet.idle),
            "requests_waiting": self.waiting,
        }
        return self.stats.snapshot(gauges, reset)

    def check_lease(self, lease: Any) -> Lease[C]:
        """``lease`` as one of this engine's live leases.

        :raises ForeignConnection: it is not a lease of this pool.
        :raises ConnectionReleased: it was already given back.
        """
        if not isinstance(lease, Lease):
            raise ForeignConnection(0, "not a connection handed out by a pool")
        if lease.released:
            raise ConnectionReleased(0, "this connection was already released")
        if lease.pool_engine is not self:
            raise ForeignConnection(0, "this connection belongs to another pool")
        return lease

    def lease_of(self, conn: Any) -> Lease[C] | None:
        """The live lease holding ``conn``, if this engine handed it out."""
        slot = self.fleet.find(conn)
        return None if slot is None else slot.lease
