"""100 concurrent handlers on a 10-connection pool through tornpool.tormysql.

The demo app's handlers (``@gen.coroutine`` ones on ``helpers`` ``execute``,
``async def`` ones holding ``async with await pool.Connection()``) serve 100
HTTP clients at once, five requests each, every request sleeping 10 ms on
the server: never more than 10 server connections (TorMySQL #43 saw 18-20),
none after ``close()``, the slowest request within 3x the median.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demos.tormysql_app import make_app, make_pool
from test_momoko_load import Load
from test_pool_faults import ServerCounter
from test_tormysql_util import USER, TorMySQLServer, tormysql_server, wait_count


@pytest.fixture(scope="module")
def tserver() -> Iterator[TorMySQLServer]:
    with tormysql_server() as server:
        yield server


@pytest.mark.gen_test(timeout=120)
async def test_100_handlers_on_10_connections(tserver: TorMySQLServer) -> None:
    pool = make_pool(**tserver.params())
    assert pool.native.max_size == 10
    load = Load(("/query?sleep=0.01", "/async?sleep=0.01"))
    try:
        with ServerCounter(tserver.server, USER) as counter:
            await load.run(make_app(pool))
    finally:
        await pool.close()
    assert await wait_count(tserver, 0, timeout=5) == 0
    load.check("tormysql", counter)
