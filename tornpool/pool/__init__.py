"""The connection pool.

* :mod:`tornpool.pool.mysql` -- :class:`Pool`, tornpool's MySQL pool;
* :mod:`tornpool.pool.connection` -- :class:`PoolConnection`, the lease it
  hands out;
* :mod:`tornpool.pool.engine` -- :class:`PoolEngine`, the driver-independent
  core (connections, growth, release, close);
* :mod:`tornpool.pool.waiters` -- FIFO waiters sharing one deadline timer;
* :mod:`tornpool.pool.lease` -- the slot and the generic lease;
* :mod:`tornpool.pool.health` -- backoff, maintenance, reaping;
* :mod:`tornpool.pool.stats` -- counters, latency histograms and Prometheus;
* :mod:`tornpool.pool.events` -- lifecycle events for listeners;
* :mod:`tornpool.pool.scopes` -- what ``acquire()`` and ``transaction()`` return;
* :mod:`tornpool.pool.sync` -- the blocking face for threads.
"""

from tornpool.pool.connection import PoolConnection
from tornpool.pool.engine import RETIRE, LeaseWaiter, PoolEngine
from tornpool.pool.events import EVENT_KINDS, PoolEvent
from tornpool.pool.lease import Lease, Poolable, Slot
from tornpool.pool.mysql import PERMANENT_CONNECT_ERRORS, Pool
from tornpool.pool.stats import BUCKETS, STATS_KEYS, Histogram, render_prometheus
from tornpool.pool.sync import SyncConnection, SyncPool

__all__ = [
    "Pool",
    "PoolConnection",
    "PoolEngine",
    "LeaseWaiter",
    "Lease",
    "Poolable",
    "Slot",
    "RETIRE",
    "PoolEvent",
    "EVENT_KINDS",
    "Histogram",
    "BUCKETS",
    "STATS_KEYS",
    "PERMANENT_CONNECT_ERRORS",
    "render_prometheus",
    "SyncPool",
    "SyncConnection",
]
