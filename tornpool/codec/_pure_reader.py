"""Pure-Python twin of the C response reader (``_speedups.ResponseReader``)
and of ``_speedups.build_command``.

:class:`ResponseReader` parses one command's whole text-protocol response
(OK, ERR, result-set header, column-definition block, rows, EOF) out of the
caller's receive buffer, a call at a time, and says how many more bytes it
needs.  It mirrors PyMySQL 1.1/1.2's ``MySQLResult`` reading (see
docs/codec.md for every rule and the few places it is stricter); rows are
decoded by :func:`tornpool.codec._pure.decode_row`, the same code as
:func:`~tornpool.codec._pure.decode_rows`.

No I/O, no greenlets, no tornado, no sockets (DESIGN.md rule 1).
"""

from __future__ import annotations

import operator
import struct
from typing import Any, List, Optional, Tuple

from . import _pure

__all__ = [
    "ResponseReader", "build_command",
    "NEED", "OK", "RESULT", "ERROR", "META", "LOCAL_INFILE", "COLUMNS", "ROWS", "END", "BAD_SEQ",
]

# Statuses returned by ResponseReader.feed (identical in the C twin).
NEED = 0
OK = 1
RESULT = 2
ERROR = 3
META = 4
LOCAL_INFILE = 5
COLUMNS = 6
ROWS = 7
END = 8
BAD_SEQ = 9

MAX_PACKET = 0xFFFFFF
MAX_COLUMNS = 4096

# Reader phases.
_IDLE, _FIRST, _BLOCK, _ROWS, _DONE = range(5)

# Messages shared word for word with the C twin.
_BUSY_MSG = "ResponseReader is already running feed() (a re-entrant call from a converter?)"
_IDLE_MSG = "ResponseReader.feed() before start()"
_DONE_MSG = "ResponseReader.feed() after the response ended; call start() for the next one"
_BUF_MSG = "ResponseReader.feed() argument 'buf' must be a bytes-like object, not '%s'"
_CONTIG_MSG = "ResponseReader.feed() needs a C-contiguous buffer"
_ARGS_MSG = "ResponseReader.feed() needs 0 <= pos <= end <= len(buf)"
_LIMIT_MSG = "ResponseReader.feed() needs limit >= 0"
_META_MSG = "ResponseReader.feed() argument 'meta' must be a dict, not '%s'"
_SEQ_MSG = "ResponseReader.start() needs 0 <= seq <= 255"
_PLAN_MSG = (
    "ResponseReader.feed() needs meta[key].plan to be a Plan made by make_plan() "
    "of the same implementation"
)
_NCOLS_MSG = "the result set has %d columns but meta[key].plan has %d"
_CMD_MSG = "build_command() needs 0 <= command <= 255"
_CMD_BUF_MSG = "build_command() argument 'payload' must be a bytes-like object, not '%s'"
_CMD_CONTIG_MSG = "build_command() needs a C-contiguous payload"
# Malformed responses (ValueError).
_EMPTY_MSG = "malformed response: empty packet"
_SPLIT_MSG = "malformed response: a %d-byte packet where a single packet is required"
_COUNT_MSG = "malformed response: column count %d (must be 1..4096)"
_LENENC_MSG = "malformed response: truncated length-encoded integer in the %s"
_LENENC_FF_MSG = "malformed response: 0xFF is not a length-encoded integer (in the OK packet)"
_OK_MSG = "malformed response: OK packet too short for its status and warnings"
_ERR_MSG = "malformed response: ERR packet shorter than 4 bytes"
_EOF_MSG = "malformed response: EOF packet shorter than 5 bytes"
_EARLY_EOF_MSG = "malformed response: EOF packet after %d of %d column definitions"
_NO_EOF_MSG = "malformed response: the column definitions are not followed by an EOF packet"
_ROW_MSG = "malformed response: row packet is not exactly %d length-encoded values"
_SPLIT_ERR_MSG = "malformed response: a row split over several packets starts with 0xFF"

