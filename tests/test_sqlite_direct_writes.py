"""The SQLite proxy without group commit: each write alone on the writer.

With ``group_commit`` off (the default for the in-process writer with
``synchronous=NORMAL``) a write takes the writer itself instead of queueing
in the batcher, and a thread that finds the writer busy naps and retries
for up to ``WRITER_PATIENCE`` before it joins the FIFO queue.  These tests
cover when that is on, what a napping thread sees (timeouts, close, the
queue going first) and that nothing is lost or batched on the way.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from tornpool.dbapi import AsyncSQLiteProxy, ProxyClosed, ProxyTimeout, SQLiteProxy
from tornpool.dbapi._sqlite_core import WRITER_PATIENCE

from sqlite_proxy_helpers import HeldWriter

#: set-ups that write without group commit
DIRECT: Dict[str, Dict[str, Any]] = {
    "thread-normal": {"writer": "thread", "synchronous": "NORMAL"},
    "process-off": {"writer": "process", "group_commit": False},
}


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[SQLiteProxy]:
    """The in-process writer with NORMAL (no group commit), and table ``t``."""
    with SQLiteProxy(str(tmp_path / "d.db"), readers=1, writer="thread",
                     synchronous="NORMAL") as p:
        p.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        yield p


class Background:
    """``fn()`` in a thread of its own; :attr:`out` gets its result or error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.out: List[Any] = []
        self.thread = threading.Thread(target=self._run, args=(fn,))
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.out.append(fn())
        except BaseException as exc:
            self.out.append(exc)

    def result(self) -> Any:
        """Wait for the thread; what ``fn`` returned or raised."""
        self.thread.join(10)
        assert not self.thread.is_alive() and len(self.out) == 1
        return self.out[0]


def test_group_commit_is_decided_by_writer_and_synchronous(tmp_path: Path) -> None:
    cases = [
        ({"writer": "thread", "synchronous": "NORMAL"}, False),
        ({"writer": "thread"}, True),  # FULL: a commit is an fsync
        ({"writer": "thread", "synchronous": "EXTRA"}, True),
        ({"writer": "process", "synchronous": "NORMAL"}, True),  # IPC per write is dear
        ({"writer": "thread", "synchronous": "NORMAL", "group_commit": True}, True),
        ({"writer": "process", "group_commit": False}, False),
    ]
    for n, (options, expected) in enumerate(cases):
        with SQLiteProxy(str(tmp_path / ("%d.db" % n)), readers=0, **options) as p:
            assert p.group_commit is expected and p.aio().group_commit is expected, options
            # without group commit the writer's slots nap; with it they queue at once
            assert p.core.writer.patience == (0.0 if expected else WRITER_PATIENCE)


@pytest.mark.parametrize("setup", DIRECT)
def test_concurrent_writes_each_commit_alone_and_nothing_is_lost(tmp_path: Path,
                                                                 setup: str) -> None:
    with SQLiteProxy(str(tmp_path / "c.db"), readers=1, **DIRECT[setup]) as p:
        p.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, n INTEGER)")
        misses: List[Any] = []

        def work(k: int) -> None:
            for n in range(40):
                if n % 2:
                    p.execute("INSERT INTO t (k, n) VALUES (?, ?)", (k, n))
                else:
                    p.executemany("INSERT INTO t (k, n) VALUES (?, ?)", [(k, n), (k, -1 - n)])
                # read-your-writes: a reader sees the write the moment it returned
                got = p.execute("SELECT count(*) FROM t WHERE k = ? AND n = ?", (k, n)).fetchone()
                if got != (1,):
                    misses.append((k, n, got))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert misses == []
        assert p.execute("SELECT count(*) FROM t").fetchone() == (8 * (20 + 2 * 20),)
        assert (p.core.batcher.batches, p.core.batcher.requests) == (0, 0)  # never batched


def test_a_busy_writer_makes_a_thread_nap_then_queue(direct: SQLiteProxy) -> None:
    slots = direct.core.writer
    held = HeldWriter(direct)
    write = Background(lambda: direct.execute("INSERT INTO t (v) VALUES ('waited')"))
    wait_for(lambda: slots.napping() == 1, "the write never napped")
    assert slots.waiting() == 1
    wait_for(lambda: slots.napping() == 0 and slots.waiting() == 1,
             "the write never queued after its patience ran out")
    assert write.out == []  # still waiting
    held.release()
    assert write.result().rowcount == 1
    assert slots.waiting() == 0 and slots.in_use() == 0
    assert direct.execute("SELECT v FROM t").fetchall() == [("waited",)]


