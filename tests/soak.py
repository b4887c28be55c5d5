"""Soak: 4 concurrent calls of random lengths for 10 minutes, then the app process is
compared with itself at the start. Not part of the test suite (it takes minutes).

    python -m tests.soak                 # 2 minutes of warm-up, then 10 minutes
    python -m tests.soak --minutes 3 --warmup 1

The app (served on loopback as the SIP tests do) greets each caller with a 500 Hz tone,
echoes the caller's two digits as tones, then holds a 300 Hz tone until the caller hangs
up; tests/peers/pjsua_multi.py keeps 4 such calls going, each hung up after a random time.
Every call's recording is checked (tones, lengths, digits) and deleted.

The app is sampled (SIGUSR1: tests/sip.py's ``stats_app``) with no call up, after the
warm-up and at the end, and every 30 s in between. Verdict: flat when, between the two
quiet samples,

* threads, open file descriptors and asyncio tasks are the same, no ``Call`` or
  ``SipCall`` object is left and at most 4 media ports are (the pool keeps them);
* Python objects grew by less than 1 per call (a leak of anything per call, a Call
  alone drags ~100 objects, shows as at least 1 per call) or by 200 in all;
* resident memory grew by less than 4 kB per call or 1 MB in all (PJSIP's pools grow in
  steps of a few hundred kB while it warms up; a leaked call's buffers and pools are tens
  of kB);
* at least 99% of the calls were answered and heard right.

Exit status 0 when all hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from voip import loadWAVtoPCM

from .helpers import tone_runs
from .sip import App, multi, read_stats, serving, stats_app

APP = """
    import asyncio
    from voip import runVoipClient

    async def handler(call):
        await call.playTone(500, 0.5)
        keys = await asyncio.wait_for(call.getDTMF(n=2), 10)
        for key in keys:
            await call.playTone(600 + 100 * int(key), 0.3)
        await call.playTone(300, 3600)  # until the caller hangs up

    runVoipClient(handler)
"""

FREQS = [300, 500] + [600 + 100 * k for k in range(10)]
SAMPLE_EVERY = 30.0


def check_call(line: dict) -> str:
    """'' if the call went right, else what was wrong."""
    if not line.get("answered"):
        return f"not answered ({line.get('status')}, {line.get('error', '')})"
    wav = line["wav"]
    try:
        runs = [r for r in tone_runs(loadWAVtoPCM(wav), FREQS) if r[2] >= 0.05]
    finally:
        Path(wav).unlink(missing_ok=True)
    want = [(500.0, 0.5)]
    for key in line["digits"]:
        f = 600.0 + 100 * int(key)
        want[-1:] = [(f, want[-1][1] + 0.3)] if want[-1][0] == f else [want[-1], (f, 0.3)]
    if len(runs) != len(want) + 1:
        return f"heard {runs}"
    for (f, _s, length), (wf, wl) in zip(runs, want, strict=False):
        if f != wf or abs(length - wl) > 0.04:
            return f"heard {runs}"
    hold = runs[-1]
    # The hold tone plays from the end of the echo to the caller's hang-up.
    if hold[0] != 300 or hold[2] < line["seconds"] - hold[1] - 0.6:
        return f"hold tone cut short: {runs}, call {line['seconds']} s"
    return ""


class Sampler(threading.Thread):
    """Asks the app for a STATS line every ``every`` seconds until stopped."""

    def __init__(self, app: App, every: float) -> None:
        super().__init__(daemon=True)
        self.app, self.every = app, every
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.app.proc.send_signal(signal.SIGUSR1)


def sample(app: App) -> dict:
    """One STATS line from the app, now."""
    before = len(read_stats(app.log))
    app.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = read_stats(app.log)
        if len(stats) > before:
            return stats[-1]
        time.sleep(0.05)
    raise RuntimeError("the app printed no STATS line")


def run_calls(app: App, seconds: float, args: argparse.Namespace, wavs: Path, seed: int):
    """Keep ``args.concurrent`` calls going for ``seconds``; each call's check."""
    proc = multi(
        app.uri,
        *("--seconds", str(seconds), "--concurrent", str(args.concurrent)),
        *("--min", str(args.min), "--max", str(args.max), "--seed", str(seed)),
        *("--record-dir", str(wavs)),
    )
    assert proc.stdout is not None
    checked: list[tuple[dict, str]] = []
    summary: dict = {}
    for text in proc.stdout:
        if not text.startswith("{"):
            continue
        line = json.loads(text)
        if "placed" in line:
            summary = line
        else:
            checked.append((line, check_call(line)))
            if checked[-1][1]:
                print(f"  call {line['n']}: {checked[-1][1]}", flush=True)
    proc.wait(timeout=30)
    return checked, summary


