"""The SQLite process proxy: routing, read-your-writes, transactions, crashes,
durability, bad input, both faces (threads, await, @gen.coroutine + yield).

Every test runs real worker processes on a real file in ``tmp_path``.  Tests
of the ``proxy`` fixture run in each of the :data:`SETUPS`: both writer modes
(``writer="process"`` and ``"thread"``) with group commit, and the
in-process writer without it (each write on the writer alone, threads
napping for it); group-commit tests run with the first two, and those that
kill the writer with the writer process only (an in-process writer dies with
its process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Set

import pytest
from tornado import gen

from tornpool import errors
from tornpool.dbapi import (
    AsyncSQLiteProxy,
    DatabaseNotFound,
    ProxyClosed,
    ProxyConfigError,
    ProxyTimeout,
    SQLiteDatabaseError,
    SQLiteDataError,
    SQLiteIntegrityError,
    SQLiteOperationalError,
    SQLiteProgrammingError,
    SQLiteProxy,
    TransactionClosed,
    TransactionControlError,
    UnpicklableParameters,
    WorkerCrashed,
    WouldDeadlock,
)

from sqlite_proxy_helpers import HeldWriter

#: a read that keeps a worker busy for about ``n / 5e6`` seconds
SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
        "SELECT count(*) FROM c")


def register_pid(conn: sqlite3.Connection) -> None:
    """Worker initializer: ``worker_pid()`` says which process ran a statement."""
    conn.create_function("worker_pid", 0, os.getpid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pids(proxy: Any, role: str) -> List[int]:
    return [w.pid for w in proxy.workers() if w.role == role]


def writer_pid(proxy: Any) -> int:
    """The pid the writer's statements run in (this one for ``writer="thread"``)."""
    pid = pids(proxy, "writer")[0]
    if proxy.writer_mode == "thread":
        assert pid is None
        return os.getpid()
    assert pid is not None
    return pid


MODES = ["process", "thread"]
#: the proxy configurations mode-neutral tests run in: writer mode, group commit
SETUPS = {
    "process": {"writer": "process"},
    "thread": {"writer": "thread"},
    "direct": {"writer": "thread", "group_commit": False},
}


def kill_all(proxy: Any) -> None:
    for w in proxy.workers():
        assert w.pid
        os.kill(w.pid, signal.SIGKILL)
    time.sleep(0.1)


def wait_busy(proxy: SQLiteProxy, role: str = "reader", n: int = 1) -> None:
    """Wait until ``n`` workers of ``role`` are running a call, plus a moment
    for the statement to be under way in the worker."""
    slots = proxy.core.readers if role == "reader" else proxy.core.writer
    assert slots is not None
    deadline = time.monotonic() + 10
    while slots.in_use() < n:
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.005)
    time.sleep(0.2)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "app.db")


def make_proxy(db: str, setup: str) -> Iterator[SQLiteProxy]:
    p = SQLiteProxy(db, readers=2, initializer=register_pid, **SETUPS[setup])
    assert p.writer_mode == SETUPS[setup]["writer"]
    assert p.core.group_commit == (setup != "direct")
    p.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    yield p
    workers = [w.pid for w in p.workers()]
    p.close()
    assert not any(alive(pid) for pid in workers if pid is not None)


@pytest.fixture(params=list(SETUPS))
def proxy(db: str, request: pytest.FixtureRequest) -> Iterator[SQLiteProxy]:
    """A proxy with 2 readers and table ``t``, once per setup."""
    yield from make_proxy(db, request.param)


@pytest.fixture(params=MODES)
def batching_proxy(db: str, request: pytest.FixtureRequest) -> Iterator[SQLiteProxy]:
    """As ``proxy``, in the setups with group commit (once per writer mode)."""
    yield from make_proxy(db, request.param)


@pytest.fixture
def proxy_process(db: str) -> Iterator[SQLiteProxy]:
    """As ``proxy``, with the writer in a process (for tests that kill it)."""
    yield from make_proxy(db, "process")


# -- basics and routing ------------------------------------------------------------------


