"""Response fuzzer: C ResponseReader / build_command vs their pure twins.

Used by ``fuzz/fuzz_codec.py`` (``--responses``) and the short fuzz test.
Builds whole responses (OK, ERR, result sets with random converters and
values, chains of results with SERVER_MORE_RESULTS_EXISTS, now and then a
row split over 0xFFFFFF-byte packets), mutates half of them (bit flips,
truncation, spliced garbage, broken headers, wrong sequence ids), and feeds
each to both twins with the same arrival pattern: random chunks, unconsumed
bytes moved to a new buffer now and then, buffered or unbuffered with a
random row limit.  Every status and every attribute after every call, and
any exception (type and message), must be identical.
"""

from __future__ import annotations

import random
from typing import Any, Callable, List, Optional, Sequence, Tuple

import fuzz_codec

MAX_PACKET = 0xFFFFFF

SANE = [c for c in fuzz_codec.CONVERTER_CHOICES
        if c[0] in ("ascii", "utf8", None) and c[1] not in (fuzz_codec._custom_strict, str)
        and not (c[0] is None and c[1] is not None)]


def _lenint(v: Optional[int]) -> bytes:
    if v is None:
        return b"\xfb"
    if v < 251:
        return bytes([v])
    if v < 1 << 16:
        return b"\xfc" + v.to_bytes(2, "little")
    if v < 1 << 24:
        return b"\xfd" + v.to_bytes(3, "little")
    return b"\xfe" + v.to_bytes(8, "little")


def _frame(payloads: Sequence[bytes], seq: int) -> Tuple[bytes, int]:
    out = bytearray()
    for p in payloads:
        while True:
            chunk, p = p[:MAX_PACKET], p[MAX_PACKET:]
            out += fuzz_codec.header(len(chunk), seq) + chunk
            seq = (seq + 1) & 0xFF
            if len(chunk) < MAX_PACKET:
                break
    return bytes(out), seq


def _column_def(rng: random.Random, i: int) -> bytes:
    name = b"c%d" % i
    lc = fuzz_codec.lenenc
    return (lc(b"def", rng) + lc(b"test", rng) + lc(b"t", rng) + lc(b"t", rng) + lc(name, rng)
            + lc(name, rng) + b"\x0c" + bytes([rng.randrange(256), 0]) + b"\x0b\x00\x00\x00"
            + bytes([rng.randrange(256)]) + b"\x00\x00\x00\x00\x00")


def _eof(rng: random.Random, status: int) -> bytes:
    return b"\xfe" + rng.randrange(0x10000).to_bytes(2, "little") + status.to_bytes(2, "little")


def make_response(rng: random.Random, split_rows: bool = False
                  ) -> Tuple[List[List[Tuple[Any, Any]]], bytearray, int]:
    """Per-result converters, the response bytes, and the first sequence id."""
    seq = rng.randrange(256)
    payloads: List[bytes] = []
    convs: List[List[Tuple[Any, Any]]] = []
    nres = rng.choice((1, 1, 1, 2, 3))
    for k in range(nres):
        status = rng.choice((0x02, 0x03, 0x22, 0x8002, 0xFFFF & ~8))
        if k < nres - 1:
            status |= 8
        r = rng.random()
        if r < 0.2:
            payloads.append(b"\x00" + _lenint(rng.choice((0, 1, 300, 70000, 2**40, None)))
                            + _lenint(rng.choice((0, 5, 2**63, None))) + status.to_bytes(2, "little")
                            + rng.randrange(0x10000).to_bytes(2, "little")
                            + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 30))))
            convs.append([])
            continue
        if r < 0.27:
            payloads.append(b"\xff\x15\x04#28000" + b"denied" * rng.randrange(3))
            convs.append([])
            break
        ncols = rng.choice((1, 1, 2, 3, 4, 6, 10, 70))
        # mostly converters that accept what the server sends, so that the
        # framing (not a converter's exception) decides most outcomes
        choices = fuzz_codec.CONVERTER_CHOICES if rng.random() < 0.2 else SANE
        cols = [rng.choice(choices) for _ in range(ncols)]
        convs.append(cols)
        payloads.append(_lenint(ncols))
        payloads.extend(_column_def(rng, i) for i in range(ncols))
        payloads.append(_eof(rng, rng.choice((2, 3, 0x22))))
        for _ in range(rng.randrange(0, 9)):
            payloads.append(b"".join(fuzz_codec.lenenc(fuzz_codec.random_value(rng, c[1]), rng)
                                     for c in cols))
        if split_rows:
            big = b"z" * rng.choice((MAX_PACKET - 6, MAX_PACKET + 10, MAX_PACKET - 4))
            # fuzz_codec.lenenc may pick a 3-byte prefix, too short for 16 MB
            payloads.append(_lenint(len(big)) + big + b"".join(
                fuzz_codec.lenenc(b"1", rng) for _ in range(ncols - 1)))
        payloads.append(_eof(rng, status))
    if rng.random() < 0.25:
        _mutate_packet(payloads, rng)
    data, _ = _frame(payloads, seq)
    buf = bytearray(data)
    if rng.random() < 0.4:
        fuzz_codec.mutate(buf, rng)
        if rng.random() < 0.2 and len(buf) > 4:
            i = rng.randrange(len(buf) - 3)
            buf[i + 3] = rng.randrange(256)  # a sequence id, or anything
    return convs, buf, seq


