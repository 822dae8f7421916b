"""What the dashboard shows, read off the pool through its public API.

A :class:`PoolMonitor` samples the pool every ``interval`` seconds into a
*frame* (a JSON-ready dict): sizes and states (``pool.stats()``,
``pool.connections()``), wait and use percentiles over a sliding window (the
difference of two ``pool.histograms()`` copies), failed requests by type
(``pool.errors()``), request rate.  Lifecycle events (``pool.add_listener``)
are passed on the moment they happen, and kept.  Subscribers (the
server-sent-events handler) get ``(kind, data)`` messages on their own queue:
``"frame"`` and ``"event"``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from tornpool import Pool
from tornpool.pool import Histogram, PoolEvent

__all__ = ["PoolMonitor", "Message", "QUANTILES"]

#: ``(label, q)`` of the percentiles shown.
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))

Message = tuple[str, dict[str, Any]]


def _percentiles(window: Histogram) -> dict[str, float | None]:
    """Milliseconds, or None with nothing observed in the window."""
    out: dict[str, float | None] = {}
    for label, q in QUANTILES:
        value = window.quantile(q)
        out[label] = None if value is None else round(value * 1000, 2)
    return out


def _event(event: PoolEvent, source: str = "pool") -> dict[str, Any]:
    return {"kind": event.kind, "connection_id": event.connection_id, "detail": event.detail,
            "at": event.at, "source": source}


class PoolMonitor:
    """Frames and events of one pool, for any number of subscribers.

    ``extra`` is called for each frame and its dict stored under
    ``"activity"`` (the load controls report what they are doing there).
    """

    def __init__(self, pool: Pool, *, interval: float = 0.5, window: float = 10.0,
                 history: int = 120, keep_events: int = 200,
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        if interval <= 0 or window < interval:
            raise ValueError("need 0 < interval <= window")
        self.pool = pool
        self.interval = interval
        self.window = window
        self.extra = extra
        self.frames: deque[dict[str, Any]] = deque(maxlen=history)
        self.events: deque[dict[str, Any]] = deque(maxlen=keep_events)
        self.counts: Counter[str] = Counter()
        self._samples: deque[tuple[float, dict[str, Histogram]]] = deque()
        self._subscribers: set[asyncio.Queue[Message | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_requests: tuple[float, int] | None = None
        self._connected_before = 0

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Listen to the pool and start sampling (on the running loop)."""
        if self._task is not None:
            return
        self.pool.add_listener(self._on_event)
        self._connected_before = len(self.pool.connections())
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling, stop listening, and end every subscription."""
        task, self._task = self._task, None
        if task is None:
            return
        self.pool.remove_listener(self._on_event)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        for queue in list(self._subscribers):
            self.end(queue)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    # -- subscribers ---------------------------------------------------------------

    def subscribe(self, limit: int = 500) -> asyncio.Queue[Message | None]:
        """A queue of messages; ``None`` ends it (the monitor stopped, or the
        subscriber fell ``limit`` messages behind)."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=limit)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message | None]) -> None:
        self._subscribers.discard(queue)

    def end(self, queue: asyncio.Queue[Message | None]) -> None:
        """End a subscription: the subscriber's next ``get()`` gives None."""
        self._subscribers.discard(queue)
        while True:  # make room for the end marker
            try:
                queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                queue.get_nowait()

    def _broadcast(self, message: Message) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self.end(queue)

    def hello(self) -> dict[str, Any]:
        """What a new subscriber starts from: recent frames and events."""
        return {"frames": list(self.frames), "events": list(self.events),
                "interval": self.interval, "window": self.window}

    # -- events --------------------------------------------------------------------

    def _on_event(self, event: PoolEvent) -> None:
        self._record(_event(event))

    def note(self, kind: str, connection_id: int | None, detail: str) -> None:
        """Record something the demo itself did (a kill, a burst) among the
        pool's events, marked ``source: "demo"``."""
        self._record({"kind": kind, "connection_id": connection_id, "detail": detail,
                      "at": time.time(), "source": "demo"})

    def _record(self, data: dict[str, Any]) -> None:
        self.counts[data["kind"]] += 1
        self.events.append(data)
        self._broadcast(("event", data))

    # -- frames --------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        """Take a frame now, keep it and send it to every subscriber."""
        now = time.monotonic()
        pool = self.pool
        stats = pool.stats()
        conns = pool.connections()
        states = Counter(c["state"] for c in conns)
        hists = pool.histograms()
        self._samples.append((now, hists))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        start = self._samples[0][1]
        requests = stats["requests_num"]
        rate = 0.0
        if self._last_requests is not None:
            then, before = self._last_requests
            if now > then:
                rate = max(requests - before, 0) / (now - then)
        self._last_requests = (now, requests)
        errors = pool.errors()
        connects = self._connected_before + self.counts["connect"]
        frame: dict[str, Any] = {
            "t": time.time(),
            "name": pool.name,
            "size": pool.size,
            "max_size": pool.max_size,
            "open": len(conns),
            "in_use": states["in use"],
            "idle": states["idle"],
            "closing": states["closing"] + states["reaping"],
            "waiting": stats["requests_waiting"],
            "requests": requests,
            "rate": round(rate, 1),
            # connections opened since the pool started, and those gone since
            "connects": connects,
            "closes": connects - len(conns),
            "errors": errors,
            "errors_total": sum(errors.values()),
            "wait_ms": _percentiles(hists["wait"].since(start["wait"])),
            "use_ms": _percentiles(hists["use"].since(start["use"])),
            "connections": [
                {"id": c["id"], "state": c["state"], "age_s": round(c["age_s"], 1),
                 "uses": c["uses"],
                 "idle_s": round(c["idle_s"], 1) if "idle_s" in c else None,
                 "held_s": round(c["held_s"], 2) if "held_s" in c else None}
                for c in sorted(conns, key=lambda c: (c["id"] is None, c["id"]))
            ],
            "activity": self.extra() if self.extra is not None else {},
        }
        self.frames.append(frame)
        self._broadcast(("frame", frame))
        return frame
