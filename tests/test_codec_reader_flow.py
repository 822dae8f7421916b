"""Bytes-in tests of ResponseReader and build_command, every test on both
twins: rows split over packets, sequence ids, unbuffered and multi-result
reading, the reader's lifecycle, arguments and memory, and build_command
against what PyMySQL's ``_execute_command`` writes.
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
        BLOB, INT, MAX_PACKET, ONE_COL, READERS, TEXT, block_of, check_against_pymysql,
        column_def, drive, err_payload, feed_all, meta_for, ok_payload, packet, packets,
        plans_of, pymysql_parse, reader_state, result_payloads, select1, Shape,
    )
except ImportError:  # tests/ imported as a package
    from .test_codec_util import (  # type: ignore[no-redef]
        BLOB, INT, MAX_PACKET, ONE_COL, READERS, TEXT, block_of, check_against_pymysql,
        column_def, drive, err_payload, feed_all, meta_for, ok_payload, packet, packets,
        plans_of, pymysql_parse, reader_state, result_payloads, select1, Shape,
    )

pytestmark = pytest.mark.parametrize("mod", READERS)


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
    assert reader_state(r) == (0, 2, 0, 0, None, None, 0, 0, b"", None, None, None, None, -1)


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
