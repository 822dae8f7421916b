"""tornpool.dbapi.ExecutorPool's contract over each driver it is tested
with: sqlite3, mysqlclient (MySQLdb) and PyMySQL against the throwaway
MariaDB, psycopg against a throwaway PostgreSQL.

Each driver keeps its own placeholders and its own exception classes; the
pool's behaviour is the same: statements, atomic ``executemany``,
transactions, roll-back of a lease left in a transaction, interrupting a
timed-out statement, the cap on the server under a storm of timeouts and
cancellations, replacing a connection the server dropped.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tornpool import errors, parse_dsn
from tornpool.dbapi import ExecutorPool

_TABLES = itertools.count(1)


@dataclass
class Backend:
    """One driver and a server to run it against."""

    module: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: the driver's placeholder
    ph: str = "%s"
    #: SQL that sleeps ``{}`` seconds on the server
    sleep: str = ""
    #: SQL that says which server connection ran it
    whoami: str = ""
    #: ``(sql)`` on a separate admin connection, returning rows
    admin: Callable[[str], list[tuple[Any, ...]]] | None = None
    #: SQL counting the server connections a pool of ours opened
    count_ours: str = ""
    #: SQL that drops server connection ``{}``
    kill: str = ""

    def pool(self, **kw: Any) -> ExecutorPool:
        return ExecutorPool(self.module, *self.args, kwargs=dict(self.kwargs), **kw)

    def table(self) -> str:
        return "dbapi_t%d_%s" % (next(_TABLES), self.module.lower())


def _mysql_admin(params: dict[str, Any]) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(sql: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(autocommit=True, **params)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    return run


def _pg_admin(dsn: str) -> Callable[[str], list[tuple[Any, ...]]]:
    psycopg = importlib.import_module("psycopg")

    def run(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    return run


def _mysql(module: str, dsn: str) -> Backend:
    p = parse_dsn(dsn)
    params = {"host": p["host"], "port": p["port"], "user": p["user"],
              "password": p.get("password") or "", "database": p["database"]}
    admin = _mysql_admin(params)
    admin("CREATE DATABASE IF NOT EXISTS dbapi_%s" % module.lower())
    # connections of the pool are told apart by their default database
    kwargs = dict(params, database="dbapi_%s" % module.lower())
    if module == "MySQLdb":
        kwargs["passwd"] = kwargs.pop("password")
        kwargs["db"] = kwargs.pop("database")
    return Backend(module, kwargs=kwargs, sleep="SELECT SLEEP({})", whoami="SELECT CONNECTION_ID()",
                   admin=admin, kill="KILL {}",
                   count_ours="SELECT COUNT(*) FROM information_schema.processlist "
                              "WHERE db = 'dbapi_%s'" % module.lower())


BACKENDS = ["sqlite3", "MySQLdb", "pymysql", "psycopg"]
SERVERS = ["MySQLdb", "pymysql", "psycopg"]


@pytest.fixture
def backend(request: Any, tmp_path: Path) -> Iterator[Backend]:
    name = request.param
    if name == "sqlite3":
        yield Backend("sqlite3", args=(str(tmp_path / "d.db"),), ph="?")
    elif name in ("MySQLdb", "pymysql"):
        yield _mysql(name, request.getfixturevalue("mariadb_dsn"))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        ours = dsn + " application_name=dbapi_tests"
        yield Backend("psycopg", args=(ours,), sleep="SELECT pg_sleep({})",
                      whoami="SELECT pg_backend_pid()", admin=_pg_admin(dsn),
                      kill="SELECT pg_terminate_backend({})",
                      count_ours="SELECT COUNT(*) FROM pg_stat_activity "
                                 "WHERE application_name = 'dbapi_tests'")


def _errors_of(b: Backend) -> Any:
    return importlib.import_module(b.module)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_statements_executemany_transactions(backend: Backend) -> None:
    t, ph = backend.table(), backend.ph
    async with backend.pool(size=2) as pool:
        await pool.execute("CREATE TABLE %s (k INTEGER PRIMARY KEY, v VARCHAR(20))" % t)
        try:
            res = await pool.execute("INSERT INTO %s (k, v) VALUES (%s, %s)" % (t, ph, ph), (1, "one"))
            assert res.rowcount == 1 and res.rows == []
            with pytest.raises(_errors_of(backend).IntegrityError):  # the driver's own class
                await pool.executemany("INSERT INTO %s (k, v) VALUES (%s, %s)" % (t, ph, ph),
                                       [(2, "two"), (3, "three"), (1, "again")])
            res = await pool.execute("SELECT k, v FROM %s ORDER BY k" % t)
            assert res.fetchall() == [(1, "one")]  # every row or none
            await pool.executemany("INSERT INTO %s (k, v) VALUES (%s, %s)" % (t, ph, ph),
                                   [(2, "two"), (3, "three")])
            async with pool.transaction() as conn:
                await conn.execute("DELETE FROM %s WHERE k = %s" % (t, ph), (3,))
                assert conn.in_transaction
            with pytest.raises(KeyError):
                async with pool.transaction() as conn:
                    await conn.execute("DELETE FROM %s" % t)
                    raise KeyError("undo")
            with pytest.raises(_errors_of(backend).IntegrityError):
                await pool.transaction(["DELETE FROM %s WHERE k = 2" % t,
                                        ("INSERT INTO %s (k, v) VALUES (%s, %s)" % (t, ph, ph),
                                         (1, "dup"))])
            res = await pool.execute("SELECT k FROM %s WHERE k >= %s ORDER BY k" % (t, ph), (0,))
            assert res.fetchall() == [(1,), (2,)] and res.rowcount == 2
            assert res.columns == ["k"]
        finally:
            await pool.execute("DROP TABLE %s" % t)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_lease_left_in_a_transaction_is_rolled_back(
        backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    t, ph = backend.table(), backend.ph
    async with backend.pool(size=1) as pool:
        await pool.execute("CREATE TABLE %s (k INTEGER)" % t)
        try:
            with caplog.at_level(logging.WARNING, logger="tornpool.dbapi"):
                async with pool.acquire() as conn:
                    await conn.begin()
                    await conn.execute("INSERT INTO %s VALUES (%s)" % (t, ph), (1,))
                    assert conn.in_transaction
                async with pool.acquire() as conn:  # a transaction opened by a statement
                    await conn.execute("BEGIN")
                    await conn.execute("INSERT INTO %s VALUES (%s)" % (t, ph), (2,))
            assert caplog.text.count("returned inside a transaction") == 2
            assert (await pool.execute("SELECT COUNT(*) FROM %s" % t)).fetchone() == (0,)
        finally:
            await pool.execute("DROP TABLE %s" % t)


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_timed_out_statement_is_interrupted_and_its_connection_replaced(
        backend: Backend) -> None:
    # (MySQL's KILL QUERY needs a second connection: max_size=2 leaves room for it)
    async with backend.pool(size=1, max_size=2) as pool:
        first = (await pool.execute(backend.whoami)).fetchone()[0]
        t0 = time.monotonic()
        with pytest.raises(errors.CommandTimeout):
            await pool.execute(backend.sleep.format(5), timeout=0.2)
        second = (await pool.execute(backend.whoami)).fetchone()[0]
        # the server stopped the statement (KILL QUERY / cancel): far less than 5 s
        assert time.monotonic() - t0 < 3.0
        assert second != first
        assert pool.stats()["calls_abandoned"] == 1


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
@pytest.mark.gen_test(timeout=120)
async def test_cap_holds_on_the_server_under_timeouts_and_cancels(backend: Backend) -> None:
    assert backend.admin is not None
    admin = backend.admin
    loop = asyncio.get_running_loop()
    peak = 0
    stop = False

    def sample() -> None:
        nonlocal peak
        while not stop:
            peak = max(peak, admin(backend.count_ours)[0][0])
            time.sleep(0.01)

    sampler = loop.run_in_executor(None, sample)
    try:
        async with backend.pool(size=1, max_size=3, timeout=20) as pool:
            rng = random.Random(7)

            async def worker(w: int) -> None:
                for i in range(10):
                    call = pool.execute(backend.sleep.format(0.1 * rng.randint(1, 3)),
                                        timeout=rng.choice([None, 0.15]))
                    if i % 3 == w % 3:
                        loop.call_later(0.05, call.cancel)
                    try:
                        await call
                    except (errors.CommandTimeout, errors.PoolTimeout, asyncio.CancelledError):
                        pass  # (the timeout covers the wait for a connection too)

            await asyncio.gather(*[worker(w) for w in range(5)])
            assert pool.stats()["calls_abandoned"] >= 10
            await pool.execute("SELECT 1")
    finally:
        stop = True  # (a sampler left running would keep the interpreter from exiting)
        await sampler
    assert 1 <= peak <= 3
    deadline = time.monotonic() + 10
    while admin(backend.count_ours)[0][0]:
        assert time.monotonic() < deadline, "connections left after close()"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_connection_dropped_by_the_server_is_replaced(backend: Backend) -> None:
    assert backend.admin is not None
    async with backend.pool(size=1, max_size=1, check_idle=0.05) as pool:
        first = (await pool.execute(backend.whoami)).fetchone()[0]
        backend.admin(backend.kill.format(first))
        await asyncio.sleep(0.2)  # idle longer than check_idle: pinged before use
        second = (await pool.execute(backend.whoami)).fetchone()[0]
        assert second != first
        assert pool.stats()["connections_lost"] == 1
    async with backend.pool(size=1, max_size=1, check_idle=None) as pool:
        first = (await pool.execute(backend.whoami)).fetchone()[0]
        backend.admin(backend.kill.format(first))
        await asyncio.sleep(0.2)
        with pytest.raises(_errors_of(backend).OperationalError):
            await pool.execute(backend.whoami)  # no ping: the call finds it dead
        second = (await pool.execute(backend.whoami)).fetchone()[0]  # and it was replaced
        assert second != first


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_bad_credentials_or_database_fail_at_once(backend: Backend) -> None:
    bad = dict(backend.kwargs)
    args = backend.args
    if backend.module == "psycopg":
        args = (args[0].replace("dbname=test", "dbname=no_such_db"),)
    elif "db" in bad:
        bad["db"] = "no_such_db"
    else:
        bad["database"] = "no_such_db"
    pool = ExecutorPool(backend.module, *args, kwargs=bad, size=0, max_size=1, timeout=20)
    t0 = time.monotonic()
    with pytest.raises(_errors_of(backend).OperationalError):
        await pool.execute("SELECT 1")
    assert time.monotonic() - t0 < 5  # not retried until the deadline
    await pool.close()


@pytest.mark.parametrize("backend", ["psycopg"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_postgres_session_reset(backend: Backend) -> None:
    async with backend.pool(size=1, session_reset="always") as pool:
        async with pool.acquire() as conn:
            await conn.execute("SET search_path TO elsewhere")
            await conn.execute("CREATE TEMP TABLE scratch (x int)")
            pid = (await conn.execute(backend.whoami)).fetchone()[0]
        async with pool.acquire() as conn:
            assert (await conn.execute(backend.whoami)).fetchone()[0] == pid  # same connection
            assert (await conn.execute("SHOW search_path")).fetchone()[0] == '"$user", public'
            with pytest.raises(_errors_of(backend).errors.UndefinedTable):
                await conn.execute("SELECT * FROM scratch")
    async with backend.pool(size=1) as pool:  # "never": the session stays as the lease left it
        async with pool.acquire() as conn:
            await conn.execute("SET search_path TO elsewhere")
        assert (await pool.execute("SHOW search_path")).fetchone()[0] == "elsewhere"



@pytest.mark.parametrize("backend", ["MySQLdb", "pymysql"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_mysql_kill_at_the_cap_uses_the_next_pooled_connection(backend: Backend) -> None:
    assert backend.admin is not None
    async with backend.pool(size=2, max_size=2) as pool:
        t0 = time.monotonic()
        other = asyncio.ensure_future(pool.execute(backend.sleep.format(0.3)))
        with pytest.raises(errors.CommandTimeout):
            await pool.execute(backend.sleep.format(5), timeout=0.1)
        # no room for a connection of its own: KILL QUERY waits for `other`'s
        await other
        await asyncio.gather(*[pool.execute("SELECT 1") for _ in range(2)])
        assert time.monotonic() - t0 < 3.0
        assert backend.admin(backend.count_ours)[0][0] <= 2
