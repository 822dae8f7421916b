"""Response codec: MySQL text-protocol responses and row packets from a buffer.

Two exact twins implement it: the C extension :mod:`tornpool.codec._speedups`
and the pure-Python :mod:`tornpool.codec._pure` (rows) with
:mod:`tornpool.codec._pure_reader` (whole responses).  This package picks one:

* ``TORNPOOL_CODEC`` unset or empty: the C codec if it can be imported, else
  the pure one;
* ``TORNPOOL_CODEC=python``: always the pure one;
* ``TORNPOOL_CODEC=c``: the C codec or :class:`ImportError`.

:data:`IMPL` says which one is active (``"c"`` or ``"python"``).  Both expose
:func:`make_plan`, :func:`decode_rows`, :class:`ResponseReader` with its
status codes (:data:`NEED` ... :data:`BAD_SEQ`) and :func:`build_command`; see
``docs/codec.md`` for the contract.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Tuple

from . import _pure, _pure_reader

__all__ = [
    "IMPL", "Plan", "make_plan", "decode_rows", "ResponseReader", "build_command",
    "NEED", "OK", "RESULT", "ERROR", "META", "LOCAL_INFILE", "COLUMNS", "ROWS", "END", "BAD_SEQ",
    "pure", "pure_reader", "speedups", "available",
]

pure = _pure
pure_reader = _pure_reader

# Status codes of ResponseReader.feed: plain ints, the same in both twins.
NEED = _pure_reader.NEED
OK = _pure_reader.OK
RESULT = _pure_reader.RESULT
ERROR = _pure_reader.ERROR
META = _pure_reader.META
LOCAL_INFILE = _pure_reader.LOCAL_INFILE
COLUMNS = _pure_reader.COLUMNS
ROWS = _pure_reader.ROWS
END = _pure_reader.END
BAD_SEQ = _pure_reader.BAD_SEQ

speedups: Any
_c_error: Optional[BaseException]
try:
    from . import _speedups as speedups
except ImportError as exc:  # pragma: no cover - depends on the build
    speedups = None
    _c_error = exc
else:
    _c_error = None


def available() -> Tuple[str, ...]:
    """Names of the implementations importable here, ``"python"`` first."""
    return ("python", "c") if speedups is not None else ("python",)


_choice = os.environ.get("TORNPOOL_CODEC", "").strip().lower()
if _choice not in ("", "c", "python"):
    raise ImportError(
        "TORNPOOL_CODEC must be unset, 'c' or 'python', not %r"
        % os.environ.get("TORNPOOL_CODEC")
    )
if _choice == "c" and speedups is None:
    raise ImportError(
        "TORNPOOL_CODEC=c but the C codec tornpool.codec._speedups cannot be imported "
        "(%s); build it with `TORNPOOL_BUILD_EXT=1 python setup.py build_ext --inplace` "
        "or unset TORNPOOL_CODEC to use the pure-Python codec" % (_c_error,)
    )

if TYPE_CHECKING:
    Plan = _pure.Plan

    def make_plan(
        converters: Sequence[Tuple[Optional[str], Optional[Callable[[Any], Any]]]], /
    ) -> Plan: ...

    def decode_rows(
        buf: Any, pos: int, end: int, seq: int, plan: Plan, /
    ) -> Tuple[list[Tuple[Any, ...]], int, int]: ...

    ResponseReader = _pure_reader.ResponseReader

    def build_command(command: int, payload: Any, /) -> Tuple[bytes, int]: ...

    IMPL: str
elif _choice != "python" and speedups is not None:
    IMPL = "c"
    Plan = speedups.Plan
    make_plan = speedups.make_plan
    decode_rows = speedups.decode_rows
    ResponseReader = speedups.ResponseReader
    build_command = speedups.build_command
else:
    IMPL = "python"
    Plan = _pure.Plan
    make_plan = _pure.make_plan
    decode_rows = _pure.decode_rows
    ResponseReader = _pure_reader.ResponseReader
    build_command = _pure_reader.build_command
