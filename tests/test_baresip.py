"""The demo (test.py) called by baresip, a softphone nobody here wrote.

baresip dials the app, types the code as RFC 4733 events once the app has greeted it, and
dumps what it heard to a WAV; the answer the demo gives must be in it, sample for sample
(G.711 quantisation aside).
"""

import re
import time

import numpy as np
import pytest

from voip import loadWAVtoPCM
from voip.tts import TTStoPCM

from .baresip import Baresip, missing
from .helpers import ROOT, find_pcm, find_sound, frame_freqs, tone_runs, tone_spans, write_app
from .sip import serving

pytestmark = pytest.mark.skipif(bool(missing()), reason=missing() or "baresip is available")

ASSETS = ROOT / "assets"


@pytest.mark.parametrize(
    "code, codec, answer, other",
    [
        ("1234", "PCMU", "password_correct", "password_incorrect"),
        ("9999", "PCMA", "password_incorrect", "password_correct"),
    ],
)
def test_baresip_types_the_code_and_hears_the_answer(tmp_path, code, codec, answer, other):
    started = time.monotonic()
    with serving("test.py") as app, Baresip(tmp_path, codec=codec) as phone:
        phone.command("dial", app.uri)
        phone.wait_event("CALL_ESTABLISHED", timeout=10)
        # Three tones (1.5 s) and "you are calling from b a r e s i p": the code prompt
        # is playing by now, and the first key stops it.
        time.sleep(4)
        phone.command("sndcode", code)
        # The app answers and hangs up by itself once its prompt has played.
        phone.wait_event("CALL_CLOSED", timeout=20)
        phone.stop()  # closes the dump file
        heard = loadWAVtoPCM(phone.heard())
        log = phone.log
    assert time.monotonic() - started < 45
    assert "call ended (we hung up)" in app.log, app.log
    assert f"Set audio decoder: {codec} 8000Hz" in log, log
    # Each key arrived once, in order, although RFC 4733 repeats every event's end packet.
    assert "".join(re.findall(r"\] key (\S)", app.log)) == code, app.log
    assert app.log.count("hanging up") == 1

    # The greeting's three tones, in order.
    freqs = [round(f / 10) * 10 for f in frame_freqs(heard[: 3 * 8000]) if f is not None]
    assert [f for i, f in enumerate(freqs) if i == 0 or f != freqs[i - 1]][:3] == [420, 560, 650]
    # baresip decodes G.711 itself and resamples nothing (8 kHz end to end), so the
    # prompt is there sample for sample, but for the codec's quantisation.
    expected = loadWAVtoPCM(ASSETS / f"{answer}.wav")
    unexpected = loadWAVtoPCM(ASSETS / f"{other}.wav")
    assert find_sound(heard, expected)[0] > 0.99 > find_sound(heard, unexpected)[0]


VERBS_APP = """
from voip import runVoipClient, savePCMtoWAV

async def handler(call):
    got = await call.gather("Enter your code, then the hash key.", timeout=8)
    call.log.info("GATHERED %s %s", got.digits, got.reason)
    message = await call.record(silence_timeout=1.5, max_seconds=20)
    call.log.info("RECORDED %.2f %s", message.seconds, message.reason)
    savePCMtoWAV(message.pcm, MESSAGE)

runVoipClient(handler)
"""


def test_baresip_gathers_keys_and_leaves_a_message_that_ends_on_silence(tmp_path):
    """gather and record-until-silence with real RTP from a real softphone: the keys come
    as RFC 4733 events, the speech through G.711, the beep goes back to the phone."""
    speech = TTStoPCM("Hello, this is a message for the sales team, please call me back.")
    spoken = len(speech) / 8000
    talks_at = 6.0  # after the prompt, the keys and the beep
    sends = np.concatenate([np.zeros(int(talks_at * 8000), np.float32), speech])
    message = tmp_path / "message.wav"
    app_path = write_app(tmp_path, VERBS_APP.replace("MESSAGE", repr(str(message))))
    with serving(app_path) as app, Baresip(tmp_path, sends=sends) as phone:
        phone.command("dial", app.uri)
        phone.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(2.5)  # into the prompt: the first key stops it
        phone.command("sndcode", "42#")
        phone.wait_event("CALL_CLOSED", timeout=30)  # the handler returns: we hang up
        phone.stop()
        heard = loadWAVtoPCM(phone.heard())
    assert "GATHERED 42 finish_on_key" in app.log, app.log
    line = re.search(r"RECORDED (\S+) (\S+)", app.log)
    assert line is not None, app.log
    seconds, reason = float(line[1]), line[2]
    assert reason == "silence" and spoken - 0.3 < seconds < spoken + 0.5, (seconds, spoken)
    # The message is the caller's speech, through G.711 both ways.
    recorded = loadWAVtoPCM(message)
    assert find_pcm(recorded, speech[8000 : 8000 * 2])[0] > 0.9
    # The phone heard the beep: 1 kHz for a quarter of a second.
    beeps = [length for _start, length in tone_spans(heard, 1000)]
    assert any(abs(length - 0.25) < 0.04 for length in beeps), beeps


