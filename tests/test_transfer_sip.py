"""call.transfer() over SIP against a far end that declines REFER (the plain pjsua2 peer).

baresip following a REFER to a second app is in test_baresip.py.
"""

from __future__ import annotations

import pytest

from voip import loadWAVtoPCM

from .helpers import tone_runs, write_app
from .sip import peer, peer_result, serving

pytestmark = pytest.mark.timeout(90)

APP = """
from voip import runVoipClient

async def handler(call):
    await call.playTone(500, 0.5)
    result = await call.transfer("sip:sales@127.0.0.1:9")
    call.log.info(
        "TRANSFER %s %s %s active=%s", result.ok, result.status, result.reason, call.active
    )
    if not result:
        await call.playTone(700, 1.0)

runVoipClient(handler)
"""


def test_a_peer_that_declines_the_refer_leaves_the_call_with_the_app(tmp_path):
    """The peer answers the REFER with 603: transfer() is false with that status, the
    call stays up, and the peer hears the tone the app plays next."""
    heard = tmp_path / "heard.wav"
    with serving(write_app(tmp_path, APP)) as app:
        result = peer_result(
            peer(app.uri, "--refuse-transfer", "--record", str(heard), "--duration", "4")
        )
    assert result["answered"] and result["transfers"] == ["sip:sales@127.0.0.1:9"], result
    assert "TRANSFER False 603 Decline active=True" in app.log, app.log
    # The call stayed up: the app played its tone and hung up when its handler returned.
    assert app.log.count("hanging up") == 1 and "call ended (we hung up)" in app.log, app.log
    runs = [(f, length) for f, _start, length in tone_runs(loadWAVtoPCM(heard), [500, 700])]
    assert [f for f, _ in runs] == [500, 700], runs
    assert abs(runs[1][1] - 1.0) < 0.1, runs


LISTENER = """
from voip import runVoipClient

async def handler(call):
    await call.playTone(600, 3.0)

runVoipClient(handler)
"""


def test_a_refer_for_the_apps_call_is_declined_and_the_call_goes_on(tmp_path):
    """The far end transfers our call: voip does not follow REFER (it would make PJSIP
    place a call the app knows nothing of), answers 603, and the call goes on."""
    heard = tmp_path / "heard.wav"
    with serving(write_app(tmp_path, LISTENER)) as app:
        args = ["--transfer-to", "sip:elsewhere@127.0.0.1:9", "--transfer-at", "0.5"]
        result = peer_result(peer(app.uri, *args, "--record", str(heard), "--duration", "5"))
    assert result["transfer_status"] == [603], result
    assert "declined a transfer to sip:elsewhere@127.0.0.1:9" in app.log, app.log
    runs = [(f, length) for f, _start, length in tone_runs(loadWAVtoPCM(heard), [600])]
    assert len(runs) == 1 and abs(runs[0][1] - 3.0) < 0.1, runs
    assert "call ended (we hung up)" in app.log, app.log
