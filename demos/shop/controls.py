"""Ways to make the pool visibly work: a load burst, held connections, and
killing a server connection from a separate admin connection.

Each action starts background tasks on the running loop and returns at once
with what it started; :meth:`LoadControls.state` says what is still running
(the dashboard shows it in every frame).  Failures of the load itself (a
request that timed out waiting, a killed connection) are the point of the
exercise: they are counted by exception class here, and the pool counts them
in ``pool.errors()``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import tornpool
from tornpool import Pool

from demos.shop.store import InvalidInput, ShopError

__all__ = ["LoadControls", "NothingToKill", "LIMITS"]

#: Bounds of every parameter: (lowest, highest).
LIMITS = {
    "requests": (1, 5000),
    "concurrency": (1, 200),
    "sleep_ms": (0, 1000),
    "count": (1, 50),
    "seconds": (0.1, 120.0),
}


#: MariaDB's "Unknown thread id" error.
ER_NO_SUCH_THREAD = 1094


class NothingToKill(ShopError):
    """No connection of the wanted state to kill."""

    status = 409


def _bounded(name: str, value: Any, kind: type) -> Any:
    low, high = LIMITS[name]
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}: a number from {low} to {high} is required") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise InvalidInput(f"{name}: a number from {low} to {high} is required")
    return number


Note = Callable[[str, "int | None", str], None]


class LoadControls:
    """Load bursts, held connections and kills against ``pool``; kills are
    sent through ``admin`` (a second, small pool on the same server).
    ``note(kind, connection_id, detail)`` is told what was done."""

    def __init__(self, pool: Pool, admin: Pool, note: Note | None = None) -> None:
        self.pool = pool
        self.admin = admin
        self._note = note or (lambda kind, cid, detail: None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.bursts = 0
        self.burst_total = 0
        self.burst_done = 0
        self.failed: Counter[str] = Counter()
        self.held = 0
        self.kills = 0

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def state(self) -> dict[str, Any]:
        """What is running now (a frame's ``activity``)."""
        return {"bursts": self.bursts, "burst_total": self.burst_total,
                "burst_done": self.burst_done, "failed": dict(self.failed),
                "held": self.held, "kills": self.kills}

    async def stop(self) -> None:
        """Cancel whatever still runs and wait for it to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- a burst -------------------------------------------------------------------

    def burst(self, requests: Any = 400, concurrency: Any = 40, sleep_ms: Any = 50) -> dict[str, Any]:
        """``requests`` statements from ``concurrency`` coroutines at once, each
        a product lookup that takes ``sleep_ms`` on the server: more
        coroutines than ``max_size`` queue for a connection.

        :raises InvalidInput: a parameter out of :data:`LIMITS`.
        """
        n = _bounded("requests", requests, int)
        workers = _bounded("concurrency", concurrency, int)
        sleep = _bounded("sleep_ms", sleep_ms, int) / 1000
        if self.bursts == 0:
            self.burst_total = self.burst_done = 0
        self.bursts += 1
        self.burst_total += n
        self._spawn(self._burst(n, min(workers, n), sleep))
        detail = f"{n} requests from {min(workers, n)} coroutines, {sleep * 1000:.0f} ms each"
        self._note("burst", None, detail)
        return {"started": detail}

    async def _burst(self, n: int, workers: int, sleep: float) -> None:
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                try:
                    await self.pool.execute(
                        "SELECT SLEEP(%s), COUNT(*), SUM(stock) FROM product", (sleep,))
                except tornpool.MySQLError as exc:  # every error tornpool raises
                    self.failed[type(exc).__name__] += 1
                self.burst_done += 1

        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            self.bursts -= 1

    # -- holding -------------------------------------------------------------------

    def hold(self, count: Any = 2, seconds: Any = 10) -> dict[str, Any]:
        """Keep ``count`` connections busy for ``seconds`` (each runs one
        ``SELECT SLEEP(seconds)`` through ``pool.execute``).

        :raises InvalidInput: a parameter out of :data:`LIMITS`.
        """
        k = _bounded("count", count, int)
        secs = _bounded("seconds", seconds, float)
        for _ in range(k):
            self._spawn(self._hold(secs))
        detail = f"{k} connection(s) for {secs:g} s"
        self._note("hold", None, detail)
        return {"started": detail}

    async def _hold(self, seconds: float) -> None:
        self.held += 1
        try:
            await self.pool.execute("SELECT SLEEP(%s)", (seconds,))
        except tornpool.MySQLError as exc:
            self.failed[type(exc).__name__] += 1
        finally:
            self.held -= 1

    # -- killing -------------------------------------------------------------------

    async def kill(self, state: str = "in use") -> dict[str, Any]:
        """``KILL`` the oldest connection of the pool in ``state`` (``"in use"``
        or ``"idle"``) from the admin pool; resolves to what was killed.

        :raises InvalidInput: another state.
        :raises NothingToKill: no connection in that state.
        """
        if state not in ("in use", "idle"):
            raise InvalidInput('state: "in use" or "idle"')
        candidates = [c for c in self.pool.connections()
                      if c["state"] == state and isinstance(c["id"], int)]
        if not candidates:
            raise NothingToKill(f"no connection is {state}")
        target = max(candidates, key=lambda c: c["age_s"])
        try:
            await self.admin.execute("KILL %s", (target["id"],))
        except tornpool.DatabaseError as exc:
            if exc.args and exc.args[0] == ER_NO_SUCH_THREAD:  # gone meanwhile
                raise NothingToKill(f"connection {target['id']} is gone already") from exc
            raise
        self.kills += 1
        detail = f"KILL {target['id']} ({state}, {target['uses']} uses)"
        self._note("kill", target["id"], detail)
        return {"killed": target["id"], "state": state}