TRANSFER_TARGET_APP = """
from voip import runVoipClient

async def handler(call):
    call.log.info("TARGET answered %s", call.caller)
    await call.playTone(900, 2.0)

runVoipClient(handler)
"""

TRANSFERRING_APP = """
from voip import runVoipClient

async def handler(call):
    await call.playTone(500, 1.5)
    result = await call.transfer(TARGET)
    call.log.info(
        "TRANSFER %s %s %s active=%s by=%s",
        result.ok, result.status, result.reason, call.active, call.ended_by,
    )
    if not result:
        await call.playTone(300, 1.0)

runVoipClient(handler)
"""


def transferred(tmp_path, first_app: str):
    """baresip calls ``first_app`` (its ``TARGET`` the URI of a second app playing 900 Hz
    for 2 s) and stays until its second call closes. Returns the first app's log, the
    second's, baresip's, and what baresip heard on each call."""
    target_path = write_app(tmp_path, TRANSFER_TARGET_APP, "target.py")
    with serving(target_path) as target:
        source = first_app.replace("TARGET", repr(target.uri))
        with serving(write_app(tmp_path, source, "first.py")) as first, Baresip(tmp_path) as phone:
            phone.command("dial", first.uri)
            phone.wait_event("CALL_ESTABLISHED", timeout=10)
            # The first call closes on the transfer, the second once the tone has played.
            phone.wait_event("CALL_CLOSED", timeout=10)
            phone.wait_event("CALL_CLOSED", timeout=10)
            phone.stop()
            dumps = phone.heard_calls()
            log = phone.log
    assert len(dumps) == 2, (dumps, log)
    heard = [loadWAVtoPCM(d) for d in dumps]
    # On the call baresip placed, the second app's 900 Hz for its whole 2 s.
    runs = [(f, length) for f, _start, length in tone_runs(heard[1], [300, 500, 900])]
    assert [f for f, _ in runs] == [900] and abs(runs[0][1] - 2.0) < 0.1, runs
    return first.log, target.log, log, target.uri, heard


def test_baresip_is_transferred_to_another_app_and_hears_it(tmp_path):
    """Blind transfer: the app REFERs baresip to a second app, baresip calls it and
    hears its 900 Hz tone, and the first app's call ends with transfer() true."""
    first_log, target_log, log, target_uri, heard = transferred(tmp_path, TRANSFERRING_APP)
    assert "TRANSFER True 200 OK active=False by=local" in first_log, first_log
    assert "call ended (we hung up)" in first_log, first_log
    assert "transferring call" in log and target_uri in log, log
    assert "TARGET answered baresip" in target_log, target_log
    # On the first call, the first app's 500 Hz, never the 300 Hz it plays when a
    # transfer fails. (The dump misses the tone's first frames, played as the call came up.)
    runs = [(f, length) for f, _start, length in tone_runs(heard[0], [300, 500, 900])]
    assert [f for f, _ in runs] == [500] and 1.2 < runs[0][1] <= 1.5, runs


ATTENDED_APP = """
import voip
from voip import runVoipClient

async def handler(call):
    await call.playTone(500, 1.5)

    async def consult(agent):
        await agent.playTone(400, 0.5)
        result = await call.transfer(agent)
        agent.log.info(
            "TRANSFER %s %s %s active=%s agent_active=%s",
            result.ok, result.status, result.reason, call.active, agent.active,
        )

    await voip.dial(TARGET, consult)

runVoipClient(handler)
"""


def test_baresip_is_transferred_to_a_call_the_app_placed(tmp_path):
    """Attended transfer: the app calls a second app, then REFERs baresip to that call
    with Replaces naming its dialog; baresip calls the second app and hears it, and both
    of the first app's calls end."""
    first_log, target_log, log, target_uri, _heard = transferred(tmp_path, ATTENDED_APP)
    assert "TRANSFER True 200 OK active=False agent_active=False" in first_log, first_log
    assert f"attended transfer to {target_uri}" in first_log, first_log
    # The Refer-To names the target and our dialog with it (Replaces: its Call-ID and tags).
    refer_to = re.search(r"transferring call \S+ to '(.*)'", log)
    assert refer_to is not None, log
    assert target_uri in refer_to[1] and "Replaces=" in refer_to[1], refer_to[1]
    assert target_log.count("TARGET answered") == 2, target_log  # the app, then baresip
