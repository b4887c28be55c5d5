"""voip.testing.dial_sip: the kit's phone over real SIP, against apps served on loopback."""

import re

import pytest

from voip import CallEndedError, VoipError, loadWAVtoPCM
from voip.testing import HeardTimeout, dial_sip

from .helpers import ROOT
from .sip import next_ports, serving

pytestmark = pytest.mark.timeout(120)


def softphone() -> dict[str, object]:
    """The kit's own SIP settings: its own loopback port and RTP range."""
    port, rtp = next_ports()
    return {"listen": f"127.0.0.1:{port}", "rtp_ports": (rtp, rtp + 99)}


async def test_the_demo_over_sip_with_the_same_waiters():
    """test.py served over SIP: three tones, the caller's number read back, a code."""
    correct = loadWAVtoPCM(ROOT / "assets" / "password_correct.wav")
    with serving("test.py") as app:
        async with dial_sip(app.uri, **softphone()) as phone:
            start = await phone.heard_tone(420, 0.5, timeout=10)
            assert await phone.heard_tone(560, 0.5, timeout=5) == pytest.approx(
                start + 0.5, abs=0.05
            )
            await phone.heard_tone(650, 0.5, timeout=5)
            # heard by its sound: the whole prompt ("voip" is the softphone's user name)
            await phone.heard_say("You are calling from v o i p", timeout=10)
            await phone.wait(0.5)
            await phone.press("1234")
            await phone.heard_sound(correct, timeout=10)
            assert await phone.hung_up(timeout=10) == "app"
            with pytest.raises(CallEndedError):
                await phone.press("1")
            with pytest.raises(VoipError, match="in-process only"):
                print(phone.events)
    assert "key 4" in app.log


async def test_a_failing_waiter_over_sip_says_what_was_heard():
    with serving("examples/hello.py") as app:
        async with dial_sip(app.uri, **softphone()) as phone:
            with pytest.raises(HeardTimeout) as failed:
                await phone.heard_tone(1000, 0.5, timeout=10)
    message = str(failed.value)
    assert message.startswith("heard_tone(1000, 0.5): the call ended at ")
    # the three tones told apart by their frequency, from the audio alone
    heard = message.split("heard since 0.00 s (the last match): ")[1].split(", ")
    tones = [re.fullmatch(r"tone (\d+) Hz ([\d.]+) s at [\d.]+ s", item) for item in heard[:3]]
    assert all(tones), heard
    assert [int(t[1]) for t in tones] == [420, 560, 650]
    # (less a frame or two: where one tone becomes the next, a frame is neither)
    assert all(0.44 <= float(t[2]) <= 0.5 for t in tones), heard
    assert heard[3].startswith("hung up by the app at ") and len(heard) == 4


async def test_no_answer_is_a_clear_error():
    port, _ = next_ports()
    with pytest.raises(VoipError, match="call to sip:app@127.0.0.1"):
        async with dial_sip(f"sip:app@127.0.0.1:{port}", answer_timeout=2, **softphone()):
            pass
