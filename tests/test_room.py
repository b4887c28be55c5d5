"""voip.Room through the test kit (in-process, virtual time; the audio mixed in Python).
Over SIP, in PJSIP's conference bridge: test_room_sip.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voip import CallEndedError, InvalidArgumentError, Room, RoomFullError, TTStoPCM
from voip.events import JoinedRoom, LeftRoom
from voip.rooms import JOIN_BEEP, LEAVE_BEEP
from voip.testing import app

from .helpers import goertzel_power, tone

pytestmark = pytest.mark.timeout(120)

TONES = (600.0, 900.0, 1300.0)


def member_app(room: Room, results: list | None = None, **join):
    """Every caller joins ``room``; how each join ended goes to ``results``."""

    async def handler(call):
        why = await room.join(call, **join)
        if results is not None:
            results.append((call.caller, why))

    return handler


def one_apart(room: Room, caller: str, script):
    """``caller``'s call runs ``script(call)``; every other caller joins ``room``."""

    async def handler(call):
        if call.caller == caller:
            await script(call)
        else:
            await room.join(call, beep=False)

    return handler


def level(x: np.ndarray, freq: float) -> float:
    return goertzel_power(x, freq) if len(x) else 0.0


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def line_noise(seconds: float, seed: int = 1) -> np.ndarray:
    """White noise at -40 dBFS and 50 Hz mains hum: an open line where nobody talks."""
    n = int(seconds * 8000)
    rng = np.random.default_rng(seed)
    hum = 0.01 * np.sin(2 * np.pi * 50 * np.arange(n) / 8000)
    return (rng.normal(0, 0.01, n) + hum).astype(np.float32)


SPEECH = "Hello everybody, this is the weekly meeting. Can you all hear me well?"


async def test_three_callers_each_hear_exactly_the_other_two():
    room = Room("tones", gate=False)  # pure tones: WebRTC's detector is erratic on them
    async with app(member_app(room, beep=False)) as running:
        phones = [await running.dial(f"100{k}") for k in range(3)]
        await phones[0].wait(0.5)
        assert len(room.members) == 3
        starts = [len(p.heard) for p in phones]
        await asyncio.gather(
            *(p.speak(tone(f, 2.0, 0.3)) for p, f in zip(phones, TONES, strict=True))
        )
        await phones[0].wait(0.2)
        for k, phone in enumerate(phones):
            heard = phone.heard[starts[k] :]
            others = [f for j, f in enumerate(TONES) if j != k]
            for f in others:  # each other tone whole: 0.3 amplitude gives about 0.0225
                assert level(heard, f) > 0.015, (k, f)
            assert level(heard, TONES[k]) < 1e-4 * level(heard, others[0]), k
    assert room.members == ()


async def test_a_silent_members_line_noise_is_gated_out_while_speech_passes():
    speech = TTStoPCM(SPEECH)
    for gate in (True, False):
        room = Room("gated", gate=gate)
        async with app(member_app(room, beep=False)) as running:
            talker, noisy, listener = [await running.dial(f"200{k}") for k in range(3)]
            # The noisy line from the start, so the detector has learnt it.
            noise = asyncio.ensure_future(noisy.speak(line_noise(12.0)))
            await listener.wait(2.0)
            start = len(listener.heard)
            await listener.wait(3.0)  # noise only
            noise_only = listener.heard[start:]
            start = len(listener.heard)
            await talker.speak(speech)
            with_speech = listener.heard[start:]
            await noise
        if gate:
            assert rms(noise_only) < 1e-4  # nothing of the noise (it is 0.012 RMS)
            assert level(noise_only, 50) < 1e-9
            assert rms(with_speech) > 0.3 * rms(speech)
        else:  # the same lines, ungated: the noise is there (so the test above can fail)
            assert rms(noise_only) > 0.008


async def test_mute_and_unmute():
    room = Room("mute", gate=False)

    async def muted_first(call):
        member = asyncio.ensure_future(room.join(call, beep=False, muted=True))
        await asyncio.sleep(3.0)
        assert room.is_muted(call)
        room.unmute(call)
        await member

    async with app(one_apart(room, "3001", muted_first)) as running:
        a = await running.dial("3001")
        b = await running.dial("3002")
        await b.wait(0.5)
        start = len(b.heard)
        await a.speak(tone(900, 1.0, 0.3))  # muted: 0.5-1.5 s
        assert level(b.heard[start:], 900) < 1e-6
        await a.wait(1.6)  # unmuted at 3 s
        start = len(b.heard)
        await a.speak(tone(900, 1.0, 0.3))
        assert level(b.heard[start:], 900) > 0.015
        with pytest.raises(InvalidArgumentError, match="not in room"):
            room.mute(object())  # type: ignore[arg-type]


async def test_join_beeps_and_leaving_by_key_hang_up_and_leave():
    room = Room("beeps", gate=False)
    results: list = []

    async def handler(call):
        if call.caller == "4003":
            joined = asyncio.ensure_future(room.join(call))
            await asyncio.sleep(2.0)
            assert room.leave(call) and not room.leave(call)
            results.append((call.caller, await joined))
            await call.playTone(700, 0.5)  # the call goes on, out of the room
            return
        results.append((call.caller, await room.join(call, leave_key="#")))

    async with app(handler) as running:
        a = await running.dial("4001")
        await a.heard_tone(*JOIN_BEEP)  # its own join
        b = await running.dial("4002")
        await a.heard_tone(*JOIN_BEEP)  # b joining
        await b.heard_tone(*JOIN_BEEP)
        c = await running.dial("4003")
        await c.heard_tone(700, 0.5)  # taken out after 2 s
        await a.heard_tone(*LEAVE_BEEP)
        await b.press("#")
        await a.heard_tone(*LEAVE_BEEP)
        await a.hang_up()
        await b.wait(0.5)
    assert sorted(results) == [("4001", "hung up"), ("4002", "key"), ("4003", "left")]
    joined = [e for e in c.events if isinstance(e, JoinedRoom)]
    left = [e for e in c.events if isinstance(e, (JoinedRoom, LeftRoom))]
    assert joined[0].room == "beeps" and joined[0].members == 3
    assert [type(e) for e in left] == [JoinedRoom, LeftRoom] and left[1].reason == "left"
    assert room.members == ()


