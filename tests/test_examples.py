"""Every script in examples/, and the demo (test.py), called in-process through the test
kit, on virtual time.

Each test is a caller: it presses keys and speaks when it has heard what it waits for,
then checks what it heard (tones by frequency, prompts by their samples, texts by the
app's events) and what the app printed. Time-outs of 60 s are the examples' own: virtual
time runs them at once. (Running the scripts themselves, as a user does, is
tests/test_sim.py's: the simulator, its --speaker timeline and exit statuses.)
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from voip import Mailbox, Room, loadWAVtoPCM
from voip.audio.match import find_pcm
from voip.events import PlaybackEnded, RecordingStopped, Said, SoundPlayed, TonePlayed
from voip.testing import HeardTimeout, Phone, app, dial
from voip.tts import TTStoPCM

from .helpers import ROOT, tone, tone_runs

EXAMPLES = ROOT / "examples"
ASSETS = ROOT / "assets"
MIC_TONE = 700.0  # Hz: the caller's "voice"

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("examples")]


@pytest.fixture(scope="module")
def examples() -> Iterator[None]:
    """examples/ importable, as when a script runs from there (menu.py imports echo.py)."""
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


def example(name: str) -> ModuleType:
    return importlib.import_module(name)


def load(path: Path, name: str) -> ModuleType:
    """The script at ``path`` as a module called ``name`` (test.py is not stdlib's test)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asset(name: str) -> np.ndarray:
    return loadWAVtoPCM(ASSETS / name)


def played(phone: Phone) -> list[tuple[object, bool]]:
    """What the app played, in order: (what started it, whether it played out)."""
    return [(e.what, e.completed) for e in phone.events if isinstance(e, PlaybackEnded)]


async def assert_three_tones(phone: Phone, start: float | None = None) -> None:
    """420, 560 and 650 Hz, 0.5 s each, one after the other (``start``: the first's
    start, to the frame)."""
    first = await phone.heard_tone(420, 0.5)
    if start is not None:
        assert first == pytest.approx(start, abs=0.02)
    assert await phone.heard_tone(560, 0.5) == pytest.approx(first + 0.5, abs=0.02)
    assert await phone.heard_tone(650, 0.5) == pytest.approx(first + 1.0, abs=0.02)


async def test_hello_plays_three_tones():
    async with dial(example("hello").handler) as phone:
        await assert_three_tones(phone, start=0.0)
        assert await phone.hung_up() == "app"
    assert phone.now == pytest.approx(1.5)  # nothing else: the tones are all there is
    assert [type(what) for what, completed in played(phone) if completed] == [TonePlayed] * 3


async def test_custom_sound_plays_the_asset_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(
        "custom_sound_elsewhere", EXAMPLES / "custom_sound.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with dial(module.handler) as phone:
        assert await phone.heard_sound(asset("my_sound.wav")) == 0.0
        assert await phone.hung_up() == "app"
    assert phone.now == pytest.approx(len(asset("my_sound.wav")) / 8000, abs=0.02)


@pytest.mark.parametrize(
    "name, keys, printed, ends",
    [
        ("keypad", "5", "5", 0.26),
        # '#', '*' and 'A' are not in the filter: the fourth digit is the seventh key
        ("keypad_four", "1#2*3A4", "1234", 0.26 + 6 * 0.2),
        ("timeout", "1234", "1234", 0.26 + 3 * 0.2),
    ],
)
async def test_the_keys_are_printed(capsys, name, keys, printed, ends):
    async with dial(example(name).handler) as phone:
        await phone.heard_tone(1000, 0.25)
        await phone.press(keys)
        assert await phone.hung_up() == "app"
    assert capsys.readouterr().out == printed + "\n"
    assert phone.now == pytest.approx(ends)  # the call ended with the last key it wanted


async def test_timeout_says_so_after_its_60_seconds(capsys):
    async with dial(example("timeout").handler) as phone:
        await phone.heard_tone(1000, 0.25)
        await phone.hung_up(timeout=70)
    assert capsys.readouterr().out == "not enough keys pressed in the alloted time\n"
    assert phone.now == pytest.approx(0.26 + 60, abs=0.02)


async def test_record_playback_plays_the_recording_back():
    voice = tone(MIC_TONE, 1.0, amp=0.5)
    async with dial(example("record_playback").handler) as phone:
        await phone.heard_sound(asset("record_prompt.wav"))
        await phone.press("9")  # during the prompt: too early, flushed
        await phone.heard_tone(1000, 0.25)
        await phone.silence(0.5)
        await phone.speak(voice)
        await phone.silence(0.5)
        await phone.press("1")
        await phone.heard_sound(asset("playing_back.wav"))
        # the caller's voice comes back 0.5 s into the recording, and only there
        back = await phone.heard_silence(0.4)
        voice_at = await phone.heard_tone(MIC_TONE, 1.0)
        assert voice_at == pytest.approx(back + 0.5, abs=0.04)
        await phone.hung_up()
    heard = phone.heard
    assert find_pcm(heard, voice)[0] > 0.99
    assert not any(
        isinstance(what, TonePlayed) and what.freq == MIC_TONE for what, _ in played(phone)
    )


async def test_echo_plays_the_caller_back():
    voice = tone(MIC_TONE, 1.0, amp=0.5)
    async with dial(example("echo").handler) as phone:
        await phone.silence(1.0)
        await phone.speak(voice)
        echo = await phone.heard_tone(MIC_TONE, 1.0)
        assert echo == pytest.approx(1.0, abs=0.04)  # at once: within a frame or two
        await phone.heard_silence(0.5)
        await phone.press("1")
        assert await phone.hung_up() == "app"
    heard = phone.heard
    assert not heard[:7600].any()  # nothing before the caller spoke
    assert find_pcm(heard, voice)[0] > 0.99


@pytest.mark.parametrize("key, freq, other", [("1", 880, 440), ("2", 440, 880)])
async def test_cancel_playback_stops_the_loop_at_the_key(key, freq, other):
    my_sound = asset("my_sound.wav")
    async with dial(example("cancel_playback").handler) as phone:
        await phone.heard_sound(my_sound)
        await phone.wait(0.5)  # into its second time round
        await phone.press(key)
        at = await phone.heard_tone(freq, 0.5)
        await phone.hung_up()
    (loop, loop_done), (beep, beep_done) = played(phone)
    assert loop == SoundPlayed(len(my_sound) / 8000, True, at=0.0) and not loop_done
    assert beep == TonePlayed(freq, 0.5, at=beep.at) and beep_done
    stopped = phone.events[2]
    assert stopped == PlaybackEnded(loop, False, at=beep.at)  # at the key, then the tone
    assert at == pytest.approx(beep.at, abs=0.02)
    heard = phone.heard
    # before the key: the sound over and over; after it, the tone alone, sample for sample
    key_at = round(beep.at * 8000)
    np.testing.assert_allclose(heard[: len(my_sound)], my_sound, atol=1e-6)
    np.testing.assert_allclose(heard[key_at : key_at + 4000], tone(freq, 0.5, amp=1.0), atol=1e-6)
    with pytest.raises(HeardTimeout):
        await phone.heard_tone(other, 0.1, timeout=1)


async def test_tts_speaks():
    text = "this is a test of speech to text"
    async with dial(example("tts").handler) as phone:
        # played as audio (TTStoPCM, then playPCM): heard by their sound
        await phone.heard_say(text)
        await phone.heard_say(text, opts=["-v", "en-us"])
        # call.say: heard by its text
        assert await phone.heard_say("GOODBYE") == "goodbye"
        await phone.hung_up()
    (first, _), (second, _), (third, _) = played(phone)
    assert first == SoundPlayed(len(TTStoPCM(text)) / 8000, at=0.0)
    assert second.at == pytest.approx(first.seconds, abs=0.02)
    assert third == Said("goodbye", at=third.at)
    assert phone.said == ["goodbye"]
    # the second phrase is the en-us voice, not the default one again
    heard = phone.heard[round(second.at * 8000) : round(third.at * 8000)]
    assert find_pcm(heard, TTStoPCM(text, ["-v", "en-us"]))[0] > 0.99


# -- the menu (voip.Menu) -----------------------------------------------------------------

NO_INPUT = "Sorry, I did not hear a choice."
INVALID = "Sorry, that is not one of the choices."


async def choose(phone: Phone, keys: str) -> None:
    """A second into the welcome, press ``keys``: the first one cuts it short."""
    await phone.wait(1.0)
    await phone.press(keys)


def welcome_cut(phone: Phone) -> bool:
    """Whether the first welcome was cut off by a key, a second in."""
    first = next(e for e in phone.events if isinstance(e, PlaybackEnded))
    return first.what == Said(example("menu").WELCOME, at=0.0) and not first.completed


async def test_menu_1_is_the_tones_demo_and_the_first_key_cuts_the_welcome():
    async with dial(example("menu").handler) as phone:
        await choose(phone, "1")
        await assert_three_tones(phone, start=1.0)  # at once: the key cut the welcome
        assert await phone.hung_up() == "app"
    assert welcome_cut(phone)


async def test_menu_a_wrong_key_says_so_and_asks_again():
    menu = example("menu")
    async with dial(menu.handler) as phone:
        await choose(phone, "7")
        await phone.heard_say(INVALID)
        await phone.heard_say(menu.WELCOME)
        await phone.press("1")
        await assert_three_tones(phone)
        await phone.hung_up()
    assert phone.said[:3] == [menu.WELCOME, INVALID, menu.WELCOME]


async def test_menu_silence_three_times_says_goodbye_and_hangs_up():
    menu = example("menu")
    async with dial(menu.handler) as phone:
        assert await phone.hung_up(timeout=120) == "app"
    assert phone.said == [menu.WELCOME, NO_INPUT, menu.WELCOME, NO_INPUT, menu.WELCOME, "Goodbye."]
    # Each time it waited its 10 s after the welcome, on virtual time.
    ends = [e.at for e in phone.events if isinstance(e, PlaybackEnded)]
    starts = [e.at for e in phone.events if isinstance(e, Said)]
    assert starts[1] == pytest.approx(ends[0] + menu.TIMEOUT_SECONDS, abs=0.04)


async def test_menu_2_is_the_echo_test():
    async with dial(example("menu").handler) as phone:
        await choose(phone, "2")
        await phone.speak(tone(MIC_TONE, 1.0, amp=0.5))
        assert await phone.heard_tone(MIC_TONE, 1.0) == pytest.approx(1.2, abs=0.04)
        await phone.press("5")  # any key ends the echo test, and the call
        assert await phone.hung_up() == "app"


async def test_menu_3_records_a_message_until_silence_and_plays_it_back():
    voice = TTStoPCM("Hello, this is a message for the demo phone tree.")
    async with dial(example("menu").handler) as phone:
        await choose(phone, "3")
        await phone.heard_say("Please speak after the tone")
        await phone.heard_tone(1000, 0.25)
        await phone.speak(voice)
        await phone.silence(3)  # the message ends 2 s into this silence
        await phone.heard_say("Here is what you said")
        back = await phone.heard_sound(voice)
        await phone.heard_say("Goodbye")
        await phone.hung_up()
    message = [e.what for e in phone.events if isinstance(e, PlaybackEnded)][-2]
    assert isinstance(message, SoundPlayed)
    # Trimmed to the speech, with about 0.1 s kept each side and the detector's hangover.
    assert len(voice) / 8000 < message.seconds < len(voice) / 8000 + 0.5
    assert back == pytest.approx(message.at, abs=0.2)


async def test_menu_3_a_caller_hanging_up_leaves_the_message(caplog):
    caplog.set_level(logging.INFO, logger="voip")
    voice = TTStoPCM("Call me back, please.")
    async with dial(example("menu").handler) as phone:
        await choose(phone, "3")
        await phone.heard_tone(1000, 0.25)
        await phone.speak(voice)
        await phone.hang_up()
    assert "message of" in caplog.text and "(hangup)" in caplog.text


async def test_menu_4_opening_hours_and_back_with_star():
    menu = example("menu")
    async with dial(menu.handler) as phone:
        await choose(phone, "4")
        await phone.heard_say("For weekdays, press 1")
        await phone.press("*")
        await phone.heard_say(menu.WELCOME)  # back at the top
        await phone.press("4")
        await phone.heard_say("For weekdays, press 1")
        await phone.press("1")
        await phone.heard_say("On weekdays we are open from nine to five")
        assert await phone.hung_up() == "app"


# -- connect by ID ------------------------------------------------------------------------


async def enter_ids(phone: Phone, me: str, them: str) -> None:
    await phone.heard_say("Enter your I D")
    await phone.press(f"{me}#")
    await phone.heard_say("Enter the I D of the person you want")
    await phone.press(f"{them}#")


async def test_connect_by_id_bridges_two_callers_who_asked_for_each_other(monkeypatch):
    by_id = example("connect_by_id")
    monkeypatch.setattr(by_id, "waiting", {})
    async with app(by_id.handler) as running:
        ann = await running.dial("5551234")
        await enter_ids(ann, "12", "34")
        await ann.heard_say("Waiting for 3 4")
        await ann.wait(10)  # alone for a while: ticks
        bob = await running.dial("5559876")
        await enter_ids(bob, "34", "12")
        await asyncio.gather(bob.speak(tone(600, 1.0)), ann.speak(tone(900, 1.0)))
        assert await ann.heard_tone(600, 0.9) > 0
        assert await bob.heard_tone(900, 0.9) > 0
        await bob.hang_up()
        await ann.heard_say("The other person hung up")
        assert await ann.hung_up() == "app"
    assert by_id.waiting == {}
    ticks = [e for e in ann.events if isinstance(e, TonePlayed) and e.freq == 880]
    assert len(ticks) >= 3


async def test_connect_by_id_nobody_comes(monkeypatch):
    by_id = example("connect_by_id")
    monkeypatch.setattr(by_id, "waiting", {})
    async with dial(by_id.handler) as phone:
        await enter_ids(phone, "12", "34")
        await phone.heard_say("Nobody came", timeout=by_id.WAIT_SECONDS + 10)
        assert await phone.hung_up() == "app"
    assert by_id.waiting == {}


async def test_connect_by_id_a_waiting_caller_who_hangs_up_is_forgotten(monkeypatch):
    by_id = example("connect_by_id")
    monkeypatch.setattr(by_id, "waiting", {})
    async with dial(by_id.handler) as phone:
        await enter_ids(phone, "12", "34")
        await phone.heard_say("Waiting for 3 4")
        await phone.hang_up()
    assert by_id.waiting == {}


# -- the voice mail box --------------------------------------------------------------------


async def test_voicemail_box_keeps_each_message_as_a_wav(tmp_path, monkeypatch):
    box = example("voicemail_box")
    monkeypatch.setattr(box, "MESSAGES", tmp_path)
    voice = TTStoPCM("Hi, it is Ann. The meeting moved to Tuesday.")
    async with dial(box.handler, caller="5551234") as phone:
        await phone.heard_tone(1000, 0.25)
        await phone.speak(voice)
        await phone.silence(4)
        await phone.heard_say("Your message has been recorded")
        assert await phone.hung_up() == "app"
    (kept,) = tmp_path.glob("5551234-*.wav")
    message = loadWAVtoPCM(kept)
    assert find_pcm(message, voice[8000:16000])[0] > 0.99
    assert len(voice) / 8000 < len(message) / 8000 < len(voice) / 8000 + 0.5


async def test_voicemail_box_hang_up_is_the_end_of_the_message(tmp_path, monkeypatch):
    box = example("voicemail_box")
    monkeypatch.setattr(box, "MESSAGES", tmp_path)
    voice = TTStoPCM("Hi, it is Bob, call me.")
    async with dial(box.handler, caller="5559876") as phone:
        await phone.heard_tone(1000, 0.25)
        await phone.speak(voice)
        await phone.hang_up()  # no silence: the caller just goes
    (kept,) = tmp_path.glob("5559876-*.wav")
    assert find_pcm(loadWAVtoPCM(kept), voice[4000:12000])[0] > 0.99
    assert "Your message has been recorded" not in " ".join(phone.said)


# -- voice mail boxes (voip.Mailbox) ------------------------------------------------------

ANN = "Hi, it is Ann. The meeting moved to Tuesday."
BOB = "Hi, it is Bob, call me back."


@pytest.fixture
def voicemail(tmp_path, monkeypatch) -> ModuleType:
    """examples/voicemail.py, its messages kept in tmp_path."""
    module = example("voicemail")
    monkeypatch.setattr(module, "VOICEMAIL", tmp_path)
    return module


async def leave(phone: Phone, voice: np.ndarray, box: str = "100") -> None:
    """Dial ``box`` and leave ``voice`` after the beep, then stay silent until it ends."""
    await phone.press(box + "#")
    await phone.heard_say(f"Mailbox {' '.join(box)}. Please leave a message")
    await phone.heard_tone(1000, 0.25)
    await phone.speak(voice)
    await phone.silence(4)
    await phone.heard_say("Your message has been recorded")
    assert await phone.hung_up() == "app"


async def listen_to(phone: Phone, intro: str, key: str) -> None:
    """Wait for a message whose introduction says ``intro``, and after it press ``key``."""
    await phone.heard_say(intro)
    await phone.heard_say("To delete it, press 7")
    await phone.press(key)


async def test_voicemail_the_owner_hears_a_message_left_then_deletes_it(voicemail, tmp_path):
    voice = TTStoPCM(ANN)
    async with app(voicemail.handler) as running:
        await leave(await running.dial("5551234"), voice)
        (left,) = Mailbox(tmp_path).messages("100")
        assert (left.caller, left.heard) == ("5551234", False)
        when = left.received.astimezone()

        owner = await running.dial("5550000")
        await owner.press("100#*1234#")  # star during the greeting, then the PIN
        await owner.heard_say("You have 1 new message and no old messages")
        await listen_to(owner, f"Message 1, left {when:%A at %H:%M} by 5 5 5 1 2 3 4", "7")
        await owner.heard_say("Message deleted")
        await owner.heard_say("No more messages")
        assert await owner.hung_up() == "app"
    assert find_pcm(owner.heard, voice[8000:16000])[0] > 0.99  # the message itself
    assert Mailbox(tmp_path).messages("100") == []
    assert not left.path.exists()


async def test_voicemail_two_callers_at_once_then_the_owner_keeps_one(voicemail, tmp_path):
    ann, bob = TTStoPCM(ANN), TTStoPCM(BOB)
    async with app(voicemail.handler) as running:
        first, second = await running.dial("5551234"), await running.dial("5559876")

        async def later() -> None:
            await second.wait(0.5)  # Bob starts after Ann, and records while she does
            await leave(second, bob)

        await asyncio.gather(leave(first, ann), later())
        owner = await running.dial("5550000")
        await owner.press("100#*1234#")
        await owner.heard_say("You have 2 new messages")
        await listen_to(owner, "by 5 5 5 1 2 3 4", "9")  # the oldest first: Ann's
        await owner.heard_say("Message kept")
        await listen_to(owner, "by 5 5 5 9 8 7 6", "7")
        await owner.heard_say("Message deleted")
        assert await owner.hung_up() == "app"

        again = await running.dial("5550000")
        await again.press("100#*1234#")
        await again.heard_say("You have no new messages and 1 old message")
        await listen_to(again, "by 5 5 5 1 2 3 4", "9")
        await again.hung_up()
    heard = owner.heard
    (ann_at, _), (bob_at, _) = find_pcm(heard, ann[8000:16000]), find_pcm(heard, bob[4000:12000])
    assert ann_at > 0.99 and bob_at > 0.99
    assert find_pcm(heard, ann[8000:16000])[1] < find_pcm(heard, bob[4000:12000])[1]
    (kept,) = Mailbox(tmp_path).messages("100")
    assert (kept.caller, kept.heard) == ("5551234", True)
    assert find_pcm(loadWAVtoPCM(kept.path), ann[8000:16000])[0] > 0.99


async def test_voicemail_a_wrong_pin_is_refused(voicemail, tmp_path):
    Mailbox(tmp_path).save("100", tone(MIC_TONE, 1.0), caller="5551234")
    async with dial(voicemail.handler, caller="5550000") as phone:
        await phone.press("100#*")
        for _attempt in range(3):
            await phone.heard_say("Please enter your PIN")
            await phone.press("4321#")  # box 101's PIN, not 100's
        await phone.heard_say("Goodbye")
        assert await phone.hung_up() == "app"
    assert phone.said.count("That PIN is wrong.") == 2  # before the second and third tries
    assert phone.said[-1] == "Goodbye." and not any("You have" in t for t in phone.said)
    (message,) = Mailbox(tmp_path).messages("100", unheard=True)  # still new
    assert message.caller == "5551234"


async def test_voicemail_no_such_box(voicemail):
    async with dial(voicemail.handler) as phone:
        await phone.press("999#")
        await phone.heard_say("There is no such mailbox")
        await phone.hung_up(timeout=60)
    assert "Please leave a message" not in " ".join(phone.said)


# -- callcenter.py: a queue, callers and agents -----------------------------------------


async def test_callcenter_an_agent_takes_the_callers_in_order():
    center = example("callcenter")
    hold_notes = (400, 500, 600, 800)
    async with app(center.handler) as running:
        first = await running.dial("1001")
        await first.press("1")
        await first.heard_say("You are caller number 1")
        second = await running.dial("1002")
        await second.press("1")
        await second.heard_say("You are caller number 2")
        await second.wait(3.0)
        runs = tone_runs(second.heard[-3 * 8000 :], [*hold_notes, 700, 900, 1100])
        assert {f for f, _, length in runs if length > 0.3} == set(hold_notes)  # music

        agent = await running.dial("9001")
        await agent.press("9")
        await agent.heard_say("Agent code")
        await agent.press("4321")
        await agent.heard_say("You are taking calls for sales")
        await asyncio.gather(first.speak(tone(700, 1.0)), agent.speak(tone(1100, 1.0)))
        await agent.heard_tone(700, 0.9)
        await first.heard_tone(1100, 0.9)
        await agent.press("#")  # this conversation is over
        await first.heard_say("Thank you for calling")
        assert await first.hung_up() == "app"
        await agent.heard_say("Next caller")
        await second.speak(tone(900, 1.0))
        await agent.heard_tone(900, 0.9)
        await second.hang_up()
        await agent.heard_say("Next caller")  # and waits for the next one
        assert len(center.sales) == 0
        assert "Next caller." not in first.said + second.said


async def test_callcenter_a_wrong_agent_code_says_goodbye():
    async with dial(example("callcenter").handler) as phone:
        await phone.press("9")
        await phone.heard_say("Agent code")
        await phone.press("1111")
        await phone.heard_say("Goodbye")
        assert await phone.hung_up() == "app"
    assert "You are taking calls for sales." not in phone.said


async def test_callcenter_a_caller_waits_five_minutes_at_most():
    async with dial(example("callcenter").handler) as phone:
        await phone.press("1")
        await phone.heard_say("You are caller number 1")
        await phone.heard_say("You are caller number 1")  # 30 s later, again
        await phone.heard_say("all our agents are busy", timeout=300)
        assert await phone.hung_up() == "app"
    assert phone.said.count("You are caller number 1.") == 10  # at 0, 30 ... 270 s
    assert phone.now == pytest.approx(300 + 4, abs=2)


# -- operator.py: 0 transfers, connects or queues --------------------------------------

OPERATOR = "sip:operator@pbx.example"


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/operator.py, loaded afresh (its own queue) under a name that is not the
    standard library's ``operator``, its operator at :data:`OPERATOR`."""
    monkeypatch.setenv("OPERATOR_URI", OPERATOR)
    return load(EXAMPLES / "operator.py", "operator_example")


async def press_0(phone: Phone) -> None:
    await phone.heard_say("For the operator, press 0")
    await phone.press("0")
    await phone.heard_say("Transferring you to the operator")


async def talk(caller: Phone, operator: Phone) -> None:
    """Caller (700 Hz) and operator (1100 Hz) hear each other."""
    await asyncio.gather(caller.speak(tone(700, 1.0)), operator.speak(tone(1100, 1.0)))
    await operator.heard_tone(700, 0.9)
    await caller.heard_tone(1100, 0.9)


async def test_operator_0_transfers_the_caller(operator):
    async with app(operator.handler) as running:
        desk = running.callee(OPERATOR)
        phone = await running.dial("5551234")
        await press_0(phone)
        assert await phone.hung_up() == "app"
    assert phone.transferred_to == OPERATOR
    assert desk.attempts == []  # the caller's phone called the operator, not the app


async def test_operator_a_phone_refusing_the_transfer_is_connected(operator):
    async with app(operator.handler) as running:
        desk = running.callee(OPERATOR)
        phone = await running.dial("5551234", refuses_transfer=True)
        await press_0(phone)
        attempt = await desk.ringing()
        await phone.wait(2.5)
        assert tone_runs(phone.heard[-2 * 8000 :], [440, 480])  # ringback meanwhile
        agent = await desk.answer()
        await talk(phone, agent)
        await agent.hang_up()
        await phone.heard_say("Thank you for calling")
        assert await phone.hung_up() == "app"
    assert phone.transfers == [OPERATOR] and phone.transferred_to is None
    assert attempt.state == "answered" and len(desk.attempts) == 1


async def test_operator_busy_the_callers_wait_in_line_until_it_answers(operator):
    hold_notes = (400, 500, 600, 800)
    async with app(operator.handler) as running:
        desk = running.callee(OPERATOR)
        first = await running.dial("1001", refuses_transfer=True)
        await press_0(first)
        await desk.refuse(486)  # connect: busy
        await first.heard_say("You are caller number 1")
        second = await running.dial("1002", refuses_transfer=True)
        await press_0(second)
        await desk.refuse(486)
        await second.heard_say("You are caller number 2")
        await second.wait(3.0)
        runs = tone_runs(second.heard[-3 * 8000 :], [*hold_notes, 700, 1100])
        assert {f for f, _, length in runs if length > 0.3} == set(hold_notes)  # music

        # Only the first in line rings the operator, every RETRY_SECONDS.
        await desk.refuse(486)  # still busy
        assert len(desk.attempts) == 3
        rang_at = first.now
        agent = await desk.answer()
        assert first.now - rang_at == pytest.approx(operator.RETRY_SECONDS, abs=0.1)
        assert len(desk.attempts) == 4  # none from the second caller
        await talk(first, agent)
        await second.heard_say("You are caller number 1")  # moved up
        await agent.hang_up()
        await first.heard_say("Thank you for calling")
        assert await first.hung_up() == "app"

        # Now the second is first in line, and its call to the operator goes through.
        agent2 = await desk.answer(timeout=operator.RETRY_SECONDS + 1)
        await talk(second, agent2)
        await second.hang_up()
        assert await agent2.hung_up() == "app"
    assert [a.state for a in desk.attempts] == ["refused"] * 3 + ["answered"] * 2
    assert len(operator.operators) == 0


async def test_operator_busy_for_five_minutes_asks_to_call_again(operator):
    async with app(operator.handler) as running:
        desk = running.callee(OPERATOR, respond=486)
        phone = await running.dial("5551234", refuses_transfer=True)
        await press_0(phone)
        await phone.heard_say("You are caller number 1")
        await phone.heard_say("the operator is still busy", timeout=operator.HOLD_SECONDS + 5)
        assert await phone.hung_up() == "app"
    # connect, then every 15 s until the 300 s are up
    assert len(desk.attempts) == 1 + int(operator.HOLD_SECONDS // operator.RETRY_SECONDS) - 1
    assert {a.state for a in desk.attempts} == {"refused"}


async def test_operator_a_caller_hanging_up_while_the_operator_rings_cancels_it(operator):
    async with app(operator.handler) as running:
        desk = running.callee(OPERATOR)
        phone = await running.dial("5551234", refuses_transfer=True)
        await press_0(phone)
        await desk.refuse(600)
        await phone.heard_say("You are caller number 1")
        retry = await desk.ringing()
        await phone.hang_up()
        assert await retry.settled() == "cancelled"
    assert len(operator.operators) == 0


async def test_operator_busy_when_transferred_waits_in_line_at_once(operator):
    """The phone took the REFER, and its call to the operator was busy (486 in the
    NOTIFY): no call of our own to a busy operator, the queue straight away."""
    async with app(operator.handler) as running:
        desk = running.callee(OPERATOR)
        phone = await running.dial("5551234", refuses_transfer=486)
        await press_0(phone)
        await phone.heard_say("You are caller number 1")
        assert desk.attempts == []
        agent = await desk.answer(timeout=operator.RETRY_SECONDS + 1)
        await talk(phone, agent)
        await phone.hang_up()
    assert len(desk.attempts) == 1


async def test_operator_nowhere_to_be_found_says_so(operator):
    async with dial(operator.handler, refuses_transfer=True) as phone:  # no callee: 404
        await press_0(phone)
        await phone.heard_say("Sorry, the operator cannot be reached")
        assert await phone.hung_up() == "app"
    assert not any("caller number" in text for text in phone.said)


async def test_operator_the_phone_tree_is_still_there(operator):
    async with dial(operator.handler) as phone:
        await phone.heard_say("For the operator, press 0")
        await phone.press("1")
        await assert_three_tones(phone)
        assert await phone.hung_up() == "app"
    assert phone.transfers == []


# -- rooms.py: several callers at once -----------------------------------------------------


def rooms_example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    rooms = example("rooms")
    monkeypatch.setattr(rooms, "ROOMS", {})  # each test its own rooms
    return rooms


async def enter(phone: Phone, number: str) -> None:
    await phone.heard_say("Please enter a room number")
    await phone.press(number + "#")


def loudness(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


async def test_rooms_count_beep_speech_heard_mute_and_leave(monkeypatch):
    rooms = rooms_example(monkeypatch)
    voice = TTStoPCM("Good morning, can everybody hear me?")
    async with app(rooms.handler) as running:
        a = await running.dial("1001")
        await enter(a, "12")
        await a.heard_say("Room 1 2. You are the first one in this room")
        await a.heard_tone(1000, 0.2)  # the join beep
        b = await running.dial("1002")
        await enter(b, "12")
        await b.heard_say("There is 1 person in this room")
        await a.heard_tone(1000, 0.2)  # b joins
        await b.heard_tone(1000, 0.2)
        start = len(b.heard)
        await a.speak(voice)
        assert loudness(b.heard[start:]) > 0.3 * loudness(voice)  # b hears a talk
        await a.press("*")
        await a.heard_say("Muted")
        start = len(b.heard)
        await a.speak(voice)
        assert loudness(b.heard[start:]) < 1e-4  # muted: nothing
        await a.press("*")
        await a.heard_say("Unmuted")
        start = len(b.heard)
        await a.speak(voice)
        assert loudness(b.heard[start:]) > 0.3 * loudness(voice)
        assert "Muted." not in b.said and "Unmuted." not in b.said  # to a alone
        await b.press("#")
        await b.heard_say("You have left the room. Goodbye.")
        await a.heard_tone(500, 0.2)  # the leave beep
        await b.hung_up()
        c = await running.dial("1003")
        await enter(c, "7")  # another room: empty
        await c.heard_say("Room 7. You are the first one in this room")


async def test_rooms_a_full_room_says_so_and_offers_another(monkeypatch):
    rooms = rooms_example(monkeypatch)
    async with app(rooms.handler) as running:
        for n in range(4):
            phone = await running.dial(f"200{n}")
            await enter(phone, "5")
            await phone.heard_tone(1000, 0.2)
        fifth = await running.dial("2005")
        await enter(fifth, "5")
        await fifth.heard_say("There are 4 people in this room")
        await fifth.heard_say("Sorry, this room is full.")
        await enter(fifth, "6")  # asked again: another room
        await fifth.heard_say("You are the first one in this room")
        await fifth.heard_tone(1000, 0.2)
    assert len(rooms.ROOMS["5"].members) == 0  # all hung up on leaving the block


# -- intercom.py: an announcement to everyone in the lobby ---------------------------------


@pytest.fixture
def intercom(tmp_path, monkeypatch) -> ModuleType:
    """examples/intercom.py with a lobby of its own, its announcements kept in tmp_path."""
    module = example("intercom")
    monkeypatch.setattr(module, "INTERCOM_DIR", tmp_path)
    monkeypatch.setattr(module, "LOBBY", Room("lobby"))
    return module


async def announce(phone: Phone, voice: np.ndarray) -> float:
    """Press 1, say ``voice`` after the beep and stay silent until the recording ends;
    returns when it ended, in the loop's time (common to every phone)."""
    await phone.press("1")
    await phone.heard_say("Speak your announcement after the beep")
    await phone.heard_tone(1000, 0.25)
    await phone.speak(voice)
    await phone.silence(3)  # the recording ends 2 s into it
    await phone.heard_say("Your announcement was played to")
    stopped = [e for e in phone.events if isinstance(e, RecordingStopped)][-1]
    return loop_time(phone, stopped.at)


def loop_time(phone: Phone, at: float) -> float:
    """``at``, seconds of ``phone``'s call, in the loop's time."""
    return asyncio.get_running_loop().time() - phone.now + at


async def test_intercom_an_announcement_is_heard_in_the_lobby_at_once_and_kept(intercom, tmp_path):
    voice = TTStoPCM("Attention please. The car park closes at six tonight.")
    async with app(intercom.handler) as running:
        first, second = await running.dial("1001"), await running.dial("1002")
        await first.press("3")  # during the menu; the second waits it out
        for phone in (first, second):
            await phone.heard_say("The lobby")
            await phone.heard_tone(1000, 0.2)  # the join beep
        assert first.said[-1] == "The lobby, no one here. Press star to leave."
        assert second.said[-1] == "The lobby, 1 person here. Press star to leave."

        recorder = await running.dial("5551234")
        ended = await announce(recorder, voice)
        assert recorder.said[-1] == "Your announcement was played to 2 people, and kept."
        (kept,) = Mailbox(tmp_path).messages("lobby")
        assert kept.caller == "5551234"
        message = loadWAVtoPCM(kept.path)
        assert find_pcm(message, voice[8000:16000])[0] > 0.99  # the caller's words
        for phone in (first, second):
            start = loop_time(phone, await phone.heard_sound(message))
            assert 0 <= start - ended < 1.0, start - ended
        assert find_pcm(recorder.heard, voice[8000:16000])[0] < 0.5  # not to the recorder

        later = await running.dial("5550000")
        await later.press("2")
        await later.heard_say("1 announcement, the newest first")
        when = kept.received.astimezone()
        await later.heard_say(f"At {when:%H:%M}, from 5 5 5 1 2 3 4")
        await later.heard_sound(message)
        await later.heard_say("To record an announcement")  # the menu again


async def test_intercom_announcements_to_an_empty_lobby_are_heard_later_newest_first(
    intercom, tmp_path
):
    ann, bob = TTStoPCM(ANN), TTStoPCM(BOB)
    async with app(intercom.handler) as running:
        for caller, voice in (("1001", ann), ("1002", bob)):
            phone = await running.dial(caller)
            await announce(phone, voice)
            assert phone.said[-1] == "Your announcement was played to no one, and kept."
            await phone.hang_up()
        listener = await running.dial("5550000")
        await listener.press("2")
        await listener.heard_say("2 announcements, the newest first")
        await listener.heard_say("from 1 0 0 2")
        await listener.press("5")  # skips Bob's
        await listener.heard_say("from 1 0 0 1")
        await listener.heard_say("To record an announcement")
        await listener.press("*")  # a key that is neither 1 nor 2: the lobby
        await listener.heard_say("The lobby")
        await listener.press("*")  # star leaves it, for the menu
        await listener.heard_say("To record an announcement")
    heard = listener.heard
    assert find_pcm(heard, ann[8000:16000])[0] > 0.99
    assert find_pcm(heard, bob[4000:12000])[0] < 0.5  # skipped
    assert [m.caller for m in Mailbox(tmp_path).messages("lobby")] == ["1001", "1002"]


# -- the demo, test.py -------------------------------------------------------------------


@pytest.mark.parametrize("code, answer", [("1234", "correct"), ("9999", "incorrect")])
async def test_demo_reads_the_number_back_then_checks_the_code(code, answer):
    other = {"correct": "incorrect", "incorrect": "correct"}[answer]
    demo = load(ROOT / "test.py", "voip_demo")
    async with dial(demo.handler, caller="5551234") as phone:
        await assert_three_tones(phone, start=0.0)
        await phone.heard_say("You are calling from 5 5 5 1 2 3 4")
        await phone.wait(0.5)  # into the "enter your code" prompt: the first key stops it
        await phone.press(code)
        await phone.heard_sound(asset(f"password_{answer}.wav"))
        assert await phone.hung_up() == "app"
    assert phone.said == ["You are calling from 5 5 5 1 2 3 4"]
    assert find_pcm(phone.heard, asset(f"password_{other}.wav"))[0] < 0.5
    prompt, completed = played(phone)[4]
    assert prompt == SoundPlayed(len(asset("enter_code.wav")) / 8000, at=prompt.at)
    assert not completed  # barged in


async def test_demo_too_slow():
    demo = load(ROOT / "test.py", "voip_demo")
    async with dial(demo.handler) as phone:
        assert await phone.heard_sound(asset("timeout.wav"), timeout=70) > 60
        await phone.hung_up()
