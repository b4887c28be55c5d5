"""voip.Queue through the test kit: callers on hold, in order, until an agent takes them.

Several phones call one app: numbers starting with 9 are agents (they take callers one
after another), the others wait in the queue. What each phone heard is checked by
content: the hold music's notes, the position announcements, and who hears whom once
bridged (each side plays its own tone). Over SIP: test_queue_sip.py.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voip import CallEndedError, Dequeued, InvalidArgumentError, Queue, Taken
from voip.audio.tones import HOLD_NOTES
from voip.events import LeftQueue, PlaybackEnded, Queued, Said
from voip.testing import Phone, app

from .helpers import tone, tone_runs

pytestmark = pytest.mark.timeout(60)

CALLER_1, CALLER_2, AGENT = 700.0, 900.0, 1100.0  # Hz: what each says, none a hold note
FREQS = [*sorted(set(HOLD_NOTES)), CALLER_1, CALLER_2, AGENT]


def center(queue: Queue, **wait: object):
    """An app: 9xxx numbers are agents taking callers until they hang up ("Next
    caller." between two), the others wait in ``queue`` (``wait``: its options), then
    hear "Goodbye." if still up. Returns the handler and what wait and take returned."""
    waited: dict[str, Dequeued] = {}
    taken: list[Taken] = []

    async def handler(call):
        if call.caller.startswith("9"):
            while call.active:
                took = await queue.take(call)
                if took is None:
                    return
                taken.append(took)
                if call.active:
                    await call.say("Next caller.")
            return
        waited[call.caller] = await queue.wait(call, **wait)  # type: ignore[arg-type]
        if call.active:
            await call.say("Goodbye.")

    return handler, waited, taken


def announcements(phone: Phone) -> list[PlaybackEnded]:
    """The ends of the position announcements ``phone`` heard (``.what``: the start)."""
    return [
        e
        for e in phone.events
        if isinstance(e, PlaybackEnded)
        and isinstance(e.what, Said)
        and e.what.text.startswith("You are")
    ]


def runs(phone: Phone, since: float = 0.0, until: float | None = None) -> list[tuple]:
    """The tones ``phone`` heard between two times: (frequency, start, length)."""
    audio = phone.heard[int(since * 8000) : None if until is None else int(until * 8000)]
    return [(f, since + at, length) for f, at, length in tone_runs(audio, FREQS)]


def notes(phone: Phone, since: float = 0.0, until: float | None = None) -> list[float]:
    """The hold notes heard, in order, each once (a run of 0.3 s or more)."""
    return [f for f, _, length in runs(phone, since, until) if f in HOLD_NOTES and length > 0.3]


async def test_two_callers_wait_on_hold_and_an_agent_takes_them_in_order():
    queue = Queue("sales")
    handler, waited, taken = center(queue)
    async with app(handler) as running:
        first = await running.dial("1001")
        await first.heard_say("You are caller number 1")
        await first.wait(1.0)
        second = await running.dial("1002")
        await second.heard_say("You are caller number 2")
        await second.wait(5.0)
        assert len(queue) == 2 and [c.caller for c in queue.callers] == ["1001", "1002"]
        # Both hear the arpeggio, note after note, 0.4 s each, after their announcement.
        for phone in (first, second):
            heard = notes(phone, since=phone.now - 4.8)
            assert heard[:6] in [list(HOLD_NOTES[k:] + HOLD_NOTES[:k]) for k in range(6)]
            assert all(
                length == pytest.approx(0.4, abs=0.03)
                for f, _, length in runs(phone, since=phone.now - 4.8)[1:-1]
            )

        agent = await running.dial("9001")
        await agent.wait(0.5)
        assert len(queue) == 1 and queue.callers[0].caller == "1002"
        bridged_at = first.now
        # The first caller and the agent hear each other; the second hears neither.
        await asyncio.gather(first.speak(tone(CALLER_1, 2.0)), agent.speak(tone(AGENT, 2.0)))
        assert await agent.heard_tone(CALLER_1, 1.9) >= 0
        assert await first.heard_tone(AGENT, 1.9) >= bridged_at
        heard_by_second = {f for f, _, _ in runs(second, since=second.now - 2.0)}
        assert heard_by_second <= set(HOLD_NOTES)
        # and no hold music for the first caller once bridged
        assert notes(first, since=bridged_at + 0.1) == []

        await first.hang_up()
        await agent.heard_say("Next caller")
        second_at = second.now
        await asyncio.gather(second.speak(tone(CALLER_2, 1.0)), agent.speak(tone(AGENT, 1.0)))
        assert await agent.heard_tone(CALLER_2, 0.9) > 0
        assert await second.heard_tone(AGENT, 0.9) >= second_at
        await agent.hang_up()
        await second.heard_say("Goodbye")
        assert await second.hung_up() == "app"
        assert len(queue) == 0
    assert [t.caller.caller for t in taken] == ["1001", "1002"]
    assert [t.end for t in taken] == ["other hung up", "hung up"]
    assert taken[0].waited == pytest.approx(bridged_at, abs=0.6)
    assert waited["1001"].reason == "bridged" and waited["1001"].end == "hung up"
    assert waited["1002"].reason == "bridged" and waited["1002"].end == "other hung up"
    assert waited["1002"].agent is not None and waited["1002"].agent.caller == "9001"
    # The second caller was told they moved up, in the events the kit keeps.
    queued = [(e.queue, e.position) for e in second.events if isinstance(e, Queued)]
    assert queued == [("sales", 2), ("sales", 1)]
    left = [e.reason for e in second.events if isinstance(e, LeftQueue)]
    assert left == ["bridged"]


async def test_position_is_said_again_every_position_every_seconds():
    queue = Queue("support")
    handler, waited, _ = center(queue, position_every=20)
    async with app(handler) as running:
        first = await running.dial("1001")
        second = await running.dial("1002")
        await second.heard_say("You are caller number 2")
        await first.hang_up()  # the first caller gives up: the second moves up
        assert [c.caller for c in queue.callers] == ["1002"]
        await second.heard_say("You are caller number 1", timeout=25)
        await second.wait(3.0)
    said = announcements(second)
    assert [e.what.text for e in said] == ["You are caller number 2.", "You are caller number 1."]
    assert said[1].what.at - said[0].what.at == pytest.approx(20, abs=0.05)
    # The music stops for the announcement, and goes on after it.
    assert notes(second, since=said[1].what.at + 0.05, until=said[1].at - 0.05) == []
    assert len(notes(second, since=said[1].at, until=said[1].at + 3.0)) >= 6
    # where it stopped: the notes around the announcement follow the tune's order
    around = [
        f
        for f, _, _ in runs(second, said[1].what.at - 1.2, said[1].what.at)
        + runs(second, said[1].at, said[1].at + 1.2)
        if f in HOLD_NOTES
    ]
    merged = [f for k, f in enumerate(around) if k == 0 or f != around[k - 1]]
    tune = list(HOLD_NOTES) * 3
    assert any(tune[k : k + len(merged)] == merged for k in range(6)), merged
    assert waited["1001"].reason == "hung up"
    assert len(queue) == 0


async def test_a_caller_times_out_and_another_leaves():
    queue = Queue("sales")
    handler, waited, _ = center(queue, timeout=10)
    async with app(handler) as running:
        slow = await running.dial("1001")
        leaving = await running.dial("1002")
        await leaving.heard_say("You are caller number 2")
        assert queue.leave(leaving_call := queue.callers[1]) is True
        assert queue.leave(leaving_call) is False
        await leaving.heard_say("Goodbye")
        await slow.heard_say("Goodbye", timeout=15)
        assert slow.now == pytest.approx(10, abs=2)
    assert waited["1002"].reason == "left" and waited["1002"].agent is None
    assert waited["1001"].reason == "timeout"
    assert waited["1001"].waited == pytest.approx(10, abs=0.01)
    assert len(queue) == 0


async def test_hold_can_be_a_sound_text_or_silence():
    queue = Queue("q")
    holds = {"1001": tone(300, 1.0), "1002": "Please hold.", "1003": []}

    async def handler(call):
        await queue.wait(call, hold=holds[call.caller], position_every=None)

    async with app(handler) as running:
        sound = await running.dial("1001")
        text = await running.dial("1002")
        silent = await running.dial("1003")
        assert await sound.heard_tone(300, 2.5) == pytest.approx(0, abs=0.05)  # looped
        await text.heard_say("Please hold")
        assert await text.heard_silence(9.0) < 2
        await text.heard_say("Please hold")  # again, after the pause
        await silent.wait(5.0)
        assert np.abs(silent.heard).max() == 0
        assert "You are caller" not in " ".join(sound.said + text.said)


async def test_agents_waiting_first_take_callers_in_the_order_they_came():
    queue = Queue("sales")
    handler, waited, taken = center(queue)
    async with app(handler) as running:
        agent_1 = await running.dial("9001")
        await agent_1.wait(1.0)
        agent_2 = await running.dial("9002")
        await agent_2.wait(4.0)
        assert len(queue) == 0
        caller = await running.dial("1001")
        await caller.wait(0.2)
        assert len(queue) == 0
        await caller.speak(tone(CALLER_1, 0.5))
        assert await agent_1.heard_tone(CALLER_1, 0.4) == pytest.approx(5.2, abs=0.1)
        other = await running.dial("1002")
        await other.speak(tone(CALLER_2, 0.5))
        assert await agent_2.heard_tone(CALLER_2, 0.4) == pytest.approx(4.7, abs=0.1)
        await caller.hang_up()
        await agent_1.heard_say("Next caller")
    assert taken[0].waited == pytest.approx(0, abs=0.05)
    assert [t.caller.caller for t in taken] == ["1001", "1002"]
    assert taken[0].end == "other hung up"  # (the second: the kit hung the agent up first)
    assert {CALLER_1, CALLER_2} & {f for f, _, _ in runs(agent_2)} == {CALLER_2}


async def test_take_times_out_and_bad_calls_are_refused():
    queue = Queue("sales")
    seen: list = []

    async def handler(call):
        seen.append(await queue.take(call, timeout=3))
        for bad in ("sip:1001@example.com", None):
            try:
                await queue.wait(bad)  # type: ignore[arg-type]
            except InvalidArgumentError as exc:
                seen.append(str(exc))
        waiting = asyncio.ensure_future(queue.wait(call, position_every=None))
        await asyncio.sleep(0.1)
        for attempt in (queue.wait(call), queue.take(call)):
            try:
                await attempt
            except InvalidArgumentError as exc:
                seen.append(str(exc))
        try:
            await queue.wait(call, timeout=-1)
        except InvalidArgumentError as exc:
            seen.append(str(exc))
        waiting.cancel()
        await asyncio.sleep(0)
        assert len(queue) == 0 and call.place is None
        call.hangup()
        try:
            await queue.take(call)
        except CallEndedError as exc:
            seen.append(exc)

    async with app(handler) as running:
        phone = await running.dial("9001")
        await phone.hung_up()
    assert seen[0] is None
    assert "a call of this process" in seen[1] and "4 SIP calls" in seen[1]
    assert "got NoneType" in seen[2]
    assert "is waiting in queue 'sales'" in seen[3] and "is waiting in queue" in seen[4]
    assert "timeout is a number of seconds, 0 or more, or None, got -1" in seen[5]
    assert isinstance(seen[6], CallEndedError)
    with pytest.raises(InvalidArgumentError):
        Queue("")
