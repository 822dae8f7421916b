"""Bytes-in tests of tornpool.codec: hand-built packets, both implementations.

Every decoded value is also checked against PyMySQL's own
``MySQLResult._read_row_from_packet`` on the same payload.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import json
import struct
import sys
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql import converters as pc

try:
    from test_codec_util import (
        BLOB, DATE, DEC, DT, FLOAT, IMPLS, INT, LATIN, TD, TEXT, TIME,
        lenenc, outcome, packet, pymysql_row, row_payload, stream, typed,
    )
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        BLOB, DATE, DEC, DT, FLOAT, IMPLS, INT, LATIN, TD, TEXT, TIME,
        lenenc, outcome, packet, pymysql_row, row_payload, stream, typed,
    )

from tornpool import codec

pytestmark = pytest.mark.parametrize("mod", IMPLS)


def one(mod: Any, converters: list, values: list, *, raw: bytes | None = None) -> Any:
    """Decode a single row packet; assert it matches PyMySQL; return the row."""
    payload = raw if raw is not None else row_payload(values)
    buf = packet(payload, 1)
    plan = mod.make_plan(converters)
    got = outcome(lambda: mod.decode_rows(buf, 0, len(buf), 1, plan))
    want = outcome(lambda: ([pymysql_row(payload, converters)], len(buf), 2))
    assert got == want
    if got[0] == "ok":
        return mod.decode_rows(buf, 0, len(buf), 1, plan)[0][0]
    return got


def stops(mod: Any, converters: list, buf: bytes, seq: int = 1) -> None:
    """Assert decode_rows stops at once (no rows, pos and seq unchanged)."""
    plan = mod.make_plan(converters)
    assert mod.decode_rows(buf, 0, len(buf), seq, plan) == ([], 0, seq)


# ---------------------------------------------------------------- per type


@pytest.mark.parametrize(
    "text",
    [b"0", b"-0", b"1", b"-1", b"007", b"2147483647", b"-2147483648",
     b"999999999999999999", b"-999999999999999999", b"1000000000000000000",
     b"9223372036854775807", b"-9223372036854775808", b"18446744073709551615",
     b"99999999999999999999999999999999999999", b" 12", b"12 ", b"+5", b"1_000",
     b"", b"-", b"1.0", b"abc", b"\xd9\xa1", b"0x10"],
)
def test_int(mod: Any, text: bytes) -> None:
    one(mod, [INT], [text])
    one(mod, [(None, int)], [text])  # use_unicode=False: int(bytes)
    one(mod, [("utf8", int)], [text])


@pytest.mark.parametrize(
    "text",
    [b"0", b"-0", b"1.5", b"-1.5", b"3.141592653589793", b"1e300", b"1e-300", b"1E+20",
     b"1.7976931348623157e308", b"2.2250738585072014e-308", b"4.9e-324", b"1e999",
     b"-1e999", b"inf", b"nan", b"1.", b".5", b" 1.5", b"1_0.5", b"", b"x", b"1e", b"0.1",
     b"123456789012345678901234567890", b"5e-324", b"1" * 70],
)
def test_float(mod: Any, text: bytes) -> None:
    one(mod, [FLOAT], [text])
    one(mod, [(None, float)], [text])


@pytest.mark.parametrize("text", [b"0.00", b"-12.50", b"99999999.99", b"1E+3", b"NaN", b"x", b""])
def test_decimal(mod: Any, text: bytes) -> None:
    row = one(mod, [DEC], [text])
    if text == b"-12.50":
        assert row == (decimal.Decimal("-12.50"),) and str(row[0]) == "-12.50"


def test_decimal_with_use_unicode_false_raises_like_pymysql(mod: Any) -> None:
    got = one(mod, [(None, decimal.Decimal)], [b"12.50"])
    assert got[0] == "raise" and got[1] is TypeError
    assert "bytes" in got[2]


@pytest.mark.parametrize(
    "text,expected",
    [
        (b"2020-01-02 03:04:05", datetime.datetime(2020, 1, 2, 3, 4, 5)),
        (b"2020-01-02 03:04:05.5", datetime.datetime(2020, 1, 2, 3, 4, 5, 500000)),
        (b"2020-01-02 03:04:05.05", datetime.datetime(2020, 1, 2, 3, 4, 5, 50000)),
        (b"2020-01-02 03:04:05.123", datetime.datetime(2020, 1, 2, 3, 4, 5, 123000)),
        (b"2020-01-02 03:04:05.0001", datetime.datetime(2020, 1, 2, 3, 4, 5, 100)),
        (b"2020-01-02 03:04:05.00001", datetime.datetime(2020, 1, 2, 3, 4, 5, 10)),
        (b"2020-01-02 03:04:05.000001", datetime.datetime(2020, 1, 2, 3, 4, 5, 1)),
        (b"2020-01-02 03:04:05.000000", datetime.datetime(2020, 1, 2, 3, 4, 5)),
        (b"2020-01-02T03:04:05", datetime.datetime(2020, 1, 2, 3, 4, 5)),
        (b"2024-02-29 23:59:59", datetime.datetime(2024, 2, 29, 23, 59, 59)),
        (b"0001-01-01 00:00:00", datetime.datetime(1, 1, 1)),
        (b"9999-12-31 23:59:59.999999", datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        # zero and invalid dates: PyMySQL hands back the string
        (b"0000-00-00 00:00:00", "0000-00-00 00:00:00"),
        (b"0000-00-00 00:00:00.000000", "0000-00-00 00:00:00.000000"),
        (b"2023-02-29 00:00:00", "2023-02-29 00:00:00"),
        (b"2020-13-01 00:00:00", "2020-13-01 00:00:00"),
        (b"2020-01-01 24:00:00", "2020-01-01 24:00:00"),
        (b"2020-01-01 00:60:00", "2020-01-01 00:60:00"),
        (b"2020-01-01 00:00:60", "2020-01-01 00:00:60"),
        (b"2020-01-00 00:00:00", "2020-01-00 00:00:00"),
        # non-canonical but accepted by PyMySQL's regex / date fallback
        (b"2020-1-2 3:4:5", datetime.datetime(2020, 1, 2, 3, 4, 5)),
        (b"2020-01-02", datetime.date(2020, 1, 2)),
        (b"2020-01-02 03:04:05.1234567", None),
        (b"2020-01-02 03:04:05.", None),
        (b"2020-01-02 03:04", None),
        (b"garbage", None),
        (b"", None),
    ],
)
def test_datetime(mod: Any, text: bytes, expected: Any) -> None:
    row = one(mod, [DT], [text])
    one(mod, [(None, pc.convert_datetime)], [text])
    if expected is not None:
        assert row == (expected,) and type(row[0]) is type(expected)


@pytest.mark.parametrize(
    "text",
    [b"2020-01-02", b"0000-00-00", b"2023-02-29", b"2024-02-29", b"0001-01-01", b"9999-12-31",
     b"2020-1-2", b"2020-01", b"2020", b"", b"2020-01-02-03", b"x-y-z", b" 2020-01-02"],
)
def test_date(mod: Any, text: bytes) -> None:
    one(mod, [DATE], [text])
    one(mod, [(None, pc.convert_date)], [text])


@pytest.mark.parametrize(
    "text",
    [b"00:00:00", b"-00:00:01", b"12:34:56", b"-12:34:56.5", b"838:59:59", b"-838:59:59",
     b"-838:59:59.000000", b"00:00:00.000001", b"-00:00:00.000001", b"1:2:3", b"999:99:99",
     b"25:06:17", b"-25:06:17", b"1:2:3.1234567", b"1000:00:00", b"1 02:03:04", b"", b"-",
     b"12:34", b"12:34:56.", b"+1:00:00"],
)
def test_timedelta(mod: Any, text: bytes) -> None:
    one(mod, [TD], [text])
    one(mod, [(None, pc.convert_timedelta)], [text])


def test_negative_time_values(mod: Any) -> None:
    plan = mod.make_plan([TD])
    buf = packet(row_payload([b"-01:00:00.25"]), 0)
    (row,), _, _ = mod.decode_rows(buf, 0, len(buf), 0, plan)
    assert row[0] == -datetime.timedelta(hours=1, microseconds=250000)


@pytest.mark.parametrize("text", [b"00:00:00", b"23:59:59.999999", b"24:00:00", b"-1:00:00", b"1:2:3.4", b"x"])
def test_time_of_day_converter(mod: Any, text: bytes) -> None:
    one(mod, [TIME], [text])


@pytest.mark.parametrize(
    "conv",
    [TEXT, LATIN, BLOB, ("ascii", None), ("latin1", None), ("utf-8", None), ("koi8_r", None),
     ("utf16", None), ("nope-codec", None), (1, None)],
)
@pytest.mark.parametrize(
    "text",
    [b"", b"hello", "h\u00e9llo \u2603 \U0001f600".encode("utf8"), b"\x80\x81\x8d\x9d\xff",
     b"\xc3", b"a\x00b", bytes(range(256))],
)
def test_text_encodings(mod: Any, conv: tuple, text: bytes) -> None:
    one(mod, [conv], [text])


def test_json_is_str(mod: Any) -> None:
    doc = json.dumps({"a": [1, 2, "\u00e9"]}, ensure_ascii=False).encode("utf8")
    assert one(mod, [TEXT], [doc]) == (doc.decode("utf8"),)


def test_bit_is_bytes(mod: Any) -> None:
    assert one(mod, [(None, None)], [b"\x00\x05"]) == (b"\x00\x05",)
    assert one(mod, [(None, pc.through)], [b"\x01"]) == (b"\x01",)


def test_null_and_empty(mod: Any) -> None:
    convs = [INT, TEXT, BLOB, DT, DEC, FLOAT, TD, DATE]
    assert one(mod, convs, [None] * 8) == (None,) * 8
    assert one(mod, [TEXT, BLOB], [b"", b""]) == ("", b"")


def test_custom_converters(mod: Any) -> None:
    calls = []

    def conv(x: Any) -> Any:
        calls.append(x)
        return ("seen", x)

    assert one(mod, [("utf8", conv), (None, conv), ("ascii", str)], [b"a", b"b", b"7"]) == (
        ("seen", "a"), ("seen", b"b"), "7",
    )
    assert mod.make_plan([("utf8", conv)]).kinds == ("utf8:call",)


def test_converter_exception_propagates_and_discards_rows(mod: Any) -> None:
    def conv(x: Any) -> Any:
        if x == "boom":
            raise KeyError("bad value")
        return x

    plan = mod.make_plan([("utf8", conv)])
    buf = stream([row_payload([b"ok"]), row_payload([b"boom"]), row_payload([b"ok"])])
    with pytest.raises(KeyError, match="bad value"):
        mod.decode_rows(buf, 0, len(buf), 1, plan)
    # the caller can still decode the rows before the bad one
    first = len(packet(row_payload([b"ok"]), 1))
    assert mod.decode_rows(buf, 0, first, 1, plan) == ([("ok",)], first, 2)


def test_unicode_error_matches(mod: Any) -> None:
    got = one(mod, [TEXT], [b"ab\xffcd"])
    assert got[1] is UnicodeDecodeError
    got = one(mod, [INT], [b"\xff"])
    assert got[1] is UnicodeDecodeError and "ascii" in got[2]


def test_plan_kinds(mod: Any) -> None:
    plan = mod.make_plan(
        [INT, FLOAT, DEC, DT, DATE, TD, TIME, TEXT, LATIN, BLOB, ("utf16", None),
         (None, pc.through), ("latin1", repr), ["utf-8", None]]
    )
    assert plan.ncols == 14
    assert plan.kinds == (
        "ascii:int", "ascii:float", "ascii:decimal", "ascii:datetime", "ascii:date",
        "ascii:timedelta", "ascii:time", "utf8:none", "cp1252:none", "bytes:none",
        "other:none", "bytes:none", "latin1:call", "utf8:none",
    )


def test_make_plan_rejects(mod: Any) -> None:
    with pytest.raises(TypeError, match="list or tuple"):
        mod.make_plan(iter([INT]))
    with pytest.raises(TypeError, match="item 1 is not one"):
        mod.make_plan([INT, ("ascii", int, 3)])
    with pytest.raises(TypeError, match="item 0 is not one"):
        mod.make_plan(["ab"])
    assert mod.make_plan([]).ncols == 0
    assert mod.make_plan(()).kinds == ()


# ------------------------------------------------------------ length forms


@pytest.mark.parametrize("n", [0, 1, 250, 251, 252, 253, 254, 255, 65535, 65536, 70000])
def test_length_prefixes(mod: Any, n: int) -> None:
    value = bytes((i * 7) & 0xFF for i in range(n))
    assert one(mod, [BLOB, INT], [value, b"5"]) == (value, 5)


@pytest.mark.parametrize("form", [0xFC, 0xFD, 0xFE])
def test_non_minimal_length_forms(mod: Any, form: int) -> None:
    raw = lenenc(b"abc", form) + lenenc(b"1")
    assert one(mod, [TEXT, INT], [], raw=raw) == ("abc", 1)


def test_fe_prefixed_first_column_is_a_row_when_long_enough(mod: Any) -> None:
    raw = lenenc(b"x", 0xFE)  # 0xFE + 8 length bytes + 'x' = 10 bytes >= 9
    assert raw[0] == 0xFE and len(raw) >= 9
    assert one(mod, [BLOB], [], raw=raw) == (b"x",)


def test_largest_single_packet(mod: Any) -> None:
    value = b"z" * (0xFFFFFE - 4)  # 0xFD prefix + 3 bytes + value = 0xFFFFFE
    raw = lenenc(value)
    assert len(raw) == 0xFFFFFE
    assert one(mod, [BLOB], [], raw=raw) == (value,)


def test_stops_at_multi_packet(mod: Any) -> None:
    raw = lenenc(b"z" * (0xFFFFFF - 4))
    assert len(raw) == 0xFFFFFF
    head = packet(row_payload([b"a"]), 1)
    buf = head + packet(raw, 2) + packet(b"", 3)
    plan = mod.make_plan([BLOB])
    assert mod.decode_rows(buf, 0, len(buf), 1, plan) == ([(b"a",)], len(head), 2)


# ---------------------------------------------------------- stop conditions


def test_eof_err_and_empty_stop(mod: Any) -> None:
    eof = b"\xfe\x00\x00\x02\x00"
    ok_like = b"\xfe\x00\x00\x02\x00\x00\x00\x00"  # 8 bytes: still EOF/OK
    err = b"\xff\x15\x04#28000Access denied"
    for payload in (eof, ok_like, err, b"\xfe", b"\xff", b""):
        rows = stream([row_payload([b"1"]), payload, row_payload([b"2"])])
        plan = mod.make_plan([INT])
        got = mod.decode_rows(rows, 0, len(rows), 1, plan)
        assert got == ([(1,)], len(packet(row_payload([b"1"]), 1)), 2)


def test_sequence_mismatch_and_wrap(mod: Any) -> None:
    p = row_payload([b"x"])
    buf = packet(p, 255) + packet(p, 0) + packet(p, 2)
    plan = mod.make_plan([TEXT])
    rows, pos, seq = mod.decode_rows(buf, 0, len(buf), 255, plan)
    assert rows == [("x",), ("x",)] and seq == 1 and pos == 2 * len(packet(p, 0))
    stops(mod, [TEXT], buf, seq=254)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01a",  # short row (2 columns expected)
        b"\x01a\x01b\x00",  # trailing byte
        b"\x01a\xff",  # 0xFF length prefix (PyMySQL: NULL)
        b"\x01a\x05abc",  # value overruns payload
        b"\x01a\xfc\x01",  # truncated 2-byte length
        b"\x01a\xfd\x01\x00",  # truncated 3-byte length
        b"\x01a\xfe\x01\x00\x00\x00",  # truncated 8-byte length
        b"\x01a\xfe\xff\xff\xff\xff\xff\xff\xff\xff",  # absurd 8-byte length
        b"\x01a\xfc\xff\xff",
    ],
)
def test_malformed_payload_stops(mod: Any, raw: bytes) -> None:
    good = packet(row_payload([b"1", b"2"]), 1)
    buf = good + packet(raw, 2)
    plan = mod.make_plan([INT, TEXT])
    assert mod.decode_rows(buf, 0, len(buf), 1, plan) == ([(1, "2")], len(good), 2)


def test_zero_column_plan(mod: Any) -> None:
    plan = mod.make_plan([])
    buf = packet(b"\x00", 1)
    assert mod.decode_rows(buf, 0, len(buf), 1, plan) == ([], 0, 1)


def test_every_truncation_point(mod: Any) -> None:
    payloads = [row_payload([b"1", b"a" * 300, None]), row_payload([b"22", b"", b"\x00"]),
                row_payload([b"333", b"bcd", b"e" * 70000])]
    buf = stream(payloads, seq=7)
    bounds = [0]
    for i, p in enumerate(payloads):
        bounds.append(bounds[-1] + len(packet(p, 0)))
    plan = mod.make_plan([INT, TEXT, BLOB])
    full = mod.decode_rows(buf, 0, len(buf), 7, plan)
    assert len(full[0]) == 3
    for end in range(len(buf) + 1):
        if end % 97 and end not in bounds and abs(end - 300) > 8 and end < len(buf) - 8 and end > 400 and end < 70000:
            continue  # every cut near the boundaries, a sample inside the big value
        rows, pos, seq = mod.decode_rows(buf, 0, end, 7, plan)
        k = max(i for i, b in enumerate(bounds) if b <= end)
        assert (rows, pos, seq) == (full[0][:k], bounds[k], 7 + k)


def test_every_truncation_point_small(mod: Any) -> None:
    payloads = [row_payload([b"1", None]), row_payload([b"", b"zz"])]
    buf = stream(payloads, seq=0)
    plan = mod.make_plan([TEXT, BLOB])
    b1 = len(packet(payloads[0], 0))
    for end in range(len(buf) + 1):
        for start in (0, b1):
            if start > end:
                continue
            rows, pos, seq = mod.decode_rows(buf, start, end, 0 if start == 0 else 1, plan)
            if start == 0:
                k = 2 if end == len(buf) else 1 if end >= b1 else 0
                assert rows == [("1", None), ("", b"zz")][:k]
                assert pos == [0, b1, len(buf)][k] and seq == k
            else:
                k = 1 if end == len(buf) else 0
                assert rows == [("", b"zz")][:k] and pos == [b1, len(buf)][k]


def test_pos_offset_and_memoryview(mod: Any) -> None:
    p = packet(row_payload([b"5"]), 3)
    junk = b"\xee" * 11
    buf = bytearray(junk + p + junk)
    plan = mod.make_plan([INT])
    assert mod.decode_rows(buf, 11, 11 + len(p), 3, plan) == ([(5,)], 11 + len(p), 4)
    mv = memoryview(buf)[11:]
    assert mod.decode_rows(mv, 0, len(p), 3, plan) == ([(5,)], len(p), 4)
    assert mod.decode_rows(bytes(buf), 11, len(buf), 3, plan) == ([(5,)], 11 + len(p), 4)


# ------------------------------------------------------------- arguments


def test_argument_errors(mod: Any) -> None:
    plan = mod.make_plan([INT])
    buf = packet(row_payload([b"5"]), 0)
    n = len(buf)
    for pos, end in ((-1, n), (0, n + 1), (3, 2), (0, -1), (2**70, 2**71)):
        with pytest.raises(ValueError, match="pos <= end"):
            mod.decode_rows(buf, pos, end, 0, plan)
    for seq in (-1, 256, 2**80):
        with pytest.raises(ValueError, match="seq"):
            mod.decode_rows(buf, 0, n, seq, plan)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        mod.decode_rows(buf, 0.0, n, 0, plan)
    with pytest.raises(TypeError, match="Plan"):
        mod.decode_rows(buf, 0, n, 0, [INT])
    with pytest.raises(TypeError, match="bytes-like object, not 'str'"):
        mod.decode_rows("abc", 0, 1, 0, plan)
    with pytest.raises(BufferError, match="C-contiguous"):
        mod.decode_rows(memoryview(b"abcdef")[::2], 0, 1, 0, plan)
    other = codec.pure if mod is not codec.pure else codec.speedups
    if other is not None:
        with pytest.raises(TypeError, match="Plan"):
            mod.decode_rows(buf, 0, n, 0, other.make_plan([INT]))
    assert mod.decode_rows(buf, True, n, False, plan) == ([], 1, 0)


def test_buffer_export_held_while_converting(mod: Any) -> None:
    buf = bytearray(packet(row_payload([b"x"]), 0))

    def resize(x: Any) -> Any:
        buf.extend(b"more")
        return x

    plan = mod.make_plan([("utf8", resize)])
    with pytest.raises(BufferError):
        mod.decode_rows(buf, 0, len(buf), 0, plan)
    # after the call the caller is free to resize again
    buf.extend(b"ok")
    del buf[-2:]
    assert mod.decode_rows(buf, 0, len(buf), 0, mod.make_plan([TEXT])) == ([("x",)], len(buf), 1)


def test_plan_is_immutable_and_reusable(mod: Any) -> None:
    plan = mod.make_plan([INT])
    with pytest.raises((AttributeError, TypeError)):
        plan.ncols = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        type(plan)()  # type: ignore[call-arg]
    buf = packet(row_payload([b"1"]), 0)
    for _ in range(3):
        assert mod.decode_rows(buf, 0, len(buf), 0, plan)[0] == [(1,)]


def test_no_leaks(mod: Any) -> None:
    convs = [INT, FLOAT, DEC, DT, DATE, TD, TEXT, BLOB, ("utf8", lambda x: x), DT]
    values = [b"12", b"1.5", b"3.25", b"2020-01-01 00:00:00.5", b"2020-01-01", b"-1:00:00", b"t",
              b"b", b"c", b"0000-00-00 00:00:00"]
    buf = stream([row_payload(values)] * 50)
    bad = stream([row_payload(values), row_payload([b"x"] + values[1:])])
    plan = mod.make_plan(convs)

    def work() -> None:
        for _ in range(20):
            mod.decode_rows(buf, 0, len(buf), 1, plan)
            try:
                mod.decode_rows(bad, 0, len(bad), 1, plan)
            except ValueError:
                pass
            mod.make_plan(convs)

    work()
    gc.collect()
    tracemalloc.start()
    try:
        work()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            work()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, (before, after)
    if hasattr(sys, "gettotalrefcount"):  # debug builds only
        r0 = sys.gettotalrefcount()
        work()
        assert sys.gettotalrefcount() - r0 < 100


_float_texts = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(lambda f, k: "%.*g" % (k, f), st.floats(allow_nan=False, allow_infinity=False), st.integers(1, 17)),
    st.builds(lambda f, k: "%.*e" % (k, f), st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 16)),
    st.builds(lambda f, k: "%.*f" % (k, f), st.floats(-1e20, 1e20), st.integers(0, 20)),
    st.builds(
        lambda sign, m, frac, e: "%s%d%s%s" % (sign, m, frac, e),
        st.sampled_from(["", "-"]),
        st.integers(0, 10**16),
        st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=18).map(lambda t: "." + t)),
        st.one_of(st.just(""), st.integers(-40, 40).map(lambda e: "e%d" % e),
                  st.integers(-400, 400).map(lambda e: "E%+d" % e)),
    ),
)


@settings(max_examples=2000, deadline=None)
@given(_float_texts)
def test_float_bit_exact(mod: Any, text: str) -> None:
    plan = mod.make_plan([FLOAT])
    buf = packet(row_payload([text.encode()]), 0)
    (row,), _, _ = mod.decode_rows(buf, 0, len(buf), 0, plan)
    want = float(text)
    assert type(row[0]) is float and struct.pack("<d", row[0]) == struct.pack("<d", want), text
