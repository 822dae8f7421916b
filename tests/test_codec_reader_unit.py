"""Bytes-in tests of ResponseReader and build_command, every test on both twins.

Hand-built responses for each status and each rule of docs/codec.md; where
PyMySQL has an answer for the same bytes, the reader's is checked against it
(``pymysql_parse`` runs PyMySQL's own ``MySQLResult`` over them).
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref
from typing import Any, List

import pytest
from pymysql.constants import FIELD_TYPE

try:
    from test_codec_util import (
        MAX_PACKET, READERS, STATUS_NAMES, Shape, column_def, drive, eof_payload, err_payload,
        lenenc, lenint, ok_payload, packet, packets, plans_of, pymysql_parse, result_payloads,
        row_payload, check_against_pymysql, server_error,
    )
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        MAX_PACKET, READERS, STATUS_NAMES, Shape, column_def, drive, eof_payload, err_payload,
        lenenc, lenint, ok_payload, packet, packets, plans_of, pymysql_parse, result_payloads,
        row_payload, check_against_pymysql, server_error,
    )

from tornpool import codec

pytestmark = pytest.mark.parametrize("mod", READERS)

INT = ("ascii", int)
TEXT = ("utf8", None)
BLOB = (None, None)
ONE_COL = [column_def(b"1", FIELD_TYPE.LONGLONG)]


def select1(seq: int = 1, status: int = 2) -> bytes:
    return packets(result_payloads(ONE_COL, [[b"1"]], status=status), seq)


def block_of(data: bytes, header_len: int = 5) -> bytes:
    """The column block of a one-result response (after a short header)."""
    p = header_len
    while True:
        n = data[p] | data[p + 1] << 8 | data[p + 2] << 16
        payload = data[p + 4:p + 4 + n]
        p += 4 + n
        if payload[:1] == b"\xfe" and n < 9:
            return data[header_len:p]


def feed_all(mod: Any, data: Any, meta: dict, seq: int = 1, unbuffered: bool = False,
             limit: int = 0) -> Any:
    r = mod.ResponseReader()
    r.start(seq, unbuffered)
    status = r.feed(data, 0, len(data), meta, limit)
    return r, status


def meta_for(mod: Any, data: bytes, converters: list, header_len: int = 5) -> dict:
    return {block_of(data, header_len): Shape(plans_of(mod).make_plan(converters))}


def state(r: Any) -> tuple:
    return (r.pos, r.seq, r.need, r.field_count, r.affected_rows, r.insert_id, r.server_status,
            r.warning_count, r.message, r.shape, r.meta_key, r.rows, r.error, r.got_seq)


# ------------------------------------------------------------------ statuses


def test_status_codes_are_shared(mod: Any) -> None:
    for i, name in enumerate(STATUS_NAMES):
        assert getattr(mod, name) == i
        assert getattr(codec, name) == i


def test_select1_meta_then_result(mod: Any) -> None:
    data = select1()
    meta: dict = {}
    r, status = feed_all(mod, data, meta)
    assert status == mod.META
    # the header is consumed, nothing of the column block
    assert (r.pos, r.seq, r.field_count) == (5, 2, 1)
    assert r.meta_key == block_of(data) and type(r.meta_key) is bytes
    assert r.rows is None and r.shape is None
    shape = Shape(plans_of(mod).make_plan([INT]))
    meta[r.meta_key] = shape
    assert r.feed(data, r.pos, len(data), meta) == mod.RESULT
    assert r.rows == [(1,)] and r.pos == len(data) and r.seq == 6
    assert r.shape is shape and r.meta_key == block_of(data)
    assert (r.server_status, r.warning_count, r.need, r.error) == (2, 0, 0, None)
    assert r.affected_rows is None and r.insert_id is None and r.message == b""


def test_known_block_one_call(mod: Any) -> None:
    data = select1()
    meta = meta_for(mod, data, [INT])
    r, status = feed_all(mod, data, meta)
    assert status == mod.RESULT and r.rows == [(1,)] and r.pos == len(data)
    assert r.shape is meta[r.meta_key]


def test_meta_none_value_is_a_miss_and_eviction_is_seen(mod: Any) -> None:
    data = select1()
    key = block_of(data)
    r, status = feed_all(mod, data, {key: None})
    assert status == mod.META
    meta = meta_for(mod, data, [INT])
    r, status = feed_all(mod, data, meta)
    assert status == mod.RESULT
    # the same reader, the same block again, after the caller evicted it
    meta.clear()
    r.start(1)
    assert r.feed(data, 0, len(data), meta) == mod.META


def test_meta_dict_subclass_get_is_used(mod: Any) -> None:
    data = select1()
    calls: List[bytes] = []
    plan = plans_of(mod).make_plan([INT])

    class Cache(dict):
        def get(self, key: Any, default: Any = None) -> Any:
            calls.append(key)
            return Shape(plan)

    r, status = feed_all(mod, data, Cache())
    assert status == mod.RESULT and calls == [block_of(data)] and r.rows == [(1,)]


def test_ok_packet(mod: Any) -> None:
    payload = ok_payload(3, 70000, 0x8022, 0xFFFF, b"Rows matched: 3  Changed: 3  Warnings: 0")
    data = packet(payload, 1)
    r, status = feed_all(mod, data, {})
    assert status == mod.OK
    assert (r.affected_rows, r.insert_id, r.server_status, r.warning_count) == (3, 70000, 0x8022, 0xFFFF)
    assert r.message == b"Rows matched: 3  Changed: 3  Warnings: 0"
    assert (r.pos, r.seq, r.rows, r.field_count) == (len(data), 2, None, 0)
    (want,), used = pymysql_parse(data)
    assert used == len(data)
    assert (want["affected_rows"], want["insert_id"], want["server_status"],
            want["warning_count"], want["message"]) == (3, 70000, 0x8022, 0xFFFF, r.message)


@pytest.mark.parametrize("value,form", [(0, None), (250, None), (251, None), (65535, None),
                                        (65536, None), (2**24, None), (2**64 - 1, None),
                                        (5, 0xFC), (5, 0xFD), (5, 0xFE), (None, None)])
def test_ok_length_encoded_ints(mod: Any, value: Any, form: Any) -> None:
    payload = b"\x00" + lenint(value, form) + lenint(value, form) + b"\x02\x00\x00\x00"
    data = packet(payload, 1)
    r, status = feed_all(mod, data, {})
    assert status == mod.OK and r.affected_rows == value and r.insert_id == value
    (want,), _ = pymysql_parse(data)
    assert (want["affected_rows"], want["insert_id"]) == (value, value)


def test_ok_with_session_state_keeps_raw_rest(mod: Any) -> None:
    # CLIENT_SESSION_TRACK layout: info string, then the session-state block
    rest = lenenc(b"") + lenenc(b"\x00" + lenenc(lenenc(b"autocommit") + lenenc(b"OFF")))
    data = packet(ok_payload(0, 0, 0x4002, 0, rest), 1)
    r, status = feed_all(mod, data, {})
    assert status == mod.OK and r.message == rest
    (want,), _ = pymysql_parse(data)
    assert want["message"] == rest and want["server_status"] == r.server_status == 0x4002


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"\x00\xfc\x01\x00\xfc\x01", None),  # < 7 bytes: a header with column count 0
        (b"\x00\x00\x00\x02\x00\x00", None),
        (b"\x00\xfe\x01\x00\x00\x00\x00", "truncated length-encoded integer in the OK packet"),
        (b"\x00\x00\xfd\x01\x00\x00\x00", "OK packet too short"),
        (b"\x00\x01\x02\x03\x00\x00", None),
        (b"\x00\xff\x00\x02\x00\x00\x00", "0xFF is not a length-encoded integer"),
        (b"\x00\x00\xff\x02\x00\x00\x00", "0xFF is not a length-encoded integer"),
        (b"\x00\x00\x00\x02\x00\x00", "column count 0"),
    ],
)
def test_malformed_ok(mod: Any, payload: bytes, message: Any) -> None:
    data = packet(payload, 1)
    r = mod.ResponseReader()
    r.start(1)
    before = state(r)
    with pytest.raises(ValueError, match="malformed response: " + (message or "column count 0")):
        r.feed(data, 0, len(data), {})
    assert state(r) == before


def test_err_packet_first(mod: Any) -> None:
    payload = err_payload(1146, b"Table 'test.nope' doesn't exist", b"42S02")
    data = packet(payload, 1) + b"trailing bytes of something else"
    r, status = feed_all(mod, data, {})
    assert status == mod.ERROR and r.error == payload and type(r.error) is bytes
    assert (r.pos, r.seq, r.rows) == (4 + len(payload), 2, None)
    (want,), _ = pymysql_parse(data[:4 + len(payload)])
    assert want["exc"] == server_error(r.error)


def test_err_too_short(mod: Any) -> None:
    # PyMySQL itself fails on these with IndexError (pymysql.err reads [3])
    for payload in (b"\xff", b"\xff\x01", b"\xff\x01\x02"):
        data = packet(payload, 1)
        r = mod.ResponseReader()
        r.start(1)
        with pytest.raises(ValueError, match="ERR packet shorter than 4 bytes"):
            r.feed(data, 0, len(data), {})
    r, status = feed_all(mod, packet(b"\xff\x01\x02X", 1), {})
    assert status == mod.ERROR and r.error == b"\xff\x01\x02X"
    assert server_error(r.error)[1] == (513, "X")


def test_local_infile_consumes_nothing(mod: Any) -> None:
    data = b"junk" + packet(b"\xfb/tmp/file.csv", 7)
    r = mod.ResponseReader()
    r.start(7)
    assert r.feed(data, 4, len(data), {}) == mod.LOCAL_INFILE
    assert (r.pos, r.seq, r.need) == (4, 7, 0)
    with pytest.raises(RuntimeError, match="after the response ended"):
        r.feed(data, 4, len(data), {})


def test_header_column_counts(mod: Any) -> None:
    for payload, count in ((b"\xfb", None), (b"\x00", 0), (b"\xfc\x01\x10", 4097),
                           (b"\xfe" + (2**63).to_bytes(8, "little"), 2**63)):
        data = packet(payload, 1)
        r = mod.ResponseReader()
        r.start(1)
        if count is None:
            assert r.feed(data, 0, len(data), {}) == mod.LOCAL_INFILE
            continue
        with pytest.raises(ValueError, match="column count %d \\(must be 1..4096\\)" % count):
            r.feed(data, 0, len(data), {})
    for payload, where in ((b"\xfc\x01", "result-set header"), (b"\xfd\x01\x00", "result-set header"),
                           (b"\xfe\x01\x00\x00\x00", "result-set header")):
        data = packet(payload, 1)
        r = mod.ResponseReader()
        r.start(1)
        with pytest.raises(ValueError, match="truncated length-encoded integer in the " + where):
            r.feed(data, 0, len(data), {})
    # a non-minimal encoding of a sane count is a count
    cols = [column_def(b"c%d" % i) for i in range(3)]
    data = packets([b"\xfc\x03\x00"] + result_payloads(cols, [[b"1", b"2", b"3"]])[1:])
    meta = meta_for(mod, data, [INT] * 3, header_len=7)
    r, status = feed_all(mod, data, meta)
    assert status == mod.RESULT and r.rows == [(1, 2, 3)] and r.field_count == 3


def test_header_trailing_bytes_are_ignored_like_pymysql(mod: Any) -> None:
    data = packets([b"\x01\x00"] + result_payloads(ONE_COL, [[b"7"]])[1:])
    meta = meta_for(mod, data, [INT], header_len=6)
    r, status = feed_all(mod, data, meta)
    assert status == mod.RESULT and r.rows == [(7,)]
    (want,), _ = pymysql_parse(data)
    assert want["rows"] == (("list", ((("tuple", (("int", "7"),))),)))


def test_wide_result_set(mod: Any) -> None:
    n = 300  # wider than the C twin's stack arrays
    cols = [column_def(b"c%d" % i) for i in range(n)]
    rows = [[str(i * k).encode() if k % 7 else None for k in range(n)] for i in range(3)]
    data = packets(result_payloads(cols, rows))
    (want,), _ = pymysql_parse(data)
    d = drive(mod, data, want["converters"], cuts=range(0, len(data), 1000), moves=[2, 5])
    check_against_pymysql(d, [want])


# -------------------------------------------------------------- column block


def _block_response(mod: Any, block_payloads: List[bytes]) -> Any:
    data = packets([lenint(2)] + block_payloads)
    r = mod.ResponseReader()
    r.start(1)
    return r, data


def test_block_must_end_with_eof(mod: Any) -> None:
    r, data = _block_response(mod, [column_def(b"a"), column_def(b"b"), row_payload([b"1", b"2"])])
    with pytest.raises(ValueError, match="not followed by an EOF packet"):
        r.feed(data, 0, len(data), {})
    assert (r.pos, r.field_count) == (0, 0)


def test_block_early_eof(mod: Any) -> None:
    r, data = _block_response(mod, [column_def(b"a"), eof_payload(), eof_payload()])
    with pytest.raises(ValueError, match="EOF packet after 1 of 2 column definitions"):
        r.feed(data, 0, len(data), {})


def test_block_empty_or_split_packet(mod: Any) -> None:
    r, data = _block_response(mod, [column_def(b"a"), b"", eof_payload()])
    with pytest.raises(ValueError, match="empty packet"):
        r.feed(data, 0, len(data), {})
    data = packets([lenint(1)]) + (MAX_PACKET).to_bytes(3, "little") + b"\x02"
    r.start(1)
    with pytest.raises(ValueError, match="a 16777215-byte packet where a single packet is required"):
        r.feed(data, 0, len(data), {})


def test_err_inside_block(mod: Any) -> None:
    err = err_payload(1317, b"Query execution was interrupted", b"70100")
    r, data = _block_response(mod, [column_def(b"a"), err])
    assert r.feed(data, 0, len(data), {}) == mod.ERROR
    assert r.error == err and r.pos == len(data) and r.field_count == 2
    (want,), _ = pymysql_parse(data)
    assert want["kind"] == "raise"  # PyMySQL breaks on it too (while parsing it as a field)


def test_bad_seq_inside_block(mod: Any) -> None:
    good = packets([lenint(2), column_def(b"a")])
    bad = packet(column_def(b"b"), 9)
    data = good + bad + packet(eof_payload(), 10)
    r = mod.ResponseReader()
    r.start(1)
    assert r.feed(data, 0, len(data), {}) == mod.BAD_SEQ
    assert (r.pos, r.seq, r.got_seq) == (len(good), 3, 9)
    with pytest.raises(RuntimeError, match="after the response ended"):
        r.feed(data, r.pos, len(data), {})
    (want,), _ = pymysql_parse(data)
    assert want["exc"][1] == ("Packet sequence number wrong - got 9 expected 3",)


def test_plan_checks(mod: Any) -> None:
    data = select1()
    key = block_of(data)
    other = codec.pure if plans_of(mod) is not codec.pure else codec.speedups
    bad_plans: List[Any] = [[INT], None]
    if other is not None:
        bad_plans.append(other.make_plan([INT]))
    for plan in bad_plans:
        r = mod.ResponseReader()
        r.start(1)
        with pytest.raises(TypeError, match="needs meta\\[key\\].plan to be a Plan made by make_plan"):
            r.feed(data, 0, len(data), {key: Shape(plan)})
        assert r.pos == 0 and r.field_count == 0
    r.start(1)
    with pytest.raises(AttributeError, match="plan"):
        r.feed(data, 0, len(data), {key: object()})
    with pytest.raises(ValueError, match="the result set has 1 columns but meta\\[key\\].plan has 2"):
        r.feed(data, 0, len(data), {key: Shape(plans_of(mod).make_plan([INT, INT]))})
    # after all that the reader still works on the same response
    assert r.feed(data, 0, len(data), meta_for(mod, data, [INT])) == mod.RESULT


# ---------------------------------------------------------------------- rows


def test_eof_status_and_warnings_are_signed_like_pymysql(mod: Any) -> None:
    data = packets(result_payloads(ONE_COL, [[b"1"]], warnings=0xFFFF, status=0x8002))
    r, status = feed_all(mod, data, meta_for(mod, data, [INT]))
    assert status == mod.RESULT
    assert (r.server_status, r.warning_count) == (-32766, -1)
    (want,), _ = pymysql_parse(data)
    assert want["warning_count"] == -1


def test_final_eof_too_short(mod: Any) -> None:
    payloads = result_payloads(ONE_COL, [[b"1"]])
    payloads[-1] = b"\xfe\x00\x00"
    data = packets(payloads)
    r = mod.ResponseReader()
    r.start(1)
    with pytest.raises(ValueError, match="EOF packet shorter than 5 bytes"):
        r.feed(data, 0, len(data), meta_for(mod, data, [INT]))
    assert r.pos == 0 and r.rows is None


def test_err_instead_of_row_discards_rows(mod: Any) -> None:
    payloads = result_payloads(ONE_COL, [[b"1"], [b"2"]])
    err = err_payload(1317, b"interrupted", b"70100")
    payloads[-1] = err
    data = packets(payloads)
    meta = meta_for(mod, data, [INT])
    # the rows arrive first, in their own call, then the ERR
    cut = len(data) - 4 - len(err)
    r = mod.ResponseReader()
    r.start(1)
    assert r.feed(data, 0, cut, meta) == mod.NEED and r.rows is None
    assert r.feed(data, r.pos, len(data), meta) == mod.ERROR
    assert r.rows is None and r.error == err and r.pos == len(data)
    (want,), _ = pymysql_parse(data)
    assert want["exc"] == server_error(err)


@pytest.mark.parametrize(
    "raw",
    [b"\x01a", b"\x01a\x01b\x00", b"\x01a\xff", b"\x01a\x05abc", b"\x01a\xfc\x01",
     b"\x01a\xfd\x01\x00", b"\x01a\xfe\x01\x00\x00\x00", b"\x01a\xfe\xff\xff\xff\xff\xff\xff\xff\xff"],
)
def test_malformed_row_raises_and_keeps_state(mod: Any, raw: bytes) -> None:
    cols = [column_def(b"a"), column_def(b"b", FIELD_TYPE.VAR_STRING, 33)]
    payloads = result_payloads(cols, [[b"1", b"x"]])
    good = packets(payloads[:-1])
    data = good + packet(raw, 6) + packet(eof_payload(), 7)
    meta = meta_for(mod, data, [INT, TEXT])
    r = mod.ResponseReader()
    r.start(1)
    assert r.feed(data, 0, len(good), meta) == mod.NEED  # the good row is held
    before = state(r)
    with pytest.raises(ValueError, match="row packet is not exactly 2 length-encoded values"):
        r.feed(data, r.pos, len(data), meta)
    assert state(r) == before
    # the same bytes again: the same error (nothing was half-consumed)
    with pytest.raises(ValueError, match="not exactly 2"):
        r.feed(data, r.pos, len(data), meta)


def test_empty_row_packet(mod: Any) -> None:
    good = packets(result_payloads(ONE_COL, [])[:-1])
    data = good + packet(b"", 4)
    r = mod.ResponseReader()
    r.start(1)
    with pytest.raises(ValueError, match="empty packet"):
        r.feed(data, 0, len(data), meta_for(mod, data, [INT]))


def test_converter_exception_leaves_state(mod: Any) -> None:
    def conv(x: str) -> str:
        if x == "boom":
            raise KeyError("bad value")
        return x

    cols = [column_def(b"a", FIELD_TYPE.VAR_STRING, 33)]
    data = packets(result_payloads(cols, [[b"ok"], [b"boom"], [b"ok"]]))
    meta = meta_for(mod, data, [("utf8", conv)])
    r = mod.ResponseReader()
    r.start(1)
    with pytest.raises(KeyError, match="bad value"):
        r.feed(data, 0, len(data), meta)
    assert r.pos == 0 and r.seq == 1 and r.field_count == 0 and r.rows is None


def test_rows_accumulate_across_calls(mod: Any) -> None:
    cols = [column_def(b"a"), column_def(b"b", FIELD_TYPE.BLOB, 63)]
    rows = [[str(i).encode(), b"x" * i] for i in range(40)]
    data = packets(result_payloads(cols, rows))
    (want,), _ = pymysql_parse(data)
    d = drive(mod, data, want["converters"], cuts=range(0, len(data), 37), moves=range(0, 99, 3))
    check_against_pymysql(d, [want])
    assert d.consumed == len(data)


def test_need_is_exact_byte_at_a_time(mod: Any) -> None:
    cols = [column_def(b"a"), column_def(b"b", FIELD_TYPE.VAR_STRING, 33)]
    responses = [
        packets(result_payloads(cols, [[b"1", b"one"], [None, b""], [b"3", None]])),
        packet(ok_payload(1, 2, 3, 4, b"msg"), 1),
        packet(err_payload(), 1),
        select1(),
    ]
    for data in responses:
        (want,), used = pymysql_parse(data)
        d = drive(mod, data, want.get("converters", []), cuts=range(len(data)))
        check_against_pymysql(d, [want])
        assert d.consumed == used == len(data)
        needs = [e for e in d.events if e[0] == "NEED"]
        assert len(needs) >= len(data) - 8  # one NEED per byte nearly everywhere


def test_pos_offsets_and_buffer_kinds(mod: Any) -> None:
    data = select1()
    meta = meta_for(mod, data, [INT])
    junk = b"\xee" * 13
    for buf in (bytes(junk + data + junk), bytearray(junk + data), memoryview(junk + data + junk)):
        r = mod.ResponseReader()
        r.start(1)
        assert r.feed(buf, 13, 13 + len(data), meta) == mod.RESULT
        assert r.pos == 13 + len(data) and r.rows == [(1,)]


# ------------------------------------------------------------- split rows


def _split_row_response(value: bytes, seq: int = 1) -> bytes:
    cols = [column_def(b"big", FIELD_TYPE.LONG_BLOB, 63), column_def(b"n")]
    return packets(result_payloads(cols, [[value, b"5"], [b"s", b"6"]]), seq)


@pytest.mark.parametrize("extra", [-5, 0, 10, MAX_PACKET + 7])
def test_rows_split_over_packets(mod: Any, extra: int) -> None:
    # payload = 0xFD + 3 length bytes + value + "\x015": exactly 0xFFFFFF + extra
    value = b"v" * (MAX_PACKET + extra - 4 - 2)
    data = _split_row_response(value, seq=250)  # the parts' ids wrap past 255
    (want,), used = pymysql_parse(data, seq=250)
    assert used == len(data)
    # arrival cut inside headers and payloads of the parts, with moves
    first = len(packets(result_payloads([column_def(b"big", FIELD_TYPE.LONG_BLOB, 63),
                                         column_def(b"n")], [])[:-1], 250))
    cuts = [first + 2, first + 4, first + 100, first + 4 + MAX_PACKET - 1,
            first + 4 + MAX_PACKET + 2, first + 8 + MAX_PACKET, len(data) - 3]
    d = drive(mod, data, want["converters"], seq=250, cuts=cuts, moves=[3, 4])
    check_against_pymysql(d, [want])
    assert d.consumed == len(data)
    needs = [e for e in d.events if e[0] == "NEED" and e[1] == first]
    assert needs and all(e[3] >= 4 for e in needs)
    if extra >= 0:
        # waiting on the second part: its header, then all of it
        assert any(e[3] == 4 + MAX_PACKET + 4 for e in needs)


def test_split_row_bad_seq_in_second_part(mod: Any) -> None:
    value = b"v" * (MAX_PACKET + 100)
    data = bytearray(_split_row_response(value))
    first = len(packets(result_payloads([column_def(b"big", FIELD_TYPE.LONG_BLOB, 63),
                                         column_def(b"n")], [])[:-1]))
    second = first + 4 + MAX_PACKET
    data[second + 3] = 77
    meta = {bytes(block_of(bytes(data))): Shape(plans_of(mod).make_plan([BLOB, INT]))}
    r = mod.ResponseReader()
    r.start(1)
    assert r.feed(data, 0, len(data), meta) == mod.BAD_SEQ
    assert (r.pos, r.seq, r.got_seq) == (second, 6, 77)


def test_split_row_starting_with_ff(mod: Any) -> None:
    head = packets(result_payloads(ONE_COL, [])[:-1])
    data = head + packet(b"\xff" * MAX_PACKET, 4) + packet(b"", 5)
    r = mod.ResponseReader()
    r.start(1)
    with pytest.raises(ValueError, match="split over several packets starts with 0xFF"):
        r.feed(data, 0, len(data), meta_for(mod, data, [BLOB]))


# ----------------------------------------------------------------- sequence


def test_bad_seq_first_packet(mod: Any) -> None:
    for got in (0, 5):
        data = packet(err_payload(1927, b"Connection was killed", b"70100"), got)
        r = mod.ResponseReader()
        r.start(1)
        assert r.feed(data, 0, len(data), {}) == mod.BAD_SEQ
        assert (r.pos, r.seq, r.got_seq) == (0, 1, got)
        (want,), _ = pymysql_parse(data)
        if got == 0:
            assert want["exc"][0].__name__ == "OperationalError" and want["exc"][1][0] == 2013
        else:
            assert want["exc"][1] == ("Packet sequence number wrong - got 5 expected 1",)


def test_bad_seq_among_rows(mod: Any) -> None:
    payloads = result_payloads(ONE_COL, [[b"1"], [b"2"]])
    good = packets(payloads[:4])
    data = good + packet(payloads[4], 0) + packet(payloads[5], 1)
    r, status = feed_all(mod, data, meta_for(mod, data, [INT]))
    assert status == mod.BAD_SEQ and (r.pos, r.seq, r.got_seq, r.rows) == (len(good), 5, 0, None)
    # unbuffered: the good row first, then BAD_SEQ
    r, status = feed_all(mod, data, meta_for(mod, data, [INT]), unbuffered=True)
    assert status == mod.COLUMNS
    assert r.feed(data, r.pos, len(data), meta_for(mod, data, [INT])) == mod.ROWS
    assert r.rows == [(1,)]
    assert r.feed(data, r.pos, len(data), {}) == mod.BAD_SEQ and r.got_seq == 0


def test_sequence_wraps(mod: Any) -> None:
    data = select1(seq=254)
    r, status = feed_all(mod, data, meta_for(mod, data, [INT]), seq=254)
    assert status == mod.RESULT and r.seq == (254 + 5) % 256


# --------------------------------------------------------------- unbuffered


def test_unbuffered(mod: Any) -> None:
    rows = [[str(i).encode()] for i in range(7)]
    data = packets(result_payloads(ONE_COL, rows, warnings=2, status=0x22))
    meta = meta_for(mod, data, [INT])
    r = mod.ResponseReader()
    r.start(1, True)
    assert r.feed(data, 0, len(data), meta, 3) == mod.COLUMNS
    assert r.rows is None and r.shape is not None and r.field_count == 1
    got = []
    for want in ([0, 1, 2], [3, 4, 5], [6]):
        assert r.feed(data, r.pos, len(data), meta, 3) == mod.ROWS
        assert r.rows == [(v,) for v in want]
        got.extend(r.rows)
    assert r.feed(data, r.pos, len(data), meta, 3) == mod.END
    assert r.rows == [] and (r.server_status, r.warning_count) == (0x22, 2)
    assert r.pos == len(data)
    (want_res,), _ = pymysql_parse(data, unbuffered=True)
    assert want_res["warning_count"] == 2
    # no limit: all rows in one call, then END
    r.start(1, 1)
    assert r.feed(data, 0, len(data), meta) == mod.COLUMNS
    assert r.feed(data, r.pos, len(data), meta, 2**70) == mod.ROWS and len(r.rows) == 7
    assert r.feed(data, r.pos, len(data), meta) == mod.END


def test_unbuffered_need_and_err(mod: Any) -> None:
    payloads = result_payloads(ONE_COL, [[b"1"], [b"2"]])
    err = err_payload(1317, b"interrupted", b"70100")
    data = packets(payloads[:-1] + [err])
    meta = meta_for(mod, data, [INT])
    r = mod.ResponseReader()
    r.start(1, True)
    assert r.feed(data, 0, 3, meta) == mod.NEED and r.need == 4
    assert r.feed(data, 0, len(data), meta) == mod.COLUMNS
    cut = r.pos + 3
    assert r.feed(data, r.pos, cut, meta) == mod.NEED and r.rows is None
    assert r.feed(data, r.pos, len(data), meta) == mod.ROWS and r.rows == [(1,), (2,)]
    assert r.feed(data, r.pos, len(data), meta) == mod.ERROR and r.error == err
    assert r.rows is None and r.pos == len(data)


# ------------------------------------------------------------- multi-result


def test_multi_result_with_start(mod: Any) -> None:
    first = result_payloads(ONE_COL, [[b"1"]], status=0x0A)  # MORE_RESULTS | AUTOCOMMIT
    second = result_payloads([column_def(b"a"), column_def(b"b")], [[b"2", b"3"]], status=0x2A)
    last = [ok_payload(0, 0, 0x02, 0)]
    data = packets(first + second) + packets(last, seq=1 + len(first) + len(second))
    want, used = pymysql_parse(data)
    assert [w["kind"] for w in want] == ["result", "result", "ok"]
    convs = [w.get("converters", []) for w in want]
    for cuts in ([], range(0, len(data), 11)):
        d = drive(mod, data, lambda i: convs[i], cuts=cuts, moves=[1, 4])
        check_against_pymysql(d, want)
        assert d.consumed == used == len(data)


# ---------------------------------------------------------------- lifecycle


def test_feed_before_start_after_end_and_reentry(mod: Any) -> None:
    r = mod.ResponseReader()
    with pytest.raises(RuntimeError, match="before start"):
        r.feed(b"", 0, 0, {})
    data = select1()
    key = block_of(data)

    def conv(x: str) -> int:
        r.feed(data, 0, len(data), {})  # from inside feed
        return 0

    r.start(1)
    with pytest.raises(RuntimeError, match="already running feed"):
        r.feed(data, 0, len(data), {key: Shape(plans_of(mod).make_plan([("ascii", conv)]))})

    def conv2(x: str) -> int:
        r.start(1)
        return 0

    with pytest.raises(RuntimeError, match="already running feed"):
        r.feed(data, 0, len(data), {key: Shape(plans_of(mod).make_plan([("ascii", conv2)]))})
    assert r.feed(data, 0, len(data), {key: Shape(plans_of(mod).make_plan([INT]))}) == mod.RESULT
    with pytest.raises(RuntimeError, match="after the response ended"):
        r.feed(data, r.pos, len(data), {})


def test_start_drops_references(mod: Any) -> None:
    class Value:
        pass

    made: List[Any] = []

    def conv(x: str) -> Any:
        v = Value()
        made.append(weakref.ref(v))
        return v

    data = select1()
    meta = meta_for(mod, data, [("ascii", conv)])
    shape_ref = weakref.ref(meta[block_of(data)])
    r, status = feed_all(mod, data, meta)
    assert status == mod.RESULT and made[0]() is not None
    meta.clear()
    r.start(2)
    gc.collect()
    assert made[0]() is None and shape_ref() is None
    assert state(r) == (0, 2, 0, 0, None, None, 0, 0, b"", None, None, None, None, -1)


def test_reader_is_reusable_and_attributes_read_only(mod: Any) -> None:
    r = mod.ResponseReader()
    for seq in (1, 3, 200):
        data = select1(seq)
        r.start(seq)
        assert r.feed(data, 0, len(data), meta_for(mod, data, [INT])) == mod.RESULT
    for name in ("pos", "seq", "rows", "shape", "need", "message"):
        with pytest.raises(AttributeError):
            setattr(r, name, 1)


# ---------------------------------------------------------------- arguments


def test_argument_errors(mod: Any) -> None:
    r = mod.ResponseReader()
    for seq in (-1, 256, 2**80):
        with pytest.raises(ValueError, match="start\\(\\) needs 0 <= seq <= 255"):
            r.start(seq)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        r.start(1.0)
    r.start(True)
    assert r.seq == 1
    data = select1()
    n = len(data)
    for pos, end in ((-1, n), (0, n + 1), (3, 2), (0, -1), (2**70, 2**71)):
        with pytest.raises(ValueError, match="needs 0 <= pos <= end <= len\\(buf\\)"):
            r.feed(data, pos, end, {})
    with pytest.raises(ValueError, match="needs limit >= 0"):
        r.feed(data, 0, n, {}, -1)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        r.feed(data, 0.0, n, {})
    with pytest.raises(TypeError, match="argument 'buf' must be a bytes-like object, not 'str'"):
        r.feed("abc", 0, 1, {})
    with pytest.raises(BufferError, match="C-contiguous"):
        r.feed(memoryview(b"abcdef")[::2], 0, 1, {})
    with pytest.raises(TypeError, match="argument 'meta' must be a dict, not 'list'"):
        r.feed(data, 0, n, [])
    assert r.pos == 0 and r.seq == 1
    assert r.feed(data, 0, n, {}) == mod.META


def test_buffer_export_held_while_converting(mod: Any) -> None:
    buf = bytearray(select1())

    def resize(x: str) -> str:
        buf.extend(b"more")
        return x

    meta = meta_for(mod, bytes(buf), [("ascii", resize)])
    r = mod.ResponseReader()
    r.start(1)
    with pytest.raises(BufferError):
        r.feed(buf, 0, len(buf), meta)
    buf.extend(b"ok")  # free again after the call
    del buf[-2:]


def test_no_leaks(mod: Any) -> None:
    cols = [column_def(b"a"), column_def(b"b", FIELD_TYPE.VAR_STRING, 33)]
    data = packets(result_payloads(cols, [[b"1", b"x" * 30], [None, b"y"]] * 20))
    meta = meta_for(mod, data, [INT, TEXT])
    bad = bytearray(data)
    bad[-12] = 0xFC  # corrupt a row
    ok = packet(ok_payload(1, 2, 3, 4, b"hello"), 1)
    err = packet(err_payload(), 1)
    r = mod.ResponseReader()

    def work() -> None:
        for _ in range(30):
            for d in (data, ok, err):
                r.start(1)
                r.feed(d, 0, len(d), meta)
            r.start(1, True)
            while r.feed(data, r.pos, len(data), meta, 7) != mod.END:
                pass
            r.start(1)
            try:
                r.feed(bad, 0, len(bad), meta)
            except ValueError:
                pass
            r.start(1)
            r.feed(data, 0, len(data), {})  # META: a new key each time
            mod.build_command(3, b"SELECT 1")

    # traced memory after each of 7 rounds of work; the first two warm up
    sizes = []
    tracemalloc.start()
    try:
        for _ in range(7):
            work()
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert sizes[-1] - sizes[1] < 64 * 1024, sizes
    if hasattr(sys, "gettotalrefcount"):  # debug builds only
        refs = sys.gettotalrefcount()
        work()
        assert sys.gettotalrefcount() - refs < 100


# ------------------------------------------------------------ build_command


class _Capture:
    def __init__(self) -> None:
        self.out = bytearray()

    def sendall(self, data: bytes) -> None:
        self.out += data

    def settimeout(self, timeout: Any) -> None:
        pass


def pymysql_command(command: int, payload: bytes) -> tuple:
    """What PyMySQL's _execute_command writes, and its next sequence id."""
    import pymysql

    conn = pymysql.connections.Connection(defer_connect=True)
    sock = _Capture()
    conn._sock = sock
    conn._write_timeout = conn._current_timeout = None
    conn._result = None
    conn._execute_command(command, payload)
    return bytes(sock.out), conn._next_seq_id


