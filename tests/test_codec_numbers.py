"""Exactness of the codec's own number and text parsers, value by value.

The C codec parses DOUBLE with a short exact path and Eisel-Lemire, integers
eight digits at a time and UTF-8 by hand; each must agree bit for bit with
``float()``, ``int()`` and ``bytes.decode`` (which PyMySQL calls), including
the inputs where a fast path has to give up.  Thousands of values per run;
the same checks run against the pure twin.
"""

from __future__ import annotations

import math
import random
import struct
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Callable

import pytest

try:
    from test_codec_util import IMPLS
except ImportError:  # tests/ imported as a package
    from .test_codec_util import IMPLS  # type: ignore[no-redef]

WIDTH = 100  # values per row packet


def _lenenc(data: bytes) -> bytes:
    n = len(data)
    if n < 251:
        return bytes([n]) + data
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little") + data
    return b"\xfd" + n.to_bytes(3, "little") + data


def _decode_all(mod: Any, values: list[bytes], encoding: str | None, converter: Callable[[Any], Any] | None) -> list[Any]:
    values = values + [b"0"] * (-len(values) % WIDTH)
    buf = bytearray()
    for seq, k in enumerate(range(0, len(values), WIDTH)):
        payload = b"".join(_lenenc(v) for v in values[k : k + WIDTH])
        buf += len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload
    plan = mod.make_plan([(encoding, converter)] * WIDTH)
    rows, pos, _ = mod.decode_rows(buf, 0, len(buf), 0, plan)
    assert pos == len(buf)
    return [v for row in rows for v in row]


def _doubles(rnd: random.Random, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        bits = rnd.getrandbits(64)
        d = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
        if not math.isfinite(d):
            continue
        out.append(repr(d))
        # the same value rounded to 15..19 significant digits, three ways:
        # these sit next to halfway points, where fast paths must give up
        mode = (ROUND_FLOOR, ROUND_CEILING, ROUND_HALF_EVEN)[len(out) % 3]
        digits = 15 + len(out) % 5
        out.append(str(Context(prec=digits, rounding=mode).plus(Decimal(d))))
        out.append(f"{rnd.randrange(10**rnd.randrange(1, 10))}.{rnd.randrange(10**6):06d}")
    return out


@pytest.mark.parametrize("mod", IMPLS)
def test_doubles_bit_for_bit(mod: Any) -> None:
    rnd = random.Random(20261121)
    texts = _doubles(rnd, 6000) + [
        "0", "-0", "0.0", "1e308", "1.7976931348623157e308", "2.2250738585072014e-308",
        "4.9e-324", "2.4703282292062327e-324", "9007199254740993", "123456789012345678901",
        "0.1", "-0.30000000000000004", "1e-400", "1e400",
    ]
    got = _decode_all(mod, [t.encode() for t in texts], "ascii", float)
    for text, value in zip(texts, got):
        want = float(text)
        assert type(value) is float and struct.pack("<d", value) == struct.pack("<d", want), text


@pytest.mark.parametrize("mod", IMPLS)
def test_integers_exact(mod: Any) -> None:
    rnd = random.Random(7)
    texts = ["0", "-0", "9223372036854775807", "-9223372036854775808", "18446744073709551615",
             "18446744073709551616", "-18446744073709551616", "99999999", "100000000", "00042",
             "123456789012345678901234567890"]
    for _ in range(4000):
        width = rnd.randrange(1, 22)
        texts.append(("-" if rnd.random() < 0.3 else "") + str(rnd.randrange(10**width)))
    got = _decode_all(mod, [t.encode() for t in texts], "ascii", int)
    assert [(type(v), v) for v in got[: len(texts)]] == [(int, int(t)) for t in texts]


@pytest.mark.parametrize("mod", IMPLS)
def test_utf8_text_matches_bytes_decode(mod: Any) -> None:
    rnd = random.Random(3)
    valid: list[bytes] = []
    for _ in range(3000):
        chars = [chr(rnd.choice([rnd.randrange(0x20, 0x7F), rnd.randrange(0x80, 0x800),
                                 rnd.randrange(0x800, 0xD800), rnd.randrange(0xE000, 0x10000),
                                 rnd.randrange(0x10000, 0x110000)]))
                 for _ in range(rnd.randrange(0, 40))]
        valid.append("".join(chars).encode("utf-8"))
    got = _decode_all(mod, valid, "utf8", None)
    assert got[: len(valid)] == [v.decode("utf-8") for v in valid]
    # invalid sequences: exactly the UnicodeDecodeError that bytes.decode raises
    for bad in (b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ab\xe2\x82", b"\xff", b"\x80x"):
        with pytest.raises(UnicodeDecodeError) as ours:
            _decode_all(mod, [bad], "utf8", None)
        with pytest.raises(UnicodeDecodeError) as theirs:
            bad.decode("utf8")
        assert str(ours.value) == str(theirs.value)
