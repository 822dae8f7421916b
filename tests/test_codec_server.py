"""Type matrix against a real server: row packets captured from MariaDB/MySQL.

Runs against the session's server (``mariadb_dsn``: ``TORNPOOL_TEST_DSN`` or a
throwaway ``mariadbd`` from tornpool.testing).  For each connection flavour (default, custom decoders,
``use_unicode=False``, ``binary_prefix=True``, latin1, utf8mb4) the raw row
packets of a table holding a matrix of column types and edge values are
captured from blocking PyMySQL's socket, then decoded by the C codec and the
pure codec and compared with what PyMySQL itself returned and with
``_read_row_from_packet`` on each packet.
"""

from __future__ import annotations

import decimal
import json
import os
import sys
from typing import Any, Dict

import pytest
from pymysql import converters as pc
from pymysql.constants import FIELD_TYPE

try:
    from test_codec_util import IMPLS, outcome, pymysql_row, typed
except ImportError:  # tests/ imported as a package
    from .test_codec_util import IMPLS, outcome, pymysql_row, typed  # type: ignore[no-redef]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from codec_capture import capture, connect_args  # noqa: E402

import pymysql  # noqa: E402

DSN = ""


@pytest.fixture(scope="module", autouse=True)
def _server(mariadb_dsn: str) -> None:
    global DSN
    DSN = mariadb_dsn

TABLE = "tornpool_codec_matrix"

COLUMNS = [
    ("c_tiny", "TINYINT", ["-128", "127", "0"]),
    ("c_small", "SMALLINT UNSIGNED", ["65535", "0", "7"]),
    ("c_medium", "MEDIUMINT", ["-8388608", "8388607", "1"]),
    ("c_int", "INT", ["-2147483648", "2147483647", "0"]),
    ("c_big", "BIGINT", ["-9223372036854775808", "9223372036854775807", "42"]),
    ("c_ubig", "BIGINT UNSIGNED", ["18446744073709551615", "0", "10000000000000000000"]),
    ("c_float", "FLOAT", ["3.4e38", "-1.17549e-38", "0.1"]),
    ("c_double", "DOUBLE", ["1.7976931348623157e308", "-2.2250738585072014e-308", "0.1"]),
    ("c_dec", "DECIMAL(10,2)", ["-99999999.99", "0", "12.5"]),
    ("c_bigdec", "DECIMAL(65,30)", ["12345678901234567890.123456789012345678901234567890", "-0.000000000000000000000000000001", "0"]),
    ("c_date", "DATE", ["'0000-00-00'", "'9999-12-31'", "'2024-02-29'"]),
    ("c_dt", "DATETIME", ["'0000-00-00 00:00:00'", "'1000-01-01 00:00:00'", "'2024-02-29 23:59:59'"]),
    ("c_dt6", "DATETIME(6)", ["'2024-01-02 03:04:05.000001'", "'0000-00-00 00:00:00'", "'9999-12-31 23:59:59.999999'"]),
    ("c_dt3", "DATETIME(3)", ["'2024-01-02 03:04:05.1'", "'2024-01-02 03:04:05.999'", "'2024-01-00 00:00:00'"]),
    ("c_ts", "TIMESTAMP NULL", ["'2024-01-02 03:04:05'", "NULL", "'1970-01-01 00:00:01'"]),
    ("c_time", "TIME", ["'-838:59:59'", "'838:59:59'", "'00:00:00'"]),
    ("c_time6", "TIME(6)", ["'-00:00:00.000001'", "'-01:02:03.5'", "'12:34:56.123456'"]),
    ("c_year", "YEAR", ["0", "1901", "2155"]),
    ("c_char", "CHAR(10) CHARACTER SET utf8mb4", ["''", "'a'", "'\u00e9\u2603'"]),
    ("c_vc", "VARCHAR(300) CHARACTER SET utf8mb4", ["'h\u00e9llo \U0001f600'", "REPEAT('x', 260)", "''"]),
    ("c_latin", "VARCHAR(20) CHARACTER SET latin1", ["'caf\u00e9 \u20ac'", "''", "'plain'"]),
    ("c_bin", "BINARY(4)", ["X'00FF0A00'", "''", "'ab'"]),
    ("c_vbin", "VARBINARY(300)", ["X'00FFFE'", "REPEAT(X'FE', 255)", "''"]),
    ("c_blob", "BLOB", ["REPEAT(X'01', 70000)", "NULL", "X'FB'"]),
    ("c_text", "TEXT CHARACTER SET utf8mb4", ["REPEAT('\u00fc', 300)", "NULL", "''"]),
    ("c_json", "JSON", ["'{\"a\": [1, 2.5, \"\u00e9\"]}'", "'null'", "'[]'"]),
    ("c_bit", "BIT(12)", ["b'101010101010'", "0", "NULL"]),
    ("c_enum", "ENUM('x','\u00ff','')", ["'x'", "'\u00ff'", "''"]),
    ("c_set", "SET('a','b','c')", ["'a,c'", "''", "'b'"]),
]