_EOF_BODY = struct.Struct("<hh")  # warnings, status: signed, as PyMySQL's EOFPacketWrapper
_OK_BODY = struct.Struct("<HH")  # status, warnings: unsigned, as PyMySQL's OKPacketWrapper
_HEADER = struct.Struct("<I")


class ResponseReader:
    """Incremental parser of one command's response; one per connection,
    reusable with :meth:`start`.  See docs/codec.md for the contract."""

    __slots__ = (
        "_phase", "_unbuffered", "_busy", "_pos", "_seq", "_need", "_field_count",
        "_affected_rows", "_insert_id", "_server_status", "_warning_count", "_message",
        "_shape", "_meta_key", "_rows", "_error", "_got_seq", "_plan", "_acc",
    )

    def __init__(self) -> None:
        self._phase = _IDLE
        self._unbuffered = False
        self._busy = False
        self._acc: List[Tuple[Any, ...]] = []
        self._reset(0)

    def _reset(self, seq: int) -> None:
        self._pos = 0
        self._seq = seq
        self._need = 0
        self._field_count = 0
        self._affected_rows: Optional[int] = None
        self._insert_id: Optional[int] = None
        self._server_status = 0
        self._warning_count = 0
        self._message = b""
        self._shape: Any = None
        self._meta_key: Optional[bytes] = None
        self._rows: Optional[List[Tuple[Any, ...]]] = None
        self._error: Optional[bytes] = None
        self._got_seq = -1
        self._plan: Optional[_pure.Plan] = None
        self._acc = []

    # -- read-only attributes ------------------------------------------------
    @property
    def pos(self) -> int:
        """Where the last :meth:`feed` stopped consuming."""
        return self._pos

    @property
    def seq(self) -> int:
        """The sequence id the packet at :attr:`pos` must carry."""
        return self._seq

    @property
    def need(self) -> int:
        """After NEED: bytes needed from :attr:`pos` before progress is possible."""
        return self._need

    @property
    def field_count(self) -> int:
        """Number of columns of the current result set (0 before its header)."""
        return self._field_count

    @property
    def affected_rows(self) -> Optional[int]:
        """OK packet: affected rows (None for a 0xFB NULL, or without an OK packet)."""
        return self._affected_rows

    @property
    def insert_id(self) -> Optional[int]:
        """OK packet: last insert id (None for a 0xFB NULL, or without an OK packet)."""
        return self._insert_id

    @property
    def server_status(self) -> int:
        """From the OK packet (unsigned) or the EOF ending a result (signed)."""
        return self._server_status

    @property
    def warning_count(self) -> int:
        """From the OK packet (unsigned) or the EOF ending a result (signed)."""
        return self._warning_count

    @property
    def message(self) -> bytes:
        """OK packet: every byte after the warning count; ``b""`` otherwise."""
        return self._message

    @property
    def shape(self) -> Any:
        """``meta[meta_key]`` of the current result set, once found."""
        return self._shape

    @property
    def meta_key(self) -> Optional[bytes]:
        """Raw bytes of the current result's column-definition block, once keyed."""
        return self._meta_key

    @property
    def rows(self) -> Optional[List[Tuple[Any, ...]]]:
        """RESULT: every row; ROWS/END: the rows of that call; else None."""
        return self._rows

    @property
    def error(self) -> Optional[bytes]:
        """ERROR: the ERR packet's payload (first byte 0xFF)."""
        return self._error

    @property
    def got_seq(self) -> int:
        """BAD_SEQ: the sequence id found (-1 otherwise)."""
        return self._got_seq

    # -- operations ----------------------------------------------------------
    def start(self, seq: int, unbuffered: bool = False, /) -> None:
        """Begin a new response whose first packet carries sequence id *seq*;
        drops every reference held for the previous one.

        :raises ValueError: unless ``0 <= seq <= 255``.
        :raises RuntimeError: when called from inside :meth:`feed`.
        """
        if self._busy:
            raise RuntimeError(_BUSY_MSG)
        seq = operator.index(seq)
        if not 0 <= seq <= 255:
            raise ValueError(_SEQ_MSG)
        flag = bool(unbuffered)
        self._reset(seq)
        self._unbuffered = flag
        self._phase = _FIRST

    def feed(self, buf: Any, pos: int, end: int, meta: dict[bytes, Any], limit: int = 0, /) -> int:
        """Consume the complete packets of this response in ``buf[pos:end]``.

        :returns: a status (NEED, OK, RESULT, ERROR, META, LOCAL_INFILE,
            COLUMNS, ROWS, END or BAD_SEQ); the attributes say the rest.
        :raises ValueError: on a malformed response or bad offsets (the
            reader is then as it was before the call).
        :raises TypeError: on bad argument types or a ``meta[key].plan``
            that is not a Plan of this implementation.
        :raises RuntimeError: before :meth:`start`, after the response ended,
            or when re-entered from a converter.
        """
        if self._busy:
            raise RuntimeError(_BUSY_MSG)
        if self._phase == _IDLE:
            raise RuntimeError(_IDLE_MSG)
        if self._phase == _DONE:
            raise RuntimeError(_DONE_MSG)
        with _pure.open_buffer(buf, _BUF_MSG, _CONTIG_MSG) as mv:
            pos = operator.index(pos)
            end = operator.index(end)
            limit = operator.index(limit)
            if not 0 <= pos <= end <= mv.nbytes:
                raise ValueError(_ARGS_MSG)
            if limit < 0:
                raise ValueError(_LIMIT_MSG)
            if not isinstance(meta, dict):
                raise TypeError(_META_MSG % type(meta).__name__)
            data = _pure.view_bytes(mv, pos, end)
            # The export stays held while converters run, as in the C twin.
            self._busy = True
            try:
                return self._run(data, pos, meta, limit)
            finally:
                self._busy = False

    # -- the parser ----------------------------------------------------------
    def _run(self, data: bytes, base: int, meta: dict[bytes, Any], limit: int) -> int:
        """Parse *data* (``buf[base:end]``); commit the new state only on
        success, so an exception leaves the reader untouched."""
        n = len(data)
        p = 0
        s = self._seq
        phase = self._phase
        field_count = self._field_count
        shape = self._shape
        key = self._meta_key
        plan = self._plan
        unbuffered = self._unbuffered
        got: List[Tuple[Any, ...]] = []
        need = 0

        if phase == _FIRST:
            if n < 4:
                return self._stop(NEED, base, 0, s, phase, need=4)
            plen = data[0] | (data[1] << 8) | (data[2] << 16)
            if data[3] != s:
                return self._bad_seq(base, 0, s, data[3])
            if plen == 0:
                raise ValueError(_EMPTY_MSG)
            if plen == MAX_PACKET:
                raise ValueError(_SPLIT_MSG % MAX_PACKET)
            if n - 4 < plen:
                return self._stop(NEED, base, 0, s, phase, need=4 + plen)
            stop = 4 + plen
            first = data[4]
            if first == 0 and plen >= 7:
                return self._ok(data, base, stop, s)
            if first == 0xFF:
                return self._err(data, base, 0, stop, s)
            if first == 0xFB:
                return self._stop(LOCAL_INFILE, base, 0, s, _DONE)
            count, _ = _lenenc(data, 4, stop, "result-set header")
            if count is None or not 1 <= count <= MAX_COLUMNS:
                raise ValueError(_COUNT_MSG % (count or 0))
            field_count = count
            p = stop
            s = (s + 1) & 0xFF
            phase = _BLOCK

        if phase == _BLOCK:
            q = p
            k = s
            for i in range(field_count + 1):
                if n - q < 4:
                    return self._stop(NEED, base, p, s, phase, field_count, need=q + 4 - p)
                plen = data[q] | (data[q + 1] << 8) | (data[q + 2] << 16)
                if data[q + 3] != k:
                    return self._bad_seq(base, q, k, data[q + 3], field_count)
                if plen == MAX_PACKET:
                    raise ValueError(_SPLIT_MSG % MAX_PACKET)
                if plen == 0:
                    raise ValueError(_EMPTY_MSG)
                if n - q - 4 < plen:
                    return self._stop(NEED, base, p, s, phase, field_count, need=q + 4 + plen - p)
                first = data[q + 4]
                if first == 0xFF:
                    self._field_count = field_count
                    return self._err(data, base, q, q + 4 + plen, k)
                is_eof = first == 0xFE and plen < 9
                if i < field_count:
                    if is_eof:
                        raise ValueError(_EARLY_EOF_MSG % (i, field_count))
                elif not is_eof:
                    raise ValueError(_NO_EOF_MSG)
                q += 4 + plen
                k = (k + 1) & 0xFF
            key = data[p:q]
            shape = meta.get(key)
            if shape is None:
                self._meta_key = key
                return self._stop(META, base, p, s, phase, field_count)
            plan = shape.plan
            if type(plan) is not _pure.Plan:
                raise TypeError(_PLAN_MSG)
            if plan.ncols != field_count:
                raise ValueError(_NCOLS_MSG % (field_count, plan.ncols))
            p = q
            s = k
            phase = _ROWS
            if unbuffered:
                self._commit_shape(shape, key, plan)
                return self._stop(COLUMNS, base, p, s, phase, field_count)

        # phase == _ROWS
        assert plan is not None
        status = NEED
        while True:
            if unbuffered and limit and len(got) >= limit:
                status = ROWS
                break
            if n - p < 4:
                need = 4
                break
            plen = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16)
            if data[p + 3] != s:
                if unbuffered and got:
                    status = ROWS
                    break
                self._commit_shape(shape, key, plan)
                return self._bad_seq(base, p, s, data[p + 3], field_count)
            if plen == 0:
                raise ValueError(_EMPTY_MSG)
            if plen == MAX_PACKET:
                # A row split over several packets: every part but the last
                # is 0xFFFFFF bytes long, each carries the next sequence id.
                q = p
                k = s
                parts = []
                while True:
                    if n - q < 4:
                        need = q + 4 - p
                        break
                    part = data[q] | (data[q + 1] << 8) | (data[q + 2] << 16)
                    if data[q + 3] != k:
                        break
                    if n - q - 4 < part:
                        need = q + 4 + part - p
                        break
                    parts.append(data[q + 4 : q + 4 + part])
                    q += 4 + part
                    k = (k + 1) & 0xFF
                    if part < MAX_PACKET:
                        break
                if need:
                    break
                if not parts or len(parts[-1]) == MAX_PACKET:
                    # the sequence id of part len(parts) is wrong
                    if unbuffered and got:
                        status = ROWS
                        break
                    self._commit_shape(shape, key, plan)
                    return self._bad_seq(base, q, k, data[q + 3], field_count)
                payload = b"".join(parts)
                if payload[0] == 0xFF:
                    raise ValueError(_SPLIT_ERR_MSG)
                row = _pure.decode_row(payload, 0, len(payload), plan)
                if row is None:
                    raise ValueError(_ROW_MSG % field_count)
                got.append(row)
                p = q
                s = k
                continue
            if n - p - 4 < plen:
                need = 4 + plen
                break
            first = data[p + 4]
            if first == 0xFF:
                if unbuffered and got:
                    status = ROWS
                    break
                self._commit_shape(shape, key, plan)
                self._field_count = field_count
                return self._err(data, base, p, p + 4 + plen, s)
            if first == 0xFE and plen < 9:
                if unbuffered and got:
                    status = ROWS
                    break
                if plen < 5:
                    raise ValueError(_EOF_MSG)
                warnings, server_status = _EOF_BODY.unpack_from(data, p + 5)
                self._commit_shape(shape, key, plan)
                self._server_status = server_status
                self._warning_count = warnings
                if unbuffered:
                    self._rows = got
                    status = END
                else:
                    acc = self._acc
                    acc.extend(got)
                    self._rows = acc
                    status = RESULT
                self._acc = []
                return self._stop(status, base, p + 4 + plen, (s + 1) & 0xFF, _DONE, field_count)
            row = _pure.decode_row(data, p + 4, p + 4 + plen, plan)
            if row is None:
                raise ValueError(_ROW_MSG % field_count)
            got.append(row)
            p += 4 + plen
            s = (s + 1) & 0xFF

        self._commit_shape(shape, key, plan)
        if unbuffered:
            if got:
                status = ROWS
                need = 0
            self._rows = got if status == ROWS else None
        else:
            self._acc.extend(got)
        return self._stop(status, base, p, s, phase, field_count, need=need)

    # -- commit helpers (called only once the outcome is certain) -------------
    def _stop(
        self, status: int, base: int, p: int, s: int, phase: int, field_count: int = 0,
        need: int = 0,
    ) -> int:
        self._pos = base + p
        self._seq = s
        self._phase = phase
        self._need = need if status == NEED else 0
        if field_count:
            self._field_count = field_count
        if status not in (ROWS, END, RESULT):
            self._rows = None
        return status

    def _commit_shape(self, shape: Any, key: Optional[bytes], plan: Optional[_pure.Plan]) -> None:
        self._shape = shape
        self._meta_key = key
        self._plan = plan

    def _bad_seq(self, base: int, p: int, expected: int, found: int, field_count: int = 0) -> int:
        self._got_seq = found
        self._acc = []
        return self._stop(BAD_SEQ, base, p, expected, _DONE, field_count)

    def _ok(self, data: bytes, base: int, stop: int, s: int) -> int:
        affected, q = _lenenc(data, 5, stop, "OK packet")
        insert_id, q = _lenenc(data, q, stop, "OK packet")
        if stop - q < 4:
            raise ValueError(_OK_MSG)
        status, warnings = _OK_BODY.unpack_from(data, q)
        self._affected_rows = affected
        self._insert_id = insert_id
        self._server_status = status
        self._warning_count = warnings
        self._message = data[q + 4 : stop]
        return self._stop(OK, base, stop, (s + 1) & 0xFF, _DONE)

    def _err(self, data: bytes, base: int, p: int, stop: int, s: int) -> int:
        if stop - p - 4 < 4:  # marker, errno, and what pymysql.err reads at [3]
            raise ValueError(_ERR_MSG)
        self._error = data[p + 4 : stop]
        self._acc = []
        return self._stop(ERROR, base, stop, (s + 1) & 0xFF, _DONE)


