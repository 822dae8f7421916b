"""Type stubs for the C codec tornpool.codec._speedups (twin of _pure)."""

from typing import Any, Callable, Final, Optional, Sequence, Tuple, final

from typing_extensions import Buffer

IMPL: Final[str]

@final
class Plan:
    """Per-result-set decoding plan; build it with :func:`make_plan`."""

    @property
    def ncols(self) -> int: ...
    @property
    def kinds(self) -> Tuple[str, ...]: ...

def make_plan(
    converters: Sequence[Tuple[Optional[str], Optional[Callable[[Any], Any]]]], /
) -> Plan: ...
def decode_rows(
    buf: Buffer, pos: int, end: int, seq: int, plan: Plan, /
) -> Tuple[list[Tuple[Any, ...]], int, int]: ...