FLAVOURS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "utf8mb4": {"charset": "utf8mb4"},
    "latin1": {"charset": "latin1"},
    "binary_prefix": {"binary_prefix": True},
    "use_unicode_false": {"use_unicode": False},
    "custom_decoders": {"conv": "custom"},
}


def _custom_conv() -> Dict[Any, Any]:
    conv = dict(pc.conversions)
    conv[FIELD_TYPE.LONGLONG] = lambda s: ("big", s)
    conv[FIELD_TYPE.NEWDECIMAL] = float
    conv[FIELD_TYPE.TIME] = pc.convert_time
    conv[FIELD_TYPE.JSON] = json.loads
    conv[FIELD_TYPE.DATETIME] = lambda s: "dt:" + s
    conv[FIELD_TYPE.BLOB] = len
    conv[FIELD_TYPE.VAR_STRING] = lambda s: s.upper()
    return conv


def _connect(flavour: str) -> Any:
    kwargs = dict(FLAVOURS[flavour])
    if kwargs.get("conv") == "custom":
        kwargs["conv"] = _custom_conv()
    if flavour == "use_unicode_false":
        # PyMySQL itself would raise mid-result on DECIMAL (Decimal(bytes)),
        # leaving the connection unusable; capture with DECIMAL passed
        # through, and put Decimal back for the codec comparison below.
        conv = dict(pc.conversions)
        conv[FIELD_TYPE.NEWDECIMAL] = pc.through
        kwargs["conv"] = conv
    conn = pymysql.connect(**connect_args(DSN or ""), **kwargs)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
    return conn


@pytest.fixture(scope="module")
def matrix_table() -> str:
    conn = _connect("default")
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS %s" % TABLE)
            cur.execute(
                "CREATE TABLE %s (rid INT PRIMARY KEY, %s) CHARACTER SET utf8mb4"
                % (TABLE, ", ".join("%s %s NULL" % (n, t) for n, t, _ in COLUMNS))
            )
            for r in range(3):
                cur.execute(
                    "INSERT INTO %s VALUES (%d, %s)"
                    % (TABLE, r, ", ".join(vals[r] for _, _, vals in COLUMNS))
                )
            cur.execute("INSERT INTO %s (rid) VALUES (3)" % TABLE)  # all NULL
        conn.commit()
    finally:
        conn.close()
    return TABLE


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("mod", IMPLS)
def test_type_matrix(mod: Any, flavour: str, matrix_table: str) -> None:
    conn = _connect(flavour)
    try:
        cap = capture(conn, "SELECT * FROM %s ORDER BY rid" % matrix_table)
    finally:
        conn.close()
    assert cap.nrows == 4
    converters = cap.converters
    if flavour == "use_unicode_false":
        assert all(enc is None for enc, _ in converters)
        converters = [(e, decimal.Decimal if c is None and i in _decimal_cols(cap) else c)
                      for i, (e, c) in enumerate(converters)]
    else:
        got = mod.decode_rows(cap.rows_buf, 0, len(cap.rows_buf), cap.first_seq, mod.make_plan(converters))
        rows, pos, seq = got
        assert typed(tuple(rows)) == typed(cap.pymysql_rows)
        assert pos == len(cap.rows_buf) - 9 and seq == (cap.first_seq + 4) % 256
    plan = mod.make_plan(converters)
    for payload in cap.payloads:
        buf = len(payload).to_bytes(3, "little") + bytes([cap.first_seq]) + payload
        want = outcome(lambda: ([pymysql_row(payload, converters)], len(buf), (cap.first_seq + 1) % 256))
        assert outcome(lambda: mod.decode_rows(buf, 0, len(buf), cap.first_seq, plan)) == want
    if flavour == "use_unicode_false":
        # Decimal(bytes) fails in PyMySQL and in the codec alike
        with pytest.raises(TypeError):
            mod.decode_rows(cap.rows_buf, 0, len(cap.rows_buf), cap.first_seq, plan)


def _decimal_cols(cap: Any) -> set:
    names = [n for n, _, _ in COLUMNS]
    return {1 + names.index("c_dec"), 1 + names.index("c_bigdec")}


@pytest.mark.parametrize("mod", IMPLS)
def test_captured_stream_in_chunks(mod: Any, matrix_table: str) -> None:
    conn = _connect("default")
    try:
        cap = capture(conn, "SELECT * FROM %s ORDER BY rid" % matrix_table)
    finally:
        conn.close()
    plan = mod.make_plan(cap.converters)
    buf = bytearray(cap.rows_buf)
    rows, pos, seq = [], 0, cap.first_seq
    for end in list(range(0, len(buf), 997)) + [len(buf)]:
        more, pos, seq = mod.decode_rows(buf, pos, end, seq, plan)
        rows.extend(more)
    assert typed(tuple(rows)) == typed(cap.pymysql_rows)
    # what is left is the EOF packet, for PyMySQL to read
    assert buf[pos + 4] == 0xFE and len(buf) - pos == 9
