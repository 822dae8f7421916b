"""The pool's health rules: reconnect backoff, periodic maintenance (expiry,
idle shrink, leak reports, refill), and reaping of abandoned connections.

These are policies over :class:`~tornpool.pool.engine.PoolEngine`'s public
methods; the engine calls them, they decide.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tornpool.errors import PoolClosed
from tornpool.pool.lease import Slot, where_acquired

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.pool.engine import PoolEngine

__all__ = ["Backoff", "maintenance_interval", "run_maintenance", "reap_abandoned",
           "validate_then_serve"]

log = logging.getLogger("tornpool.pool")

_monotonic = time.monotonic


class Backoff:
    """Reconnect pacing while the server is unreachable: exponential backoff
    with jitter, one attempt at a time, and a one-time ``reconnect_failed``
    report after ``reconnect_timeout`` seconds without success."""

    __slots__ = ("interval", "max_interval", "timeout", "down_since", "next_attempt",
                 "_delay", "reported", "last_error")

    def __init__(self, interval: float, max_interval: float, timeout: float) -> None:
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self.timeout = timeout
        #: When the server stopped answering (None while it answers).
        self.down_since: float | None = None
        #: Monotonic time of the next allowed attempt.
        self.next_attempt = 0.0
        self._delay = interval
        self.reported = False
        self.last_error: BaseException | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def succeeded(self) -> bool:
        """A connect worked.  Returns True if the server had been down."""
        was_down = self.down_since is not None
        self.down_since = None
        self._delay = self.interval
        self.reported = False
        self.last_error = None
        return was_down

    def failed(self, exc: BaseException) -> bool:
        """A connect failed.  Returns True if ``reconnect_timeout`` just
        passed (report it, once)."""
        now = _monotonic()
        self.last_error = exc
        if self.down_since is None:
            self.down_since = now
        delay = self._delay * (0.75 + 0.5 * random.random())
        self._delay = min(self._delay * 2, self.max_interval)
        self.next_attempt = now + delay
        if not self.reported and now - self.down_since >= self.timeout:
            self.reported = True
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next attempt is allowed."""
        return max(self.next_attempt - _monotonic(), 0.0)


def validate_then_serve(engine: PoolEngine[Any], slot: Slot[Any], waiter: Any) -> None:
    """Ping a connection that sat idle before ``engine`` hands it to
    ``waiter``; a dead one is dropped and the waiter served again, ahead of
    newer waiters, within the pool's ``timeout``."""
    slot.in_use = True
    slot.acquired_at = _monotonic()
    loop = engine.loop
    assert loop is not None
    deadline = loop.time() + engine.timeout
    fleet = engine.fleet
    try:
        ping = asyncio.ensure_future(slot.conn.ping(timeout=engine.check_timeout))
    except Exception:
        slot.in_use = False
        fleet.lost(slot)
        engine.resubmit(waiter, deadline)
        return

    def checked(fut: asyncio.Future[Any]) -> None:
        slot.in_use = False
        if fut.cancelled() or fut.exception() is not None:
            fleet.lost(slot)
            if not waiter.done:
                engine.resubmit(waiter, deadline)
            return
        slot.last_used = _monotonic()
        if waiter.done or (engine.closed and not engine.is_priority(waiter)):
            engine.put(slot)
            if not waiter.done:
                waiter.fail(PoolClosed(0, "%s is closed" % engine.name))
            return
        engine.hand_out(slot, waiter, slot.last_used)

    ping.add_done_callback(checked)


def maintenance_interval(max_idle: float | None, leak_threshold: float | None) -> float:
    """How often maintenance runs: every second, or more often when
    ``max_idle`` or ``leak_threshold`` are short."""
    interval = 1.0
    for value in (max_idle, leak_threshold):
        if value:
            interval = min(interval, value / 2)
    return max(interval, 0.05)


def run_maintenance(engine: PoolEngine[Any]) -> None:
    """One pass: drop dead and expired idle connections, shrink idle ones
    above ``min_size`` after ``max_idle``, report leases held past
    ``leak_threshold``, refill to ``min_size``."""
    now = _monotonic()
    fleet = engine.fleet
    excess = fleet.counted - fleet.min_size
    max_idle = engine.max_idle
    for slot in list(fleet.idle):  # least recently used first
        if slot.conn.closed:
            fleet.lost(slot)
            excess -= 1
        elif now >= slot.expires:
            fleet.retire(slot)
        elif max_idle and excess > 0 and now - slot.last_used > max_idle:
            fleet.retire(slot)
            excess -= 1
    threshold = engine.leak_threshold
    if threshold is not None:
        for slot in list(fleet.slots.values()):
            if slot.in_use and not slot.leak_reported and now - slot.acquired_at > threshold:
                slot.leak_reported = True
                log.warning("%s: connection held for %.1f s (leak?); acquired at:\n%s",
                            engine.name, now - slot.acquired_at, where_acquired(slot.site))
    fleet.grow()


async def reap_abandoned(
    engine: PoolEngine[Any],
    dead: Any,
    reap: Callable[[Any, Any, bool], Awaitable[bool]],
    timeout: float,
    patience: float = 30.0,
) -> None:
    """Have the server drop ``dead`` (closed by us mid-command: the server
    may still be running its statement) and return once it has, so that the
    pool keeps counting it until then.

    ``reap(dead, live, kill)`` runs on a live connection of the pool, taken
    ahead of every waiter: it sends ``KILL`` when ``kill`` is true, and
    resolves to True once the server no longer lists ``dead``.  While the
    server still lists it, this tries again (without another KILL) for up to
    ``patience`` seconds, then logs a warning and gives up.

    When no live connection can exist -- every connection the pool may have
    is being reaped (``max_size=1``, say) -- nothing can be asked, and the
    pool trusts the server to drop ``dead`` within ``timeout`` seconds
    (documented in docs/pool.md).
    """
    started = _monotonic()
    killed = False
    while not engine.closed:
        if engine.reaping >= engine.max_size:
            await asyncio.sleep(timeout)
            return
        remaining = patience - (_monotonic() - started)
        if remaining <= 0:
            break
        try:
            lease = await engine.acquire(min(timeout, remaining), priority=True)
        except Exception as exc:
            log.debug("%s: no connection yet to reap an abandoned one: %s", engine.name, exc)
            continue
        try:
            if await reap(dead, lease.connection, not killed):
                return
            killed = True
        except Exception as exc:
            log.debug("%s: reaping an abandoned connection failed: %s", engine.name, exc)
        finally:
            lease.release()
        await asyncio.sleep(0.05)
    if not engine.closed:
        log.warning("%s: the server still lists a connection closed mid-statement after %.0f s; "
                    "no longer counting it", engine.name, patience)
