"""call.connect() over SIP: a pjsua2 caller calls the app, which connects it to a second
voip app served over SIP (each hears the other, never itself), or to a pjsua2 callee
(tests/peers/pjsua_callee.py) that rings, then answers, refuses or never answers.

The caller hears ringback while the callee rings; after the bridge, or the failed
attempt, the app plays a tone saying how connect went.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from voip import loadWAVtoPCM, savePCMtoWAV

from .helpers import goertzel_power, run_app, tone, tone_runs, write_app
from .sip import peer, peer_result, serving, start_callee

pytestmark = pytest.mark.timeout(120)

CONNECTOR = """
    import os
    from voip import runVoipClient

    AFTER = {"answered": 1000, "busy": 1300, "no answer": 1500}

    async def handler(call):
        result = await call.connect(
            os.environ["CONNECT_TO"],
            timeout=float(os.environ["CONNECT_TIMEOUT"]),
            caller_id="5550100",
        )
        call.log.info("connected: %s", result)
        if call.active:
            await call.playTone(AFTER.get(result.state, 1700), 1.0)

    runVoipClient(handler)
"""

FAR_APP = """
    import asyncio, os
    from voip import runVoipClient, savePCMtoWAV

    async def handler(call):
        call.log.info("FAR from %s", call.caller)
        heard = asyncio.ensure_future(call.recordPCM(maxlen=8000 * 3))
        await call.playTone(900, 3.0)
        savePCMtoWAV(await heard, os.environ["HEARD"])

    runVoipClient(handler)
