"""Capture real text-protocol row packets from a MySQL/MariaDB server.

Used by ``bench/codec_bench.py`` and ``tests/test_codec_server.py``.  It runs
a query through blocking PyMySQL while teeing every byte PyMySQL reads from
its socket, then splits the captured result set into its packets and returns
the row packets exactly as the server sent them, along with the
``(encoding, converter)`` list PyMySQL built and the rows PyMySQL returned.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import pymysql

DEFAULT_DSN = "mysql://root@127.0.0.1:3306/test"


def connect_args(dsn: str) -> Dict[str, Any]:
    """``mysql://user[:password]@host[:port]/db`` -> pymysql.connect kwargs."""
    u = urllib.parse.urlsplit(dsn)
    if u.scheme not in ("mysql", "mariadb"):
        raise ValueError("DSN must look like mysql://user@host:port/db, got %r" % dsn)
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": urllib.parse.unquote(u.username or "root"),
        "password": urllib.parse.unquote(u.password or ""),
        "database": u.path.lstrip("/") or None,
    }


class _Tee:
    """File-like wrapper recording everything read through it."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.data = bytearray()

    def read(self, n: int = -1) -> bytes:
        b: bytes = self.raw.read(n)
        self.data += b
        return b

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@dataclass
class Capture:
    rows_buf: bytes  # the row packets, then the EOF packet, as sent
    first_seq: int  # sequence id of the first row packet
    nrows: int
    converters: List[Tuple[Optional[str], Any]]
    pymysql_rows: Tuple[Tuple[Any, ...], ...]
    payloads: List[bytes]  # each row packet's payload


def _packets(data: bytes) -> List[Tuple[int, int, bytes]]:
    out = []
    p = 0
    while p + 4 <= len(data):
        n = data[p] | data[p + 1] << 8 | data[p + 2] << 16
        out.append((p, data[p + 3], data[p + 4 : p + 4 + n]))
        p += 4 + n
    return out


def capture(conn: "pymysql.connections.Connection", sql: str) -> Capture:
    """Run *sql* (one SELECT) on *conn*, returning its raw row packets."""
    tee = _Tee(conn._rfile)
    conn._rfile = tee
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
            result = conn._result
            converters = list(result.converters)
    finally:
        conn._rfile = tee.raw
    data = bytes(tee.data)
    pkts = _packets(data)
    ncols = len(converters)
    # column-count packet, ncols column definitions, EOF, rows..., EOF
    first = 1 + ncols + 1
    assert pkts[first - 1][2][0] == 0xFE, "expected EOF after the column definitions"
    last = first
    while not (pkts[last][2][:1] == b"\xfe" and len(pkts[last][2]) < 9):
        last += 1
    start = pkts[first][0] if last > first else pkts[last][0]
    return Capture(
        rows_buf=data[start:],
        first_seq=pkts[first][1],
        nrows=last - first,
        converters=converters,
        pymysql_rows=tuple(rows),
        payloads=[pkts[i][2] for i in range(first, last)],
    )


BENCH_TABLE = "tornpool_codec_bench"

BENCH_DDL = """
CREATE TABLE IF NOT EXISTS {t} (
  id INT NOT NULL PRIMARY KEY,
  big BIGINT NOT NULL,
  name VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  ratio DOUBLE NOT NULL,
  ts DATETIME(6) NOT NULL,
  day DATE NOT NULL,
  dur TIME NOT NULL,
  note TEXT NULL,
  body TEXT NOT NULL,
  doc JSON NOT NULL
) CHARACTER SET utf8mb4
"""


def ensure_bench_table(conn: Any, nrows: int = 10000) -> None:
    """Create and fill the 10-column benchmark table (idempotent)."""
    t = BENCH_TABLE
    with conn.cursor() as cur:
        cur.execute(BENCH_DDL.format(t=t))
        cur.execute("SELECT COUNT(*) FROM %s" % t)
        if cur.fetchone()[0] == nrows:
            return
        cur.execute("DELETE FROM %s" % t)
        batch = []
        for i in range(nrows):
            batch.append((
                i, i * 7919 * 104729 - 5 * 10**12, "n\u00e4me-%d \u2603" % i, "%d.%02d" % (i * 3, i % 100),
                i / 7.0, "2024-%02d-%02d %02d:%02d:%02d.%06d" % (1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60, i * 37 % 10**6),
                "20%02d-%02d-%02d" % (i % 100, 1 + i % 12, 1 + i % 28),
                "%s%02d:%02d:%02d" % ("-" if i % 5 == 0 else "", i % 839, i % 60, (i * 3) % 60),
                None if i % 3 == 0 else "note %d" % i, "body text for row %d, \u00fcml\u00e4\u00fct" % i,
                '{"id": %d, "tags": ["a", "b"], "ok": true}' % i,
            ))
        cur.executemany(
            "INSERT INTO %s VALUES (%%s,%%s,%%s,%%s,%%s,%%s,%%s,%%s,%%s,%%s,%%s)" % t, batch
        )
    conn.commit()
