"""voip.Queue over SIP: two pjsua2 callers wait on hold, a third (the agent) takes them
in order. Three calls: within the 4 one process holds.

Each peer plays its own tone and records what it hears. Caller 1 (700 Hz) waits, caller 2
(900 Hz) comes 1.5 s later; the agent (1100 Hz, an ``X-Role: agent`` header) at 4 s.
Caller 1 hears the hold music, then the agent, until it hangs up at 8 s; the agent hears
a 440 Hz beep ("next caller"), then caller 2, who had heard the hold music until then;
the agent hangs up at 12 s, and caller 2 hears the app's 350 Hz goodbye tone.
"""

from __future__ import annotations

import time

import pytest

from voip import loadWAVtoPCM, savePCMtoWAV
from voip.audio.tones import HOLD_NOTES

from .helpers import tone, tone_runs, write_app
from .sip import peer, peer_result, serving

pytestmark = pytest.mark.timeout(120)

CENTER = """
    from voip import Queue, runVoipClient

    sales = Queue("sales")

    async def handler(call):
        if call.headers.get("X-Role") == "agent":
            while call.active:
                taken = await sales.take(call)
                if taken is None:
                    return
                call.log.info("took %s: %s", taken.caller.info.call_id, taken.end)
                if call.active:
                    await call.playTone(440, 0.5)
            return
        result = await sales.wait(call, position_every=None)
        call.log.info("queue over: %s, %s", result.reason, result.end)
        if call.active:
            await call.playTone(350, 1.0)

    runVoipClient(handler)
"""

CALLER_1, CALLER_2, AGENT, BEEP, GOODBYE = 700.0, 900.0, 1100.0, 440.0, 350.0
FREQS = [*sorted(set(HOLD_NOTES)), CALLER_1, CALLER_2, AGENT, BEEP, GOODBYE]


def heard(path) -> list[tuple[float, float, float]]:
    """(frequency, start, length) of each tone heard of 0.2 s or more."""
    return [run for run in tone_runs(loadWAVtoPCM(path), FREQS) if run[2] >= 0.2]


def hold_span(runs: list[tuple[float, float, float]]) -> tuple[float, float]:
    """When the hold music was heard: the first note's start, the last one's end."""
    notes = [(at, at + length) for f, at, length in runs if f in HOLD_NOTES]
    assert notes, f"no hold music in {runs}"
    return notes[0][0], notes[-1][1]


def test_two_callers_wait_on_hold_and_the_agent_takes_them_in_order(tmp_path):
    app_path = write_app(tmp_path, CENTER)
    with serving(app_path) as app:
        results = two_callers_and_an_agent(app.uri, tmp_path)
    heard_in_order(tmp_path, results, app.log)


def two_callers_and_an_agent(uri: str, tmp_path) -> dict[str, dict]:
    """Caller 1, caller 2 1.5 s later and the agent 2.5 s after that, each playing its
    tone and recording what it hears into ``tmp_path``; their results once all are over."""
    for name, freq in (("c1", CALLER_1), ("c2", CALLER_2), ("agent", AGENT)):
        savePCMtoWAV(tone(freq, 20.0), tmp_path / f"{name}.wav")

    def call(name: str, duration: float, *args: str):
        return peer(
            uri,
            *("--play", str(tmp_path / f"{name}.wav")),
            *("--record", str(tmp_path / f"heard_{name}.wav")),
            *("--duration", str(duration), *args),
        )

    c1 = call("c1", 8)
    time.sleep(1.5)
    c2 = call("c2", 20)
    time.sleep(2.5)
    agent = call("agent", 8, "--header", "X-Role: agent")
    return {name: peer_result(p) for name, p in (("c1", c1), ("c2", c2), ("a", agent))}


def heard_in_order(tmp_path, results: dict[str, dict], log: str) -> None:
    """What the three heard: see the module."""
    assert all(r["answered"] for r in results.values()), results
    rec = {name: tmp_path / f"heard_{name}.wav" for name in ("c1", "c2", "agent")}
    c1_runs, c2_runs, agent_runs = heard(rec["c1"]), heard(rec["c2"]), heard(rec["agent"])
    # Caller 1: hold music from the start, then the agent (from about 4 s) to its hang-up.
    start, end = hold_span(c1_runs)
    assert start < 0.5 and end == pytest.approx(4.0, abs=0.7)
    agent_heard = [(at, length) for f, at, length in c1_runs if f == AGENT]
    assert agent_heard and agent_heard[0][0] >= end - 0.1
    assert sum(length for _, length in agent_heard) == pytest.approx(4.0, abs=0.7)
    assert not [f for f, _, _ in c1_runs if f in (CALLER_1, CALLER_2)]

    # The agent: caller 1 first, the beep, then caller 2; never the hold music.
    order = [f for f, _, _ in agent_runs]
    assert order[:3] == [CALLER_1, BEEP, CALLER_2], agent_runs
    assert not [f for f in order if f in HOLD_NOTES]
    first = sum(length for f, _, length in agent_runs if f == CALLER_1)
    assert first == pytest.approx(4.0, abs=0.7)

    # Caller 2: hold music until caller 1 left (about 6.5 s into its call, and the beep),
    # then the agent until the agent hangs up, then the app's goodbye.
    start, end = hold_span(c2_runs)
    assert start < 0.5 and end == pytest.approx(7.0, abs=0.8)
    after = [f for f, at, _ in c2_runs if at >= end - 0.1]
    assert after[0] == AGENT and after[-1] == GOODBYE and CALLER_1 not in after
    assert results["c2"]["seconds"] < 14  # hung up by the app after its goodbye
    assert "queue over: bridged, other hung up" in log
    assert "queue over: bridged, hung up" in log
