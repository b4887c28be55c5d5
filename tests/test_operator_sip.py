"""examples/operator.py over SIP: a caller presses 0 for the operator, a pjsua2 callee
(tests/peers/pjsua_callee.py) playing 900 Hz.

A pjsua2 caller that declines the REFER (603) is put through by the app itself
(``call.connect``): each hears the other. baresip follows the REFER and calls the
operator itself (test_baresip.py has more of baresip and transfers).
"""

from __future__ import annotations

import time

import pytest

from voip import loadWAVtoPCM, savePCMtoWAV

from .baresip import Baresip, missing
from .helpers import ROOT, tone, tone_runs
from .sip import peer, peer_result, serving, start_callee

pytestmark = pytest.mark.timeout(120)

OPERATOR = ROOT / "examples" / "operator.py"
TONES = [440, 480, 600, 900]


def runs(pcm, freq: float) -> list[tuple[float, float]]:
    return [(start, length) for f, start, length in tone_runs(pcm, TONES) if f == freq]


def test_a_caller_refusing_the_transfer_is_connected_to_the_operator(tmp_path):
    savePCMtoWAV(tone(600, 20.0), tmp_path / "caller.wav")
    savePCMtoWAV(tone(900, 20.0), tmp_path / "operator.wav")
    heard, heard_op = tmp_path / "heard.wav", tmp_path / "heard_op.wav"
    operator, uri = start_callee(
        *("--after", "1", "--duration", "3"),
        *("--play", str(tmp_path / "operator.wav"), "--record", str(heard_op)),
    )
    try:
        with serving(OPERATOR, env={"OPERATOR_URI": uri}) as app:
            caller = peer(
                app.uri,
                *("--refuse-transfer", "--dtmf", "0", "--dtmf-at", "1.5"),
                *("--play", str(tmp_path / "caller.wav"), "--record", str(heard)),
                "--duration",
                "16",
            )
            result = peer_result(caller)
        answered = peer_result(operator)
    finally:
        operator.kill()
    assert result["transfers"] == [uri], result  # asked, and declined
    assert "transfer failed (603 Decline)" in app.log, app.log
    assert f"connect to {uri}: answered (200 OK)" in app.log, app.log
    assert "other hung up" in app.log, app.log
    assert answered["answered"] and answered["seconds"] == pytest.approx(3.0, abs=0.3)
    pcm, pcm_op = loadWAVtoPCM(heard), loadWAVtoPCM(heard_op)
    # The caller: ringback for the second the operator rang, then the operator's 3 s.
    assert runs(pcm, 440) and runs(pcm, 480), tone_runs(pcm, TONES)
    talked = runs(pcm, 900)
    assert sum(length for _, length in talked) == pytest.approx(3.0, abs=0.4), talked
    assert talked[0][0] > runs(pcm, 440)[0][0]
    # The operator heard the caller all along, never itself.
    assert sum(length for _, length in runs(pcm_op, 600)) == pytest.approx(3.0, abs=0.4)
    assert not runs(pcm_op, 900)
    # Then "Thank you for calling. Goodbye.", and the app hung up.
    assert result["seconds"] < 15, result
    assert "call ended (we hung up)" in app.log, app.log


@pytest.mark.skipif(bool(missing()), reason=missing() or "baresip is here")
def test_baresip_follows_the_transfer_to_the_operator(tmp_path):
    savePCMtoWAV(tone(900, 20.0), tmp_path / "operator.wav")
    operator, uri = start_callee(
        *("--after", "0.5", "--duration", "2"), "--play", str(tmp_path / "operator.wav")
    )
    try:
        with serving(OPERATOR, env={"OPERATOR_URI": uri}) as app, Baresip(tmp_path) as phone:
            phone.command("dial", app.uri)
            phone.wait_event("CALL_ESTABLISHED", timeout=10)
            time.sleep(1.5)  # into the welcome: the key stops it
            phone.command("sndcode", "0")
            # Our call closes on the transfer, baresip's own once the operator hangs up.
            phone.wait_event("CALL_CLOSED", timeout=15)
            phone.wait_event("CALL_CLOSED", timeout=15)
            phone.stop()
            dumps = phone.heard_calls()
        answered = peer_result(operator)
    finally:
        operator.kill()
    assert f"transferred to {uri}" in app.log, app.log
    assert "connecting to" not in app.log, app.log  # the app placed no call
    assert answered["answered"] and "baresip" in answered["from"], answered
    assert len(dumps) == 2, dumps
    talked = runs(loadWAVtoPCM(dumps[1]), 900)  # on the call baresip placed
    assert sum(length for _, length in talked) == pytest.approx(2.0, abs=0.3), talked
