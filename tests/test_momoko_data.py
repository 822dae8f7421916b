"""Momoko's data scenarios through the facade: ``MomokoConnectionTest``,
``MomokoConnectionDataTest`` / ``MomokoPoolDataTest`` / ``MomokoPoolDataTestProxy``,
the server-side-cursor, setsession and factory tests.

The 14 ``*DataTest`` scenarios run three ways (``target``): on a standalone
``momoko.connect()`` connection, on a pool reached directly, and on a pool
behind a fault proxy.  Pool runs end with Momoko's check that no connection
is left in use.  The pool-only scenarios (getconn/putconn/manage, reconnect
after every connection died) run on both pool routes; there Momoko's
``shutter`` is a server-side KILL of every pooled connection, or a reset of
every proxied one.
"""

from __future__ import annotations

import contextlib
import json
import random
import string
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import tornpool.momoko as momoko
from test_momoko_util import (
    DATABASE,
    BAD_DSN,
    LOCAL_BAD_DSN,
    MomokoServer,
    Route,
    blocking,
    check_transaction_cursors,
    make_tables,
    momoko_server,
    opened_pool,
    transaction_statements,
    wait_count,
)

TARGETS = ["connection", "pool", "pool-proxy"]
POOLS = ["pool", "pool-proxy"]


@pytest.fixture(scope="module")
def mserver() -> Iterator[MomokoServer]:
    with momoko_server() as server:
        yield server


@pytest.fixture
def tables(mserver: MomokoServer) -> MomokoServer:
    make_tables(mserver)
    return mserver


@pytest.fixture
def route(request: Any, mserver: MomokoServer) -> Iterator[Route]:
    kind = getattr(request, "param", "direct")
    r = Route(kind, mserver)
    try:
        yield r
    finally:
        r.close()


@contextlib.asynccontextmanager
async def on(target: str, server: MomokoServer) -> AsyncIterator[Any]:
    """A connected standalone Connection, or a pool (direct or via a proxy)."""
    if target == "connection":
        conn = await momoko.connect(Route("direct", server).dsn)
        try:
            yield conn
        finally:
            conn.close()
            await conn.wait_closed()
            await conn.wait_closed()
        return
    route = Route("proxy" if target == "pool-proxy" else "direct", server)
    try:
        async with opened_pool(route.dsn) as db:
            yield db
    finally:
        route.close()


async def count_rows(db: Any, table: str) -> int:
    cursor = await db.execute(f"SELECT COUNT(*) FROM {table}")
    return int(cursor.fetchone()[0])


def random_text(size: int) -> str:
    chars = string.ascii_letters + string.digits + string.punctuation
    return "".join(random.choice(chars) for _ in range(size))


# -- MomokoConnectionTest ----------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_connect(route: Route) -> None:
    conn = await momoko.connect(route.dsn)
    try:
        assert isinstance(conn, momoko.Connection)
        assert not conn.closed
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_bad_connect() -> None:
    with pytest.raises(momoko.OperationalError) as info:
        await momoko.connect(BAD_DSN)
    assert info.value.args[0] == 2003


@pytest.mark.gen_test(timeout=20)
async def test_bad_connect_local() -> None:
    with pytest.raises(momoko.OperationalError) as info:
        await momoko.connect(LOCAL_BAD_DSN)
    assert info.value.args[0] == 2002