def _lenenc(data: bytes, q: int, stop: int, where: str) -> Tuple[Optional[int], int]:
    """A length-encoded integer at ``data[q]`` (None for 0xFB) and the offset
    after it.

    :raises ValueError: if it runs past *stop* or starts with 0xFF.
    """
    if q >= stop:
        raise ValueError(_LENENC_MSG % where)
    c = data[q]
    if c < 0xFB:
        return c, q + 1
    if c == 0xFB:
        return None, q + 1
    if c == 0xFF:
        raise ValueError(_LENENC_FF_MSG)
    width = 2 if c == 0xFC else 3 if c == 0xFD else 8
    if stop - q - 1 < width:
        raise ValueError(_LENENC_MSG % where)
    return int.from_bytes(data[q + 1 : q + 1 + width], "little"), q + 1 + width


def build_command(command: int, payload: Any, /) -> Tuple[bytes, int]:
    """The bytes PyMySQL's ``Connection._execute_command(command, payload)``
    writes, and the sequence id the response's first packet must carry.

    The command byte and *payload* are split into packets of at most
    0xFFFFFF bytes with sequence ids 0, 1, ...; when the last one is exactly
    0xFFFFFF bytes long an empty packet follows, as PyMySQL sends it.

    :raises ValueError: unless ``0 <= command <= 255``.
    :raises TypeError: if *payload* is not a bytes-like object.
    """
    command = operator.index(command)
    if not 0 <= command <= 255:
        raise ValueError(_CMD_MSG)
    with _pure.open_buffer(payload, _CMD_BUF_MSG, _CMD_CONTIG_MSG) as mv:
        body = bytes([command]) + mv.tobytes()
    total = len(body)
    npackets = total // MAX_PACKET + 1
    out = bytearray()
    for i in range(npackets):
        chunk = body[i * MAX_PACKET : (i + 1) * MAX_PACKET]
        out += _HEADER.pack(len(chunk) | ((i & 0xFF) << 24))
        out += chunk
    return bytes(out), npackets & 0xFF