def test_result_is_cursor_like(proxy: SQLiteProxy) -> None:
    r = proxy.execute("INSERT INTO t (v) VALUES (?)", ("a",))
    assert (r.rowcount, r.lastrowid, r.description, r.fetchall()) == (1, 1, None, [])
    proxy.executemany("INSERT INTO t (v) VALUES (:v)", [{"v": "b"}, {"v": "c"}, {"v": "d"}])
    r = proxy.execute("SELECT id, v FROM t ORDER BY id")
    assert [d[0] for d in r.description or ()] == ["id", "v"] and r.columns == ["id", "v"]
    assert r.rowcount == len(r) == 4
    assert r.fetchone() == (1, "a")
    assert r.fetchmany(2) == [(2, "b"), (3, "c")]
    assert list(r) == [(4, "d")]
    assert r.fetchone() is None and r.fetchall() == []
    r = proxy.execute("UPDATE t SET v = v || '!' WHERE id > ?", (2,))
    assert r.rowcount == 2


def test_reads_on_readers_writes_on_writer(proxy: SQLiteProxy) -> None:
    readers, writer = set(pids(proxy, "reader")), writer_pid(proxy)
    assert proxy.execute("SELECT worker_pid()").fetchone()[0] in readers
    proxy.execute("INSERT INTO t (v) VALUES (worker_pid())")
    assert proxy.execute("SELECT v FROM t").fetchone() == (str(writer),)
    # a WITH that writes is refused by the reader before it runs, then runs once on the writer
    proxy.execute("WITH x(n) AS (SELECT 5) INSERT INTO t (v) SELECT n || '-' || worker_pid() FROM x")
    assert proxy.execute("SELECT v FROM t WHERE v LIKE '5-%'").fetchall() == [("5-%d" % writer,)]
    # PRAGMAs: reports on a reader, settings (and per-connection values) on the writer
    assert proxy.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    proxy.execute("PRAGMA user_version = 7")
    assert proxy.execute("PRAGMA user_version").fetchone() == (7,)
    assert proxy.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL, the default
    # two slow reads at once run on both readers
    seen: Set[int] = set()
    sql = "SELECT worker_pid() FROM (%s)" % SLOW
    threads = [threading.Thread(target=lambda: seen.add(proxy.execute(sql, (1_500_000,)).fetchone()[0]))
               for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert seen == readers


@pytest.mark.parametrize("writer", MODES)
def test_no_readers_and_synchronous_normal(db: str, writer: str) -> None:
    with SQLiteProxy(db, readers=0, initializer=register_pid, synchronous="normal",
                     writer=writer) as p:
        writer = writer_pid(p)
        assert p.execute("SELECT worker_pid()").fetchone() == (writer,)
        assert p.execute("PRAGMA synchronous").fetchone() == (1,)
    assert p.closed


def test_read_your_writes_from_many_threads(proxy: SQLiteProxy) -> None:
    misses: List[str] = []

    def work(n: int) -> None:
        for i in range(40):
            v = "%d-%d" % (n, i)
            if i % 4 == 3:
                with proxy.transaction() as tx:
                    tx.execute("INSERT INTO t (v) VALUES (?)", (v,))
            else:
                proxy.execute("INSERT INTO t (v) VALUES (?)", (v,))
            if proxy.execute("SELECT count(*) FROM t WHERE v = ?", (v,)).fetchone() != (1,):
                misses.append(v)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert misses == []
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (320,)


# -- transactions --------------------------------------------------------------------------


def test_transaction_commit_rollback_isolation(proxy: SQLiteProxy) -> None:
    writer = writer_pid(proxy)
    with proxy.transaction() as tx:
        tx.execute("INSERT INTO t (v) VALUES ('in-tx')")
        assert tx.execute("SELECT count(*), worker_pid() FROM t").fetchone() == (1, writer)
        # another caller reads the state before the commit
        outside: List[Any] = []
        th = threading.Thread(target=lambda: outside.append(
            proxy.execute("SELECT count(*) FROM t").fetchone()))
        th.start()
        th.join()
        assert outside == [(0,)]
        tx.execute("SAVEPOINT sp")
        tx.execute("INSERT INTO t (v) VALUES ('undone')")
        tx.execute("ROLLBACK TO sp")
    assert proxy.execute("SELECT v FROM t").fetchall() == [("in-tx",)]
    with pytest.raises(KeyError):
        with proxy.transaction(mode="deferred") as tx:
            tx.execute("INSERT INTO t (v) VALUES ('gone')")
            raise KeyError("boom")
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (1,)
    with pytest.raises(TransactionClosed):
        tx.execute("SELECT 1")
    results = proxy.transaction(["INSERT INTO t (v) VALUES ('l1')",
                                 ("INSERT INTO t (v) VALUES (?)", ("l2",)),
                                 "SELECT count(*) FROM t"])
    assert results[2].fetchone() == (3,)
    with pytest.raises(SQLiteIntegrityError):
        proxy.transaction([("INSERT INTO t (v) VALUES (?)", ("l3",)), "INSERT INTO t (v) VALUES ('l1')"])
    assert proxy.execute("SELECT count(*) FROM t WHERE v = 'l3'").fetchone() == (0,)


def test_transaction_misuse_is_typed(proxy: SQLiteProxy) -> None:
    for sql in ("BEGIN", "commit", "  /* c */ END", "ROLLBACK", "rollback transaction",
                "SAVEPOINT x", "RELEASE x"):
        with pytest.raises(TransactionControlError):
            proxy.execute(sql)
    with proxy.transaction() as tx:
        with pytest.raises(WouldDeadlock):
            proxy.execute("INSERT INTO t (v) VALUES ('x')")  # would wait for its own writer
        with pytest.raises(WouldDeadlock):
            with proxy.transaction():
                pass
        with pytest.raises(TransactionControlError):
            tx.execute("COMMIT")
        assert proxy.execute("SELECT count(*) FROM t").fetchone() == (0,)  # reads are fine
        tx.execute("INSERT INTO t (v) VALUES ('kept')")
    with pytest.raises(TransactionControlError):
        proxy.executescript("BEGIN; INSERT INTO t (v) VALUES ('open');")
    assert proxy.execute("SELECT v FROM t").fetchall() == [("kept",)]
    with pytest.raises(ProxyConfigError):
        proxy.transaction(mode="sometimes")
    with pytest.raises(ProxyConfigError):
        proxy.transaction([42])  # type: ignore[list-item]


def test_executemany_is_atomic(proxy: SQLiteProxy) -> None:
    with pytest.raises(SQLiteIntegrityError):
        proxy.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",), ("a",)])
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (0,)
    r = proxy.executemany("INSERT INTO t (v) VALUES (?)", (("x%d" % i,) for i in range(100)))
    assert r.rowcount == 100
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (100,)


def test_sqlite_error_in_transaction_that_sqlite_rolled_back(proxy: SQLiteProxy) -> None:
    with pytest.raises(SQLiteOperationalError, match="no longer active"):
        with proxy.transaction() as tx:
            tx.execute("INSERT INTO t (v) VALUES ('a')")
            with pytest.raises(SQLiteIntegrityError):
                tx.execute("INSERT OR ROLLBACK INTO t (v) VALUES ('a')")
            tx.execute("INSERT INTO t (v) VALUES ('b')")  # would autocommit: refused
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (0,)


# -- group commit -------------------------------------------------------------------------


def queued_writes(proxy: SQLiteProxy, calls: List[Any]) -> List[Any]:
    """Run ``calls`` (functions of the proxy) from threads while the writer is
    held, so they queue; returns each call's result or exception."""
    results: List[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i](proxy)
        except Exception as exc:
            results[i] = exc

    held = HeldWriter(proxy)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 10
    while proxy.core.writer.waiting() < 1 or proxy.core.batcher.queued() < len(calls):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    held.release()
    for th in threads:
        th.join(30)
    return results


def test_queued_writes_share_one_batch_and_keep_their_own_errors(batching_proxy: SQLiteProxy) -> None:
    proxy = batching_proxy
    proxy.execute("INSERT INTO t (v) VALUES ('taken')")
    before = (proxy.core.batcher.batches, proxy.core.batcher.requests)
    results = queued_writes(proxy, [
        lambda p: p.execute("INSERT INTO t (v) VALUES ('a')"),
        lambda p: p.execute("INSERT INTO t (v) VALUES ('taken')"),  # its own error only
        lambda p: p.executemany("INSERT INTO t (v) VALUES (?)", [("m1",), ("m2",)]),
        lambda p: p.executemany("INSERT INTO t (v) VALUES (?)", [("m3",), ("taken",)]),  # atomic
        lambda p: p.execute("UPDATE t SET v = 'taken2' WHERE v = 'taken'"),
        lambda p: p.execute("INSERT INTO t (v) VALUES (?)", ("b",)),
    ])
    assert proxy.core.batcher.batches - before[0] == 1
    assert proxy.core.batcher.requests - before[1] == 6
    assert results[0].rowcount == 1 and results[2].rowcount == 2 and results[4].rowcount == 1
    assert isinstance(results[1], SQLiteIntegrityError) and isinstance(results[3], SQLiteIntegrityError)
    assert results[5].lastrowid is not None
    rows = {r[0] for r in proxy.execute("SELECT v FROM t").fetchall()}
    assert rows == {"taken2", "a", "m1", "m2", "b"}


def test_a_batch_member_that_rolls_everything_back_fails_alone(batching_proxy: SQLiteProxy) -> None:
    proxy = batching_proxy
    proxy.execute("INSERT INTO t (v) VALUES ('taken')")
    results = queued_writes(proxy, [
        lambda p: p.execute("INSERT INTO t (v) VALUES ('x1')"),
        lambda p: p.execute("INSERT OR ROLLBACK INTO t (v) VALUES ('taken')"),
        lambda p: p.execute("INSERT INTO t (v) VALUES ('x2')"),
    ])
    assert isinstance(results[1], SQLiteIntegrityError)
    assert results[0].rowcount == 1 and results[2].rowcount == 1
    assert proxy.execute("SELECT v FROM t ORDER BY v").fetchall() == [("taken",), ("x1",), ("x2",)]


def test_writer_killed_during_a_batch_fails_every_member_and_commits_none(
        proxy_process: SQLiteProxy) -> None:
    proxy = proxy_process
    proxy.executescript("CREATE TABLE big (x INTEGER)")
    sent = proxy.core.batcher.batches

    def kill_when_sent() -> None:
        deadline = time.monotonic() + 10
        while proxy.core.batcher.batches == sent:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.3)  # the slow INSERT is under way
        os.kill(pids(proxy, "writer")[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_when_sent)
    calls: List[Any] = [lambda p: p.execute("INSERT INTO t (v) VALUES ('k1')"),
                        lambda p: p.execute("INSERT INTO big (x) " + SLOW.replace("count(*)", "x"),
                                            (3_000_000,)),
                        lambda p: p.execute("INSERT INTO t (v) VALUES ('k2')")]
    killer.start()
    results = queued_writes(proxy, calls)
    killer.join()
    assert all(isinstance(r, WorkerCrashed) for r in results), results
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert proxy.execute("SELECT count(*) FROM big").fetchone() == (0,)


# -- bad input -----------------------------------------------------------------------------


def test_sql_errors_are_twinned_classes(proxy: SQLiteProxy) -> None:
    with pytest.raises(SQLiteOperationalError) as info:
        proxy.execute("SELEC 1")
    exc = info.value
    assert isinstance(exc, sqlite3.OperationalError) and isinstance(exc, errors.OperationalError)
    assert "syntax error" in str(exc) and exc.sqlite_errorname == "SQLITE_ERROR"  # type: ignore[attr-defined]
    with pytest.raises(SQLiteOperationalError, match="no such table"):
        proxy.execute("SELECT * FROM nope")
    proxy.execute("INSERT INTO t (v) VALUES ('a')")
    with pytest.raises(SQLiteIntegrityError) as info2:
        proxy.execute("INSERT INTO t (v) VALUES ('a')")
    assert isinstance(info2.value, sqlite3.IntegrityError) and isinstance(info2.value, errors.IntegrityError)
    assert info2.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"  # type: ignore[attr-defined]
    with pytest.raises(SQLiteProgrammingError, match="bindings"):
        proxy.execute("SELECT ?, ?", (1,))
    with pytest.raises(SQLiteProgrammingError):
        proxy.execute("SELECT 1; SELECT 2")
    with pytest.raises(SQLiteProgrammingError):
        proxy.execute("SELECT ?", ({"a": 1},))  # pickles, but sqlite3 cannot bind it
    with pytest.raises(SQLiteDataError, match="OverflowError"):
        proxy.execute("SELECT ?", (2 ** 70,))
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_unpicklable_parameters(proxy: SQLiteProxy) -> None:
    # reads always go to a reader process: the parameters must pickle
    for bad in ((lambda: 1,), (threading.Lock(),)):
        with pytest.raises(UnpicklableParameters) as info:
            proxy.execute("SELECT ?", bad)
        assert isinstance(info.value, TypeError) and isinstance(info.value, errors.InterfaceError)
    # writes: a writer process refuses them before sending; the in-process
    # writer pickles nothing, so sqlite3 itself refuses to bind them
    refused = UnpicklableParameters if proxy.writer_mode == "process" else SQLiteProgrammingError
    for bad in ((lambda: 1,), (threading.Lock(),)):
        with pytest.raises(refused):
            proxy.execute("INSERT INTO t (v) VALUES (?)", bad)
    with pytest.raises(refused):
        proxy.executemany("INSERT INTO t (v) VALUES (?)", [(threading.Lock(),)])
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert [w.restarts for w in proxy.workers()] == [0, 0, 0]


@pytest.mark.parametrize("writer", MODES)
def test_closed_proxy(db: str, writer: str) -> None:
    p = SQLiteProxy(db, readers=1, writer=writer)
    workers = [w.pid for w in p.workers()]
    p.close()
    p.close()
    for call in (lambda: p.execute("SELECT 1"), lambda: p.executescript("SELECT 1"),
                 lambda: p.execute("INSERT INTO t VALUES (1)"),
                 lambda: p.executemany("INSERT INTO t VALUES (?)", [(1,)]),
                 lambda: p.transaction().__enter__()):
        with pytest.raises(ProxyClosed):
            call()
    assert isinstance(ProxyClosed(), errors.InterfaceError)
    assert not any(alive(pid) for pid in workers if pid is not None)


def test_missing_files_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatabaseNotFound) as info:
        SQLiteProxy(str(tmp_path / "no" / "such" / "dir.db"))
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, errors.OperationalError)
    with pytest.raises(DatabaseNotFound):
        SQLiteProxy(str(tmp_path / "new.db"), create=False)
    assert not (tmp_path / "new.db").exists()
    for kwargs in ({"path": ":memory:"}, {"path": "file:x.db?mode=ro"}, {"readers": -1},
                   {"synchronous": "OFF"}, {"timeout": -1}, {"colour": "blue"},
                   {"writer": "fork"}, {"group_commit": "yes"}):
        args = {"path": str(tmp_path / "x.db"), **kwargs}
        with pytest.raises(ProxyConfigError):
            SQLiteProxy(**args)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, not at all" * 100)
    for writer in MODES:
        with pytest.raises(SQLiteDatabaseError, match="not a database"):
            SQLiteProxy(str(garbage), readers=1, writer=writer)
    for writer in MODES:  # a worker that cannot start at all
        with pytest.raises(WorkerCrashed):
            SQLiteProxy(str(tmp_path / "y.db"), readers=1, executable=str(tmp_path / "no-python"),
                        writer=writer)
    with SQLiteProxy(str(tmp_path / "made.db"), readers=1) as p:  # create=True: sqlite3's way
        assert p.execute("SELECT 1").fetchone() == (1,)
    assert (tmp_path / "made.db").exists()


