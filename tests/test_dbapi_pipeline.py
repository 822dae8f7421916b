"""The executor pool's pipeline (tornpool/dbapi/_executor_pooled.py): a
one-shot call waiting for a connection is queued behind the running call in
that connection's thread, so the thread starts it without the loop.  These
tests hold the pipeline to the pool's rules: FIFO, a clean connection for
every call, deadlines and cancellation while queued, no call stuck behind a
slow one while a connection idles, close, and no call run twice or run
after its caller was told it did not get a connection.

sqlite3 over a file, with the user functions of ``sqlite_pool_helpers``
(``nap``, ``clock``, ``cid``) running in the connection's thread.
"""

from __future__ import annotations

import asyncio
import collections
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tornpool import errors
from tornpool.dbapi import ExecutorPool

from sqlite_pool_helpers import functions, make_pool

async def queued_behind(pool: ExecutorPool, first: str, *rest: str, **kw: Any) -> list[asyncio.Future[Any]]:
    """Submit ``first`` and ``rest`` while a lease holds the pool's only
    free connection, then give it back: ``first`` starts with the others
    waiting, so the next one is queued behind it."""
    lease = await pool.acquire()
    futures = [asyncio.ensure_future(pool.execute(first))]
    futures += [asyncio.ensure_future(pool.execute(sql, **kw)) for sql in rest]
    await asyncio.sleep(0)  # every call is the engine's waiter now
    lease.release()
    return futures


def block_loop(seconds: float) -> float:
    """Keep the loop busy (no callback runs); returns when it let go."""
    time.sleep(seconds)
    return time.monotonic()


