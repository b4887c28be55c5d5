"""Four calls at once in one app, three of them with a broken handler: one raises, one
never returns, one blocks the event loop again and again. The fourth caller still hears
every tone whole and at its frequency, its keys arrive, and the next call is answered.
"""

from __future__ import annotations

import textwrap
import time

from voip import loadWAVtoPCM

from .helpers import tone_runs
from .peers import torture
from .sip import App, peer, peer_result, serving

APP = """
    import asyncio, time
    from voip import runVoipClient

    async def handler(call):
        name = call.caller_name
        if name == "raiser":
            await call.playTone(300, 0.2)
            raise RuntimeError("the raiser's bug")
        if name == "hanger":
            try:
                await asyncio.Event().wait()  # never returns: only the caller's BYE ends it
            except asyncio.CancelledError:
                call.log.info("HANGER CANCELLED")
                raise
        if name == "blocker":
            call.log.info("BLOCKING FROM %.3f", time.time())
            for _ in range(10):
                time.sleep(0.3)  # a bug: blocks the event loop, every other call's logic
                await asyncio.sleep(0.01)
            call.log.info("BLOCKING UNTIL %.3f", time.time())
            return
        call.log.info("TONE AT %.3f", time.time())
        await call.playTone(500, 1.0)
        keys = await asyncio.wait_for(call.getDTMF(n=3), 15)
        call.log.info("GOT KEYS %s", keys)
        for key in keys:
            await call.playTone(600 + 100 * int(key), 0.3)

    runVoipClient(handler)
"""

FREQS = [300, 500] + [600 + 100 * k for k in range(10)]


def heard(wav) -> list[tuple[float, float]]:
    runs = tone_runs(loadWAVtoPCM(wav), FREQS)
    return [(f, round(length, 2)) for f, _start, length in runs if length >= 0.05]


def assert_heard(wav, keys: str) -> None:
    """The greeting whole (one unbroken second of 500 Hz), then one tone per key."""
    got = heard(wav)
    want = [(500, 1.0)] + [(600 + 100 * int(k), 0.3) for k in keys]
    assert [f for f, _ in got] == [f for f, _ in want], got
    assert all(abs(length - w) <= 0.04 for (_, length), (_, w) in zip(got, want, strict=True))


def log_time(app: App, marker: str) -> float:
    line = next(ln for ln in app.log.splitlines() if marker in ln)
    return float(line.rsplit(" ", 1)[1])


def test_raising_hanging_and_blocking_handlers_leave_the_good_call_whole(tmp_path):
    app_path = tmp_path / "app.py"
    app_path.write_text(textwrap.dedent(APP))
    good_wav, next_wav = tmp_path / "good.wav", tmp_path / "next.wav"
    with serving(app_path) as app:
        callers = {
            name: peer(app.uri, "--name", name, "--duration", seconds)
            for name, seconds in (("raiser", "6"), ("hanger", "4"), ("blocker", "8"))
        }
        time.sleep(0.3)  # the blocker is blocking by the time the good call starts
        callers["good"] = peer(
            app.uri,
            *("--name", "good", "--record", str(good_wav), "--duration", "10"),
            *("--dtmf", "159", "--dtmf-at", "1.5"),
        )
        time.sleep(1.0)
        during = torture.ask_options(
            "127.0.0.1", app.port
        )  # the SIP side answers while the loop is blocked
        results = {name: peer_result(p) for name, p in callers.items()}
        # A new call once they are over: answered, heard, its keys taken.
        after = peer_result(
            peer(
                app.uri,
                *("--name", "next", "--record", str(next_wav), "--duration", "10"),
                *("--dtmf", "428", "--dtmf-at", "1.3"),
            )
        )
        assert app.proc.poll() is None
    assert all(r["answered"] and r["status"] == 200 for r in results.values()), results
    assert during == [200]

    # The good call: every tone whole and right, its keys received, despite the others.
    assert_heard(good_wav, "159")
    assert "GOT KEYS 159" in app.log
    # ... and the loop really was blocked while its greeting played.
    start, end = log_time(app, "BLOCKING FROM"), log_time(app, "BLOCKING UNTIL")
    tone_at = log_time(app, "TONE AT")
    assert end - start >= 2.9 and start - 0.5 < tone_at < end - 1.0, (start, tone_at, end)

    # The raiser: its traceback logged, its call ended at once (by us).
    assert "the raiser's bug" in app.log and "Traceback" in app.log
    assert results["raiser"]["seconds"] < 1.5, results
    # The hanger: ended by its caller after 4 s, the handler cancelled then.
    assert 3.8 < results["hanger"]["seconds"] < 4.6, results
    assert app.log.count("HANGER CANCELLED") == 1, app.log
    # The blocker: ended by us once it returned, after its 3 s of blocking.
    assert 2.9 < results["blocker"]["seconds"] < 6, results

    assert after["answered"] and after["status"] == 200, after
    assert_heard(next_wav, "428")
    assert "GOT KEYS 428" in app.log
