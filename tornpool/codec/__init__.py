"""Result-row codec: decodes MySQL text-protocol row packets from a buffer.

Two exact twins implement it: the C extension :mod:`tornpool.codec._speedups`
and the pure-Python :mod:`tornpool.codec._pure`.  This package picks one:

* ``TORNPOOL_CODEC`` unset or empty: the C codec if it can be imported, else
  the pure one;
* ``TORNPOOL_CODEC=python``: always the pure one;
* ``TORNPOOL_CODEC=c``: the C codec or :class:`ImportError`.

:data:`IMPL` says which one is active (``"c"`` or ``"python"``).  Both expose
:func:`make_plan` and :func:`decode_rows`; see ``docs/codec.md`` for the
contract.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Tuple

from . import _pure

__all__ = ["IMPL", "Plan", "make_plan", "decode_rows", "pure", "speedups", "available"]

pure = _pure

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

    IMPL: str
elif _choice != "python" and speedups is not None:
    IMPL = "c"
    Plan = speedups.Plan
    make_plan = speedups.make_plan
    decode_rows = speedups.decode_rows
else:
    IMPL = "python"
    Plan = _pure.Plan
    make_plan = _pure.make_plan
    decode_rows = _pure.decode_rows
