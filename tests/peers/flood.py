#!/usr/bin/env python3
"""Garbage UDP at a steady rate: random bytes, almost-SIP and RTP-shaped junk.

    python tests/peers/flood.py --to 127.0.0.1:5060 --to 127.0.0.1:4000-4015 \\
        --rate 5000 --seconds 12 --kind mix

Packets go round-robin to every address given (``HOST:PORT`` or ``HOST:FIRST-LAST``),
paced from an absolute start time in 2 ms ticks, from one socket. The last line printed is
JSON: ``{"sent": packets, "seconds": elapsed, "rate": packets per second, "errors": n}``.
SIGTERM or SIGINT stops it early (the figures are still printed).

Kinds: ``random`` (random bytes, 1-1400 of them), ``sip`` (a SIP request with bytes
flipped, lines dropped or duplicated, or cut short: it looks like SIP but does not parse),
``rtp`` (a valid RTP header with random SSRC, sequence and timestamp, then noise),
``mix`` (all three in turn).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import struct
import time


def parse_targets(specs: list[str]) -> list[tuple[str, int]]:
    out = []
    for spec in specs:
        host, _, ports = spec.rpartition(":")
        first, _, last = ports.partition("-")
        out += [(host, p) for p in range(int(first), int(last or first) + 1)]
    return out


_SIP = (
    "OPTIONS sip:app@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{n}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:flood@127.0.0.1:9>;tag={n}\r\n"
    "To: <sip:app@127.0.0.1:5060>\r\n"
    "Call-ID: {n}@flood.invalid\r\n"
    "CSeq: {n} OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def almost_sip(rng: random.Random, n: int) -> bytes:
    """A request that starts like SIP but is broken so that no parser accepts it."""
    lines = _SIP.format(n=n).split("\r\n")
    way = n % 4
    if way == 0:  # a mandatory header gone (Call-ID, CSeq, From or To)
        del lines[rng.choice([3, 4, 5, 6])]
    elif way == 1:  # a mangled CSeq and To
        lines[6] = f"CSeq: -{n} OPT\x00IONS"
        lines[4] = "To: <<<" + "\xff" * 8
    elif way == 2:  # cut short in the headers
        lines = lines[: rng.randrange(1, 5)]
    else:  # bytes flipped in the start line's version
        lines[0] = lines[0].replace("SIP/2.0", "SIP/" + "".join(rng.choices("0123456789x", k=3)))
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    return data


def rtp_junk(rng: random.Random) -> bytes:
    header = struct.pack(
        "!BBHII",
        0x80,
        rng.choice([0, 8, 101, 13, 96]) | (0x80 if rng.random() < 0.1 else 0),
        rng.randrange(65536),
        rng.randrange(1 << 32),
        rng.randrange(1 << 32),
    )
    return header + rng.randbytes(160)


def packets(kind: str, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    kinds = ["random", "sip", "rtp"] if kind == "mix" else [kind]
    out = []
    for n in range(count):
        k = kinds[n % len(kinds)]
        if k == "random":
            out.append(rng.randbytes(rng.choice([1, 12, 64, 172, 500, 1400])))
        elif k == "sip":
            out.append(almost_sip(rng, n))
        else:
            out.append(rtp_junk(rng))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--to", action="append", required=True, help="HOST:PORT or HOST:FIRST-LAST")
    p.add_argument("--rate", type=float, default=5000, help="packets per second, in all")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--kind", choices=["random", "sip", "rtp", "mix"], default="mix")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    targets = parse_targets(args.to)
    pool = packets(args.kind, 997, args.seed)  # a prime: packet and target cycles differ
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sent = errors = 0
    start = time.monotonic()
    end = start + args.seconds
    while not stop:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * args.rate)
        while sent < due:
            try:
                sock.sendto(pool[sent % len(pool)], targets[sent % len(targets)])
            except OSError:  # e.g. ICMP port unreachable reported on a later send
                errors += 1
            sent += 1
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    result = {"sent": sent, "seconds": round(elapsed, 3), "rate": round(sent / elapsed, 1)}
    result["errors"] = errors
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
