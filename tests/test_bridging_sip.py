"""call.bridge() over SIP: two pjsua2 callers joined in PJSIP's conference bridge.

Each caller plays its own tone; each must hear the other's and never its own; when one
hangs up, the other hears the app's ending tone and is hung up.
"""

from __future__ import annotations

import time

import pytest

from voip import loadWAVtoPCM, savePCMtoWAV

from .helpers import goertzel_power, tone, tone_spans, write_app
from .sip import peer, peer_result, serving

pytestmark = pytest.mark.timeout(120)

LOBBY = """
    import asyncio
    from voip import runVoipClient

    waiting = []

    async def handler(call):
        if not waiting:
            waiting.append(call)
            await call.ended.wait()
            return
        first = waiting.pop()
        why = await call.bridge(first)
        call.log.info("bridge over: %s", why)
        if why == "other hung up":
            await call.playTone(440, 1.0)

    runVoipClient(handler)
"""


def test_two_callers_hear_each_other_and_not_themselves(tmp_path):
    app_path = write_app(tmp_path, LOBBY)
    savePCMtoWAV(tone(600, 8.0), tmp_path / "a.wav")
    savePCMtoWAV(tone(900, 8.0), tmp_path / "b.wav")
    heard_a, heard_b = tmp_path / "heard_a.wav", tmp_path / "heard_b.wav"
    with serving(app_path) as app:
        a = peer(app.uri, "--play", str(tmp_path / "a.wav"), "--record", str(heard_a))
        time.sleep(1.0)
        b = peer(
            app.uri,
            *("--play", str(tmp_path / "b.wav"), "--record", str(heard_b)),
            *("--duration", "10"),
        )
        result_a, result_b = peer_result(a), peer_result(b)
    assert result_a["answered"] and result_b["answered"]
    pcm_a, pcm_b = loadWAVtoPCM(heard_a), loadWAVtoPCM(heard_b)
    # A (5 s, from 1 s before B) hears B's tone for about 4 s, never its own.
    spans_a = tone_spans(pcm_a, 900)
    assert sum(length for _, length in spans_a) == pytest.approx(4.0, abs=0.5)
    assert goertzel_power(pcm_a, 600) < 1e-3 * goertzel_power(pcm_a, 900)
    # B hears A until A hangs up, then the app's ending tone, then the app hangs up.
    spans_b = tone_spans(pcm_b, 600)
    assert sum(length for _, length in spans_b) == pytest.approx(4.0, abs=0.5)
    assert goertzel_power(pcm_b, 900) < 1e-3 * goertzel_power(pcm_b, 600)
    ending = tone_spans(pcm_b, 440)
    assert len(ending) == 1 and ending[0][1] == pytest.approx(1.0, abs=0.06)
    assert ending[0][0] >= sum(spans_b[-1]) - 0.05
    assert result_b["seconds"] < 7  # hung up by the app, not after its own 10 s
    assert "bridge over: other hung up" in app.log
