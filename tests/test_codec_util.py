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


def both_params(pure_module: Any) -> List[Any]:
    """pytest params: *pure_module* and the C module, the C one skipped
    (with the reason above) when the extension is not built."""
    return [
        pytest.param(pure_module, id="python"),
        pytest.param(
            codec.speedups,
            id="c",
            marks=pytest.mark.skipif(codec.speedups is None, reason=C_SKIP_REASON),
        ),
    ]


#: pytest params over both implementations of the row codec.
IMPLS = both_params(codec.pure)

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


# ------------------------------------------------------------ response reader
#
# Builders for whole text-protocol responses, a driver that feeds one to a
# ResponseReader the way a connection does (chunks arriving, META answered,
# buffers compacted or replaced), and PyMySQL's own parsing of the same bytes.

import io  # noqa: E402
import random  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import pymysql  # noqa: E402
from pymysql import err as pymysql_err  # noqa: E402
from pymysql.constants import FIELD_TYPE  # noqa: E402

#: pytest params over both response readers.
READERS = both_params(codec.pure_reader)

#: Both reader modules when available, for differential tests.
BOTH_READERS = [m for m in (codec.pure_reader, codec.speedups) if m is not None]

MAX_PACKET = 0xFFFFFF
STATUS_NAMES = ("NEED", "OK", "RESULT", "ERROR", "META", "LOCAL_INFILE", "COLUMNS", "ROWS",
                "END", "BAD_SEQ")


def plans_of(mod: Any) -> Any:
    """The module whose ``make_plan`` goes with reader module *mod*."""
    return codec.pure if mod is codec.pure_reader else mod


def lenint(v: Optional[int], form: Optional[int] = None) -> bytes:
    """Length-encoded integer (None -> 0xFB); *form* forces 0xFC/0xFD/0xFE."""
    if v is None:
        return b"\xfb"
    if form is None:
        form = v if v < 251 else 0xFC if v < 1 << 16 else 0xFD if v < 1 << 24 else 0xFE
    if form < 251:
        return bytes([v])
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}[form]
    return bytes([form]) + v.to_bytes(width, "little")


def ok_payload(affected: Optional[int] = 0, insert_id: Optional[int] = 0, status: int = 2,
               warnings: int = 0, message: bytes = b"") -> bytes:
    return (b"\x00" + lenint(affected) + lenint(insert_id) + status.to_bytes(2, "little")
            + warnings.to_bytes(2, "little") + message)


def err_payload(errno: int = 1064, message: bytes = b"You have an error",
                sqlstate: Optional[bytes] = b"42000") -> bytes:
    return (b"\xff" + errno.to_bytes(2, "little") + (b"#" + sqlstate if sqlstate else b"")
            + message)


def eof_payload(warnings: int = 0, status: int = 2) -> bytes:
    return b"\xfe" + warnings.to_bytes(2, "little") + status.to_bytes(2, "little")


def column_def(name: bytes = b"c", type_code: int = FIELD_TYPE.LONG, charsetnr: int = 63,
               length: int = 11, flags: int = 0, decimals: int = 0, table: bytes = b"t") -> bytes:
    """A column-definition packet payload as the server sends it (protocol 4.1)."""
    return (lenenc(b"def") + lenenc(b"test") + lenenc(table) + lenenc(table) + lenenc(name)
            + lenenc(name) + b"\x0c" + charsetnr.to_bytes(2, "little")
            + length.to_bytes(4, "little") + bytes([type_code]) + flags.to_bytes(2, "little")
            + bytes([decimals]) + b"\x00\x00")


def result_payloads(columns: Sequence[bytes], rows: Sequence[Sequence[Optional[bytes]]],
                    warnings: int = 0, status: int = 2, block_status: int = 2) -> List[bytes]:
    """Header, column definitions, EOF, rows, EOF."""
    return ([lenint(len(columns))] + list(columns) + [eof_payload(0, block_status)]
            + [row_payload(r) for r in rows] + [eof_payload(warnings, status)])


def packets(payloads: Iterable[bytes], seq: int = 1) -> bytes:
    """Payloads framed as consecutive packets; a payload of 0xFFFFFF bytes or
    more is split as the server splits it (and followed by an empty packet
    when its length is a multiple of 0xFFFFFF)."""
    out = bytearray()
    for p in payloads:
        while True:
            chunk, p = p[:MAX_PACKET], p[MAX_PACKET:]
            out += packet(chunk, seq)
            seq = (seq + 1) & 0xFF
            if len(chunk) < MAX_PACKET:
                break
    return bytes(out)


class Shape:
    """What a connection would store in ``meta``: anything with ``.plan``."""

    __slots__ = ("plan", "index", "__weakref__")

    def __init__(self, plan: Any, index: int = 0) -> None:
        self.plan = plan
        self.index = index


