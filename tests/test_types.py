"""Every MySQL column type round-trips through tornpool exactly as through
blocking PyMySQL on the same server: equal values, equal types."""

from __future__ import annotations

import datetime
from typing import Any

import pymysql
import pytest
from pymysql.constants import FIELD_TYPE

import tornpool

COLUMNS = [
    ("c_tiny", "TINYINT", ["-128", "127", "0"]),
    ("c_utiny", "TINYINT UNSIGNED", ["255"]),
    ("c_small", "SMALLINT", ["-32768"]),
    ("c_medium", "MEDIUMINT", ["8388607"]),
    ("c_int", "INT", ["-2147483648"]),
    ("c_uint", "INT UNSIGNED", ["4294967295"]),
    ("c_big", "BIGINT", ["-9223372036854775808"]),
    ("c_ubig", "BIGINT UNSIGNED", ["18446744073709551615"]),
    ("c_dec", "DECIMAL(20,6)", ["-12345678901234.123456", "0.000001"]),
    ("c_float", "FLOAT", ["1.5", "-3.25e10"]),
    ("c_double", "DOUBLE", ["3.141592653589793", "-1e-300"]),
    ("c_bit", "BIT(12)", ["b'101010101010'"]),
    ("c_bool", "BOOLEAN", ["1"]),
    ("c_date", "DATE", ["'2024-02-29'", "'0000-00-00'", "'1000-01-01'"]),
    ("c_dt", "DATETIME", ["'2024-02-29 23:59:59'", "'0000-00-00 00:00:00'"]),
    ("c_dt6", "DATETIME(6)", ["'1999-12-31 23:59:59.999999'", "'2024-01-01 00:00:00.000001'"]),
    ("c_ts3", "TIMESTAMP(3) NULL", ["'2020-06-15 12:34:56.789'"]),
    ("c_time", "TIME", ["'-838:59:59'", "'838:59:59'", "'00:00:00'"]),
    ("c_time6", "TIME(6)", ["'-00:00:01.500000'", "'12:00:00.000001'"]),
    ("c_year", "YEAR", ["2155", "1901"]),
    ("c_char", "CHAR(10)", ["'abc'"]),
    ("c_varchar", "VARCHAR(100) CHARACTER SET utf8mb4", ["'héllo wörld \U0001F600'", "''"]),
    ("c_latin1", "VARCHAR(20) CHARACTER SET latin1", ["'caf\u00e9'"]),
    ("c_binary", "BINARY(4)", ["x'00ff10'"]),
    ("c_varbinary", "VARBINARY(20)", ["x'deadbeef00'"]),
    ("c_tinyblob", "TINYBLOB", ["x'01'"]),
    ("c_blob", "BLOB", ["REPEAT(x'ab', 1000)"]),
    ("c_mediumblob", "MEDIUMBLOB", ["REPEAT(x'cd', 70000)"]),
    ("c_longblob", "LONGBLOB", ["x''"]),
    ("c_tinytext", "TINYTEXT", ["'t'"]),
    ("c_text", "TEXT", ["REPEAT('é', 3000)"]),
    ("c_mediumtext", "MEDIUMTEXT", ["REPEAT('m', 100000)"]),
    ("c_longtext", "LONGTEXT", ["'long'"]),
    ("c_enum", "ENUM('a','b','c')", ["'b'"]),
    ("c_set", "SET('x','y','z')", ["'x,z'"]),
    ("c_json", "JSON", ["'{\"k\": [1, 2.5, \"v\", null]}'"]),
    ("c_point", "POINT", ["POINT(1, 2)"]),
    ("c_uuid", "UUID", ["'123e4567-e89b-12d3-a456-426614174000'"]),
    ("c_inet6", "INET6", ["'::ffff:192.0.2.1'"]),
]


def _create_sql(table: str) -> list[str]:
    cols = ", ".join(f"{name} {typ} NULL" for name, typ, _ in COLUMNS)
    stmts = [
        "SET SESSION sql_mode = ''",
        f"DROP TABLE IF EXISTS {table}",
        f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, {cols}) CHARACTER SET utf8mb4",
        f"INSERT INTO {table} (id) VALUES (NULL)",  # a row of NULLs
    ]
    width = max(len(values) for _, _, values in COLUMNS)
    for i in range(width):
        names = ", ".join(name for name, _, _ in COLUMNS)
        vals = ", ".join(values[i] if i < len(values) else "NULL" for _, _, values in COLUMNS)
        stmts.append(f"INSERT INTO {table} ({names}) VALUES ({vals})")
    return stmts