def test_timeout_waiting_for_a_worker(db: str) -> None:
    with SQLiteProxy(db, readers=1, timeout=0.2) as p:
        th = threading.Thread(target=p.execute, args=(SLOW, (5_000_000,)))
        th.start()
        wait_busy(p)
        start = time.monotonic()
        with pytest.raises(ProxyTimeout) as info:
            p.execute("SELECT 1")
        assert isinstance(info.value, TimeoutError) and time.monotonic() - start >= 0.19
        th.join()
        assert p.execute("SELECT 2").fetchone() == (2,)


# -- crashes and durability ------------------------------------------------------------------


def test_reader_killed_mid_query(proxy: SQLiteProxy) -> None:
    failures: List[BaseException] = []

    def slow() -> None:
        try:
            proxy.execute(SLOW, (50_000_000,))
        except BaseException as exc:
            failures.append(exc)

    before = pids(proxy, "reader")
    threads = [threading.Thread(target=slow) for _ in range(2)]
    for th in threads:
        th.start()
    wait_busy(proxy, n=2)
    os.kill(before[0], signal.SIGKILL)
    os.kill(before[1], signal.SIGKILL)
    for th in threads:
        th.join(20)
    assert len(failures) == 2 and all(isinstance(f, WorkerCrashed) for f in failures)
    assert isinstance(failures[0], errors.OperationalError)
    after = pids(proxy, "reader")
    assert not set(after) & set(before)
    assert [w.restarts for w in proxy.workers() if w.role == "reader"] == [1, 1]
    assert proxy.execute("SELECT 40 + 2").fetchone() == (42,)