@dataclass
class Drive:
    """Everything a driven reader reported, comparable between twins."""

    events: List[Tuple[Any, ...]] = field(default_factory=list)
    results: List[dict] = field(default_factory=list)
    consumed: int = 0


def snapshot(r: Any) -> dict:
    return {
        "pos": r.pos, "seq": r.seq, "need": r.need, "field_count": r.field_count,
        "affected_rows": r.affected_rows, "insert_id": r.insert_id,
        "server_status": r.server_status, "warning_count": r.warning_count,
        "message": r.message, "meta_key": r.meta_key, "error": r.error, "got_seq": r.got_seq,
        "rows": None if r.rows is None else typed(r.rows),
        "shape": None if r.shape is None else r.shape.index,
    }


def drive(mod: Any, data: bytes, converters: Any, *, seq: int = 1, unbuffered: bool = False,
          cuts: Sequence[int] = (), limit: int = 0, moves: Sequence[int] = (),
          meta: Optional[dict] = None, check_need: bool = True) -> Drive:
    """Feed *data* to a new ``mod.ResponseReader`` as a connection would.

    The bytes arrive in pieces ending at each offset in *cuts* (then the
    rest).  META is answered with a :class:`Shape` whose plan is built from
    ``converters(result_index)`` (or the one list given).  After each piece
    whose index is in *moves* the unconsumed bytes move to the start of a
    buffer (compacted in place, or copied to a new bytearray or bytes), so
    only offsets relative to ``.pos`` can matter; every fourth piece is fed
    through a memoryview.  A result whose server
    status has SERVER_MORE_RESULTS_EXISTS is followed by ``start(r.seq)``.
    Every NEED is checked: ``need`` exceeds what is buffered, and stays the
    same until that many bytes are there.
    """
    make_plan = plans_of(mod).make_plan
    conv = converters if callable(converters) else (lambda i: converters)
    meta = {} if meta is None else meta
    r = mod.ResponseReader()
    r.start(seq, unbuffered)
    out = Drive()
    buf: Any = bytearray()
    base = 0  # offset in data of buf[0]
    pos = 0
    index = 0
    rows: List[Any] = []
    last_need: Optional[Tuple[int, int]] = None
    done = False
    ends = sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]
    start = 0
    for piece, stop in enumerate(ends):
        buf += data[start:stop]
        start = stop
        while not done:
            if piece % 4 == 3:
                with memoryview(buf) as view:
                    status = r.feed(view, pos, len(buf), meta, limit)
            else:
                status = r.feed(buf, pos, len(buf), meta, limit)
            name = STATUS_NAMES[status]
            out.events.append((name, base + r.pos, r.seq, r.need))
            if name == "NEED":
                avail = len(buf) - r.pos
                if check_need:
                    assert r.need > avail, (r.need, avail)
                    if last_need is not None and last_need[0] == base + r.pos:
                        assert r.need >= last_need[1]
                        if stop - (base + r.pos) >= last_need[1] and r.need == last_need[1]:
                            raise AssertionError("need %d was available, no progress" % r.need)
                last_need = (base + r.pos, r.need)
                pos = r.pos
                break
            last_need = None
            pos = r.pos
            if name == "META":
                assert r.meta_key is not None and r.meta_key not in meta
                assert bytes(buf[pos:pos + len(r.meta_key)]) == r.meta_key
                meta[r.meta_key] = Shape(make_plan(conv(index)), index)
                continue
            if name in ("ROWS", "RESULT"):
                rows.extend(r.rows)
            if name in ("COLUMNS", "ROWS"):
                continue
            res = snapshot(r)
            res["pos"] = base + r.pos
            res["status"] = name
            res["rows"] = typed(rows) if name in ("RESULT", "END") else None
            out.results.append(res)
            rows = []
            index += 1
            if name in ("OK", "RESULT", "END") and r.server_status & 8:
                r.start(r.seq, unbuffered)
                continue
            done = True
        if piece in moves:
            rest = bytes(buf[pos:])
            base += pos
            kind = piece % 3
            if kind == 0 and isinstance(buf, bytearray):
                del buf[:pos]  # compacted in place
            elif kind == 2:
                buf = rest  # immutable: the next piece makes a new object
            else:
                buf = bytearray(rest)  # another buffer object
            pos = 0
        if done:
            break
    out.consumed = base + pos
    return out


def drive_outcome(mod: Any, data: bytes, converters: Any, **kw: Any) -> Tuple[Any, ...]:
    """``("ok", events, results, consumed)`` of :func:`drive`, or
    ``("raise", type, message)`` for what the reader raised (the driver's
    own assertion failures propagate)."""
    try:
        d = drive(mod, data, converters, **kw)
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - compared between twins
        return ("raise", type(exc), str(exc))
    return ("ok", d.events, d.results, d.consumed)


def random_cuts(rng: random.Random, n: int, k: int) -> List[int]:
    return sorted(rng.randrange(n + 1) for _ in range(k))


