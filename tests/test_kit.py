"""voip.testing: handlers called in-process on virtual time, checked by what was heard."""

import asyncio
import sys

import numpy as np
import pytest

from voip import CallEndedError, RecordController, VoipError, savePCMtoWAV
from voip.testing import (
    HeardTimeout,
    HungUp,
    PlaybackEnded,
    Said,
    TonePlayed,
    app,
    dial,
)
from voip.tts import TTStoPCM

from .helpers import tone

pytestmark = pytest.mark.timeout(60)


async def acme(call):
    """The issue's phone tree: a welcome, a tone, a menu cut by the first key."""
    await call.say("Welcome to Acme")
    await call.playTone(420, 0.5)
    menu = call.say("For sales press 1, for support press 2")
    try:
        key = await asyncio.wait_for(call.getDTMF(on_first=lambda k: menu.cancel()), 10)
    except TimeoutError:
        await call.say("Goodbye")
        return
    if key == "1":
        await call.say("Connecting you to sales")
    else:
        await call.say("Support is closed")


async def test_the_readme_example():
    async with dial(acme, caller="5551234") as phone:
        await phone.heard_say("For sales press 1")  # waits (virtual time) for that prompt
        await phone.press("1")
        await phone.heard_say("Connecting you to sales")
        await phone.hung_up()
    assert phone.said == [
        "Welcome to Acme",
        "For sales press 1, for support press 2",
        "Connecting you to sales",
    ]


async def test_the_sales_path():
    async with dial(acme, caller="5551234") as phone:
        assert await phone.heard_say("welcome to ACME!") == "Welcome to Acme"
        assert await phone.heard_tone(420, 0.5) == pytest.approx(phone.events[2].at)
        await phone.wait(1.0)
        await phone.press("1")
        # the menu was cut by the key: a prompt cut off is heard too
        assert await phone.heard_say("For sales press 1") == (
            "For sales press 1, for support press 2"
        )
        await phone.heard_say("Connecting you to sales")
        assert await phone.hung_up() == "app"
    assert phone.said == [
        "Welcome to Acme",
        "For sales press 1, for support press 2",
        "Connecting you to sales",
    ]
    welcome, welcome_end, beep, beep_end, menu, key_cut, *_ = phone.events
    assert welcome == Said("Welcome to Acme", at=0.0)  # synthesis took no call time
    assert welcome_end.completed and beep == TonePlayed(420, 0.5, at=welcome_end.at)
    assert beep_end.at == pytest.approx(beep.at + 0.5, abs=0.02)
    assert menu.at == beep_end.at and key_cut == PlaybackEnded(menu, False, at=key_cut.at)
    # the key came 1 s after the tone ended (the tone's waiter matched at its 0.5 s)
    assert key_cut.at == pytest.approx(beep.at + 1.5, abs=0.02)
    assert phone.events[-1] == HungUp("local", at=phone.now)


async def test_a_waiter_that_fails_says_what_was_heard_instead():
    async with dial(acme) as phone:
        with pytest.raises(HeardTimeout) as failed:
            await phone.heard_say("For sales", timeout=2)  # it plays until 4.0 s
        await phone.press("2")
        await phone.heard_say("closed")
        with pytest.raises(HeardTimeout) as ended:
            await phone.heard_tone(420)
    assert str(failed.value) == (
        "heard_say('For sales') timed out after 2 s of call time; heard since 0.00 s "
        "(the last match): said 'Welcome to Acme' at 0.00-0.92 s, tone 420 Hz 0.50 s at "
        "0.92 s, said 'For sales press 1, for support press 2' at 1.42-2.00 s (playing)"
    )
    assert isinstance(failed.value, AssertionError)
    # what came after the last match, and how the call ended
    assert str(ended.value).startswith("heard_tone(420, 0.1): the call ended at ")
    assert "(the app hung up) without it; heard since" in str(ended.value)
    assert "hung up by the app at" in str(ended.value)


async def test_a_silent_stretch_is_described_as_silence():
    async def slow(call):
        await call.playTone(420, 0.5)
        await asyncio.sleep(5)
        await call.say("Too late")

    async with dial(slow) as phone:
        with pytest.raises(HeardTimeout) as failed:
            await phone.heard_say("Hello", timeout=3)
    assert str(failed.value).endswith(
        "heard since 0.00 s (the last match): tone 420 Hz 0.50 s at 0.00 s, "
        "silence 2.50 s at 0.50 s"
    )


async def test_waiters_read_on_from_the_last_match():
    async def twice(call):
        for _ in range(2):
            await call.say("Please hold")
            await call.playTone(440, 0.2)

    async with dial(twice) as phone:
        first = await phone.heard_tone(440, 0.2)
        await phone.heard_say("please hold")  # the second one: the first is behind us
        second = await phone.heard_tone(440, 0.2)
        with pytest.raises(HeardTimeout, match="heard since"):
            await phone.heard_say("please hold")
    assert second == pytest.approx(2 * first + 0.2)  # prompt, tone, prompt, tone


