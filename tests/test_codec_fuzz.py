"""Short fuzz of malformed packets, part of the default run (< 20 s).

Hypothesis throws arbitrary bytes and mutated row streams at both codecs;
they must never crash and must agree exactly (rows, types, positions,
sequence ids, exceptions), and every row they return must be what PyMySQL's
row path returns for that packet.  The long version (>= 1M packets under
ASan/UBSan) is ``fuzz/run_asan.sh``; see docs/codec.md.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from test_codec_util import BOTH, C_SKIP_REASON
except ImportError:  # tests/ imported as a package
    from .test_codec_util import BOTH, C_SKIP_REASON  # type: ignore[no-redef]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz"))
import fuzz_codec  # noqa: E402

needs_c = pytest.mark.skipif(len(BOTH) < 2, reason=C_SKIP_REASON)
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

convs = st.lists(st.sampled_from(fuzz_codec.CONVERTER_CHOICES), max_size=6)


def _check(converters: Any, buf: bytearray, seq: int, seed: int) -> None:
    ok, why = fuzz_codec.check_case(BOTH, converters, buf, seq, random.Random(seed), True)
    assert ok, why


@needs_c
@FAST
@given(convs, st.binary(max_size=200), st.integers(0, 255), st.integers())
def test_random_bytes(converters: Any, data: bytes, seq: int, seed: int) -> None:
    _check(converters, bytearray(data), seq, seed)


@needs_c
@FAST
@given(st.integers(0, 2**32))
def test_mutated_streams(seed: int) -> None:
    rng = random.Random(seed)
    converters, buf, _n, seq = fuzz_codec.make_case(rng)
    _check(converters, buf, seq, seed)


@needs_c
@FAST
@given(convs, st.lists(st.one_of(st.none(), st.binary(max_size=30)), max_size=6),
       st.integers(0, 255), st.binary(min_size=1, max_size=4), st.integers(0, 64), st.integers())
def test_valid_row_with_corruption(converters: Any, values: Any, seq: int, junk: bytes,
                                   at: int, seed: int) -> None:
    payload = b"".join(fuzz_codec.lenenc(v, random.Random(seed)) for v in values)
    buf = bytearray(fuzz_codec.header(len(payload), seq) + payload) * 2
    i = at % (len(buf) + 1)
    buf[i:i + len(junk)] = junk
    _check(converters, buf, seq, seed)


def test_fuzz_smoke_run() -> None:
    if len(BOTH) < 2:
        pytest.skip(C_SKIP_REASON)
    stats = fuzz_codec.run(3000, seed=12345, impls=BOTH, reference_every=3, quiet=True)
    assert stats["diffs"] == 0, stats
