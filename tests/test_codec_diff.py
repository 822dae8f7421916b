"""Differential tests: C codec vs pure codec vs PyMySQL's own row path.

Hypothesis builds result sets (converter lists + rows of plausible and
implausible column texts), streams them as row packets, and checks that

* the C and pure codecs return identical outcomes (values, types, positions,
  sequence ids, exception types and messages);
* every decoded row equals ``MySQLResult._read_row_from_packet`` on that
  packet;
* decoding the stream in random chunks, resuming from the returned
  ``(pos, seq)``, equals decoding it in one shot.
"""

from __future__ import annotations

import decimal
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql import converters as pc

try:
    from test_codec_util import BOTH, IMPLS, outcome, packet, pymysql_row, row_payload, typed
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        BOTH, IMPLS, outcome, packet, pymysql_row, row_payload, typed,
    )

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _num(lo: int, hi: int, width: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(lambda v, w: str(v).zfill(w), st.integers(lo, hi), width)


_frac = st.one_of(
    st.just(""),
    st.builds(lambda d: "." + d, st.text("0123456789", min_size=0, max_size=7)),
)

datetime_text = st.builds(
    lambda y, mo, d, sep, h, mi, s, f: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{f}",
    _num(0, 10000, st.sampled_from([4, 4, 4, 1])),
    _num(0, 13, st.sampled_from([2, 2, 1])),
    _num(0, 32, st.sampled_from([2, 2, 1])),
    st.sampled_from([" ", " ", "T", "  "]),
    _num(0, 25, st.sampled_from([2, 2, 1, 3])),
    _num(0, 61, st.sampled_from([2, 2, 1])),
    _num(0, 61, st.sampled_from([2, 2, 1])),
    _frac,
)
date_text = st.builds(
    lambda y, mo, d: f"{y}-{mo}-{d}",
    _num(0, 10000, st.sampled_from([4, 4, 1])),
    _num(0, 13, st.sampled_from([2, 2, 1])),
    _num(0, 32, st.sampled_from([2, 2, 1])),
)
time_text = st.builds(
    lambda sign, h, mi, s, f: f"{sign}{h}:{mi}:{s}{f}",
    st.sampled_from(["", "", "-", "+"]),
    _num(0, 1100, st.sampled_from([2, 2, 1, 3])),
    _num(0, 99, st.sampled_from([2, 2, 1, 3])),
    _num(0, 99, st.sampled_from([2, 2, 1])),
    _frac,
)
int_text = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.integers(-(10**18), 10**18).map(str),
    st.integers(0, 10**6).map(lambda v: str(v).zfill(8)),
)
float_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: "%.17g" % f),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: "%.6e" % f),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: "%.3f" % f),
)
decimal_text = st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)
junk_text = st.text("0123456789-:. TeE+x_\u0661", max_size=12)

TEXT_FOR_KIND = {
    "int": int_text,
    "float": float_text,
    "decimal": decimal_text,
    "datetime": datetime_text,
    "date": date_text,
    "timedelta": time_text,
    "time": time_text,
    "text": st.text(max_size=40),
}

CONVERTERS = {
    "int": int,
    "float": float,
    "decimal": decimal.Decimal,
    "datetime": pc.convert_datetime,
    "date": pc.convert_date,
    "timedelta": pc.convert_timedelta,
    "time": pc.convert_time,
    "text": None,
}

ENCODINGS = st.sampled_from(["ascii", "ascii", "utf8", "cp1252", "latin1", None, "koi8_r"])


