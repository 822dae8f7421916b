"""tornpool.momoko's surface: every name of Momoko 2.2 (MOMOKO_API.md), the
signature and defaults of ``Pool``, DSNs, cursor factories, exceptions."""

from __future__ import annotations

import datetime
import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest

import tornpool
import tornpool.momoko as momoko
from test_momoko_util import DATABASE, MomokoServer, momoko_server, opened_pool, wait_count, blocking
from tornpool.errors import DSNError, PoolUnavailable
from tornpool.momoko.cursors import version_number
from tornpool.momoko.dsn import parse, split_pairs


@pytest.fixture(scope="module")
def mserver() -> Iterator[MomokoServer]:
    with momoko_server() as server:
        yield server


def dsn_of(server: MomokoServer) -> str:
    return f"dbname={DATABASE} user=momoko password= host=127.0.0.1 port={server.server.port}"


# -- names and signatures -----------------------------------------------------------------


def test_momoko_names_exist() -> None:
    for name in ("Pool", "Connection", "connect", "PoolError", "PartiallyConnectedError"):
        assert name in momoko.__all__ and hasattr(momoko, name)
    assert momoko.exceptions.PartiallyConnectedError is momoko.PartiallyConnectedError
    assert momoko.exceptions.PoolError is momoko.PoolError
    for method in ("connect", "execute", "callproc", "transaction", "mogrify", "getconn", "putconn",
                   "manage", "ping", "register_json", "register_hstore", "close"):
        assert callable(getattr(momoko.Pool, method)), method
    for method in ("connect", "execute", "callproc", "mogrify", "transaction", "ping",
                   "register_json", "register_hstore", "close"):
        assert callable(getattr(momoko.Connection, method)), method


def test_pool_signature_and_defaults_are_momokos() -> None:
    params = inspect.signature(momoko.Pool).parameters
    expected = {
        "dsn": inspect.Parameter.empty, "connection_factory": None, "cursor_factory": None,
        "size": 1, "max_size": None, "ioloop": None, "raise_connect_errors": True,
        "reconnect_interval": 500, "setsession": (), "auto_shrink": False,
        "shrink_delay": datetime.timedelta(minutes=2), "shrink_period": datetime.timedelta(minutes=2),
    }
    assert list(params)[:len(expected)] == list(expected)
    assert {k: params[k].default for k in expected} == expected
    conn_params = inspect.signature(momoko.Connection).parameters
    assert list(conn_params) == ["dsn", "connection_factory", "cursor_factory", "ioloop", "setsession"]


def test_exceptions_sit_on_tornpools_tree() -> None:
    assert issubclass(momoko.PoolError, tornpool.errors.PoolError)
    assert issubclass(momoko.PartiallyConnectedError, momoko.PoolError)
    nda = momoko.Pool.DatabaseNotAvailable
    assert nda is momoko.DatabaseNotAvailable
    assert issubclass(nda, momoko.DatabaseError) and issubclass(nda, PoolUnavailable)
    assert momoko.OperationalError is tornpool.errors.OperationalError