# -- MomokoConnectionDataTest / MomokoPoolDataTest(+Proxy) --------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_execute(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        cursor = await db.execute("SELECT 1, 2, 3")
        assert cursor.fetchall() == [(1, 2, 3)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_execute_percent_sign(tables: MomokoServer, target: str) -> None:
    """Momoko #136: no interpolation without parameters."""
    async with on(target, tables) as db:
        cursor = await db.execute("SELECT 'a%s'")
        assert cursor.fetchall() == [("a%s",)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_ping(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        cursor = await db.ping()
        assert cursor.fetchall() == [(1,)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=30)
async def test_large_query(tables: MomokoServer, target: str) -> None:
    """5 x 100 kB come back equal (INSERT ... RETURNING became INSERT, then a
    SELECT by the generated id, which also works across pooled connections)."""
    async with on(target, tables) as db:
        for _ in range(5):
            data = random_text(100_000)
            inserted = await db.execute("INSERT INTO unit_test_large_query (data) VALUES (%s)", (data,))
            cursor = await db.execute("SELECT data FROM unit_test_large_query WHERE id = %s",
                                      (inserted.lastrowid,))
            assert cursor.fetchone() == (data,)
        assert await count_rows(db, "unit_test_large_query") == 5


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_transaction(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        check_transaction_cursors(await db.transaction(transaction_statements()))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_unicode_transaction(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        check_transaction_cursors(await db.transaction(transaction_statements(ucode=True)))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_transaction_rollback(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        with pytest.raises(momoko.ProgrammingError) as info:
            await db.transaction([
                ("INSERT INTO unit_test_transaction (data) VALUES (%s);", (random_text(100),)),
                "SELECT DOES NOT WORK!;",
            ], auto_rollback=True)
        assert info.value.args[0] == 1064
        assert await count_rows(db, "unit_test_transaction") == 0


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_hstore(tables: MomokoServer, target: str) -> None:
    """hstore has no MySQL equivalent: a clear NotSupportedError."""
    async with on(target, tables) as db:
        with pytest.raises(momoko.NotSupportedError, match="hstore"):
            await db.register_hstore()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_json(tables: MomokoServer, target: str) -> None:
    """MariaDB sends JSON as text (no JSON type on the wire), so after
    register_json the value is still the JSON text; MySQL's JSON type is
    decoded (test_momoko_api: test_register_json_decodes_the_json_type)."""
    async with on(target, tables) as db:
        assert await db.register_json() is None
        cursor = await db.execute("SELECT JSON_OBJECT('a', 'b', 'c', 'd')")
        assert cursor.description[0][1] != 245  # not MySQL's JSON type
        (value,), = cursor.fetchall()
        assert isinstance(value, str) and json.loads(value) == {"a": "b", "c": "d"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_callproc(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        cursor = await db.callproc("unit_test_callproc", (64,))
        assert cursor.fetchone() == (4096,)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_callproc_noparams(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        cursor = await db.callproc("unit_test_callproc_noparams")
        assert cursor.fetchone() == (42,)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_query_error(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        with pytest.raises(momoko.ProgrammingError) as info:
            await db.execute("SELECT DOES NOT WORK!;")
        assert info.value.args[0] == 1064


async def mogrified(db: Any, sql: str, params: Any) -> bytes:
    """Connection.mogrify is synchronous; Pool.mogrify is a Future (Momoko's asymmetry)."""
    if isinstance(db, momoko.Pool):
        return await db.mogrify(sql, params)  # type: ignore[no-any-return]
    return db.mogrify(sql, params)  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_mogrify(tables: MomokoServer, target: str) -> None:
    async with on(target, tables) as db:
        sql = await mogrified(db, "SELECT %s, %s;", ('\'"test"\'', "SELECT 1;"))
        assert sql == b"SELECT '\\'\\\"test\\\"\\'', 'SELECT 1;';"
        cursor = await db.execute(sql)
        assert cursor.fetchone() == ('\'"test"\'', "SELECT 1;")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.gen_test(timeout=20)
async def test_mogrify_error(tables: MomokoServer, target: str) -> None:
    """A malformed placeholder is psycopg2's ProgrammingError (Python's %
    raised ValueError)."""
    async with on(target, tables) as db:
        with pytest.raises(momoko.ProgrammingError) as info:
            await mogrified(db, "SELECT %(foos;", {"foo": "bar"})
        assert isinstance(info.value.__cause__, ValueError)


# -- the pool-only scenarios of MomokoPoolDataTest(+Proxy) -----------------------------------


@pytest.mark.fault
@pytest.mark.parametrize("route", ["direct", "proxy"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_transaction_with_reconnect(tables: MomokoServer, route: Route) -> None:
    """After every connection died, a transaction works -- and runs once."""
    async with opened_pool(route.dsn) as db:
        await route.shutter()
        await db.transaction(["INSERT INTO unit_test_int_table VALUES (1)"])
        cursor = await db.execute("SELECT COUNT(1) FROM unit_test_int_table")
        assert cursor.fetchall() == [(1,)]


async def getconn_rounds(db: momoko.Pool, route: Route, reconnect: bool, manage: bool) -> None:
    """``size * 5`` rounds of getconn, 10 statements, putconn (or manage)."""
    for _ in range(db.size * 5):
        if reconnect:
            await route.shutter()
        conn = await db.getconn()
        if manage:
            with db.manage(conn):
                for j in range(10):
                    assert (await conn.execute("SELECT %s", (j,))).fetchall() == [(j,)]
        else:
            for j in range(10):
                assert (await conn.execute("SELECT %s", (j,))).fetchall() == [(j,)]
            db.putconn(conn)
        assert conn.closed  # given back: this handle is dead


#: Momoko's four getconn tests: (name, reconnect first, manage() instead of putconn()).
GETCONN = [
    ("test_getconn_putconn", False, False),
    ("test_getconn_putconn_with_reconnect", True, False),
    ("test_getconn_manage", False, True),
    ("test_getconn_manage_with_reconnect", True, True),
]


@pytest.mark.fault
@pytest.mark.parametrize("route", ["direct", "proxy"], indirect=True)
@pytest.mark.parametrize("name, reconnect, manage", GETCONN, ids=[g[0][5:] for g in GETCONN])
@pytest.mark.gen_test(timeout=60)
async def test_getconn(tables: MomokoServer, route: Route, name: str, reconnect: bool, manage: bool) -> None:
    """test_getconn_putconn, _manage, and both _with_reconnect (every
    connection dies before each getconn)."""
    async with opened_pool(route.dsn) as db:
        await getconn_rounds(db, route, reconnect=reconnect, manage=manage)


class Deliberate(Exception):
    pass


@pytest.mark.fault
@pytest.mark.parametrize("route", ["direct", "proxy"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_getconn_manage_with_exception(tables: MomokoServer, route: Route) -> None:
    """After every connection died, getconn(ping=False) still hands out a live
    one (tornpool drops connections the server hung up on); an exception
    leaving ``manage`` propagates and the connection goes back."""
    async with opened_pool(route.dsn) as db:
        await route.shutter()
        conn = await db.getconn(ping=False)
        with pytest.raises(Deliberate):
            with db.manage(conn):
                assert (await conn.execute("SELECT 1")).fetchall() == [(1,)]
                raise Deliberate()
        assert conn.closed


class Unprintable:
    def __str__(self) -> str:
        raise Deliberate("cannot be escaped")


@pytest.mark.parametrize("route", ["direct", "proxy"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_non_psycopg2_errors(tables: MomokoServer, route: Route) -> None:
    """A parameter count mismatch is PyMySQL's ProgrammingError (psycopg2
    raised IndexError); an error from outside the driver propagates as it
    is.  Neither leaves a connection in use (checked when the pool closes)."""
    async with opened_pool(route.dsn) as db:
        with pytest.raises(momoko.ProgrammingError, match="not enough arguments"):
            await db.execute("SELECT %s %s;", (1,))
        with pytest.raises(Deliberate):
            await db.execute("SELECT %s", (Unprintable(),))
        assert (await db.execute("SELECT 2")).fetchall() == [(2,)]


# -- server-side cursors ---------------------------------------------------------------


async def fill_int_data(db: Any, amount: int = 1000) -> None:
    await db.transaction([
        "INSERT INTO unit_test_int_table VALUES %s" % ",".join("(%s)" % i for i in range(amount)),
    ])


async def read_in_chunks(conn: momoko.Connection, count: int, chunk: int) -> None:
    """MySQL has no DECLARE/FETCH: a streaming cursor read ``chunk`` rows at a time."""
    cursor = await conn.execute("SELECT id FROM unit_test_int_table ORDER BY id",
                                cursor_factory=momoko.SSCursor)
    for offset in range(0, count, chunk):
        assert await cursor.fetchmany(chunk) == [(i,) for i in range(offset, offset + chunk)]
    assert await cursor.fetchone() is None


@pytest.mark.gen_test(timeout=30)
async def test_server_side_cursor(tables: MomokoServer, route: Route) -> None:
    conn = await momoko.connect(route.dsn)
    try:
        await fill_int_data(conn)
        await read_in_chunks(conn, 1000, 10)
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=30)
async def test_server_side_cursor_on_pool_connection(tables: MomokoServer, route: Route) -> None:
    """MomokoPoolServerSideCursorTest: the same on a ``getconn()`` connection;
    Pool.execute itself refuses streaming cursors."""
    async with opened_pool(route.dsn) as db:
        await fill_int_data(db)
        conn = await db.getconn()
        with db.manage(conn):
            await read_in_chunks(conn, 1000, 10)
        with pytest.raises(momoko.InterfaceError, match="getconn"):
            await db.execute("SELECT 1", cursor_factory=momoko.SSCursor)


# -- setsession ------------------------------------------------------------------------

ZONES = ["+00:00", "+02:00", "+10:00"]  # named zones need the server's tz tables


def rotated_setsession() -> Iterator[tuple[str, list[str]]]:
    """Momoko's deque of [SET TIME ZONE x, SELECT 1, SELECT 2], rotated."""
    for i, zone in enumerate(ZONES):
        items = ["SELECT 1", "SELECT 2"]
        items.insert(i % 3, "SET time_zone = '%s'" % zone)
        yield zone, items


@pytest.mark.gen_test(timeout=30)
async def test_setsession(route: Route) -> None:
    for zone, setsession in rotated_setsession():
        conn = await momoko.connect(route.dsn, setsession=setsession)
        try:
            cursor = await conn.execute("SELECT @@session.time_zone")
            assert cursor.fetchall() == [(zone,)]
        finally:
            conn.close()
            await conn.wait_closed()


@pytest.mark.gen_test(timeout=30)
async def test_setsession_on_pool(route: Route) -> None:
    """MomokoPoolSetsessionTest (size 1 pools)."""
    for zone, setsession in rotated_setsession():
        async with opened_pool(route.dsn, size=1, setsession=setsession) as db:
            cursor = await db.execute("SELECT @@session.time_zone")
            assert cursor.fetchall() == [(zone,)]


@pytest.mark.gen_test(timeout=30)
async def test_setsession_failure_is_a_connect_error(route: Route) -> None:
    with pytest.raises(momoko.ProgrammingError):
        await momoko.connect(route.dsn, setsession=["SET time_zone = "])


# -- factories -------------------------------------------------------------------------


async def connection_or_pool(kind: str, dsn: str, stack: contextlib.AsyncExitStack, **kwargs: Any) -> Any:
    if kind == "connection":
        conn = await momoko.connect(dsn, **kwargs)
        stack.push_async_callback(conn.wait_closed)
        stack.callback(conn.close)
        return conn
    return await stack.enter_async_context(opened_pool(dsn, **kwargs))


@pytest.mark.parametrize("kind", ["connection", "pool"])
@pytest.mark.gen_test(timeout=20)
async def test_cursor_factory(route: Route, kind: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        db = await connection_or_pool(kind, route.dsn, stack, cursor_factory=momoko.RealDictCursor)
        cursor = await db.execute("SELECT 1 AS a")
        assert isinstance(cursor, momoko.RealDictCursor)
        assert cursor.fetchone() == {"a": 1}


@pytest.mark.parametrize("kind", ["connection", "pool"])
@pytest.mark.gen_test(timeout=20)
async def test_connection_factory(route: Route, kind: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        db = await connection_or_pool(kind, route.dsn, stack,
                                      connection_factory=momoko.RealDictConnection)
        cursor = await db.execute("SELECT 1 AS a")
        assert cursor.fetchone() == {"a": 1}


@pytest.mark.gen_test(timeout=20)
async def test_ping_with_named_cursor(route: Route) -> None:
    """Momoko #74: ping() works whatever the cursor factory."""
    conn = await momoko.connect(route.dsn, cursor_factory=momoko.RealDictCursor)
    try:
        cursor = await conn.ping()
        assert cursor.fetchall() == [{"ping": 1}]
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_cursor_factory_with_json(route: Route) -> None:
    conn = await momoko.connect(route.dsn, cursor_factory=momoko.RealDictCursor)
    try:
        await conn.register_json()
        cursor = await conn.execute("SELECT 1 AS a")
        assert cursor.fetchone() == {"a": 1}
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_cursor_factory_with_hstore_extension(route: Route) -> None:
    """MomokoPoolFactoriesTest: NamedTupleCursor pools still refuse hstore, clearly."""
    async with opened_pool(route.dsn, cursor_factory=momoko.NamedTupleCursor) as db:
        with pytest.raises(momoko.NotSupportedError, match="hstore"):
            await db.register_hstore()
        row = (await db.execute("SELECT 1 AS a, 2 AS b")).fetchone()
        assert (row.a, row.b) == (1, 2)


@pytest.mark.gen_test(timeout=20)
async def test_cursor_factory_with_json_extension(route: Route) -> None:
    """NamedTupleCursor + register_json: rows stay namedtuples, MariaDB's JSON
    text stays text."""
    async with opened_pool(route.dsn, cursor_factory=momoko.NamedTupleCursor) as db:
        await db.register_json()
        row = (await db.execute("SELECT JSON_OBJECT('a', 'b', 'c', 'd') AS j")).fetchone()
        assert json.loads(row.j) == {"a": "b", "c": "d"}


@pytest.mark.gen_test(timeout=20)
async def test_connection_dsn_may_be_a_mysql_url(mserver: MomokoServer) -> None:
    url = f"mysql://momoko:@127.0.0.1:{mserver.server.port}/{DATABASE}"
    conn = await momoko.connect(url)
    try:
        assert (await conn.execute("SELECT DATABASE()")).fetchall() == [(DATABASE,)]
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_close_is_synchronous_and_releases_the_server_connection(mserver: MomokoServer) -> None:
    conn = await momoko.connect(Route("direct", mserver).dsn)
    assert await blocking(mserver.count) == 1
    conn.close()
    assert conn.closed
    assert await wait_count(mserver, 0) == 0
    conn.close()  # a second close is a no-op, as psycopg2's
