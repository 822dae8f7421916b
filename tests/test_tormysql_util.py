"""Shared set-up for the TorMySQL facade tests (no tests here).

TorMySQL's suite (snower/TorMySQL ``tests/``) needs a server with database
``test`` and a table ``test(id INT, data VARCHAR(100))`` holding rows, and
connects with the arguments of its ``BaseTestCase.PARAMS``.
:func:`tormysql_server` starts a throwaway server prepared that way for one
test module, with the user ``tormysql`` whose connections the tests count on
the server.
``blocking`` and ``wait_count`` are the Momoko tests' (any object with
``count()`` will do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from test_momoko_util import PreparedServer, blocking, wait_count
from tornpool.testing import MariaDBServer

__all__ = ["USER", "ROWS", "TorMySQLServer", "tormysql_server", "blocking", "wait_count"]

USER = "tormysql"
ROWS = 2000


class TorMySQLServer(PreparedServer):
    """A throwaway server prepared for the TorMySQL tests."""

    def __init__(self, server: MariaDBServer) -> None:
        super().__init__(server, USER)

    def params(self, port: int | None = None, **extra: Any) -> dict[str, Any]:
        """TorMySQL's ``BaseTestCase.PARAMS`` for this server (or a proxy's port)."""
        params: dict[str, Any] = dict(
            host="127.0.0.1",
            port=self.server.port if port is None else port,
            user=USER,
            passwd="",
            db="test",
            charset="utf8",
            sql_mode="REAL_AS_FLOAT",
            init_command="SET max_join_size=DEFAULT",
        )
        params.update(extra)
        return params

    def query(self, sql: str, args: Any = None, database: str | None = "test") -> Any:
        return super().query(sql, args, database)


@contextlib.contextmanager
def tormysql_server() -> Iterator[TorMySQLServer]:
    """A :class:`TorMySQLServer` for one test module."""
    with MariaDBServer() as server:
        prepared = TorMySQLServer(server)
        conn = prepared.admin("test")
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER '{USER}'@'%' IDENTIFIED BY ''")
                cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'%'")
                cur.execute("CREATE TABLE test (id INT, data VARCHAR(100)) ENGINE=InnoDB")
                cur.executemany("INSERT INTO test (id, data) VALUES (%s, %s)",
                                [(i, "row %d" % i) for i in range(ROWS)])
        finally:
            conn.close()
        yield prepared
