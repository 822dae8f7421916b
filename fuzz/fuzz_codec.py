"""Random / malformed packet fuzzer: C codec vs pure codec (vs PyMySQL).

Usage::

    python fuzz/fuzz_codec.py --packets 1000000 --seed 1

Generates streams of row packets (valid ones, then mutated: bit flips,
truncation, spliced garbage, broken headers, wrong sequence ids, huge
length prefixes, EOF/ERR packets), decodes each stream with both codecs from
random start/end offsets, and requires identical outcomes (values, types,
positions, sequence ids, exception types and messages).  Rows the codecs
return are also compared with PyMySQL's ``_read_row_from_packet`` on a
sample.  Memory growth is tracked with ``tracemalloc`` between two equal
halves of the run to catch reference leaks.

Then (``--responses``, see ``fuzz/fuzz_reader.py``) whole responses go
through both ResponseReader twins in random chunks, and random commands
through both build_command twins, with the same requirement.

Exit status 0 only if there were no differences.  Run it under ASan/UBSan
with ``fuzz/run_asan.sh``.
"""

from __future__ import annotations

import argparse
import decimal
import gc
import os
import random
import sys
import time
import tracemalloc
import types
from typing import Any, Callable, List, Optional, Sequence, Tuple

from pymysql import converters as pc
from pymysql.connections import MySQLResult
from pymysql.protocol import MysqlPacket


def _custom_len(x: Any) -> int:
    return len(x)


def _custom_strict(x: Any) -> Any:
    if len(x) % 5 == 4:
        raise ValueError("custom converter refuses %r" % (x,))
    return x


CONVERTER_CHOICES: Sequence[Tuple[Any, Any]] = (
    ("ascii", int), (None, int), ("ascii", float), (None, float),
    ("ascii", decimal.Decimal), (None, decimal.Decimal),
    ("ascii", pc.convert_datetime), (None, pc.convert_datetime),
    ("ascii", pc.convert_date), ("ascii", pc.convert_timedelta), (None, pc.convert_timedelta),
    ("ascii", pc.convert_time), ("utf8", None), ("utf8", None), ("cp1252", None),
    ("latin1", None), (None, None), (None, pc.through), ("koi8_r", None), ("bogus", None),
    ("utf8", _custom_len), ("utf8", _custom_strict), ("ascii", str),
)

VALUE_SEEDS = [
    b"", b"0", b"-1", b"42", b"9223372036854775807", b"-9223372036854775809",
    b"1.5", b"-0.0", b"1e308", b"1e309", b"12.50", b"-0.01",
    b"2020-01-02 03:04:05", b"2020-01-02 03:04:05.123456", b"0000-00-00 00:00:00",
    b"2023-02-29 00:00:00", b"2024-02-29 23:59:59.5", b"2020-01-02", b"0000-00-00",
    b"838:59:59", b"-838:59:59.000000", b"-00:00:00.5", b"12:34:56", b"25:00:00",
    "h\u00e9llo \u2603".encode(), b"\x80\x81\xff", b"{\"a\": 1}", b"\xc3\x28",
]


def reference_row(payload: bytes, converters: Sequence[Tuple[Any, Any]]) -> Any:
    holder = types.SimpleNamespace(converters=list(converters))
    return MySQLResult._read_row_from_packet(holder, MysqlPacket(bytes(payload), None))


def outcome(fn: Callable[[], Any]) -> Tuple[Any, ...]:
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001
        return ("raise", type(exc), str(exc))
    return ("ok", typed(value))


def typed(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(typed(v) for v in value))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, repr(value))


def lenenc(data: Optional[bytes], rng: random.Random) -> bytes:
    if data is None:
        return b"\xfb"
    n = len(data)
    r = rng.random()
    if n < 251 and r < 0.9:
        return bytes([n]) + data
    if n < 1 << 16 and r < 0.95:
        return b"\xfc" + n.to_bytes(2, "little") + data
    if r < 0.98:
        return b"\xfd" + n.to_bytes(3, "little") + data
    return b"\xfe" + n.to_bytes(8, "little") + data


