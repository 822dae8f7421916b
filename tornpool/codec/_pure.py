"""Pure-Python twin of :mod:`tornpool.codec._speedups`.

Decodes MySQL text-protocol row packets straight out of a receive buffer.
Every value is produced the way PyMySQL's ``MySQLResult._read_row_from_packet``
produces it (``bytes`` -> optional ``.decode(encoding)`` -> optional
``converter(value)``), so this module is exact by construction; the C twin
must give the same values, types and exceptions and is tested against this
module and against PyMySQL itself.

No I/O, no greenlets, no tornado, no sockets (DESIGN.md rule 1).
"""

from __future__ import annotations

import decimal
import operator
from typing import Any, Callable, Optional, Sequence, Tuple

from pymysql import converters as _pmc

__all__ = ["Plan", "make_plan", "decode_rows", "IMPL"]

IMPL = "python"

# --- classification shared (by name) with the C twin -------------------------
# Encoding kinds: which text decoding a column needs.
_ENC_NAMES = {
    None: "bytes",
    "ascii": "ascii",
    "utf8": "utf8",
    "utf-8": "utf8",
    "utf_8": "utf8",
    "latin1": "latin1",
    "latin-1": "latin1",
    "latin_1": "latin1",
    "cp1252": "cp1252",
}

# Converter kinds, recognised by identity only.
_CONV_KINDS: Tuple[Tuple[Any, str], ...] = (
    (None, "none"),
    (_pmc.through, "none"),
    (int, "int"),
    (float, "float"),
    (decimal.Decimal, "decimal"),
    (_pmc.convert_datetime, "datetime"),
    (_pmc.convert_date, "date"),
    (_pmc.convert_timedelta, "timedelta"),
    (_pmc.convert_time, "time"),
)

_ARGS_MSG = "decode_rows() needs 0 <= pos <= end <= len(buf)"
_SEQ_MSG = "decode_rows() needs 0 <= seq <= 255"
_PLAN_MSG = "decode_rows() needs a Plan made by make_plan() of the same implementation"
_BUF_MSG = "decode_rows() argument 'buf' must be a bytes-like object, not '%s'"
_CONTIG_MSG = "decode_rows() needs a C-contiguous buffer"
_PAIR_MSG = "make_plan() needs a sequence of (encoding, converter) pairs; item %d is not one"
_SEQ_TYPE_MSG = "make_plan() needs a list or tuple of (encoding, converter) pairs"


def _enc_kind(encoding: object) -> str:
    if encoding is None:
        return "bytes"
    if type(encoding) is str:
        return _ENC_NAMES.get(encoding, "other")
    return "other"


def _conv_kind(converter: object) -> str:
    for obj, name in _CONV_KINDS:
        if converter is obj:
            return name
    return "call"


