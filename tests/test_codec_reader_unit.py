"""Bytes-in tests of ResponseReader, every test on both twins: the statuses,
the first packet, the column block, rows and the end of a result.

Hand-built responses for each rule of docs/codec.md; where PyMySQL has an
answer for the same bytes, the reader's is checked against it
(``pymysql_parse`` runs PyMySQL's own ``MySQLResult`` over them).  Split
rows, sequence ids, unbuffered and multi-result reading, the lifecycle,
arguments and build_command are in test_codec_reader_flow.py.
"""

from __future__ import annotations

from typing import Any, List

import pytest
from pymysql.constants import FIELD_TYPE

try:
    from test_codec_util import (
        INT, MAX_PACKET, ONE_COL, READERS, STATUS_NAMES, TEXT, block_of,
        check_against_pymysql, column_def, drive, eof_payload, err_payload, feed_all, lenenc,
        lenint, meta_for, ok_payload, packet, packets, plans_of, pymysql_parse, reader_state,
        result_payloads, row_payload, select1, server_error, Shape,
    )
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        INT, MAX_PACKET, ONE_COL, READERS, STATUS_NAMES, TEXT, block_of,
        check_against_pymysql, column_def, drive, eof_payload, err_payload, feed_all, lenenc,
        lenint, meta_for, ok_payload, packet, packets, plans_of, pymysql_parse, reader_state,
        result_payloads, row_payload, select1, server_error, Shape,
    )

from tornpool import codec

pytestmark = pytest.mark.parametrize("mod", READERS)

# ------------------------------------------------------------------ statuses


def test_status_codes_are_shared(mod: Any) -> None:
    for i, name in enumerate(STATUS_NAMES):
        assert getattr(mod, name) == i
        assert getattr(codec, name) == i
    # tornpool.codec exports the active implementation's reader
    active = codec.speedups if codec.IMPL == "c" else codec.pure_reader
    assert codec.ResponseReader is active.ResponseReader
    assert codec.build_command is active.build_command


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
    before = reader_state(r)
    with pytest.raises(ValueError, match="malformed response: " + (message or "column count 0")):
        r.feed(data, 0, len(data), {})
    assert reader_state(r) == before


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
    before = reader_state(r)
    with pytest.raises(ValueError, match="row packet is not exactly 2 length-encoded values"):
        r.feed(data, r.pos, len(data), meta)
    assert reader_state(r) == before
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