@st.composite
def result_sets(draw: Any) -> Tuple[List[Tuple[Any, Any]], List[List[Optional[bytes]]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(CONVERTERS)), min_size=1, max_size=8))
    converters = []
    for kind in kinds:
        enc = draw(ENCODINGS)
        if kind == "text" and draw(st.booleans()):
            enc = draw(st.sampled_from(["utf8", "cp1252", None]))
        converters.append((enc, CONVERTERS[kind]))
    nrows = draw(st.integers(0, 6))
    rows = []
    for _ in range(nrows):
        row: List[Optional[bytes]] = []
        for kind, (enc, _conv) in zip(kinds, converters):
            choice = draw(st.integers(0, 9))
            if choice == 0:
                row.append(None)
            elif choice == 1:
                row.append(draw(junk_text).encode("utf8"))
            elif choice == 2:
                row.append(draw(st.binary(max_size=8)))
            else:
                text = draw(TEXT_FOR_KIND[kind])
                codec_name = enc if enc in ("utf8", "cp1252", "koi8_r", "latin1") else "utf8"
                row.append(text.encode(codec_name, "replace"))
        rows.append(row)
    return converters, rows


def _decode_one_shot(mod: Any, buf: bytes, seq: int, plan: Any) -> Any:
    return outcome(lambda: mod.decode_rows(buf, 0, len(buf), seq, plan))


def _decode_chunked(mod: Any, buf: bytes, seq: int, plan: Any, cuts: List[int]) -> Any:
    def run() -> Any:
        rows: List[Any] = []
        pos, s = 0, seq
        for end in sorted(set(cuts)) + [len(buf)]:
            if end < pos:
                continue
            got, pos, s = mod.decode_rows(bytearray(buf), pos, end, s, plan)
            rows.extend(got)
        return rows, pos, s

    return outcome(run)


@SETTINGS
@given(result_sets(), st.integers(0, 255), st.lists(st.integers(0, 4000), max_size=6))
def test_differential(case: Any, seq: int, cuts: List[int]) -> None:
    converters, rows = case
    payloads = [row_payload(r) for r in rows]
    buf = b"".join(packet(p, seq + i) for i, p in enumerate(payloads))
    buf += packet(b"\xfe\x00\x00\x02\x00", seq + len(payloads))  # EOF after the rows
    results = []
    for mod in BOTH:
        plan = mod.make_plan(converters)
        one_shot = _decode_one_shot(mod, buf, seq, plan)
        chunked = _decode_chunked(mod, buf, seq, plan, [c % (len(buf) + 1) for c in cuts])
        results.append((one_shot, chunked))
        if one_shot[0] == "ok":
            assert chunked == one_shot
    assert all(r == results[0] for r in results)

    # Against PyMySQL, row by row, in order: the first row PyMySQL raises on
    # must make the codec raise the same exception.
    want_rows = []
    want_exc = None
    for p in payloads:
        try:
            want_rows.append(pymysql_row(p, converters))
        except Exception as exc:  # noqa: BLE001
            want_exc = ("raise", type(exc), str(exc))
            break
    one_shot = results[0][0]
    if want_exc is not None:
        assert one_shot == want_exc
    else:
        end_pos = len(buf) - len(packet(b"\xfe\x00\x00\x02\x00", 0))
        assert one_shot == ("ok", typed((want_rows, end_pos, (seq + len(rows)) % 256)))


@pytest.mark.parametrize("mod", IMPLS)
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.binary(max_size=300)), min_size=1, max_size=5),
    st.integers(1, 30),
)
def test_blob_rows_chunked(mod: Any, values: List[Optional[bytes]], nrows: int) -> None:
    converters = [(None, None)] * len(values)
    payload = row_payload(values)
    buf = b"".join(packet(payload, i) for i in range(nrows))
    plan = mod.make_plan(converters)
    rows, pos, seq = mod.decode_rows(buf, 0, len(buf), 0, plan)
    assert rows == [tuple(values)] * nrows and pos == len(buf) and seq == nrows % 256
    assert rows[0] == pymysql_row(payload, converters)
    # byte-at-a-time arrival
    got: List[Any] = []
    pos, seq = 0, 0
    step = max(1, len(buf) // 50)
    for end in range(0, len(buf) + 1, step):
        more, pos, seq = mod.decode_rows(buf, pos, end, seq, plan)
        got.extend(more)
    more, pos, seq = mod.decode_rows(buf, pos, len(buf), seq, plan)
    got.extend(more)
    assert got == rows and pos == len(buf)