def test_idle_workers_killed_restart_transparently(proxy_process: SQLiteProxy) -> None:
    proxy = proxy_process
    proxy.execute("INSERT INTO t (v) VALUES ('before')")
    kill_all(proxy)
    proxy.execute("INSERT INTO t (v) VALUES ('after')")  # no error: the request never reached
    assert proxy.execute("SELECT v FROM t ORDER BY id").fetchall() == [("before",), ("after",)]
    assert sum(w.restarts for w in proxy.workers()) >= 2


def test_write_in_flight_during_crash_is_all_or_nothing(proxy_process: SQLiteProxy) -> None:
    proxy = proxy_process
    proxy.executescript("CREATE TABLE big (x INTEGER)")
    n = 3_000_000
    caught: List[BaseException] = []

    def write() -> None:
        try:
            proxy.execute("INSERT INTO big (x) " + SLOW.replace("count(*)", "x"), (n,))
        except BaseException as exc:
            caught.append(exc)

    th = threading.Thread(target=write)
    th.start()
    wait_busy(proxy, "writer")
    os.kill(pids(proxy, "writer")[0], signal.SIGKILL)
    th.join(30)
    assert len(caught) == 1 and isinstance(caught[0], WorkerCrashed)
    assert proxy.execute("SELECT count(*) FROM big").fetchone()[0] in (0, n)
    assert proxy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    proxy.execute("INSERT INTO big (x) VALUES (1)")
    assert proxy.execute("SELECT count(*) FROM big WHERE x = 1").fetchone()[0] in (1, 2)


