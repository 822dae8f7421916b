"""ResponseReader on responses captured from a real server.

For each statement the raw bytes of the server's whole response are captured
from a blocking PyMySQL connection (a tee on its socket file; multi-result
responses followed with ``next_result``).  Then, on exactly those bytes:

* PyMySQL's own parsing (``pymysql_parse``) must give what the live PyMySQL
  connection gave (so the reference is PyMySQL itself);
* both readers, fed in one shot, in random chunks with buffer moves, and
  unbuffered with a row limit, must agree with each other and with PyMySQL:
  OK fields, rows, warnings, statuses, errors, the bytes consumed.

Runs against the session's server (``mariadb_dsn``: ``TORNPOOL_TEST_DSN`` or
a throwaway ``mariadbd`` from tornpool.testing).
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import types
from typing import Any, Dict, Iterator, List, Tuple

import pymysql
import pytest
from pymysql.constants import CLIENT

try:
    from test_codec_util import (
        BOTH_READERS, READERS, check_against_pymysql, drive, drive_outcome, pymysql_parse,
        random_cuts, typed,
    )
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        BOTH_READERS, READERS, check_against_pymysql, drive, drive_outcome, pymysql_parse,
        random_cuts, typed,
    )

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from codec_capture import connect_args  # noqa: E402

TABLE = "tornpool_reader_t"
NARROW = "tornpool_reader_narrow"
PROC = "tornpool_reader_proc"


@contextlib.contextmanager
def recording(conn: Any) -> Iterator[bytearray]:
    """Every byte PyMySQL reads from *conn* while inside, in order."""
    raw = conn._rfile
    seen = bytearray()

    def read(n: int = -1) -> bytes:
        got = raw.read(n)
        seen.extend(got)
        return got

    conn._rfile = types.SimpleNamespace(read=read, close=raw.close)
    try:
        yield seen
    finally:
        conn._rfile = raw


def capture(conn: Any, sql: str) -> Tuple[bytes, List[dict]]:
    """Run *sql*; return the response's raw bytes and what live PyMySQL
    reported per result (rows, OK fields, or the exception)."""
    live: List[dict] = []
    with recording(conn) as seen:
        try:
            conn.query(sql)
            while True:
                res = conn._result
                live.append({"rows": None if res.rows is None else typed(list(res.rows)),
                             "affected_rows": res.affected_rows, "insert_id": res.insert_id,
                             "warning_count": res.warning_count, "message": res.message})
                if not res.has_next:
                    break
                conn.next_result()
        except pymysql.MySQLError as exc:
            live.append({"exc": (type(exc), exc.args)})
    return bytes(seen), live


@pytest.fixture(scope="module")
def conn(mariadb_dsn: str) -> Any:
    c = pymysql.connect(**connect_args(mariadb_dsn), charset="utf8mb4",
                        client_flag=CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("DROP TABLE IF EXISTS %s, %s" % (TABLE, NARROW))
        cur.execute(
            "CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, big BIGINT UNSIGNED, "
            "name VARCHAR(40) CHARACTER SET utf8mb4, price DECIMAL(10,2), ratio DOUBLE, "
            "ts DATETIME(6), day DATE, dur TIME, note TEXT, raw VARBINARY(20), doc JSON, "
            "flag BIT(3))" % TABLE
        )
        cur.execute("CREATE TABLE %s (s VARCHAR(3))" % NARROW)
        rows = []
        for i in range(400):
            rows.append((
                i * 2**40 + 7 if i % 9 else None, "n\u00e4me %d \u2603" % i, "%d.%02d" % (i, i % 100),
                i / 3.0, "2024-%02d-%02d 01:02:03.%06d" % (1 + i % 12, 1 + i % 28, i),
                "0000-00-00" if i % 50 == 0 else "2021-01-%02d" % (1 + i % 28),
                "%s%d:00:01" % ("-" if i % 4 == 0 else "", i % 839), None if i % 3 else "x" * (i % 300),
                bytes([i % 256, 0, 255]), '{"i": %d}' % i, i % 8,
            ))
        cur.executemany(
            "INSERT INTO %s (big, name, price, ratio, ts, day, dur, note, raw, doc, flag) "
            "VALUES (%%s, %%s, %%s, %%s, %%s, %%s, %%s, %%s, %%s, %%s, %%s)" % TABLE, rows
        )
        cur.execute("DROP PROCEDURE IF EXISTS %s" % PROC)
        cur.execute("CREATE PROCEDURE %s() BEGIN SELECT 1 AS one; SELECT id, name FROM %s "
                    "ORDER BY id LIMIT 3; END" % (PROC, TABLE))
        cur.execute("SELECT @@max_allowed_packet")
        c.max_packet = cur.fetchone()[0]
    c.commit()
    yield c
    c.close()


STATEMENTS: Dict[str, str] = {
    "select1": "SELECT 1",
    "literals": "SELECT 1 AS a, 'x' AS b, NULL AS c, 2.5 AS d, CAST(3.25 AS DECIMAL(5,2)) AS e, "
                "NOW(6) AS f, CURDATE() AS g, CAST('-01:02:03.5' AS TIME(1)) AS h, X'00FF' AS i, "
                "CAST('{\"a\": 1}' AS JSON) AS j, b'101' AS k, 18446744073709551615 AS l",
    "table": "SELECT * FROM %s ORDER BY id" % TABLE,
    "empty": "SELECT * FROM %s WHERE id < 0" % TABLE,
    "insert": "INSERT INTO %s (name) VALUES ('a'), ('b')" % TABLE,
    "update": "UPDATE %s SET ratio = ratio + 1 WHERE id < 4" % TABLE,
    "truncating_insert": "INSERT INTO %s (s) VALUES ('too long'), ('ok')" % NARROW,
    "select_warning": "SELECT CAST('abc' AS SIGNED) AS v, CAST('1x' AS SIGNED) AS w",
    "syntax_error": "SELEC 1",
    "no_column": "SELECT nosuch FROM %s" % TABLE,
    "multi": "SELECT 1; SELECT 2 AS two, 'two' AS name; DO 0",
    "multi_error": "SELECT 1; SELECT nosuch FROM %s" % TABLE,
    "procedure": "CALL %s()" % PROC,
    "wide": "SELECT " + ", ".join("%d AS c%d" % (i, i) for i in range(300)),
    "show": "SHOW VARIABLES LIKE 'max_allowed_packet'",
    "set": "SET @tornpool_reader = 5",
    "in_transaction": "SELECT COUNT(*) FROM %s" % TABLE,
    "split_row": "SELECT REPEAT('ab', 9000000) AS big, 1 AS n",
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_captured_response(conn: Any, name: str) -> None:
    sql = STATEMENTS[name]
    if name == "split_row" and conn.max_packet < 20 * 2**20:
        pytest.skip("server max_allowed_packet %d is below the 18 MB row" % conn.max_packet)
    if name == "in_transaction":
        conn.begin()
    try:
        data, live = capture(conn, sql)
    finally:
        if name == "in_transaction":
            conn.rollback()
        else:
            conn.commit()
    want, used = pymysql_parse(data, charset="utf8mb4")
    assert used == len(data)
    # the reference parse is what the live connection saw
    assert len(want) == len(live)
    for w, lv in zip(want, live):
        if "exc" in lv:
            assert w["exc"] == lv["exc"]
        else:
            assert (w["rows"], w["affected_rows"], w["insert_id"], w["warning_count"],
                    w["message"]) == (lv["rows"], lv["affected_rows"], lv["insert_id"],
                                      lv["warning_count"], lv["message"])
    if name == "in_transaction":
        assert want[0]["rows"] is not None
    convs = [w.get("converters", []) for w in want]
    conv = lambda i: convs[i]  # noqa: E731
    rng = random.Random(name)
    for _ in range(3 if len(data) < 10**6 else 1):
        cuts = random_cuts(rng, len(data), rng.randrange(1, 40))
        moves = [i for i in range(len(cuts) + 1) if rng.random() < 0.3]
        outs = [drive_outcome(m, data, conv, cuts=cuts, moves=moves) for m in BOTH_READERS]
        assert all(o == outs[0] for o in outs)
        assert outs[0][0] == "ok" and outs[0][3] == len(data)
    for m in BOTH_READERS:
        d = drive(m, data, conv)
        check_against_pymysql(d, want)
        assert d.consumed == len(data)
        ub, _ = pymysql_parse(data, charset="utf8mb4", unbuffered=True)
        d = drive(m, data, conv, unbuffered=True, limit=rng.randrange(0, 50),
                  cuts=random_cuts(rng, len(data), 5))
        check_against_pymysql(d, ub, unbuffered=True)
    if name == "in_transaction":
        assert d.results[0]["server_status"] & 1  # SERVER_STATUS_IN_TRANS
    if name == "truncating_insert":
        assert d.results[0]["warning_count"] == 1
    if name == "split_row":
        assert d.results[0]["rows"] == typed([("ab" * 9000000, 1)])


@pytest.mark.parametrize("mod", READERS)
def test_command_bytes_are_what_the_server_answers(mod: Any, conn: Any) -> None:
    """build_command's packets sent by hand on PyMySQL's socket: the reply
    parses, with the sequence id build_command predicted."""
    frame, seq = mod.build_command(3, b"SELECT 42 AS x")
    conn._sock.sendall(frame)
    conn._next_seq_id = seq
    with recording(conn) as seen:
        conn._read_query_result()
    assert conn._result.rows == ((42,),)
    data = bytes(seen)
    assert data[3] == seq
    d = drive(mod, data, conn._result.converters, seq=seq)
    assert d.results[0]["status"] == "RESULT" and d.results[0]["rows"] == typed([(42,)])