class _NoSocket:
    """The socket PyMySQL sees when it parses bytes we hand it."""

    def settimeout(self, timeout: Any) -> None:
        pass

    def close(self) -> None:
        pass


def pymysql_parse(data: bytes, *, seq: int = 1, unbuffered: bool = False,
                  **conn_kwargs: Any) -> Tuple[List[dict], int]:
    """PyMySQL's own reading of the response bytes *data*: one dict per
    result (statuses, rows, or the exception), and the bytes it consumed."""
    conn = pymysql.connections.Connection(defer_connect=True, **conn_kwargs)
    rfile = io.BytesIO(data)
    conn._rfile = rfile
    conn._sock = _NoSocket()
    conn._read_timeout = conn._current_timeout = None  # 1.2.1+ compares them
    conn._next_seq_id = seq
    conn._result = None
    out: List[dict] = []
    while True:
        res: dict = {}
        out.append(res)
        # Connection._read_query_result, keeping hold of the result object
        result = MySQLResult(conn)
        try:
            if unbuffered:
                result.init_unbuffered_query()
            else:
                result.read()
            conn._result = result
            rows = None
            if unbuffered and result.unbuffered_active:
                rows = []
                while result.unbuffered_active:
                    row = result._read_rowdata_packet_unbuffered()
                    if row is not None:
                        rows.append(row)
            elif result.rows is not None:
                rows = list(result.rows)
            res.update(
                kind="result" if result.field_count else "ok",
                affected_rows=result.affected_rows, insert_id=result.insert_id,
                server_status=result.server_status, warning_count=result.warning_count,
                message=result.message, has_next=bool(result.has_next),
                field_count=result.field_count,
                rows=None if rows is None else typed(rows),
                converters=list(getattr(result, "converters", [])),
            )
        except Exception as exc:  # noqa: BLE001
            result.unbuffered_active = False  # no draining from __del__
            res.update(kind="raise", exc=(type(exc), exc.args),
                       converters=list(getattr(result, "converters", [])))
            break
        if not result.has_next:
            break
    consumed = rfile.tell() if not rfile.closed else -1
    return out, consumed


def server_error(payload: bytes) -> Tuple[Any, Any]:
    """The exception PyMySQL raises for an ERR payload, as (type, args)."""
    try:
        pymysql_err.raise_mysql_exception(payload)
    except Exception as exc:  # noqa: BLE001
        return (type(exc), exc.args)
    raise AssertionError("raise_mysql_exception did not raise")


def check_against_pymysql(d: Drive, want: List[dict], unbuffered: bool = False) -> None:
    """A driven reader's results agree with :func:`pymysql_parse`'s."""
    assert len(d.results) == len(want), (d.results, want)
    for got, w in zip(d.results, want):
        if w["kind"] == "raise":
            etype, args = w["exc"]
            if got["status"] == "ERROR":
                assert server_error(got["error"]) == (etype, args)
            elif got["status"] == "BAD_SEQ":
                if got["got_seq"] == 0:
                    assert etype is pymysql_err.OperationalError and args[0] == 2013
                else:
                    assert etype is pymysql_err.InternalError
                    assert args == ("Packet sequence number wrong - got %d expected %d"
                                    % (got["got_seq"], got["seq"]),)
            else:
                raise AssertionError("PyMySQL raised %r, reader said %r" % (w["exc"], got))
            continue
        if w["kind"] == "ok":
            assert got["status"] == "OK", got
            for k in ("affected_rows", "insert_id", "server_status", "warning_count", "message"):
                assert got[k] == w[k], (k, got[k], w[k])
        else:
            assert got["status"] == ("END" if unbuffered else "RESULT"), got
            assert got["field_count"] == w["field_count"]
            assert got["rows"] == w["rows"]
            assert got["warning_count"] == w["warning_count"]
        assert bool(got["server_status"] & 8) == w["has_next"]


# Small helpers of the reader unit tests.

ONE_COL = [column_def(b"1", FIELD_TYPE.LONGLONG)]


def select1(seq: int = 1, status: int = 2) -> bytes:
    """SELECT 1's whole response, as MariaDB sends it."""
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
    """A new reader of *mod* fed the whole of *data* once: (reader, status)."""
    r = mod.ResponseReader()
    r.start(seq, unbuffered)
    status = r.feed(data, 0, len(data), meta, limit)
    return r, status


def meta_for(mod: Any, data: bytes, converters: list, header_len: int = 5) -> dict:
    """A ``meta`` that knows *data*'s column block, with a plan of *converters*."""
    return {block_of(data, header_len): Shape(plans_of(mod).make_plan(converters))}


def reader_state(r: Any) -> tuple:
    """Every attribute of a reader, for before/after comparisons."""
    return (r.pos, r.seq, r.need, r.field_count, r.affected_rows, r.insert_id, r.server_status,
            r.warning_count, r.message, r.shape, r.meta_key, r.rows, r.error, r.got_seq)