def _blocking(dsn: str, sql: str, **kwargs: Any) -> tuple[Any, Any]:
    params = tornpool.parse_dsn(dsn)
    params.update(kwargs)
    conn = pymysql.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall(), cur.description
    finally:
        conn.close()


@pytest.fixture(scope="module")
def type_table(mariadb_dsn: str) -> str:
    table = "tp_types"
    params = tornpool.parse_dsn(mariadb_dsn)
    conn = pymysql.connect(autocommit=True, **params)
    try:
        with conn.cursor() as cur:
            for stmt in _create_sql(table):
                cur.execute(stmt)
    finally:
        conn.close()
    return table


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "latin1": {"charset": "latin1"},
    "utf8mb4": {"charset": "utf8mb4"},
    "use_unicode_false": {"use_unicode": False},
    "binary_prefix": {"binary_prefix": True},
    "custom_decoders": {
        "conv": {
            **pymysql.converters.conversions,
            FIELD_TYPE.LONG: lambda s: ("custom-int", s),
            FIELD_TYPE.DATETIME: str,
            FIELD_TYPE.NEWDECIMAL: float,
        }
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.gen_test(timeout=60)
async def test_all_types_equal_blocking_pymysql(mariadb_dsn: str, type_table: str, variant: str) -> None:
    kwargs = VARIANTS[variant]
    columns = ", ".join(
        name for name, _, _ in COLUMNS if not (variant == "use_unicode_false" and name == "c_dec")
    )
    sql = f"SELECT id, {columns} FROM {type_table} ORDER BY id"
    expected_rows, expected_desc = _blocking(mariadb_dsn, sql, **kwargs)
    async with await tornpool.connect(mariadb_dsn, **kwargs) as conn:
        if variant == "use_unicode_false":
            # PyMySQL passes bytes to Decimal there and fails; so must we.
            with pytest.raises(Exception) as info:
                _blocking(mariadb_dsn, f"SELECT c_dec FROM {type_table} WHERE c_dec IS NOT NULL", **kwargs)
            with pytest.raises(type(info.value)) as ours:
                await conn.execute(f"SELECT c_dec FROM {type_table} WHERE c_dec IS NOT NULL")
            assert str(ours.value) == str(info.value)
            # The rest of that result is unread: the connection closed itself
            # rather than stay usable in an unknown protocol state.
            assert conn.closed
    async with await tornpool.connect(mariadb_dsn, **kwargs) as conn:
        cur = await conn.execute(sql)
        rows = cur.fetchall()
        assert cur.description == expected_desc
    assert len(rows) == len(expected_rows) >= 3
    for got_row, want_row in zip(rows, expected_rows):
        assert got_row == want_row
        assert [type(v) for v in got_row] == [type(v) for v in want_row]


@pytest.mark.gen_test(timeout=60)
async def test_expected_python_types(mariadb_dsn: str, type_table: str) -> None:
    async with await tornpool.connect(mariadb_dsn) as conn:
        cur = await conn.execute(
            f"SELECT c_dt6, c_date, c_time6, c_dec, c_json, c_bit, c_varchar, c_dt FROM {type_table} "
            "WHERE c_dt6 IS NOT NULL ORDER BY id LIMIT 1"
        )
        dt6, date, time6, dec, js, bit, varchar, zero_dt = cur.fetchone()
    assert dt6 == datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)
    assert date == datetime.date(2024, 2, 29)
    assert time6 == -datetime.timedelta(seconds=1, microseconds=500000)
    assert str(dec) == "-12345678901234.123456"
    assert isinstance(js, str) and '"k"' in js
    assert isinstance(bit, bytes)
    assert varchar == "héllo wörld \U0001F600"
    assert isinstance(zero_dt, datetime.datetime)


@pytest.mark.gen_test
async def test_metadata_cache_follows_a_replaced_decoders_mapping(mariadb_dsn: str) -> None:
    async with await tornpool.connect(mariadb_dsn) as conn:
        cur = await conn.execute("SELECT 41 + 1")
        assert cur.fetchone() == (42,)
        type_code = cur.description[0][1]
        assert (await conn.execute("SELECT 41 + 1")).fetchone() == (42,)  # cached shape
        decoders = dict(conn.raw.decoders)
        decoders[type_code] = lambda s: ("seen", s)
        conn.raw.decoders = decoders
        assert (await conn.execute("SELECT 41 + 1")).fetchone() == (("seen", "42"),)