def test_committed_writes_survive_kills_and_reopen(db: str) -> None:
    with SQLiteProxy(db, readers=1, writer="process") as p:
        p.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for i in range(50):
            p.execute("INSERT INTO t (v) VALUES (?)", ("auto%d" % i,))
        with p.transaction() as tx:
            tx.executemany("INSERT INTO t (v) VALUES (?)", [("tx%d" % i,) for i in range(50)])
        kill_all(p)
        assert p.execute("SELECT count(*) FROM t").fetchone() == (100,)
        # killed again before any checkpoint could run: the WAL alone holds them
        kill_all(p)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)
    finally:
        conn.close()


def test_writer_killed_inside_transaction(proxy_process: SQLiteProxy) -> None:
    proxy = proxy_process
    with pytest.raises(WorkerCrashed, match="transaction"):
        with proxy.transaction() as tx:
            tx.execute("INSERT INTO t (v) VALUES ('lost')")
            os.kill(pids(proxy, "writer")[0], signal.SIGKILL)
            with pytest.raises(WorkerCrashed):
                tx.execute("INSERT INTO t (v) VALUES ('never')")
            tx.execute("SELECT 1")  # the transaction is gone for good
    assert proxy.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with proxy.transaction() as tx:
        tx.execute("INSERT INTO t (v) VALUES ('next')")
    assert proxy.execute("SELECT v FROM t").fetchall() == [("next",)]