def test_queued_callers_go_before_napping_threads(direct: SQLiteProxy) -> None:
    slots = direct.core.writer
    held = HeldWriter(direct)
    first = Background(lambda: direct.execute("INSERT INTO t (v) VALUES ('queued')"))
    wait_for(lambda: slots.napping() == 0 and slots.waiting() == 1, "never queued")
    second = Background(lambda: direct.execute("INSERT INTO t (v) VALUES ('napping')"))
    wait_for(lambda: slots.napping() == 1 and slots.waiting() == 2, "never napped")
    held.release()
    assert first.result().rowcount == 1 and second.result().rowcount == 1
    # the writer went straight to the queue's head; the napper took it after
    assert direct.execute("SELECT v FROM t ORDER BY id").fetchall() == [("queued",), ("napping",)]


@pytest.mark.gen_test(timeout=30)
async def test_a_coroutine_queues_at_once_and_goes_before_a_napping_thread(
        tmp_path: Path) -> None:
    async with AsyncSQLiteProxy(str(tmp_path / "a.db"), readers=1, writer="thread",
                                synchronous="NORMAL") as proxy:
        await proxy.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        sync = proxy.sync()
        slots = proxy.core.writer
        held = HeldWriter(sync)
        loop = asyncio.get_running_loop()
        thread_write = loop.run_in_executor(None, sync.execute,
                                            "INSERT INTO t (v) VALUES ('thread')")
        while slots.napping() < 1:
            await asyncio.sleep(0.001)
        coro_write = asyncio.ensure_future(proxy.execute("INSERT INTO t (v) VALUES ('coroutine')"))
        while slots.waiting() < 2:
            await asyncio.sleep(0.001)
        assert slots.napping() == 1  # the coroutine queued, it did not nap
        await loop.run_in_executor(None, held.release)
        assert (await coro_write).rowcount == 1 and (await thread_write).rowcount == 1
        rows = await proxy.execute("SELECT v FROM t ORDER BY id")
        assert rows.fetchall() == [("coroutine",), ("thread",)]


@pytest.mark.parametrize("timeout", [WRITER_PATIENCE / 2, WRITER_PATIENCE * 4])
def test_timeout_while_napping_or_queued(tmp_path: Path, timeout: float) -> None:
    with SQLiteProxy(str(tmp_path / "t.db"), readers=1, writer="thread", synchronous="NORMAL",
                     timeout=timeout) as p:
        p.executescript("CREATE TABLE t (v TEXT)")
        slots = p.core.writer
        held = HeldWriter(p)
        start = time.monotonic()
        with pytest.raises(ProxyTimeout, match="writer was free within"):
            p.execute("INSERT INTO t (v) VALUES ('late')")
        assert time.monotonic() - start >= timeout * 0.95
        assert slots.waiting() == 0 and slots.napping() == 0  # it left no trace
        held.release()
        p.execute("INSERT INTO t (v) VALUES ('after')")
        assert p.execute("SELECT v FROM t").fetchall() == [("after",)]


def test_close_fails_a_napping_write_and_lets_the_running_transaction_commit(
        tmp_path: Path) -> None:
    p = SQLiteProxy(str(tmp_path / "x.db"), readers=1, writer="thread", synchronous="NORMAL")
    p.executescript("CREATE TABLE t (v TEXT)")
    slots = p.core.writer
    go, entered = threading.Event(), threading.Event()

    def hold() -> None:
        with p.transaction() as tx:
            tx.execute("INSERT INTO t (v) VALUES ('held')")
            entered.set()
            go.wait(10)

    holder = Background(hold)
    assert entered.wait(10)
    napper = Background(lambda: p.execute("INSERT INTO t (v) VALUES ('never')"))
    wait_for(lambda: slots.napping() == 1, "the write never napped")
    closer = Background(lambda: p.close(timeout=10))
    assert isinstance(napper.result(), ProxyClosed)  # failed at once, not after the drain
    assert closer.out == []  # close still waits for the transaction
    go.set()  # ...which finishes, and commits, during close
    assert holder.result() is None and closer.result() is None
    check = SQLiteProxy(str(tmp_path / "x.db"), readers=0)
    try:
        assert check.execute("SELECT v FROM t").fetchall() == [("held",)]
    finally:
        check.close()