@pytest.mark.parametrize(
    "size", [0, 1, 100, MAX_PACKET - 2, MAX_PACKET - 1, MAX_PACKET, 2 * MAX_PACKET - 1,
             2 * MAX_PACKET + 5],
)
def test_build_command_matches_pymysql(mod: Any, size: int) -> None:
    payload = bytes((i * 31) & 0xFF for i in range(min(size, 4096))) * (size // 4096 + 1)
    payload = payload[:size]
    got = mod.build_command(3, payload)
    want = pymysql_command(3, payload)
    assert got[1] == want[1] and got[0] == want[0]
    assert type(got[0]) is bytes
    if size + 1 >= MAX_PACKET and (size + 1) % MAX_PACKET == 0:
        assert got[0].endswith(b"\x00\x00\x00" + bytes([got[1] - 1]))  # the empty packet


def test_build_command_args(mod: Any) -> None:
    assert mod.build_command(14, b"") == (b"\x01\x00\x00\x00\x0e", 1)
    assert mod.build_command(3, bytearray(b"x")) == mod.build_command(3, memoryview(b"x"))
    for cmd in (-1, 256):
        with pytest.raises(ValueError, match="needs 0 <= command <= 255"):
            mod.build_command(cmd, b"")
    with pytest.raises(TypeError, match="argument 'payload' must be a bytes-like object, not 'str'"):
        mod.build_command(3, "SELECT 1")
    with pytest.raises(BufferError, match="C-contiguous payload"):
        mod.build_command(3, memoryview(b"abcd")[::2])