# -- the awaitable face ----------------------------------------------------------------------


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.gen_test(timeout=30)
async def test_async_face_and_gen_coroutine(db: str, setup: str) -> None:
    proxy = AsyncSQLiteProxy(db, readers=2, initializer=register_pid, **SETUPS[setup])
    assert proxy.workers()[0].pid is None  # constructing starts nothing
    async with proxy:
        await proxy.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
        r = await proxy.execute("INSERT INTO t (v) VALUES (?)", ("a",))
        assert (r.rowcount, r.lastrowid) == (1, 1)
        await proxy.executemany("INSERT INTO t (v) VALUES (?)", [("b",), ("c",)])
        async with proxy.transaction() as tx:
            await tx.execute("INSERT INTO t (v) VALUES ('d')")
            assert (await tx.execute("SELECT count(*) FROM t")).fetchone() == (4,)
            await tx.executemany("INSERT INTO t (v) VALUES (?)", [("e",)])
        with pytest.raises(SQLiteIntegrityError):
            async with proxy.transaction() as tx:
                await tx.execute("INSERT INTO t (v) VALUES ('f')")
                await tx.execute("INSERT INTO t (v) VALUES ('a')")
        with pytest.raises(WouldDeadlock):
            async with proxy.transaction():
                await proxy.execute("DELETE FROM t")

        @gen.coroutine
        def legacy() -> Any:
            first = yield proxy.execute("SELECT count(*) FROM t")
            results = yield proxy.transaction(["INSERT INTO t (v) VALUES ('g')",
                                               ("SELECT v FROM t WHERE v = ?", ("g",))])
            many = yield proxy.executemany("INSERT INTO t (v) VALUES (?)", [("h",)])
            return first.fetchone(), results[1].fetchall(), many.rowcount

        assert (await legacy()) == ((5,), [("g",)], 1)
        readers = set(pids(proxy, "reader"))
        got = await asyncio.gather(*[proxy.execute("SELECT worker_pid(), ?", (i,)) for i in range(50)])
        assert [r.fetchone()[1] for r in got] == list(range(50))
        # the blocking face over the same workers, from a thread
        sync = proxy.sync()
        assert set(pids(sync, "reader")) == readers
        count = await asyncio.get_running_loop().run_in_executor(
            None, lambda: sync.execute("SELECT count(*) FROM t").fetchone())
        assert count == (7,)
    assert proxy.closed
    with pytest.raises(ProxyClosed):
        await proxy.execute("SELECT 1")