async def test_a_fourth_joins_and_a_fifth_is_told_the_room_is_full():
    room = Room("full", gate=False)
    told: list[str] = []

    async def handler(call):
        try:
            await room.join(call, beep=False)
        except RoomFullError as exc:
            told.append(str(exc))
            await call.say("Sorry, this room is full.")

    async with app(handler) as running:
        phones = [await running.dial(f"500{k}") for k in range(4)]
        await phones[0].wait(0.5)
        assert len(room.members) == 4
        fifth = await running.dial("5005")
        await fifth.heard_say("Sorry, this room is full")
        assert len(room.members) == 4
        start = len(phones[0].heard)
        await phones[3].speak(tone(900, 1.0, 0.3))  # the fourth is heard by the first
        assert level(phones[0].heard[start:], 900) > 0.015
    assert told and "is full" in told[0] and "4 calls" in told[0]


async def test_bad_joins_are_refused_clearly():
    room, other = Room("a", gate=False), Room("b", gate=False)
    seen: list = []

    async def handler(call):
        joined = asyncio.ensure_future(room.join(call, beep=False))
        await asyncio.sleep(0.1)
        for bad in (lambda: room.join(call), lambda: other.join(call)):
            with pytest.raises(InvalidArgumentError) as exc:
                await bad()
            seen.append(str(exc.value))
        with pytest.raises(InvalidArgumentError, match="in room 'a'"):
            await call.bridge(call_two.result())
        with pytest.raises(InvalidArgumentError, match="takes a call"):
            await room.join("sip:x@example.com")  # type: ignore[arg-type]
        joined.cancel()  # cancelling the join leaves the room
        await asyncio.sleep(0.1)
        seen.append(call.place)
        call.hangup()
        with pytest.raises(CallEndedError):
            await room.join(call)

    call_two: asyncio.Future = asyncio.get_running_loop().create_future()

    async def second(call):
        call_two.set_result(call)
        await call.ended.wait()

    async with app(second) as others:
        await others.dial("6002")
        async with app(handler) as running:
            await running.dial("6001")
            await running.phones[0].wait(1.0)
    assert "is in room" in seen[0] and "already" in seen[0]
    assert "is in room 'a'" in seen[1] and "must leave that first" in seen[1]
    assert seen[2] is None and room.members == ()
    with pytest.raises(InvalidArgumentError):
        Room("x", capacity=0)


async def test_announcement_to_everyone_and_a_recording_of_the_room(tmp_path):
    room = Room("rec", gate=False)
    recorded: list = []

    async def handler(call):
        if len(room) == 1:  # the second caller starts the recording and an announcement
            recording = room.record(tmp_path / "room.wav")
            joined = asyncio.ensure_future(room.join(call, beep=False))
            await asyncio.sleep(0.1)
            assert await room.play(tone(1500, 0.5, 0.3)) is True
            await asyncio.sleep(3.0)
            recording.stop()
            recorded.append(await recording)
            await joined
        else:
            await room.join(call, beep=False)

    async with app(handler) as running:
        a = await running.dial("7001")
        await a.wait(0.2)
        b = await running.dial("7002")
        await a.heard_tone(1500, 0.5)
        await b.heard_tone(1500, 0.5)
        await asyncio.gather(a.speak(tone(600, 1.0, 0.3)), b.speak(tone(900, 1.0, 0.3)))
        await a.wait(3.0)
    pcm = recorded[0]
    assert len(pcm) / 8000 == pytest.approx(3.6, abs=0.1)  # from record() to stop()
    # each 1 s tone at 0.3 in 3.6 s: (0.15 / 3.6) ** 2 = 0.0017
    assert level(pcm, 600) > 0.0015 and level(pcm, 900) > 0.0015
    assert level(pcm, 1500) < 1e-4  # the announcement is what members hear, not say
    from voip import loadWAVtoPCM

    assert len(loadWAVtoPCM(tmp_path / "room.wav")) == len(pcm)


async def test_after_leaving_the_member_neither_hears_nor_is_heard():
    room = Room("gone", gate=False)

    async def taken_out(call):
        joined = asyncio.ensure_future(room.join(call, beep=False))
        await asyncio.sleep(1.0)
        room.leave(call)
        assert await joined == "left" and call.place is None
        await call.ended.wait()

    async with app(one_apart(room, "8002", taken_out)) as running:
        a = await running.dial("8001")
        b = await running.dial("8002")
        await a.wait(0.3)
        start_a, start_b = len(a.heard), len(b.heard)
        await asyncio.gather(a.speak(tone(600, 0.5, 0.3)), b.speak(tone(900, 0.5, 0.3)))
        assert level(a.heard[start_a:], 900) > 0.015 and level(b.heard[start_b:], 600) > 0.015
        await a.wait(0.5)  # b has left
        start_a, start_b = len(a.heard), len(b.heard)
        await asyncio.gather(a.speak(tone(600, 0.5, 0.3)), b.speak(tone(900, 0.5, 0.3)))
        await a.wait(0.1)
        assert level(a.heard[start_a:], 900) < 1e-6 and level(b.heard[start_b:], 600) < 1e-6