async def test_virtual_time_an_hour_long_wait_runs_on_the_loops_clock():
    loop = asyncio.get_running_loop()

    async def patient(call):
        await asyncio.sleep(3600)
        try:
            await asyncio.wait_for(call.getDTMF(), 120)
        except TimeoutError:
            await call.playTone(500, 0.5)

    async with dial(patient) as phone:
        start = loop.time()
        assert await phone.heard_tone(500, 0.5, timeout=4000) == pytest.approx(3720)
        assert loop.time() - start == pytest.approx(3720.5, abs=0.05)
        await phone.hung_up()
    heard = phone.heard
    assert len(heard) == pytest.approx(3720.5 * 8000, abs=320)
    assert not heard[: 3720 * 8000].any(), "silence, then the tone"


async def test_leaving_the_block_hangs_up_and_waits_for_the_handler():
    ended = []

    async def stays(call):
        try:
            await call.playTone(300, 3600)
        finally:
            await asyncio.sleep(2)  # clean-up takes time: the block waits for it
            ended.append(asyncio.get_running_loop().time())

    async with dial(stays) as phone:
        await phone.heard_tone(300, 1.0)
        left = asyncio.get_running_loop().time()
    assert phone.ended_by == "caller"
    assert ended == [pytest.approx(left + 2, abs=0.05)]
    tone_started, hung_up, cut = phone.events
    assert hung_up == HungUp("remote", at=phone.now) and hung_up.at >= 1.0
    assert cut == PlaybackEnded(tone_started, False, at=hung_up.at)


async def test_a_handler_that_raises_fails_the_block():
    async def broken(call):
        await call.playTone(440, 0.2)
        {}["missing"]

    with pytest.raises(KeyError, match="missing"):
        async with dial(broken) as phone:
            await phone.hung_up()
    assert phone.ended_by == "app"


async def test_a_failure_in_the_block_notes_the_handlers_error():
    async def broken(call):
        raise ValueError("bad handler")

    with pytest.raises(HeardTimeout) as failed:
        async with dial(broken) as phone:
            await phone.heard_tone(440)
    assert "the handler also raised ValueError('bad handler')" in failed.value.__notes__


async def test_two_phones_at_once_each_hear_their_own_call():
    async def greet(call):
        await call.say("Hello " + " ".join(call.caller))
        await call.playTone(400 + 100 * int(call.caller[-1]), 1.0)
        await call.getDTMF()

    async with app(greet) as running:
        a = await running.dial("5551")
        b = await running.dial("5552", name="Bea")
        assert await b.heard_say("hello 5 5 5 2") == "Hello 5 5 5 2"
        assert await a.heard_say("hello 5 5 5 1") == "Hello 5 5 5 1"
        await a.heard_tone(500, 0.5)
        await b.heard_tone(600, 0.5)
        await b.press("9")
        assert await b.hung_up() == "app"
        assert a.ended_by is None  # a is still on the line
        await a.hang_up()
    assert running.phones == [a, b] and a.ended_by == "caller"
    # both calls were up at once: their prompts overlap in call time
    assert a.events[0].at == b.events[0].at == 0.0
    with pytest.raises(HeardTimeout):
        async with dial(greet) as c:
            await c.heard_tone(500, 0.5, timeout=5)  # caller 5556667777: 1100 Hz


async def test_the_caller_speaks_and_the_app_hears_it(tmp_path):
    async def parrot(call):
        for _ in range(3):
            await call.playTone(1000, 0.1)  # the beep: speak now
            ctl = RecordController()
            rec = call.recordPCM(ctl)
            await call.getDTMF()
            ctl.stop()
            await call.playPCM(await rec)

    voice = tone(700, 0.5, amp=0.4)
    savePCMtoWAV(tone(900, 0.4, amp=0.4), tmp_path / "nine.wav")
    async with dial(parrot) as phone:
        await phone.heard_tone(1000, 0.1)
        await phone.speak(voice)
        await phone.press("#")
        await phone.heard_tone(700, 0.5)
        await phone.heard_tone(1000, 0.1)
        await phone.speak(tmp_path / "nine.wav")
        await phone.silence(0.3)
        await phone.press("#")
        await phone.heard_tone(900, 0.4)
        await phone.heard_silence(0.3)
        await phone.heard_tone(1000, 0.1)
        await phone.speak("Testing one two three")
        await phone.press("#")
        await phone.heard_sound(TTStoPCM("Testing one two three"))
    assert len(phone.said) == 0
    with pytest.raises(CallEndedError):
        await phone.press("1")


async def test_speech_played_as_audio_is_heard_by_its_sound():
    async def recorded(call):
        await call.playPCM(TTStoPCM("this is a test of speech"))

    async with dial(recorded) as phone:
        assert await phone.heard_say("test of speech") == "test of speech"
        with pytest.raises(HeardTimeout):
            await phone.heard_say("this is a test of speech")  # heard once only


async def test_heard_is_the_speaker_timeline_frame_for_frame():
    async def tones(call):
        await call.playTone(420, 0.5)
        await asyncio.sleep(0.3)
        await call.playTone(560, 0.2)

    async with dial(tones) as phone:
        await phone.hung_up()
    heard = phone.heard
    assert len(heard) == 8000  # 0.5 + 0.3 + 0.2 s, then the hang-up
    np.testing.assert_allclose(heard[:4000], tone(420, 0.5, amp=1.0), atol=1e-6)
    assert not heard[4000:6400].any()
    np.testing.assert_allclose(heard[6400:], tone(560, 0.2, amp=1.0), atol=1e-6)


async def test_without_looptime_the_kit_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "looptime", None)  # as if not installed
    with pytest.raises(VoipError, match=r"pip install 'voip\[testing\]'"):
        async with dial(acme):
            pass
