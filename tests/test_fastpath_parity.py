"""The fast path answers exactly as blocking PyMySQL does: rows, rowcount,
lastrowid, description, warning_count, later result sets and exceptions,
statement by statement, for tuple and dict cursors, through a connection and
through a pool (real server)."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

import tornpool
from tornpool import Pool

SETUP = [
    "DROP TABLE IF EXISTS par_a",
    "DROP TABLE IF EXISTS par_b",
    "CREATE TABLE par_a (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20), d DECIMAL(8,3), "
    "t DATETIME(3), b BLOB, j JSON) ENGINE=InnoDB",
    "CREATE TABLE par_b (id INT PRIMARY KEY, a_id INT, note TEXT) ENGINE=InnoDB",
]

STATEMENTS: list[tuple[str, Any]] = [
    ("INSERT INTO par_a (v, d, t, b, j) VALUES (%s, %s, %s, %s, %s)",
     ("one", "1.5", "2024-02-03 04:05:06.789", b"\x00\xff", '{"k": 1}')),
    ("INSERT INTO par_a (v) VALUES ('two'), ('three')", None),
    ("INSERT INTO par_b VALUES (1, 1, 'x'), (2, 2, NULL)", None),
    ("UPDATE par_a SET v = 'zero' WHERE id < 0", None),
    ("UPDATE par_a SET v = CONCAT(v, '!') WHERE id > 1", None),
    ("SELECT * FROM par_a ORDER BY id", None),
    ("SELECT a.id, b.id, a.v, b.note FROM par_a a JOIN par_b b ON b.a_id = a.id ORDER BY a.id", None),
    ("SELECT * FROM par_a WHERE id < 0", None),
    ("SELECT CAST('12abc' AS SIGNED), 1/0", None),  # two warnings
    ("SELECT %(x)s AS x, %(y)s AS y", {"x": None, "y": 3.25}),
    ("SELECT 1; SELECT 2, 'two'; SELECT * FROM par_b ORDER BY id", None),
    ("SELECT 1; SELEC broken", None),
    ("DELETE FROM par_b WHERE id = 2", None),
    ("SELEC 1", None),
    ("SELECT * FROM par_missing", None),
    ("INSERT INTO par_b VALUES (1, 1, 'dup')", None),
]


def _blocking(dsn: str) -> Any:
    args = tornpool.parse_dsn(dsn)
    args.setdefault("host", "127.0.0.1")
    return pymysql.connect(autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS, **args)


def _outcome_of_cursor(cur: Any, nextset: Any) -> Any:
    sets = []
    while True:
        sets.append((cur.fetchall(), cur.rowcount, cur.lastrowid, cur.description,
                     cur.warning_count))
        try:
            more = nextset()
        except pymysql.err.MySQLError as exc:
            sets.append(("error", type(exc), exc.args))
            break
        if not more:
            break
    return sets


def _normalise(rows: Any) -> Any:
    # PyMySQL returns a tuple of tuples (or a list of dicts); compare exactly
    return rows


def reference(dsn: str, cursorclass: Any) -> list[Any]:
    conn = _blocking(dsn)
    out = []
    try:
        with conn.cursor() as cur:
            for sql in SETUP:
                cur.execute(sql)
        for sql, args in STATEMENTS:
            cur = conn.cursor(cursorclass)
            try:
                cur.execute(sql, args)
            except pymysql.err.MySQLError as exc:
                out.append(("error", type(exc), exc.args))
                continue
            out.append(_outcome_of_cursor(cur, cur.nextset))
    finally:
        conn.close()
    return out


async def through(executor: Any, cursorclass: Any) -> list[Any]:
    out = []
    for sql in SETUP:
        await executor.execute(sql)
    for sql, args in STATEMENTS:
        try:
            cur = await executor.execute(sql, args, cursor=cursorclass)
        except pymysql.err.MySQLError as exc:
            out.append(("error", type(exc), exc.args))
            continue
        sets = []
        while True:
            sets.append((cur.fetchall(), cur.rowcount, cur.lastrowid, cur.description,
                         cur.warning_count))
            try:
                more = await cur.nextset()
            except pymysql.err.MySQLError as exc:
                sets.append(("error", type(exc), exc.args))
                break
            if not more:
                break
        out.append(sets)
    return out


@pytest.mark.parametrize("kind", ["tuple", "dict"])
@pytest.mark.gen_test(timeout=60)
async def test_connection_and_pool_answer_as_pymysql(mariadb_dsn: str, kind: str) -> None:
    ours_class = tornpool.DictCursor if kind == "dict" else tornpool.Cursor
    theirs_class = pymysql.cursors.DictCursor if kind == "dict" else pymysql.cursors.Cursor
    expected = reference(mariadb_dsn, theirs_class)
    async with await tornpool.connect(mariadb_dsn, autocommit=True,
                                      client_flag=CLIENT.MULTI_STATEMENTS) as conn:
        assert await through(conn, ours_class) == expected
    async with Pool(mariadb_dsn, size=1, client_flag=CLIENT.MULTI_STATEMENTS) as pool:
        assert await through(pool, ours_class) == expected
        await pool.execute("DROP TABLE par_a")
        await pool.execute("DROP TABLE par_b")