def test_pool_attributes(mserver: MomokoServer) -> None:
    db = momoko.Pool(dsn_of(mserver), size=2, max_size=5, ioloop=object(), reconnect_interval=250)
    assert (db.size, db.max_size, db.reconnect_interval, db.closed) == (2, 5, 0.25, False)
    assert db.dsn == dsn_of(mserver)
    assert db.server_version is None  # unknown until connected
    assert momoko.Pool(dsn_of(mserver), size=3).max_size == 3


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": 3, "max_size": 2}, {"reconnect_interval": -1}])
def test_bad_sizes_are_value_errors(mserver: MomokoServer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        momoko.Pool(dsn_of(mserver), **kwargs)


@pytest.mark.gen_test(timeout=20)
async def test_second_close_raises_pool_error(mserver: MomokoServer) -> None:
    db = momoko.Pool(dsn_of(mserver), size=2)
    await db.connect()
    assert await blocking(mserver.count) == 2
    db.close()
    assert db.closed
    with pytest.raises(momoko.PoolError, match="connection pool is already closed"):
        db.close()
    await db.wait_closed()
    assert await wait_count(mserver, 0) == 0
    with pytest.raises(momoko.PoolError):
        await db.execute("SELECT 1")


@pytest.mark.gen_test(timeout=20)
async def test_server_version_is_an_int(mserver: MomokoServer) -> None:
    async with opened_pool(dsn_of(mserver), size=1) as db:
        (raw,), = (await db.execute("SELECT VERSION()")).fetchall()
        assert db.server_version == version_number(raw)
        assert db.server_version_string is not None and raw in db.server_version_string
        conn = await db.getconn()
        with db.manage(conn):
            assert conn.server_version == db.server_version


def test_version_number() -> None:
    assert version_number("10.6.11-MariaDB") == 100611
    assert version_number("5.5.5-10.11.6-MariaDB-0+deb12u1") == 101106
    assert version_number("8.0.36") == 80036
    with pytest.raises(momoko.ProgrammingError):
        version_number("unknown")


# -- DSNs -----------------------------------------------------------------------------------


def test_libpq_dsn() -> None:
    assert parse("dbname=shop user=app password=secret host=db.internal port=3307") == {
        "database": "shop", "user": "app", "password": "secret", "host": "db.internal", "port": 3307}


def test_libpq_dsn_defaults_port_3306_and_takes_an_empty_value() -> None:
    """``password= host=x``: an empty password (libpq would read "host=x")."""
    assert parse("dbname=ext_momoko user=root password= host=127.0.0.1") == {
        "database": "ext_momoko", "user": "root", "password": "", "host": "127.0.0.1", "port": 3306}


def test_libpq_dsn_quoting_and_mappings() -> None:
    kwargs = parse(r"password='it\'s' user = 'a b' hostaddr=10.0.0.2 host=db sslmode=verify-full "
                   r"connect_timeout=2.5 application_name=web client_encoding=UTF8 host=/run/db.sock")
    assert split_pairs(r"a='x\'y' b=c\ d") == [("a", "x'y"), ("b", "c d")]
    assert kwargs["user"] == "a b" and kwargs["password"] == "it's"
    assert kwargs["host"] == "10.0.0.2" and kwargs["unix_socket"] == "/run/db.sock"
    assert kwargs["ssl_verify_cert"] is True and kwargs["ssl_verify_identity"] is True
    assert kwargs["connect_timeout"] == 2.5
    assert kwargs["program_name"] == "web" and kwargs["charset"] == "utf8mb4"


def test_unknown_dsn_keys_warn_and_are_ignored() -> None:
    with pytest.warns(momoko.DSNWarning, match="target_session_attrs"):
        kwargs = parse("dbname=x target_session_attrs=read-write")
    assert kwargs == {"database": "x", "port": 3306}


@pytest.mark.parametrize("dsn", ["dbname", "=x", "password='open", "port=abc", "sslmode=sometimes", 42])
def test_malformed_dsns_are_dsn_errors(dsn: Any) -> None:
    with pytest.raises(DSNError):
        parse(dsn)


def test_mysql_url_dsn() -> None:
    assert parse("mysql://app:pw@127.0.0.1:3310/shop?charset=utf8mb4") == {
        "user": "app", "password": "pw", "host": "127.0.0.1", "port": 3310, "database": "shop",
        "charset": "utf8mb4"}


def test_pool_rejects_a_malformed_dsn_at_once() -> None:
    with pytest.raises(DSNError):
        momoko.Pool("dbname")


# -- cursor factories ----------------------------------------------------------------------


def fake_psycopg2_class(name: str) -> type:
    """A class named as psycopg2.extras names it (psycopg2 is not installed)."""
    return type(name, (), {"__module__": "psycopg2.extras"})


@pytest.mark.gen_test(timeout=20)
async def test_cursor_factory_aliases(mserver: MomokoServer) -> None:
    async with opened_pool(dsn_of(mserver), size=1) as db:
        sql = "SELECT 1 AS a, 2 AS b"
        rows = {}
        for factory in (momoko.RealDictCursor, momoko.DictCursor, momoko.NamedTupleCursor,
                        tornpool.DictCursor, fake_psycopg2_class("RealDictCursor"),
                        fake_psycopg2_class("NamedTupleCursor"), None):
            rows[getattr(factory, "__module__", "") + "." + getattr(factory, "__name__", "None")] = (
                await db.execute(sql, cursor_factory=factory)).fetchone()
        assert rows["tornpool.momoko.cursors.RealDictCursor"] == {"a": 1, "b": 2}
        dict_row = rows["tornpool.momoko.cursors.DictCursor"]
        assert dict_row == {"a": 1, "b": 2} and (dict_row[0], dict_row[1], dict_row["b"]) == (1, 2, 2)
        named = rows["tornpool.momoko.cursors.NamedTupleCursor"]
        assert (named.a, named.b) == (1, 2) and tuple(named) == (1, 2)
        assert rows["tornpool.cursors.DictCursor"] == {"a": 1, "b": 2}
        assert rows["psycopg2.extras.RealDictCursor"] == {"a": 1, "b": 2}
        assert rows["psycopg2.extras.NamedTupleCursor"].b == 2
        assert rows[".None"] == (1, 2)


@pytest.mark.gen_test(timeout=20)
async def test_connection_factories(mserver: MomokoServer) -> None:
    for factory, check in ((momoko.NamedTupleConnection, lambda r: r.a == 1),
                           (momoko.DictConnection, lambda r: r[0] == 1 and r["a"] == 1),
                           (fake_psycopg2_class("RealDictConnection"), lambda r: r == {"a": 1})):
        conn = await momoko.connect(dsn_of(mserver), connection_factory=factory)
        try:
            assert check((await conn.execute("SELECT 1 AS a")).fetchone())
        finally:
            conn.close()
            await conn.wait_closed()


def test_unsupported_factories_are_interface_errors(mserver: MomokoServer) -> None:
    with pytest.raises(momoko.InterfaceError, match="cursor_factory"):
        momoko.Pool(dsn_of(mserver), cursor_factory=dict)
    with pytest.raises(momoko.InterfaceError, match="connection_factory"):
        momoko.Connection(dsn_of(mserver), connection_factory=fake_psycopg2_class("LoggingConnection"))


@pytest.mark.gen_test(timeout=20)
async def test_cursor_shape(mserver: MomokoServer) -> None:
    """fetch* return lists (psycopg2's), iteration, scroll, rowcount."""
    async with opened_pool(dsn_of(mserver), size=1) as db:
        cursor = await db.execute("SELECT seq FROM seq_1_to_5")
        assert cursor.rowcount == 5 and cursor.description[0][0] == "seq"
        assert cursor.fetchone() == (1,)
        assert cursor.fetchmany(2) == [(2,), (3,)]
        cursor.scroll(0, "absolute")
        assert list(cursor) == [(1,), (2,), (3,), (4,), (5,)]
        assert cursor.fetchall() == []
        with pytest.raises(IndexError):
            cursor.scroll(10)


class JSONResult:
    """What a statement on MySQL 8 gives for ``SELECT CAST('{"a": 1}' AS JSON), 2``
    (MariaDB never sends the JSON type, so this shape cannot come from the
    test server): a JSON column (type 245) next to an integer."""

    description = (("j", 245, None, None, None, None, True), ("n", 3, None, None, None, None, True))
    rowcount, rownumber, lastrowid, arraysize = 1, 0, None, 1

    def __init__(self) -> None:
        self.rows = [('{"a": [1, 2]}', 2), (None, 3)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows


def test_register_json_decodes_the_json_type() -> None:
    assert momoko.Cursor(JSONResult(), json.loads).fetchall() == [({"a": [1, 2]}, 2), (None, 3)]
    assert momoko.RealDictCursor(JSONResult(), json.loads).fetchall()[0] == {"j": {"a": [1, 2]}, "n": 2}
    assert momoko.Cursor(JSONResult()).fetchall()[0] == ('{"a": [1, 2]}', 2)  # not registered


@pytest.mark.gen_test(timeout=20)
async def test_register_json_takes_a_loads_function(mserver: MomokoServer) -> None:
    conn = await momoko.connect(dsn_of(mserver))
    try:
        assert await conn.register_json(loads=lambda text: ("decoded", text)) is None
        assert (await conn.execute("SELECT 1")).fetchall() == [(1,)]
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_connection_misuse_is_typed(mserver: MomokoServer) -> None:
    conn = momoko.Connection(dsn_of(mserver))
    assert conn.closed
    with pytest.raises(tornpool.errors.ConnectionClosed):
        await conn.execute("SELECT 1")
    await conn.connect()
    try:
        with pytest.raises(momoko.InterfaceError, match="connected already"):
            await conn.connect()
        with pytest.raises(momoko.InterfaceError, match="str or"):
            await conn.transaction([42])
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_putconn_of_a_foreign_or_returned_connection(mserver: MomokoServer) -> None:
    async with opened_pool(dsn_of(mserver), size=1) as db, opened_pool(dsn_of(mserver), size=1) as other:
        conn = await db.getconn()
        with pytest.raises(tornpool.errors.ForeignConnection):
            other.putconn(conn)
        db.putconn(conn)
        with pytest.raises(tornpool.errors.ConnectionReleased):
            db.putconn(conn)
        with pytest.raises(tornpool.errors.ConnectionReleased):
            with db.manage(conn):
                pass


@pytest.mark.gen_test(timeout=20)
async def test_pool_returns_futures_usable_before_the_loop_runs_them(mserver: MomokoServer) -> None:
    """Momoko code keeps the Futures: ``f = db.execute(); yield [f]; f.result()``."""
    async with opened_pool(dsn_of(mserver), size=2) as db:
        futures = [db.execute("SELECT %s", (i,)) for i in range(3)] + [db.getconn(), db.ping()]
        assert all(hasattr(f, "add_done_callback") and hasattr(f, "result") for f in futures)
        for f in futures:
            await f
        assert [f.result().fetchone() for f in futures[:3]] == [(0,), (1,), (2,)]
        db.putconn(futures[3].result())


@pytest.mark.gen_test(timeout=20)
async def test_callproc_keeps_the_first_result_set_and_the_connection(mserver: MomokoServer) -> None:
    """A procedure's later result sets (its closing status packet at least)
    are read and dropped, so the pooled connection goes back reusable
    instead of being closed for an unread result."""
    async with opened_pool(dsn_of(mserver), size=1) as db:
        await db.execute("CREATE OR REPLACE PROCEDURE two_sets() BEGIN SELECT 1 AS a; SELECT 2 AS b; END")
        before = [c["id"] for c in db.native.connections()]
        for _ in range(3):
            cursor = await db.callproc("two_sets", cursor_factory=momoko.RealDictCursor)
            assert cursor.fetchall() == [{"a": 1}]
        conn = await db.getconn()
        with db.manage(conn):
            assert (await conn.callproc("two_sets")).fetchall() == [(1,)]
            assert (await conn.execute("SELECT 3")).fetchall() == [(3,)]
        assert [c["id"] for c in db.native.connections()] == before
        assert db.native.stats()["returns_bad"] == 0
