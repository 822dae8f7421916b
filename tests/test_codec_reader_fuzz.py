"""Short fuzz of ResponseReader and build_command, part of the default run.

Mutated responses from ``fuzz/fuzz_reader.py`` go through both twins with
the same random arrival pattern; every status, attribute and exception must
agree.  The long version (under ASan/UBSan) is ``fuzz/run_asan.sh``.
"""

from __future__ import annotations

import os
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from test_codec_util import C_SKIP_REASON
except ImportError:  # tests/ imported as a package
    from .test_codec_util import C_SKIP_REASON  # type: ignore[no-redef]

from tornpool import codec

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz"))
import fuzz_reader  # noqa: E402

needs_c = pytest.mark.skipif(codec.speedups is None, reason=C_SKIP_REASON)
IMPLS = [(codec.pure_reader, codec.pure), (codec.speedups, codec.speedups)]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_c
@FAST
@given(st.integers(0, 2**32))
def test_mutated_responses(seed: int) -> None:
    rng = random.Random(seed)
    convs, data, seq = fuzz_reader.make_response(rng)
    ok, why = fuzz_reader.check_response(IMPLS, convs, bytes(data), seq, rng)
    assert ok, why


@needs_c
@FAST
@given(st.binary(max_size=300), st.integers(0, 255), st.integers(0, 2**32))
def test_random_bytes(data: bytes, seq: int, seed: int) -> None:
    rng = random.Random(seed)
    ok, why = fuzz_reader.check_response(IMPLS, [[("ascii", int)], [("utf8", None)] * 2],
                                         data, seq, rng)
    assert ok, why


@needs_c
def test_reader_fuzz_smoke_run() -> None:
    stats = fuzz_reader.run(1500, seed=2024, impls=IMPLS, split_every=750, quiet=True)
    assert stats["diffs"] == 0 and stats["responses"] == 1500, stats
