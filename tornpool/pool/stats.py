"""Pool statistics with psycopg_pool's names, latency histograms, and their
Prometheus text form.

Counters are plain integers bumped on the hot path; times are summed in
seconds and reported in milliseconds.  Two :class:`Histogram`s record every
request's wait for a connection and every use of one (a statement of
``pool.execute``, or a lease from acquire to release): a bisection and an
increment each.  :meth:`PoolStats.snapshot` adds the gauges the engine knows
(sizes, waiting requests).  Percentiles over a sliding window come from the
difference of two histogram snapshots (:meth:`Histogram.quantile`).
"""

from __future__ import annotations

from bisect import bisect_left as _bucket
from collections.abc import Sequence

__all__ = ["PoolStats", "Histogram", "STATS_KEYS", "GAUGES", "BUCKETS", "render_prometheus"]

#: Histogram bucket upper bounds, in seconds (the last bucket is +Inf).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Counts of durations per bucket of :data:`BUCKETS` (plus +Inf), their
    sum and their number."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[_bucket(BUCKETS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        """Durations observed."""
        return sum(self.counts)

    def copy(self) -> Histogram:
        other = Histogram()
        other.counts = list(self.counts)
        other.sum = self.sum
        return other

    def since(self, earlier: Histogram) -> Histogram:
        """What was observed after ``earlier`` (a :meth:`copy` of this one)."""
        diff = Histogram()
        diff.counts = [a - b for a, b in zip(self.counts, earlier.counts)]
        diff.sum = self.sum - earlier.sum
        return diff

    def quantile(self, q: float) -> float | None:
        """An estimate of the ``q`` quantile (0..1), interpolated inside its
        bucket; None with nothing observed.  The +Inf bucket reports its
        lower bound."""
        total = self.count
        if total <= 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                lower = BUCKETS[i - 1] if i > 0 else 0.0
                if i >= len(BUCKETS):
                    return lower
                return lower + (BUCKETS[i] - lower) * max(rank - seen, 0.0) / n
            seen += n
        return BUCKETS[-1]

    def reset(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

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
        "wait_s", "usage_s", "connect_s", "wait", "usage", "errors",
    )

    def __init__(self) -> None:
        #: Seconds each request waited for a connection (0 when one was idle).
        self.wait = Histogram()
        #: Seconds each connection was in use: a pooled statement, or a lease.
        self.usage = Histogram()
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
        self.wait.reset()
        self.usage.reset()
        #: Failed requests by exception class name (timeouts, lost connections,
        #: server errors of the pool's own statements...).
        self.errors: dict[str, int] = {}

    def error(self, exc: BaseException) -> None:
        """Count a failed request by the name of its exception's class."""
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

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


def render_prometheus(stats: dict[str, int], name: str, prefix: str = "tornpool",
                      histograms: Sequence[tuple[str, str, Histogram]] = ()) -> str:
    """``stats`` (a :meth:`PoolStats.snapshot`) in the Prometheus text
    exposition format, labelled ``pool="<name>"``, followed by
    ``histograms``: ``(metric name, help text, histogram)`` each, with
    cumulative ``le`` buckets in seconds."""
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
    for metric_name, help_text, hist in histograms:
        metric = "%s_%s" % (prefix, metric_name)
        lines.append("# HELP %s %s" % (metric, help_text))
        lines.append("# TYPE %s histogram" % metric)
        running = 0
        for bound, n in zip(BUCKETS + (float("inf"),), hist.counts):
            running += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append('%s_bucket{pool="%s",le="%s"} %d' % (metric, label, le, running))
        lines.append('%s_sum{pool="%s"} %r' % (metric, label, hist.sum))
        lines.append('%s_count{pool="%s"} %d' % (metric, label, hist.count))
    return "\n".join(lines) + "\n"
