"""What a dashboard reads off a pool: latency histograms, errors by type, the
connections and their states, lifecycle events (real server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tornpool import Pool
from tornpool.errors import CommandTimeout, PoolTimeout, ProgrammingError
from tornpool.pool import BUCKETS, Histogram, PoolEvent


def test_histogram_quantiles_and_windows() -> None:
    h = Histogram()
    assert h.quantile(0.5) is None
    for ms in (1, 1, 1, 2, 3, 40):
        h.observe(ms / 1000)
    assert h.count == 6 and abs(h.sum - 0.048) < 1e-9
    assert 0.0005 < h.quantile(0.5) <= 0.001  # type: ignore[operator]
    assert 0.025 < h.quantile(1.0) <= 0.05  # type: ignore[operator]
    before = h.copy()
    h.observe(20.0)  # beyond the last bound: the +Inf bucket
    window = h.since(before)
    assert window.count == 1 and window.counts[-1] == 1
    assert window.quantile(0.99) == BUCKETS[-1]


@pytest.mark.gen_test
async def test_histograms_errors_and_prometheus(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=2, max_size=2, name="metrics") as pool:
        start = pool.histograms()
        await asyncio.gather(*[pool.execute("SELECT SLEEP(0.02)") for _ in range(6)])
        with pytest.raises(ProgrammingError):
            await pool.execute("SELEC 1")
        window = {k: h.since(start[k]) for k, h in pool.histograms().items()}
        assert window["wait"].count == 7 and window["use"].count == 7
        # six 20 ms statements on two connections: some waited one or two rounds
        assert window["wait"].quantile(1.0) >= 0.01  # type: ignore[operator]
        assert window["use"].quantile(0.5) >= 0.01  # type: ignore[operator]
        assert pool.errors() == {"ProgrammingError": 1}
        text = pool.prometheus()
        assert "# TYPE tornpool_request_wait_seconds histogram" in text
        assert 'tornpool_connection_use_seconds_bucket{pool="metrics",le="+Inf"} 7' in text
        assert 'tornpool_request_wait_seconds_count{pool="metrics"} 7' in text


@pytest.mark.gen_test(timeout=30)
async def test_events_and_connection_states(mariadb_dsn: str) -> None:
    events: list[PoolEvent] = []
    pool = Pool(mariadb_dsn, size=2, max_size=3, max_uses=2, timeout=0.3, name="ev")
    pool.add_listener(events.append)
    await pool.connect()
    assert [e.kind for e in events] == ["connect", "connect"]
    assert all(e.pool == "ev" and isinstance(e.connection_id, int) for e in events)

    async with pool.acquire() as lease:
        states = sorted(c["state"] for c in pool.connections())
        assert states == ["idle", "in use"]
        held = [c for c in pool.connections() if c["state"] == "in use"][0]
        assert held["id"] == lease.thread_id and held["held_s"] >= 0
    with pytest.raises(CommandTimeout):
        await pool.execute("SELECT SLEEP(5)", timeout=0.1)
    leases = [await pool.getconn() for _ in range(3)]
    with pytest.raises(PoolTimeout):
        await pool.getconn()
    for lease in leases:
        pool.putconn(lease)
    for _ in range(4):  # max_uses=2 retires connections as they come back
        await pool.execute("SELECT 1")
    for _ in range(100):
        kinds = {e.kind for e in events}
        if {"error", "reaped", "timeout", "closed"} <= kinds:
            break
        await asyncio.sleep(0.05)
    assert {"connect", "error", "reaped", "timeout", "closed"} <= kinds
    assert any(e.kind == "error" and "CommandTimeout" in e.detail for e in events)
    pool.remove_listener(events.append)
    n = len(events)
    await pool.execute("SELECT 1")
    await pool.close()
    assert len(events) == n  # removed: nothing more arrives


@pytest.mark.gen_test
async def test_a_failing_listener_does_not_break_the_pool(mariadb_dsn: str, caplog: Any) -> None:
    def bad(event: PoolEvent) -> None:
        raise RuntimeError("listener bug")

    pool = Pool(mariadb_dsn, size=1)
    pool.add_listener(bad)
    await pool.connect()
    assert (await pool.execute("SELECT 1")).fetchone() == (1,)
    assert "a pool event listener raised" in caplog.text
    await pool.close()