@pytest.mark.gen_test(timeout=30)
async def test_async_read_your_writes_and_loop_stays_free(proxy: SQLiteProxy) -> None:
    aproxy = proxy.aio()
    loop = asyncio.get_running_loop()
    ticks = [0]

    def tick() -> None:  # a timer every 10 ms: it fires only while the loop turns
        ticks[0] += 1
        timers.append(loop.call_later(0.01, tick))

    timers = [loop.call_later(0.01, tick)]

    async def writer_reader(n: int) -> bool:
        await aproxy.execute("INSERT INTO t (v) VALUES (?)", ("w%d" % n,))
        r = await aproxy.execute("SELECT count(*) FROM t WHERE v = ?", ("w%d" % n,))
        return r.fetchone() == (1,)

    start = time.monotonic()
    slow = [aproxy.execute(SLOW, (1_500_000,)) for _ in range(4)]
    results = await asyncio.gather(*slow, *[writer_reader(n) for n in range(100)])
    elapsed = time.monotonic() - start
    timers[-1].cancel()
    assert all(results[4:]) and [r.fetchone() for r in results[:4]] == [(1_500_000,)] * 4
    assert ticks[0] >= elapsed / 0.01 / 4  # the loop kept turning while workers ran


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.gen_test(timeout=30)
async def test_async_cancel_never_hands_out_a_stale_reply(db: str, setup: str) -> None:
    async with AsyncSQLiteProxy(db, readers=1, **SETUPS[setup]) as proxy:
        task = asyncio.ensure_future(proxy.execute(SLOW, (2_000_000,)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await proxy.execute("SELECT 2")).fetchone() == (2,)
        await proxy.executescript("CREATE TABLE t (v TEXT)")

        async def cancelled_tx() -> None:
            async with proxy.transaction() as tx:
                await tx.execute("INSERT INTO t (v) VALUES ('x')")
                await tx.execute("INSERT INTO t (v) " + SLOW.replace("count(*)", "x"), (2_000_000,))

        task = asyncio.ensure_future(cancelled_tx())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await proxy.execute("SELECT count(*) FROM t")).fetchone() == (0,)
        assert [w.restarts for w in proxy.workers()] == [0, 0]


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.gen_test(timeout=30)
async def test_async_crash_timeout_and_deadlock(db: str, setup: str) -> None:
    async with AsyncSQLiteProxy(db, readers=1, timeout=0.2, **SETUPS[setup]) as proxy:
        slow = asyncio.ensure_future(proxy.execute(SLOW, (50_000_000,)))
        await asyncio.sleep(0.3)
        with pytest.raises(ProxyTimeout):
            await proxy.execute("SELECT 1")
        os.kill(pids(proxy, "reader")[0], signal.SIGKILL)
        with pytest.raises(WorkerCrashed):
            await slow
        assert (await proxy.execute("SELECT 3")).fetchone() == (3,)
        # a blocking call on the loop thread while this loop's own transaction holds the writer
        sync = proxy.sync()
        entered = asyncio.Event()

        async def hold() -> None:
            async with proxy.transaction():
                entered.set()
                await asyncio.sleep(0.3)

        holder = asyncio.ensure_future(hold())
        await entered.wait()
        with pytest.raises(WouldDeadlock):
            sync.execute("CREATE TABLE never (x)")
        await holder


@pytest.mark.gen_test(timeout=30)
async def test_async_writes_join_a_batch_with_threads(batching_proxy: SQLiteProxy) -> None:
    proxy = batching_proxy
    aproxy = proxy.aio()
    proxy.execute("INSERT INTO t (v) VALUES ('taken')")
    held = HeldWriter(proxy)
    before = proxy.core.batcher.batches
    tasks = [asyncio.ensure_future(aproxy.execute("INSERT INTO t (v) VALUES (?)", ("c%d" % i,)))
             for i in range(10)]
    tasks.append(asyncio.ensure_future(aproxy.execute("INSERT INTO t (v) VALUES ('taken')")))
    loop = asyncio.get_running_loop()
    from_thread = loop.run_in_executor(None, proxy.execute, "INSERT INTO t (v) VALUES ('thr')")
    while proxy.core.batcher.queued() < 12:
        await asyncio.sleep(0.01)
    held.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert (await from_thread).rowcount == 1
    assert all(r.rowcount == 1 for r in results[:10]) and isinstance(results[10], SQLiteIntegrityError)
    assert proxy.core.batcher.batches - before == 1  # all twelve in one round trip
    assert (await aproxy.execute("SELECT count(*) FROM t")).fetchone() == (12,)


