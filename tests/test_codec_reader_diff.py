"""Differential tests of ResponseReader on synthetic responses (hypothesis).

Hypothesis builds whole responses -- OK packets, ERR packets, result sets of
random column types and values, multi-result sequences -- and checks that

* the C and pure readers report identical transcripts (every status, every
  attribute, typed values, exceptions and messages) for the same arrival
  pattern;
* arrival in random chunks, with the unconsumed bytes moved to new buffers
  now and then, ends in the same results as one shot;
* both agree with PyMySQL's own parsing of the same bytes (buffered and
  unbuffered), including the exception PyMySQL raises for a value its
  converter rejects.
"""

from __future__ import annotations

import random
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.constants import FIELD_TYPE

try:
    from test_codec_util import (
        BOTH_READERS, C_SKIP_REASON, check_against_pymysql, column_def, drive, drive_outcome,
        err_payload, ok_payload, outcome, packets, pymysql_parse, random_cuts, result_payloads,
    )
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        BOTH_READERS, C_SKIP_REASON, check_against_pymysql, column_def, drive, drive_outcome,
        err_payload, ok_payload, outcome, packets, pymysql_parse, random_cuts, result_payloads,
    )

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

needs_c = pytest.mark.skipif(len(BOTH_READERS) < 2, reason=C_SKIP_REASON)

# (type code, charset) -> strategy for the column's text, as the server sends it
_digits = st.text("0123456789", min_size=1, max_size=3)
TYPES: List[Tuple[int, int, Any]] = [
    (FIELD_TYPE.LONG, 63, st.integers(-(2**31), 2**31).map(lambda v: str(v).encode())),
    (FIELD_TYPE.LONGLONG, 63, st.integers(-(2**63), 2**64 - 1).map(lambda v: str(v).encode())),
    (FIELD_TYPE.DOUBLE, 63, st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode())),
    (FIELD_TYPE.NEWDECIMAL, 63,
     st.decimals(allow_nan=False, allow_infinity=False, places=2).map(lambda d: str(d).encode())),
    (FIELD_TYPE.DATETIME, 63, st.builds(
        lambda y, mo, d, h, mi, s, f: ("%04d-%02d-%02d %02d:%02d:%02d%s" % (y, mo, d, h, mi, s, f)).encode(),
        st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31), st.integers(0, 23),
        st.integers(0, 59), st.integers(0, 59), st.sampled_from(["", ".5", ".000001", ".123456"]))),
    (FIELD_TYPE.DATE, 63, st.builds(lambda y, mo, d: ("%04d-%02d-%02d" % (y, mo, d)).encode(),
                                    st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31))),
    (FIELD_TYPE.TIME, 63, st.builds(lambda sg, h, m, s: ("%s%02d:%02d:%02d" % (sg, h, m, s)).encode(),
                                    st.sampled_from(["", "-"]), st.integers(0, 838),
                                    st.integers(0, 59), st.integers(0, 59))),
    (FIELD_TYPE.VAR_STRING, 45, st.text(max_size=30).map(lambda t: t.encode("utf8"))),
    (FIELD_TYPE.BLOB, 63, st.binary(max_size=300)),
    (FIELD_TYPE.JSON, 63, st.sampled_from([b"{}", b"[1, 2]", b"null", '{"\u00e9": 1}'.encode()])),
    (FIELD_TYPE.BIT, 63, st.binary(min_size=1, max_size=2)),
    (FIELD_TYPE.YEAR, 63, _digits.map(str.encode)),
]

# a value a converter may reject: PyMySQL and the readers must raise alike
_junk = st.one_of(st.binary(max_size=6), st.text("0123456789-:. eE+x", max_size=10).map(str.encode))


@st.composite
def result_set(draw: Any, status: int) -> List[bytes]:
    ncols = draw(st.integers(1, 7))
    kinds = [draw(st.sampled_from(TYPES)) for _ in range(ncols)]
    cols = [column_def(b"c%d" % i, t, cs, flags=draw(st.sampled_from([0, 1, 32, 128])))
            for i, (t, cs, _) in enumerate(kinds)]
    rows: List[List[Optional[bytes]]] = []
    for _ in range(draw(st.integers(0, 8))):
        row: List[Optional[bytes]] = []
        for _t, _cs, values in kinds:
            pick = draw(st.integers(0, 19))
            row.append(None if pick == 0 else draw(_junk) if pick == 1 else draw(values))
        rows.append(row)
    warnings = draw(st.integers(0, 0xFFFF))
    return result_payloads(cols, rows, warnings=warnings, status=status,
                           block_status=draw(st.sampled_from([2, 3, 0x22])))


@st.composite
def ok_packet(draw: Any, status: int) -> List[bytes]:
    big = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1), st.none())
    return [ok_payload(draw(big), draw(big), status, draw(st.integers(0, 0xFFFF)),
                       draw(st.binary(max_size=40)))]


