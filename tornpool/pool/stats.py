"""Pool statistics with psycopg_pool's names, and their Prometheus text form.

Counters are plain integers bumped on the hot path; times are summed in
seconds and reported in milliseconds.  :meth:`PoolStats.snapshot` adds the
gauges the engine knows (sizes, waiting requests).
"""

from __future__ import annotations

__all__ = ["PoolStats", "STATS_KEYS", "GAUGES", "render_prometheus"]

#: Every key of :meth:`PoolStats.snapshot`, in order.
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
#: The keys that are gauges (the rest are counters).
GAUGES = frozenset(("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting"))


class PoolStats:
    """The counters of one pool."""

    __slots__ = (
        "requests_num", "requests_queued", "requests_errors", "returns_bad",
        "connections_num", "connections_errors", "connections_lost",
        "wait_s", "usage_s", "connect_s",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        #: Requests for a connection (acquire, or a statement of the pool's).
        self.requests_num = 0
        #: Requests that had to wait for a connection.
        self.requests_queued = 0
        #: Requests that failed for want of a connection (timeout, too many
        #: waiters, server unavailable).
        self.requests_errors = 0
        #: Connections given back in a state that needed cleaning or closing.
        self.returns_bad = 0
        #: Connection attempts, failed ones, and connections found broken.
        self.connections_num = 0
        self.connections_errors = 0
        self.connections_lost = 0
        self.wait_s = 0.0
        self.usage_s = 0.0
        self.connect_s = 0.0

    def snapshot(self, gauges: dict[str, int], reset: bool = False) -> dict[str, int]:
        """Counters plus ``gauges``, keyed as :data:`STATS_KEYS`."""
        values = dict(gauges)
        values.update(
            requests_num=self.requests_num,
            requests_queued=self.requests_queued,
            requests_wait_ms=int(self.wait_s * 1000),
            requests_errors=self.requests_errors,
            usage_ms=int(self.usage_s * 1000),
            returns_bad=self.returns_bad,
            connections_num=self.connections_num,
            connections_ms=int(self.connect_s * 1000),
            connections_errors=self.connections_errors,
            connections_lost=self.connections_lost,
        )
        if reset:
            self.reset()
        return {key: values[key] for key in STATS_KEYS}


def render_prometheus(stats: dict[str, int], name: str, prefix: str = "tornpool") -> str:
    """``stats`` (a :meth:`PoolStats.snapshot`) in the Prometheus text
    exposition format, labelled ``pool="<name>"``."""
    label = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines = []
    for key in STATS_KEYS:
        metric = "%s_%s" % (prefix, key)
        if key in GAUGES:
            lines.append("# TYPE %s gauge" % metric)
        else:
            metric += "_total"
            lines.append("# TYPE %s counter" % metric)
        lines.append('%s{pool="%s"} %d' % (metric, label, stats[key]))
    return "\n".join(lines) + "\n"
