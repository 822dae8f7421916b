"""The pool engine knows no driver: here it lends sqlite3 connections (a real
DB-API driver, in process) with the same cap, FIFO order, deadlines,
rollback on return, replacement of broken connections and close."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from tornpool.errors import PoolClosed, PoolTimeout
from tornpool.pool import PoolEngine


class SQLiteConnection:
    """The Poolable interface over one sqlite3 connection (calls run inline:
    sqlite3 on a local file answers in microseconds)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.closed = False
        self.busy = False
        self.has_unread_result = False
        self.abandoned = False
        self.closes = 0

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, *args: Any) -> list[Any]:
        return self.db.execute(sql, args).fetchall()

    async def ping(self, *, timeout: float | None = None) -> None:
        self.db.execute("SELECT 1")

    async def rollback(self, *, timeout: float | None = None) -> None:
        self.db.execute("ROLLBACK")

    async def close(self) -> None:
        self.closes += 1
        self.terminate()

    def terminate(self) -> None:
        if not self.closed:
            self.closed = True
            self.db.close()


@pytest.mark.gen_test
async def test_the_engine_lends_sqlite3_connections(tmp_path: Any) -> None:
    path = str(tmp_path / "engine.db")
    made: list[SQLiteConnection] = []

    async def connector() -> SQLiteConnection:
        conn = SQLiteConnection(path)
        made.append(conn)
        return conn

    engine: PoolEngine[Any] = PoolEngine(connector, min_size=1, max_size=2, timeout=0.3,
                                         check_idle=None, name="sqlite")
    assert await engine.fill() == []
    lease = await engine.acquire()
    lease.connection.execute("CREATE TABLE t (v INT)")
    # a transaction left open is rolled back on return (the default recycle)
    lease.connection.execute("BEGIN")
    lease.connection.execute("INSERT INTO t VALUES (1)")
    lease.release()
    await asyncio.sleep(0.01)
    again = await engine.acquire()
    assert again.connection.execute("SELECT COUNT(*) FROM t") == [(0,)]
    # the cap: two leases out, a third request waits and times out
    other = await engine.acquire()
    assert len(made) == 2
    with pytest.raises(PoolTimeout):
        await engine.acquire(timeout=0.05)
    # FIFO: waiters are served in order as leases come back
    order: list[int] = []

    async def wait(i: int) -> None:
        got = await engine.acquire(timeout=2)
        order.append(i)
        got.release()

    tasks = [asyncio.ensure_future(wait(i)) for i in range(4)]
    await asyncio.sleep(0.01)
    again.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    # a broken connection is replaced, not handed out
    other.connection.terminate()
    other.release()
    leases = [await engine.acquire(), await engine.acquire()]
    assert all(not l.connection.closed for l in leases) and len(made) == 3
    for l in leases:
        l.release()
    await engine.close(timeout=1)
    assert all(c.closed for c in made)
    with pytest.raises(PoolClosed):
        await engine.acquire()