# -- the in-process writer (writer="thread") ------------------------------------------------


def open_fds(path: str) -> List[str]:
    """This process's file descriptors open on ``path`` or its WAL / shm files."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith(path):
            found.append(target)
    return found


def test_thread_writer_reports_itself_and_close_closes_its_connection(db: str) -> None:
    p = SQLiteProxy(db, readers=1, initializer=register_pid, writer="thread")
    assert p.writer_mode == "thread" and "writer=thread" in repr(p)
    assert "writer=thread" in repr(p.aio()) and p.aio().writer_mode == "thread"
    info = p.workers()
    assert [(w.role, w.number, w.restarts) for w in info] == [("reader", 0, 0), ("writer", 0, 0)]
    assert info[0].pid is not None and info[1].pid is None  # no process of its own
    p.executescript("CREATE TABLE t (v INTEGER)")
    p.execute("INSERT INTO t (v) VALUES (worker_pid())")  # the initializer ran here too
    assert p.execute("SELECT v FROM t").fetchall() == [(os.getpid(),)]
    assert p.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with p.transaction() as tx:  # the writer's settings, on its own connection
        assert tx.execute("PRAGMA synchronous").fetchone() == (2,)
    assert open_fds(db)  # the writer's connection, in this process
    p.aio()  # an awaited write starts the writer's thread

    async def awaited() -> None:
        await p.aio().execute("INSERT INTO t (v) VALUES (1)")

    asyncio.run(awaited())
    assert "tornpool-sqlite-writer" in [t.name for t in threading.enumerate()]
    p.close()
    assert open_fds(db) == []
    assert not os.path.exists(db + "-wal")  # the last connection closed checkpointed it
    assert "tornpool-sqlite-writer" not in [t.name for t in threading.enumerate()]
    with pytest.raises(ProxyClosed):
        p.execute("INSERT INTO t (v) VALUES (2)")
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        conn.close()


def test_thread_writer_close_interrupts_a_running_write(db: str) -> None:
    p = SQLiteProxy(db, readers=1, writer="thread")
    p.executescript("CREATE TABLE big (x INTEGER)")
    caught: List[BaseException] = []

    def write() -> None:
        try:
            p.execute("INSERT INTO big (x) " + SLOW.replace("count(*)", "x"), (50_000_000,))
        except BaseException as exc:
            caught.append(exc)

    th = threading.Thread(target=write)
    th.start()
    wait_busy(p, "writer")
    start = time.monotonic()
    p.close(timeout=0.2)
    th.join(10)
    assert time.monotonic() - start < 5
    assert len(caught) == 1 and isinstance(caught[0], ProxyClosed), caught
    assert open_fds(db) == []
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM big").fetchone() == (0,)  # rolled back
    finally:
        conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_thread_writer_long_write_does_not_block_the_loop(db: str) -> None:
    async with AsyncSQLiteProxy(db, readers=1, writer="thread") as proxy:
        await proxy.executescript("CREATE TABLE big (x INTEGER)")
        loop = asyncio.get_running_loop()
        ticks = [0]

        def tick() -> None:
            ticks[0] += 1
            timers.append(loop.call_later(0.01, tick))

        timers = [loop.call_later(0.01, tick)]
        start = time.monotonic()
        r = await proxy.execute("INSERT INTO big (x) " + SLOW.replace("count(*)", "x"), (400_000,))
        elapsed = time.monotonic() - start
        timers[-1].cancel()
        assert r.rowcount == 400_000
        assert elapsed >= 0.1, elapsed  # long enough to matter
        assert ticks[0] >= elapsed / 0.01 / 4, (ticks, elapsed)  # the loop kept turning
        # transactions from the awaitable face run on the writer's thread too
        async with proxy.transaction() as tx:
            await tx.execute("DELETE FROM big WHERE x > 10")
            assert (await tx.execute("SELECT count(*) FROM big")).fetchone() == (10,)
            raise_it = False
        assert not raise_it
        assert (await proxy.execute("SELECT count(*) FROM big")).fetchone() == (10,)