def plausible(conv: Any, rng: random.Random) -> bytes:
    """A value in the server's canonical text form for this converter."""
    if conv is int:
        return str(rng.choice((rng.randrange(-300, 300), rng.getrandbits(64) - (1 << 63),
                               rng.getrandbits(70)))).encode()
    if conv is float:
        f = rng.choice((rng.uniform(-1e6, 1e6), rng.random() * 10.0 ** rng.randrange(-320, 309)))
        return rng.choice((repr(f), "%.17g" % f, "%g" % f)).encode()
    if conv is decimal.Decimal:
        return ("%d.%02d" % (rng.randrange(-10**8, 10**8), rng.randrange(100))).encode()
    y, mo, d = rng.randrange(0, 10000), rng.randrange(0, 13), rng.randrange(0, 32)
    h, mi, se = rng.randrange(0, 24), rng.randrange(0, 60), rng.randrange(0, 60)
    frac = rng.choice(("", "." + str(rng.randrange(10**6)).zfill(rng.randrange(1, 7))[:6]))
    if conv is pc.convert_datetime:
        return ("%04d-%02d-%02d %02d:%02d:%02d%s" % (y, mo, d, h, mi, se, frac)).encode()
    if conv is pc.convert_date:
        return ("%04d-%02d-%02d" % (y, mo, d)).encode()
    if conv in (pc.convert_timedelta, pc.convert_time):
        sign = rng.choice(("", "", "-"))
        return ("%s%02d:%02d:%02d%s" % (sign, rng.randrange(0, 839), mi, se, frac)).encode()
    return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(160, 0x3000))))
                   for _ in range(rng.randrange(0, 20))).encode("utf8")


def random_value(rng: random.Random, conv: Any = None) -> Optional[bytes]:
    if rng.random() < 0.88:
        return plausible(conv, rng)
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.6:
        v = rng.choice(VALUE_SEEDS)
        if rng.random() < 0.3 and v:
            i = rng.randrange(len(v))
            v = v[:i] + bytes([rng.choice(b"0123456789-:. T\x00\xff9")]) + v[i + 1:]
        return v
    if r < 0.8:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 12)))
    if r < 0.95:
        return "".join(rng.choice("0123456789-:. eE+") for _ in range(rng.randrange(0, 28))).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randrange(240, 300)))


def header(n: int, seq: int) -> bytes:
    return n.to_bytes(3, "little") + bytes([seq & 0xFF])


def mutate(buf: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randrange(1, 4)):
        if not buf:
            return
        op = rng.randrange(7)
        i = rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.choice((0x00, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF))
        elif op == 2:
            del buf[i:i + rng.randrange(1, 6)]
        elif op == 3:
            buf[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 6)))
        elif op == 4:
            buf[i:i + 3] = rng.choice((b"\xff\xff\xff", b"\x00\x00\x00", b"\xfe\xff\xff"))
        elif op == 5:
            del buf[i:]
        else:
            buf[i] = rng.randrange(256)


def make_case(rng: random.Random) -> Tuple[List[Tuple[Any, Any]], bytearray, int, int]:
    """Converters, buffer, and the number of packets in it, and start seq."""
    ncols = rng.choice((0, 1, 1, 2, 3, 4, 6, 10))
    converters = [rng.choice(CONVERTER_CHOICES) for _ in range(ncols)]
    seq = rng.randrange(256)
    out = bytearray()
    npackets = rng.randrange(1, 12)
    for k in range(npackets):
        r = rng.random()
        if r < 0.85:
            ncols_here = ncols if rng.random() < 0.93 else max(0, ncols + rng.choice((-1, 1)))
            convs = converters + [(None, None)]
            payload = b"".join(lenenc(random_value(rng, convs[min(i, ncols)][1]), rng)
                               for i in range(ncols_here))
        elif r < 0.9:
            payload = b"\xfe\x00\x00\x02\x00"
        elif r < 0.93:
            payload = b"\xff\x15\x04#28000denied"
        else:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 20)))
        s = seq + k if rng.random() < 0.97 else rng.randrange(256)
        out += header(len(payload), s) + payload
    if rng.random() < 0.4:
        mutate(out, rng)
    return converters, out, npackets, seq


def check_case(
    impls: Sequence[Any], converters: Sequence[Tuple[Any, Any]], buf: bytearray, seq: int,
    rng: random.Random, with_reference: bool, stats: Optional[dict] = None,
) -> Tuple[bool, str]:
    pos = 0
    end = len(buf)
    if rng.random() < 0.3 and buf:
        end = rng.randrange(len(buf) + 1)
    if rng.random() < 0.1 and end:
        pos = rng.randrange(end + 1)
    results = []
    for mod in impls:
        plan = mod.make_plan(converters)
        results.append(outcome(lambda: mod.decode_rows(buf, pos, end, seq, plan)))
    if stats is not None:
        if results[0][0] == "raise":
            stats["raised"] += 1
        else:
            stats["rows"] += len(results[0][1][1][0][1])
    for r in results[1:]:
        if r != results[0]:
            return False, "impls differ:\n  %r\n  %r" % (results[0], r)
    if with_reference and results[0][0] == "ok":
        rows, new_pos, new_seq = impls[0].decode_rows(buf, pos, end, seq, impls[0].make_plan(converters))
        p = pos
        for row in rows:
            n = buf[p] | buf[p + 1] << 8 | buf[p + 2] << 16
            payload = bytes(buf[p + 4:p + 4 + n])
            want = outcome(lambda: reference_row(payload, converters))
            if want != ("ok", typed(row)):
                return False, "differs from PyMySQL: %r vs %r" % (typed(row), want)
            p += 4 + n
        if p != new_pos or new_seq != (seq + len(rows)) % 256:
            return False, "pos/seq bookkeeping wrong"
    return True, ""