def verdict(start: dict, end: dict, calls: int, right: int, placed: int) -> list[tuple[bool, str]]:
    grew_objects = end["objects"] - start["objects"]
    grew_rss = end["rss_kb"] - start["rss_kb"]
    return [
        (end["threads"] == start["threads"], f"threads {start['threads']} -> {end['threads']}"),
        (end["fds"] == start["fds"], f"open files {start['fds']} -> {end['fds']}"),
        (end["tasks"] == start["tasks"], f"asyncio tasks {start['tasks']} -> {end['tasks']}"),
        (
            end["calls"] == 0 and end["sip_calls"] == 0 and end["ports"] <= 4,
            f"left after the calls: Call {end['calls']}, SipCall {end['sip_calls']},"
            f" media ports {end['ports']} (pooled, at most 4)",
        ),
        (
            grew_objects < max(200, calls),
            f"Python objects {start['objects']} -> {end['objects']} ({grew_objects:+d},"
            f" {grew_objects / max(calls, 1):+.2f} a call)",
        ),
        (
            grew_rss < max(1024, 4 * calls),
            f"RSS {start['rss_kb']} kB -> {end['rss_kb']} kB ({grew_rss:+d} kB,"
            f" {grew_rss / max(calls, 1):+.2f} kB a call)",
        ),
        (
            placed > 0 and right >= 0.99 * placed,
            f"calls heard right: {right} of {placed} placed",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the soak proper")
    p.add_argument("--warmup", type=float, default=2.0, help="minutes of calls before")
    p.add_argument("--concurrent", type=int, default=4)
    p.add_argument("--min", type=float, default=2.5, help="shortest call, seconds")
    p.add_argument("--max", type=float, default=10.0, help="longest call, seconds")
    p.add_argument("--json", metavar="FILE", help="also write the figures there")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="voip-soak-") as tmp:
        tmp_path = Path(tmp)
        app_path = tmp_path / "app.py"
        app_path.write_text(stats_app(textwrap.dedent(APP)))
        wavs = tmp_path / "wavs"
        wavs.mkdir()
        with serving(app_path) as app:
            print(
                f"app pid {app.proc.pid} on {app.uri}; warming up {args.warmup:g} min", flush=True
            )
            warm, _ = run_calls(app, args.warmup * 60, args, wavs, seed=1)
            time.sleep(1.5)  # the last BYE, the 250 ms drain, DISCONNECTED
            start = sample(app)
            print(f"start ({len(warm)} calls of warm-up): {json.dumps(start)}", flush=True)
            sampler = Sampler(app, SAMPLE_EVERY)
            sampler.start()
            t0 = time.monotonic()
            checked, summary = run_calls(app, args.minutes * 60, args, wavs, seed=2)
            elapsed = time.monotonic() - t0
            sampler.stop.set()
            time.sleep(1.5)
            end = sample(app)
            samples = read_stats(app.log)
            print(f"end ({len(checked)} calls in {elapsed / 60:.1f} min): {json.dumps(end)}")
    mid = samples[samples.index(start) + 1 : -1] if start in samples else []
    right = sum(1 for _line, problem in checked if not problem)
    placed = summary.get("placed", len(checked))
    results = verdict(start, end, len(checked), right, placed)
    print(f"\nduring (calls up; every {SAMPLE_EVERY:g} s): rss_kb fds threads objects")
    for s in mid:
        print(f"  {s['rss_kb']:8d} {s['fds']:4d} {s['threads']:3d} {s['objects']:8d}")
    print()
    for ok, text in results:
        print(("flat  " if ok else "GREW  ") + text)
    flat = all(ok for ok, _ in results)
    print("\nverdict:", "FLAT" if flat else "NOT FLAT")
    if args.json:
        figures = {
            "minutes": round(elapsed / 60, 2),
            "concurrent": args.concurrent,
            "calls": len(checked),
            "placed": placed,
            "right": right,
            "start": start,
            "end": end,
            "during": mid,
            "flat": flat,
        }
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if flat else 1


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    sys.exit(main())