def _mutate_packet(payloads: List[bytes], rng: random.Random) -> None:
    """Break one packet where the reader classifies it: its first byte, its
    length, its end (framing stays consistent: the header follows)."""
    i = rng.randrange(len(payloads))
    p = payloads[i]
    op = rng.randrange(4)
    if op == 0 and p:
        payloads[i] = bytes([rng.choice((0x00, 0xFB, 0xFC, 0xFE, 0xFF))]) + p[1:]
    elif op == 1:
        payloads[i] = p[:rng.randrange(len(p) + 1)]
    elif op == 2:
        payloads[i] = p + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4)))
    else:
        payloads.insert(i, rng.choice((b"", b"\xfe", b"\xfe\x00\x00", b"\xff\x01", b"\x00\x00")))


class _Shape:
    __slots__ = ("plan",)

    def __init__(self, plan: Any) -> None:
        self.plan = plan


def _attrs(r: Any) -> Tuple[Any, ...]:
    return (r.pos, r.seq, r.need, r.field_count, r.affected_rows, r.insert_id, r.server_status,
            r.warning_count, r.message, r.meta_key, r.error, r.got_seq,
            None if r.rows is None else fuzz_codec.typed(r.rows))


def feed_transcript(reader_mod: Any, plan_mod: Any, convs: List[List[Tuple[Any, Any]]],
                    data: bytes, seq: int, plan_rng: random.Random) -> List[Any]:
    """Feed *data* to a new reader as the random arrival plan says; the
    transcript of every call (or the exception that ended it)."""
    rng = random.Random(plan_rng.random())
    unbuffered = rng.random() < 0.3
    limit = rng.choice((0, 0, 1, 2, 5))
    cuts = sorted({rng.randrange(len(data) + 1) for _ in range(rng.choice((0, 1, 3, 10)))})
    cuts = [c for c in cuts if c < len(data)] + [len(data)]
    r = reader_mod.ResponseReader()
    r.start(seq, unbuffered)
    meta: dict = {}
    out: List[Any] = []
    buf: Any = bytearray()
    pos = 0
    index = 0
    start = 0
    calls = 0
    try:
        for stop in cuts:
            buf += data[start:stop]
            start = stop
            while calls < 10000:
                calls += 1
                status = r.feed(buf, pos, len(buf), meta, limit)
                out.append((status,) + _attrs(r))
                pos = r.pos
                if status == 0:  # NEED
                    break
                if status == 4:  # META
                    cols = convs[index] if index < len(convs) else []
                    if rng.random() < 0.05:
                        cols = cols + [("ascii", int)]  # the wrong width: ValueError
                    meta[r.meta_key] = _Shape(plan_mod.make_plan(cols))
                    continue
                if status in (6, 7):  # COLUMNS, ROWS
                    continue
                index += 1
                if status in (1, 2, 8) and r.server_status & 8:
                    r.start(r.seq, unbuffered)
                    continue
                return out
            if rng.random() < 0.3:
                buf = bytearray(buf[pos:]) if rng.random() < 0.5 else bytes(buf[pos:])
                pos = 0
    except Exception as exc:  # noqa: BLE001 - compared between the twins
        out.append(("raise", type(exc), str(exc)))
    return out


def check_response(impls: Sequence[Tuple[Any, Any]], convs: List[List[Tuple[Any, Any]]],
                   data: bytes, seq: int, rng: random.Random) -> Tuple[bool, str]:
    """impls: (reader module, plan module) pairs, the pure one first."""
    state = rng.random()
    results = [feed_transcript(rm, pm, convs, data, seq, random.Random(state))
               for rm, pm in impls]
    for res in results[1:]:
        if res != results[0]:
            for i, (a, b) in enumerate(zip(results[0], res)):
                if a != b:
                    return False, "call %d differs:\n  %r\n  %r" % (i, a, b)
            return False, "transcripts of different lengths: %d vs %d" % (len(results[0]), len(res))
    return True, ""


def check_command(impls: Sequence[Any], rng: random.Random) -> Tuple[bool, str]:
    command = rng.choice((3, 14, 22, -1, 256, rng.randrange(256)))
    payload: Any = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
    if rng.random() < 0.05:
        payload = payload.decode("latin1")  # not bytes-like: TypeError
    got = [fuzz_codec.outcome(lambda: m.build_command(command, payload)) for m in impls]
    if any(g != got[0] for g in got):
        return False, "build_command(%r, %r): %r" % (command, payload, got)
    return True, ""


def run(ncases: int, seed: int, impls: Sequence[Tuple[Any, Any]], split_every: int = 0,
        quiet: bool = False, log: Optional[Callable[[str], None]] = None) -> dict:
    """*ncases* responses through every implementation pair."""
    rng = random.Random(seed)
    stats = {"responses": 0, "bytes": 0, "diffs": 0, "commands": 0}
    for case in range(ncases):
        split = bool(split_every) and case % split_every == split_every // 2
        convs, data, seq = make_response(rng, split)
        ok, why = check_response(impls, convs, bytes(data), seq, rng)
        stats["responses"] += 1
        stats["bytes"] += len(data)
        if ok:
            ok, why = check_command([m for m, _ in impls], rng)
            stats["commands"] += 1
        if not ok:
            stats["diffs"] += 1
            if log is not None and stats["diffs"] <= 5:
                log("DIFF reader seed=%d case=%d convs=%r data=%r\n%s"
                    % (seed, case, convs, bytes(data[:2000]), why))
        if log is not None and not quiet and case and case % 20000 == 0:
            log("  %d responses, %d diffs" % (case, stats["diffs"]))
    return stats
