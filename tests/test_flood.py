"""Garbage UDP at thousands of packets a second, at the SIP port and the RTP ports, while
real calls go on: they keep their audio and their digits.

The flood comes from tests/peers/flood.py (random bytes, almost-SIP, RTP-shaped junk),
the calls from tests/peers/pjsua_multi.py (plain pjsua2, up to 4 at once). Each call hears
a 500 Hz greeting, sends two random digits, and must hear them echoed as tones: the
digits are checked by what the caller hears, the audio by frequency and length.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from voip import loadWAVtoPCM

from .helpers import tone_runs
from .peers import torture
from .sip import multi, multi_results, next_ports, serving

FLOOD = Path(__file__).resolve().parent / "peers" / "flood.py"

ECHO_APP = """
    import asyncio
    from voip import runVoipClient

    async def handler(call):
        await call.playTone(500, 0.5)
        keys = await asyncio.wait_for(call.getDTMF(n=2), 10)
        call.log.info("GOT KEYS %s", keys)
        for key in keys:
            await call.playTone(600 + 100 * int(key), 0.3)

    runVoipClient(handler)
"""

GREETING = 500
FREQS = [GREETING] + [600 + 100 * k for k in range(10)]
"""Every tone the app plays: multiples of 100 Hz, so that none leaks into another."""

RATE = int(os.environ.get("FLOOD_RATE", "2500"))
"""Packets a second at the SIP port, and as many again at the RTP ports (FLOOD_RATE in
the environment sets another, to find where it breaks)."""
RTP_KIND = os.environ.get("FLOOD_RTP_KIND", "mix")
"""What goes to the RTP ports: mix (random, almost-SIP, RTP-shaped), random, sip or rtp."""
FLOOD_SECONDS = 14
CALL_SECONDS = 11
"""Calls start during this long after the flood does; the last ends before it stops."""


def expected_tones(digits: str) -> list[tuple[float, float]]:
    """(frequency, length) of the tones a caller who sent ``digits`` must hear."""
    tones: list[tuple[float, float]] = [(GREETING, 0.5)]
    for key in digits:
        f = 600 + 100 * int(key)
        if tones[-1][0] == f:  # the same digit twice: one tone, twice as long
            tones[-1] = (f, tones[-1][1] + 0.3)
        else:
            tones.append((f, 0.3))
    return tones


def heard_right(wav: str, digits: str) -> tuple[bool, list]:
    """Whether the recording holds exactly the expected tones, each at its length
    (within 40 ms: the edges of a 10 ms step), and what it holds."""
    runs = [r for r in tone_runs(loadWAVtoPCM(wav), FREQS) if r[2] >= 0.05]
    want = expected_tones(digits)
    ok = len(runs) == len(want) and all(
        f == wf and abs(length - wl) <= 0.04
        for (f, _start, length), (wf, wl) in zip(runs, want, strict=True)
    )
    return ok, runs


def flood(*args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(FLOOD), "--seconds", str(FLOOD_SECONDS), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def flood_result(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate(timeout=FLOOD_SECONDS + 20)
    return json.loads(out.strip().splitlines()[-1])


def test_calls_keep_audio_and_digits_under_a_garbage_flood(tmp_path):
    app_path = tmp_path / "app.py"
    app_path.write_text(textwrap.dedent(ECHO_APP))
    _, rtp = next_ports()
    rtp_ports = f"{rtp}-{rtp + 15}"  # 4 calls use 8 of them: each gets its share of junk
    with serving(app_path, "--rtp-ports", rtp_ports) as app:
        sip_flood = flood("--to", f"127.0.0.1:{app.port}", "--rate", str(RATE))
        rtp_flood = flood(
            *("--to", f"127.0.0.1:{rtp_ports}", "--rate", str(RATE)),
            *("--seed", "2", "--kind", RTP_KIND),
        )
        caller = multi(
            app.uri,
            *("--seconds", str(CALL_SECONDS), "--concurrent", "4", "--min", "6", "--max", "6"),
            *("--record-dir", str(tmp_path), "--seed", "7"),
        )
        calls, summary = multi_results(caller, timeout=60)
        sip_rate, rtp_rate = flood_result(sip_flood), flood_result(rtp_flood)
        after = torture.ask_options("127.0.0.1", app.port)
    heard = {c["n"]: heard_right(c["wav"], c["digits"]) for c in calls if c["answered"]}
    good = [c for c in calls if heard.get(c["n"], (False,))[0]]
    report = {
        "sip_pps": sip_rate["rate"],
        "rtp_pps": rtp_rate["rate"],
        "packets": sip_rate["sent"] + rtp_rate["sent"],
        "calls_placed": summary["placed"],
        "calls_right": len(good),
    }
    print("FLOOD", json.dumps(report))
    bad = [(c, heard.get(c["n"])) for c in calls if c not in good]
    assert min(sip_rate["rate"], rtp_rate["rate"]) >= 0.8 * RATE >= 2000, report
    assert summary["placed"] >= 8, (summary, app.log[-3000:])
    assert len(good) >= 0.99 * summary["placed"], (report, bad)
    # The app heard every caller's digits (the echo proves it too).
    got = sorted(ln.rsplit(" ", 1)[1] for ln in app.log.splitlines() if "GOT KEYS" in ln)
    assert got == sorted(c["digits"] for c in calls if c["answered"]), (got, calls)
    assert after == [200], after
    # Tens of thousands of malformed datagrams: a few lines in the log, none of their text.
    complaints = [ln for ln in app.log.splitlines() if "voip.pjsip" in ln and "packet" in ln]
    assert 1 <= len(complaints) <= 1 + FLOOD_SECONDS // 10 + 1, complaints
    assert "flood.invalid" not in app.log  # the almost-SIP packets' Call-ID