@st.composite
def err_packet(draw: Any) -> List[bytes]:
    # at least 4 bytes: shorter ones make PyMySQL fail with IndexError and the
    # reader with ValueError (test_codec_reader_unit.test_err_too_short)
    return [err_payload(draw(st.integers(1000, 4200)),
                        draw(st.text(min_size=1, max_size=30)).encode("utf8"),
                        draw(st.sampled_from([b"42000", b"HY000", None])))]


@st.composite
def response(draw: Any) -> Tuple[bytes, int]:
    """One command's response: 1..3 results chained by MORE_RESULTS, the
    last one maybe an ERR; and the first sequence id."""
    n = draw(st.integers(1, 3))
    payloads: List[bytes] = []
    for i in range(n):
        more = i < n - 1
        status = draw(st.sampled_from([0x02, 0x03, 0x22, 0x8002])) | (0x08 if more else 0)
        if not more and draw(st.integers(0, 5)) == 0:
            payloads += draw(err_packet())
        elif draw(st.integers(0, 3)) == 0:
            payloads += draw(ok_packet(status))
        else:
            payloads += draw(result_set(status))
    seq = draw(st.integers(1, 255))
    return packets(payloads, seq), seq


def _converters_from(want: List[dict]) -> Any:
    convs = [w.get("converters", []) for w in want]
    return lambda i: convs[i]


def _compare_raise(outcome: Tuple[Any, ...], want: List[dict]) -> bool:
    """True if PyMySQL raised a converter error that the reader raised too."""
    last = want[-1]
    if last["kind"] != "raise" or last["exc"][0].__module__ == "pymysql.err":
        return False
    etype, args = last["exc"]
    assert outcome[0] == "raise", (outcome, last)
    assert outcome[1] is etype and outcome[2] == str(etype(*args))
    return True


@needs_c
@SETTINGS
@given(response(), st.integers(0, 2**32), st.integers(0, 12), st.booleans(), st.integers(0, 4))
def test_twins_agree_and_match_pymysql(case: Any, seed: int, ncuts: int, unbuffered: bool,
                                       limit: int) -> None:
    data, seq = case
    rng = random.Random(seed)
    want, used = pymysql_parse(data, seq=seq, unbuffered=unbuffered)
    conv = _converters_from(want)
    cuts = random_cuts(rng, len(data), ncuts)
    moves = [i for i in range(ncuts + 1) if rng.random() < 0.3]
    kw = dict(seq=seq, unbuffered=unbuffered, limit=limit)
    chunked = [drive_outcome(m, data, conv, cuts=cuts, moves=moves, **kw) for m in BOTH_READERS]
    assert chunked[0] == chunked[1]
    shot = [drive_outcome(m, data, conv, **kw) for m in BOTH_READERS]
    assert shot[0] == shot[1]
    if _compare_raise(shot[0], want):
        assert chunked[0] == shot[0]
        return
    assert shot[0][0] == "ok", shot[0]
    # same results and bytes consumed whatever the arrival pattern
    assert chunked[0][2:] == shot[0][2:]
    for m in BOTH_READERS:
        d = drive(m, data, conv, **kw)
        check_against_pymysql(d, want, unbuffered=unbuffered)
        if want[-1]["kind"] != "raise":
            assert d.consumed == used == len(data)


@needs_c
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response(), st.integers(0, 2**32))
def test_byte_at_a_time(case: Any, seed: int) -> None:
    data, seq = case
    want, _ = pymysql_parse(data, seq=seq)
    conv = _converters_from(want)
    rng = random.Random(seed)
    moves = [i for i in range(len(data)) if rng.random() < 0.05]
    got = [drive_outcome(m, data, conv, seq=seq, cuts=range(len(data)), moves=moves)
           for m in BOTH_READERS]
    assert got[0] == got[1]
    if not _compare_raise(got[0], want):
        assert got[0][0] == "ok"
        check_against_pymysql(drive(BOTH_READERS[0], data, conv, seq=seq), want)


@needs_c
@SETTINGS
@given(st.binary(max_size=120), st.integers(0, 255), st.booleans(), st.integers(0, 3))
def test_arbitrary_bytes_never_crash(data: bytes, seq: int, unbuffered: bool, limit: int) -> None:
    got = []
    for m in BOTH_READERS:
        got.append(drive_outcome(m, data, [("ascii", int)] * 8, seq=seq, unbuffered=unbuffered,
                                 limit=limit, check_need=False))
    assert got[0] == got[1]
    if got[0][0] == "raise":
        assert got[0][1] in (ValueError, TypeError), got[0]


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=64), st.integers(-2, 300))
def test_build_command_twins(command: int, payload: bytes, other: int) -> None:
    outs = []
    for m in BOTH_READERS:
        outs.append(outcome(lambda: m.build_command(command, payload)))
        outs.append(outcome(lambda: m.build_command(other, payload)))
    assert outs[0] == outs[2] and outs[1] == outs[3]
    frame, seq = BOTH_READERS[0].build_command(command, payload)
    assert frame == (len(payload) + 1).to_bytes(3, "little") + b"\x00" + bytes([command]) + payload
    assert seq == 1
