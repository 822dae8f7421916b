"""Shared helpers for the codec tests (no tests in here).

Packet builders, the PyMySQL reference decoder and outcome comparison used by
every ``tests/test_codec*.py`` file.
"""

from __future__ import annotations

import decimal
import types
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import pytest
from pymysql import converters as pc
from pymysql.connections import MySQLResult
from pymysql.protocol import MysqlPacket

from tornpool import codec

C_SKIP_REASON = (
    "tornpool.codec._speedups (the C codec) is not importable: build it with "
    "`TORNPOOL_BUILD_EXT=1 python setup.py build_ext --inplace`"
)

#: pytest params over both implementations; the C one is skipped (with the
#: reason above) when the extension is not built.
IMPLS = [
    pytest.param(codec.pure, id="python"),
    pytest.param(
        codec.speedups,
        id="c",
        marks=pytest.mark.skipif(codec.speedups is None, reason=C_SKIP_REASON),
    ),
]

#: Both modules when available, for differential tests that compare them.
BOTH = [m for m in (codec.pure, codec.speedups) if m is not None]


def lenenc(data: Optional[bytes], form: Optional[int] = None) -> bytes:
    """Length-encoded string (or 0xFB NULL).  *form* forces a prefix byte
    (0xFC/0xFD/0xFE) to build non-minimal encodings."""
    if data is None:
        return b"\xfb"
    n = len(data)
    if form is None:
        form = n if n < 251 else 0xFC if n < 1 << 16 else 0xFD if n < 1 << 24 else 0xFE
    if form < 251:
        return bytes([n]) + data
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}[form]
    return bytes([form]) + n.to_bytes(width, "little") + data


def packet(payload: bytes, seq: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


def row_payload(values: Sequence[Optional[bytes]]) -> bytes:
    return b"".join(lenenc(v) for v in values)


def stream(payloads: Iterable[bytes], seq: int = 1) -> bytes:
    out = []
    for i, p in enumerate(payloads):
        out.append(packet(p, seq + i))
    return b"".join(out)


def pymysql_row(payload: bytes, converters: Sequence[Tuple[Any, Any]]) -> Tuple[Any, ...]:
    """What PyMySQL's own row path returns (or raises) for this payload."""
    holder = types.SimpleNamespace(converters=list(converters))
    return MySQLResult._read_row_from_packet(holder, MysqlPacket(bytes(payload), None))


def outcome(fn: Callable[[], Any]) -> Tuple[Any, ...]:
    """A comparable description of calling *fn*: typed value or exception."""
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - we compare whatever comes out
        return ("raise", type(exc), str(exc))
    return ("ok", typed(value))


def typed(value: Any) -> Any:
    """Value with types made explicit, so 1 != 1.0 != True and
    Decimal('1.0') != Decimal('1.00'); floats are compared by repr (NaN)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(typed(v) for v in value))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, repr(value))


def decode_all(mod: Any, buf: Any, pos: int, end: int, seq: int, plan: Any) -> Tuple[Any, ...]:
    return outcome(lambda: mod.decode_rows(buf, pos, end, seq, plan))


# Converter lists as PyMySQL builds them for common column types.
INT = ("ascii", int)
FLOAT = ("ascii", float)
DEC = ("ascii", decimal.Decimal)
DT = ("ascii", pc.convert_datetime)
DATE = ("ascii", pc.convert_date)
TD = ("ascii", pc.convert_timedelta)
TIME = ("ascii", pc.convert_time)
TEXT = ("utf8", None)
LATIN = ("cp1252", None)
BLOB = (None, None)


def check_rows_match_pymysql(
    rows: List[Tuple[Any, ...]], payloads: Sequence[bytes], converters: Sequence[Tuple[Any, Any]]
) -> None:
    assert len(rows) <= len(payloads)
    for row, payload in zip(rows, payloads):
        assert typed(row) == typed(pymysql_row(payload, converters))