@pytest.mark.gen_test(timeout=30)
async def test_the_thread_starts_the_queued_call_without_the_loop(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1) as pool:
        first, second = await queued_behind(pool, "SELECT nap(0.05)", "SELECT clock(), cid()")
        await asyncio.sleep(0.01)  # the first call runs; the second is queued behind it
        freed = block_loop(0.4)
        await first
        started, conn = (await second).fetchone()
        assert started < freed - 0.2  # ran while the loop was still blocked
        assert conn == (await pool.execute("SELECT cid()")).fetchone()[0]  # on the same connection
        stats = pool.stats()
        assert stats["requests_num"] == 4 and stats["pool_available"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_pools_that_clean_every_connection_do_not_pipeline(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1, reset=lambda conn: None) as pool:
        first, second = await queued_behind(pool, "SELECT nap(0.05)", "SELECT clock()")
        await asyncio.sleep(0.01)
        freed = block_loop(0.4)
        await first
        (started,) = (await second).fetchone()
        assert started >= freed  # waited for the loop: the reset hook ran in between


@pytest.mark.gen_test(timeout=30)
async def test_fifo_with_the_pipeline(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=2) as pool:
        lease1, lease2 = await pool.acquire(), await pool.acquire()
        calls = []
        for n in range(12):  # reads: no SQLite lock between the two connections
            calls.append(asyncio.ensure_future(
                pool.execute("SELECT ?, clock() + nap(0.05) * 0", (n,))))
            await asyncio.sleep(0)
        lease1.release()
        lease2.release()
        results = await asyncio.gather(*calls)
        started = [n for n, at in sorted((r.rows[0] for r in results), key=lambda row: row[1])]
        # FIFO up to one call per connection: a call queued behind a running
        # one may start after a younger call that another connection took
        assert sorted(started) == list(range(12))
        assert all(abs(rank - n) <= 2 for rank, n in enumerate(started)), started


@pytest.mark.gen_test(timeout=30)
async def test_a_queued_call_never_runs_after_a_call_left_a_transaction_open(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def leave_open(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        time.sleep(0.05)

    async with make_pool(tmp_path, size=1) as pool:
        lease = await pool.acquire()
        first = asyncio.ensure_future(pool.run(leave_open))
        second = asyncio.ensure_future(pool.run(lambda conn: conn.in_transaction))
        await asyncio.sleep(0)
        lease.release()
        await first
        assert await second is False  # bounced, rolled back, then run
        assert "returned inside a transaction" in caplog.text
        assert (await pool.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'")
                ).fetchone() == (0,)


@pytest.mark.gen_test(timeout=30)
async def test_deadline_while_queued_is_a_pool_timeout_and_nothing_runs(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1) as pool:
        await pool.execute("CREATE TABLE t (x)")
        t0 = time.monotonic()
        first, second = await queued_behind(pool, "SELECT nap(0.6)", "INSERT INTO t VALUES (1)",
                                            timeout=0.15)
        with pytest.raises(errors.PoolTimeout):
            await second
        assert time.monotonic() - t0 < 0.5  # at its deadline, not when the first returns
        await first
        assert (await pool.execute("SELECT count(*) FROM t")).fetchone() == (0,)
        assert pool.stats()["calls_abandoned"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_cancelled_while_queued_never_runs(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1) as pool:
        await pool.execute("CREATE TABLE t (x)")
        first, second = await queued_behind(pool, "SELECT nap(0.3)", "INSERT INTO t VALUES (1)")
        await asyncio.sleep(0.05)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        await first
        assert (await pool.execute("SELECT count(*) FROM t")).fetchone() == (0,)
        stats = pool.stats()
        assert stats["calls_abandoned"] == 0 and stats["pool_available"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_cancelled_after_its_thread_took_it_is_abandoned_like_a_running_call(
        tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1) as pool:
        old = (await pool.execute("SELECT cid()")).fetchone()[0]
        first, second = await queued_behind(pool, "SELECT nap(0.05)", "SELECT nap(0.4)")
        await asyncio.sleep(0.01)
        block_loop(0.2)  # the thread finished the first and took the second
        second.cancel()  # before the loop heard of either
        with pytest.raises(asyncio.CancelledError):
            await second
        await first
        assert pool.stats()["abandoned_running"] == 1  # its thread still runs it
        assert (await pool.execute("SELECT cid()")).fetchone()[0] != old  # closed after it
        stats = pool.stats()
        assert stats["calls_abandoned"] == 1 and stats["abandoned_running"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_a_queued_call_behind_a_timed_out_one_runs_on_a_new_connection(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1) as pool:
        old = (await pool.execute("SELECT cid()")).fetchone()[0]
        lease = await pool.acquire()
        slow = asyncio.ensure_future(pool.execute("SELECT nap(0.5)", timeout=0.1))
        after = asyncio.ensure_future(pool.execute("SELECT cid()"))
        await asyncio.sleep(0)
        lease.release()
        with pytest.raises(errors.CommandTimeout):
            await slow
        (conn,) = (await after).fetchone()
        assert conn != old  # bounced off the abandoned connection
        await asyncio.sleep(0.6)
        assert pool.stats()["abandoned_running"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_no_call_waits_behind_a_slow_one_while_a_connection_idles(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=2) as pool:
        lease1, lease2 = await pool.acquire(), await pool.acquire()
        t0 = time.monotonic()
        slow = asyncio.ensure_future(pool.execute("SELECT nap(1.0), cid()"))
        stuck = asyncio.ensure_future(pool.execute("SELECT cid()"))  # queued behind slow
        quick = [asyncio.ensure_future(pool.execute("SELECT nap(0.02)")) for _ in range(2)]
        await asyncio.sleep(0)
        lease1.release()  # slow starts, stuck is queued behind it
        await asyncio.sleep(0)
        lease2.release()  # the quick ones, then this connection idles
        (moved,) = (await stuck).fetchone()
        assert time.monotonic() - t0 < 0.6  # it did not wait for the slow call
        await asyncio.gather(*quick)
        assert moved != (await slow).rows[0][1]


@pytest.mark.gen_test(timeout=30)
async def test_close_fails_queued_calls_and_lets_the_running_one_finish(tmp_path: Path) -> None:
    pool = await make_pool(tmp_path, size=1).connect()
    first, second = await queued_behind(pool, "SELECT nap(0.3)", "SELECT 1")
    await asyncio.sleep(0.05)
    await pool.close()
    assert (await first).fetchone() == (1,)
    with pytest.raises(errors.PoolClosed):
        await second
    assert pool.stats()["threads_alive"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_storm_nothing_runs_twice_or_after_a_pool_timeout(tmp_path: Path) -> None:
    """Many callers, few connections, random naps, deadlines and
    cancellations: a call that succeeded ran exactly once, one that got
    PoolTimeout never ran, and the pool ends idle and whole.  (Each call
    records itself from its thread; reads only, so SQLite's own locking
    between the connections plays no part.)"""
    rng = random.Random(14)
    ran: list[int] = []

    def recorder(conn: sqlite3.Connection) -> None:
        functions(conn)
        conn.create_function("mark", 1, lambda i: ran.append(i) or i)

    async with make_pool(tmp_path, size=3, initializer=recorder) as pool:
        outcome: dict[int, str] = {}

        async def caller(i: int) -> None:
            timeout = rng.choice([None, None, 0.05, 0.3])
            task = asyncio.ensure_future(pool.execute(
                "SELECT mark(?) WHERE nap(?)", (i, rng.choice([0.0, 0.005, 0.02, 0.1])),
                timeout=timeout))
            if rng.random() < 0.1:
                await asyncio.sleep(rng.random() * 0.05)
                task.cancel()
            try:
                await task
                outcome[i] = "ok"
            except errors.PoolTimeout:
                outcome[i] = "pool-timeout"
            except (errors.CommandTimeout, asyncio.CancelledError):
                outcome[i] = "unknown"

        await asyncio.gather(*[caller(i) for i in range(300)])
        await asyncio.sleep(0.2)  # abandoned calls' threads return
        counts = collections.Counter(ran)
        assert all(n == 1 for n in counts.values())
        assert all(counts[i] == 1 for i, o in outcome.items() if o == "ok")
        assert not any(counts[i] for i, o in outcome.items() if o == "pool-timeout")
        assert {"ok", "pool-timeout"} <= set(outcome.values())
        stats = pool.stats()
        assert stats["pool_available"] == stats["pool_size"] <= 3
        assert stats["abandoned_running"] == 0 and stats["threads_alive"] <= 3