def run(npackets: int, seed: int, impls: Sequence[Any], reference_every: int = 10,
        quiet: bool = False) -> dict:
    rng = random.Random(seed)
    stats = {"packets": 0, "cases": 0, "diffs": 0, "raised": 0, "rows": 0}
    t0 = time.time()
    tracemalloc_growth = None
    traced_at_half = None
    tracing = len(impls) > 0 and npackets >= 20000
    while stats["packets"] < npackets:
        converters, buf, n, seq = make_case(rng)
        ok, why = check_case(impls, converters, buf, seq, rng, stats["cases"] % reference_every == 0,
                              stats)
        stats["cases"] += 1
        stats["packets"] += n
        if not ok:
            stats["diffs"] += 1
            if stats["diffs"] <= 5:
                print("DIFF seed=%d case=%d converters=%r buf=%r\n%s"
                      % (seed, stats["cases"], converters, bytes(buf), why), file=sys.stderr)
        if tracing and traced_at_half is None and stats["packets"] >= npackets // 4:
            gc.collect()
            tracemalloc.start()
            traced_at_half = tracemalloc.get_traced_memory()[0]
        if not quiet and stats["cases"] % 20000 == 0:
            print("  %d packets, %d cases, %d diffs, %.0fs"
                  % (stats["packets"], stats["cases"], stats["diffs"], time.time() - t0),
                  file=sys.stderr)
    if traced_at_half is not None:
        gc.collect()
        tracemalloc_growth = tracemalloc.get_traced_memory()[0] - traced_at_half
        tracemalloc.stop()
    stats["tracemalloc_growth_bytes"] = tracemalloc_growth
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "little"))
    ap.add_argument("--reference-every", type=int, default=10,
                    help="compare with PyMySQL's row path on every Nth case")
    ap.add_argument("--responses", type=int, default=None,
                    help="responses for the ResponseReader fuzz (default: packets / 10)")
    ap.add_argument("--split-every", type=int, default=1000,
                    help="every Nth response carries a row split over 0xFFFFFF-byte packets")
    args = ap.parse_args()
    from tornpool import codec

    if codec.speedups is None:
        print("C codec not importable; nothing to compare", file=sys.stderr)
        return 2
    print("codec from %s, seed %d" % (codec.speedups.__file__, args.seed), file=sys.stderr)
    stats = run(args.packets, args.seed, [codec.pure, codec.speedups], args.reference_every)
    print("RESULT %r" % (stats,))
    leak = stats["tracemalloc_growth_bytes"]
    failed = stats["diffs"] != 0
    if leak is not None and leak > 256 * 1024:
        print("possible leak: traced memory grew by %d bytes" % leak, file=sys.stderr)
        failed = True
    nresp = args.packets // 10 if args.responses is None else args.responses
    if nresp:
        rstats = run_reader(nresp, args.seed, args.split_every)
        print("RESULT reader %r" % (rstats,))
        leak = rstats["tracemalloc_growth_bytes"]
        if leak is not None and leak > 256 * 1024:
            print("possible reader leak: traced memory grew by %d bytes" % leak, file=sys.stderr)
            failed = True
        failed = failed or rstats["diffs"] != 0
    return 1 if failed else 0


def run_reader(nresp: int, seed: int, split_every: int) -> dict:
    """The ResponseReader fuzz, with memory traced over its second half."""
    import fuzz_reader
    from tornpool import codec

    impls = [(codec.pure_reader, codec.pure), (codec.speedups, codec.speedups)]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    t0 = time.time()
    first = fuzz_reader.run(nresp // 2, seed, impls, split_every, log=log)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    second = fuzz_reader.run(nresp - nresp // 2, seed + 10**6, impls, split_every, log=log)
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    stats = {k: first[k] + second[k] for k in first}
    stats["tracemalloc_growth_bytes"] = growth if nresp >= 2000 else None
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


if __name__ == "__main__":
    sys.exit(main())