class Plan:
    """Per-result-set decoding plan: one ``(encoding, converter)`` per column.

    Build it with :func:`make_plan`; it is immutable and may be cached and
    reused for every result set with the same column metadata.
    """

    __slots__ = ("_cols", "ncols", "kinds")

    _cols: Tuple[Tuple[Any, Any], ...]
    ncols: int
    kinds: Tuple[str, ...]

    def __init__(self, cols: Tuple[Tuple[Any, Any], ...]) -> None:
        object.__setattr__(self, "_cols", cols)
        object.__setattr__(self, "ncols", len(cols))
        object.__setattr__(
            self, "kinds", tuple(_enc_kind(e) + ":" + _conv_kind(c) for e, c in cols)
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Plan is immutable")

    def __repr__(self) -> str:
        return "<tornpool.codec Plan ncols=%d impl=python>" % self.ncols


def make_plan(
    converters: Sequence[Tuple[Optional[str], Optional[Callable[[Any], Any]]]], /
) -> Plan:
    """Build a :class:`Plan` from PyMySQL's ``MySQLResult.converters`` list.

    :raises TypeError: if *converters* is not a sequence of 2-item tuples/lists.
    """
    if not isinstance(converters, (list, tuple)):
        raise TypeError(_SEQ_TYPE_MSG)
    cols = []
    for i, item in enumerate(list(converters)):
        if type(item) not in (tuple, list) or len(item) != 2:
            raise TypeError(_PAIR_MSG % i)
        cols.append((item[0], item[1]))
    return Plan(tuple(cols))


def decode_rows(
    buf: Any, pos: int, end: int, seq: int, plan: Plan, /
) -> Tuple[list[Tuple[Any, ...]], int, int]:
    """Decode the complete text-protocol row packets in ``buf[pos:end]``.

    Returns ``(rows, new_pos, new_seq)``.  Decoding stops, without raising,
    before the first packet that is incomplete, multi-packet (length
    0xFFFFFF), out of sequence, empty, EOF/OK (0xFE and shorter than 9
    bytes), ERR (0xFF), or not exactly ``plan.ncols`` well-formed columns.
    An exception from a decoder or converter propagates and the rows already
    decoded by this call are discarded.
    """
    if type(plan) is not Plan:
        raise TypeError(_PLAN_MSG)
    with open_buffer(buf, _BUF_MSG, _CONTIG_MSG) as mv:
        pos = operator.index(pos)
        end = operator.index(end)
        seq = operator.index(seq)
        if not 0 <= pos <= end <= mv.nbytes:
            raise ValueError(_ARGS_MSG)
        if not 0 <= seq <= 255:
            raise ValueError(_SEQ_MSG)
        data = view_bytes(mv, pos, end)
        # The export on ``buf`` stays held while converters run, exactly like
        # the C twin, so a converter that tries to resize a bytearray gets the
        # same BufferError from both.
        return _decode(data, pos, seq, plan)


def open_buffer(buf: Any, type_msg: str, contig_msg: str) -> memoryview:
    """A memoryview of *buf*, checked as the C twin checks a buffer argument.

    :raises TypeError: ``type_msg % type name`` if *buf* is not bytes-like.
    :raises BufferError: *contig_msg* if it is not C-contiguous.
    """
    try:
        mv = memoryview(buf)
    except TypeError:
        raise TypeError(type_msg % type(buf).__name__) from None
    if not mv.c_contiguous:
        mv.release()
        raise BufferError(contig_msg)
    return mv


def view_bytes(mv: memoryview, pos: int, end: int) -> bytes:
    """Bytes ``pos:end`` of *mv*, whatever its format and shape."""
    if mv.format != "B" or mv.ndim != 1:
        with mv.cast("B") as flat:
            return bytes(flat[pos:end])
    return bytes(mv[pos:end])


def _decode(
    data: bytes, base: int, seq: int, plan: Plan
) -> Tuple[list[Tuple[Any, ...]], int, int]:
    rows: list[Tuple[Any, ...]] = []
    append = rows.append
    n = len(data)
    p = 0
    while n - p >= 4:
        plen = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16)
        if plen == 0xFFFFFF or data[p + 3] != seq or plen == 0:
            break
        start = p + 4
        stop = start + plen
        if stop > n:
            break
        first = data[start]
        if first == 0xFF or (first == 0xFE and plen < 9):
            break
        row = decode_row(data, start, stop, plan)
        if row is None:
            break
        append(row)
        seq = (seq + 1) & 0xFF
        p = stop
    return rows, base + p, seq


def decode_row(data: bytes, start: int, stop: int, plan: Plan) -> Optional[Tuple[Any, ...]]:
    """The row tuple of the payload ``data[start:stop]``, as PyMySQL's
    ``_read_row_from_packet`` builds it, or None if the payload is not
    exactly ``plan.ncols`` well-formed values.  Decoder and converter
    exceptions propagate.  (Shared with the response reader.)"""
    spans = _split(data, start, stop, plan.ncols)
    if spans is None:
        return None
    row: list[Any] = []
    for (encoding, converter), span in zip(plan._cols, spans):
        if span is None:
            row.append(None)
            continue
        value: Any = data[span[0] : span[1]]
        if encoding is not None:
            value = value.decode(encoding)
        if converter is not None:
            value = converter(value)
        row.append(value)
    return tuple(row)


def _split(
    data: bytes, q: int, stop: int, ncols: int
) -> Optional[list[Optional[Tuple[int, int]]]]:
    """Column spans of one payload, or None if it is not exactly *ncols*
    well-formed length-encoded strings/NULLs filling the payload."""
    spans: list[Optional[Tuple[int, int]]] = []
    for _ in range(ncols):
        if q >= stop:
            return None  # short row: PyMySQL would return a shorter tuple
        c = data[q]
        q += 1
        if c < 0xFB:
            length = c
        elif c == 0xFB:
            spans.append(None)
            continue
        elif c == 0xFC:
            if stop - q < 2:
                return None
            length = data[q] | (data[q + 1] << 8)
            q += 2
        elif c == 0xFD:
            if stop - q < 3:
                return None
            length = data[q] | (data[q + 1] << 8) | (data[q + 2] << 16)
            q += 3
        elif c == 0xFE:
            if stop - q < 8:
                return None
            length = int.from_bytes(data[q : q + 8], "little")
            q += 8
        else:
            return None  # 0xFF prefix: PyMySQL would read it as NULL
        if length > stop - q:
            return None
        spans.append((q, q + length))
        q += length
    if q != stop:
        return None  # trailing bytes: PyMySQL would ignore them
    return spans