"""
"""The far side as a second app: plays 900 Hz for 3 s while recording what it hears,
then hangs up."""

TONES = [440, 480, 600, 900, 1000, 1300, 1500, 1700]


def runs_of(pcm: np.ndarray, freq: float) -> list[tuple[float, float]]:
    return [(start, length) for f, start, length in tone_runs(pcm, TONES) if f == freq]


def ringing(pcm: np.ndarray, until: float) -> list[tuple[float, float]]:
    """(start, length) of the stretches before ``until`` s where 440 and 480 Hz are both
    heard, per 100 ms (the ring tone)."""
    spans: list[tuple[float, float]] = []
    for k in range(int(until * 10)):
        fr = pcm[k * 800 : (k + 1) * 800]
        total = float(np.mean(fr**2)) if len(fr) else 0.0
        on = total > 1e-4 and min(goertzel_power(fr, 440), goertzel_power(fr, 480)) > total / 10
        if on and spans and abs(sum(spans[-1]) - k / 10) < 1e-6:
            spans[-1] = (spans[-1][0], round(spans[-1][1] + 0.1, 6))
        elif on:
            spans.append((k / 10, 0.1))
    return spans


def connect_call(tmp_path, callee_args, timeout=20.0, duration=12.0, serve=None):
    """The app connects a pjsua2 caller (playing 600 Hz) to the callee; returns what
    each heard, their summaries and the app's log. ``serve(env)`` runs the app with
    ``env`` added to its environment (default: :func:`serving`, one process)."""
    if serve is None:
        app_path = write_app(tmp_path, CONNECTOR)

        def serve(env):
            return serving(app_path, env=env)

    savePCMtoWAV(tone(600, 20.0), tmp_path / "a.wav")
    savePCMtoWAV(tone(900, 20.0), tmp_path / "b.wav")
    heard_a, heard_b = tmp_path / "heard_a.wav", tmp_path / "heard_b.wav"
    callee, uri = start_callee(
        *callee_args, "--play", str(tmp_path / "b.wav"), "--record", str(heard_b)
    )
    env = {"CONNECT_TO": uri, "CONNECT_TIMEOUT": str(timeout)}
    try:
        with serve(env) as app:
            caller = peer(
                app.uri,
                *("--play", str(tmp_path / "a.wav"), "--record", str(heard_a)),
                *("--duration", str(duration)),
            )
            result_a = peer_result(caller)
            out, err = callee.communicate(timeout=60)
    finally:
        callee.kill()
    lines = out.strip().splitlines()
    assert lines, f"the callee printed nothing:\n{err}"
    result_b = json.loads(lines[-1])
    pcm_b = loadWAVtoPCM(heard_b) if heard_b.exists() else np.zeros(0, np.float32)
    return loadWAVtoPCM(heard_a), pcm_b, result_a, result_b, app.log


def test_the_caller_and_a_second_app_hear_each_other_until_that_app_hangs_up(tmp_path):
    """The far side is a second voip app over SIP: it plays 900 Hz for 3 s while
    recording what it hears, then hangs up. Each side hears the other, never itself,
    and the caller then hears the first app's "answered" tone. (A voip app answers at
    once, so ringback is measured against the ringing pjsua2 callee below.)"""
    savePCMtoWAV(tone(600, 20.0), tmp_path / "a.wav")
    heard_a, heard_b = tmp_path / "heard_a.wav", tmp_path / "heard_b.wav"
    far_dir = tmp_path / "far"
    far_dir.mkdir()
    with serving(write_app(far_dir, FAR_APP), env={"HEARD": str(heard_b)}) as far:
        env = {"CONNECT_TO": far.uri, "CONNECT_TIMEOUT": "10"}
        with serving(write_app(tmp_path, CONNECTOR), env=env) as app:
            caller = peer(
                app.uri,
                *("--play", str(tmp_path / "a.wav"), "--record", str(heard_a)),
                *("--duration", "12"),
            )
            result_a = peer_result(caller)
    assert result_a["answered"], result_a
    assert "FAR from 5550100" in far.log, far.log  # the caller id the app gave
    pcm_a, pcm_b = loadWAVtoPCM(heard_a), loadWAVtoPCM(heard_b)
    # The caller: the far app's 900 Hz for its 3 s, then the app's 1 s "answered" tone.
    heard_far = runs_of(pcm_a, 900)
    assert sum(length for _, length in heard_far) == pytest.approx(3.0, abs=0.4), heard_far
    after = runs_of(pcm_a, 1000)
    assert len(after) == 1 and after[0][1] == pytest.approx(1.0, abs=0.1), after
    assert after[0][0] >= sum(heard_far[-1]) - 0.1
    # The far app heard the caller's 600 Hz all along; nobody heard themselves.
    heard_caller = runs_of(pcm_b, 600)
    assert sum(length for _, length in heard_caller) == pytest.approx(3.0, abs=0.4), heard_caller
    assert goertzel_power(pcm_a, 600) < 1e-3 * goertzel_power(pcm_a, 900)
    assert goertzel_power(pcm_b, 900) < 1e-3 * goertzel_power(pcm_b, 600)
    assert "state='answered'" in app.log and "ended='other hung up'" in app.log, app.log
    assert result_a["seconds"] < 8  # the app hung up after its tone


def test_ringback_until_a_ringing_callee_answers_then_both_hear_each_other(tmp_path):
    """The far side rings for 3 s first (a pjsua2 callee): ringback until its answer."""
    pcm_a, pcm_b, result_a, result_b, log = connect_call(
        tmp_path, ("--after", "3", "--duration", "3")
    )
    assert result_a["answered"] and result_b["answered"] and not result_b["cancelled"]
    assert result_b["rang"] == pytest.approx(3.0, abs=0.3)
    assert "5550100" in result_b["from"]  # the caller id the app gave
    # the caller: ringback (2 s on, then off) until the answer at ~3 s ...
    ring = ringing(pcm_a, 3.5)
    assert ring and ring[0][0] <= 0.3 and ring[0][1] == pytest.approx(2.0, abs=0.2)
    assert sum(ring[-1]) < 3.4
    # ... then the callee's 900 Hz for its 3 s, then the app's 1 s "answered" tone
    heard_b_tone = runs_of(pcm_a, 900)
    assert sum(length for _, length in heard_b_tone) == pytest.approx(3.0, abs=0.4)
    assert heard_b_tone[0][0] == pytest.approx(3.0, abs=0.4)
    after = runs_of(pcm_a, 1000)
    assert len(after) == 1 and after[0][1] == pytest.approx(1.0, abs=0.1)
    assert after[0][0] >= sum(heard_b_tone[-1]) - 0.1
    # the callee heard the caller's 600 Hz all along, and nobody heard themselves
    assert sum(length for _, length in runs_of(pcm_b, 600)) == pytest.approx(3.0, abs=0.4)
    assert goertzel_power(pcm_a, 600) < 1e-3 * goertzel_power(pcm_a, 900)
    assert goertzel_power(pcm_b, 900) < 1e-3 * goertzel_power(pcm_b, 600)
    assert "state='answered'" in log and "ended='other hung up'" in log
    assert result_a["seconds"] < 8  # the app hung up after its tone


def test_busy_is_reported_and_the_caller_hears_what_the_app_says_then(tmp_path):
    pcm_a, _, result_a, result_b, log = connect_call(tmp_path, ("--after", "1", "--respond", "486"))
    assert result_b["status"] == 486 and not result_b["answered"]
    assert "state='busy', status=486" in log
    busy = runs_of(pcm_a, 1300)
    assert len(busy) == 1 and busy[0][1] == pytest.approx(1.0, abs=0.1)
    assert busy[0][0] == pytest.approx(1.0, abs=0.4)  # after 1 s of ringback
    assert ringing(pcm_a, busy[0][0])


def test_no_answer_cancels_the_call_after_the_timeout(tmp_path):
    pcm_a, _, result_a, result_b, log = connect_call(tmp_path, ("--respond", "none"), timeout=4.0)
    assert result_b["cancelled"] and not result_b["answered"]
    assert result_b["rang"] == pytest.approx(4.0, abs=0.4)
    assert "state='no answer'" in log
    late = runs_of(pcm_a, 1500)
    assert len(late) == 1 and late[0][0] == pytest.approx(4.0, abs=0.4)
    # ringback from the start: 2 s on, then off, until the app gives up
    ring = ringing(pcm_a, 4.0)
    assert ring and ring[0][0] <= 0.3 and ring[0][1] == pytest.approx(2.0, abs=0.2), ring
    assert sum(ring[-1]) < 3.4, ring


def test_the_caller_hanging_up_while_it_rings_cancels_the_call(tmp_path):
    _, _, result_a, result_b, log = connect_call(tmp_path, ("--after", "10"), duration=2.5)
    assert result_a["seconds"] == pytest.approx(2.5, abs=0.3)
    assert result_b["cancelled"] and not result_b["answered"]
    assert result_b["rang"] == pytest.approx(2.5, abs=0.4)
    assert "caller hung up while" in log and "ended='hung up'" in log


def test_in_the_simulator_the_app_goes_on_as_soon_as_the_far_side_hangs_up(tmp_path):
    """The simulated caller is connected over real SIP to the pjsua2 callee; when the
    callee hangs up, the app's next tone follows at once (the simulator's calls out
    share one endpoint: stopping an endpoint per call held ``connect`` a second or
    two)."""
    app_path = write_app(tmp_path, CONNECTOR)
    savePCMtoWAV(tone(900, 20.0), tmp_path / "b.wav")
    callee, uri = start_callee("--play", str(tmp_path / "b.wav"), "--duration", "2")
    try:
        env = {"CONNECT_TO": uri, "CONNECT_TIMEOUT": "10"}
        proc = run_app(app_path, "--speaker", str(tmp_path / "heard.wav"), env=env, timeout=60)
        callee.communicate(timeout=30)
    finally:
        callee.kill()
    assert proc.returncode == 0, proc.stderr
    assert "state='answered'" in proc.stderr, proc.stderr
    heard = loadWAVtoPCM(tmp_path / "heard.wav")
    far = runs_of(heard, 900)
    assert sum(length for _, length in far) == pytest.approx(2.0, abs=0.3), far
    after = runs_of(heard, 1000)
    assert len(after) == 1 and after[0][1] == pytest.approx(1.0, abs=0.1), after
    assert 0 <= after[0][0] - sum(far[-1]) < 0.5, (far, after)
