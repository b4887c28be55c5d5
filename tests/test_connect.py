"""call.connect(uri) in the test kit: the app puts its caller through to a callee.

The callee (voip.testing.RunningApp.callee) is the far side: it rings until the test
answers or refuses, or it responds on its own. Over SIP: test_connect_sip.py.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import voip
from voip import CallEndedError, InvalidArgumentError
from voip.events import Bridged, Said, Unbridged
from voip.testing import HeardTimeout, app

from .helpers import goertzel_power, tone, tone_runs

pytestmark = pytest.mark.timeout(60)

OP = "sip:operator@pbx.example"


def ring_spans(x: np.ndarray, freqs=(440.0, 480.0), step: int = 800) -> list[tuple[float, float]]:
    """(start, length) in seconds of each stretch, per 100 ms, where every one of
    ``freqs`` is heard (a ring tone) and nothing else much."""
    spans: list[tuple[float, float]] = []
    start = None
    n = len(x) // step
    for k in range(n + 1):
        fr = x[k * step : (k + 1) * step] if k < n else np.zeros(0)
        total = float(np.mean(fr**2)) if len(fr) else 0.0
        on = total > 1e-4 and all(goertzel_power(fr, f) > 0.2 * total / len(freqs) for f in freqs)
        if on and start is None:
            start = k
        elif not on and start is not None:
            spans.append((start * step / 8000, (k - start) * step / 8000))
            start = None
    return spans


def connecting(uri: str = OP, after: str = "goodbye", **kwargs):
    """A handler that connects each caller to ``uri``, keeps what connect returned and
    then tells the caller how it went."""
    results: list[voip.Connected] = []

    async def handler(call):
        result = await call.connect(uri, **kwargs)
        results.append(result)
        if call.active:
            await call.say(f"The line was {result.state}. {after}")

    return handler, results


async def test_the_caller_hears_ringback_while_it_rings():
    handler, results = connecting()
    async with app(handler) as running:
        op = running.callee(OP, respond=200, after=8.0)
        phone = await running.dial()
        await op.ringing()
        await asyncio.sleep(8.5)
        assert op.phones and op.phones[0].now == pytest.approx(0.5)
        heard = phone.heard[: 8 * 8000]
        await phone.hang_up()
    # North American ringback: 440 + 480 Hz, 2 s on, 4 s off, from the start
    spans = ring_spans(heard)
    assert [round(s, 1) for s, _ in spans] == [0.0, 6.0]
    assert [round(length, 1) for _, length in spans] == [2.0, 2.0]
    assert np.abs(heard[int(2.1 * 8000) : int(5.9 * 8000)]).max() < 1e-3  # the 4 s off
    assert results[0].state == "answered" and results[0].ended == "hung up"
    assert results[0].talked == pytest.approx(0.5, abs=0.05)


async def test_ringback_stops_on_answer_and_other_tones_can_be_chosen():
    loop_pcm = np.concatenate([tone(700, 0.3), np.zeros(1600, np.float32)])  # 0.3 on, 0.2 off
    for ringback, freqs, first in (("eu", (425.0,), 1.0), (loop_pcm, (700.0,), 0.3)):
        handler, results = connecting(ringback=ringback)
        async with app(handler) as running:
            op = running.callee(OP)
            phone = await running.dial()
            await op.ringing()
            await phone.wait(3.1)
            await op.answer()
            await phone.wait(1.0)
            heard = phone.heard
            await phone.hang_up()
        spans = ring_spans(heard, freqs, step=400)
        assert spans[0][0] == 0.0 and spans[0][1] == pytest.approx(first, abs=0.06)
        # in 3.1 s: 1 s on then 4 s off; 0.3 s on, 0.2 s off, seven times
        assert len(spans) == (1 if isinstance(ringback, str) else 7)
        assert sum(spans[-1]) <= 3.15  # nothing after the answer at 3.1 s
        assert np.abs(heard[int(3.2 * 8000) :]).max() < 1e-3


async def test_no_ringback_when_told():
    handler, _ = connecting(ringback=False)
    async with app(handler) as running:
        running.callee(OP, respond=200, after=3.0)
        phone = await running.dial()
        start = await phone.heard_silence(2.9)
        await phone.hang_up()
    assert start == 0.0


async def test_answered_caller_and_far_side_hear_each_other_until_the_far_side_hangs_up():
    handler, results = connecting(after="Goodbye.")
    async with app(handler) as running:
        op = running.callee(OP, respond=200, after=2.0)
        phone = await running.dial("5551234")
        await phone.wait(2.0)
        agent = op.phones[0]  # answered on its own, after 2 s
        await asyncio.gather(phone.speak(tone(600, 3.0)), agent.speak(tone(900, 3.0)))
        await agent.wait(0.1)
        # each hears the other's tone, whole, at most two frames late (the feed's
        # prefill, and the two lines' clocks), and never its own
        assert await phone.heard_tone(900, 0.5) == pytest.approx(2.0, abs=0.05)
        assert await agent.heard_tone(600, 0.5) == pytest.approx(0.0, abs=0.05)
        for heard, freq in ((phone.heard, 900), (agent.heard, 600)):
            runs = tone_runs(heard, [440, 480, 600, 900])
            assert sum(length for f, _, length in runs if f == freq) == pytest.approx(3.0, abs=0.03)
        assert goertzel_power(phone.heard, 600) < 1e-6
        assert goertzel_power(agent.heard, 900) < 1e-6
        await agent.wait(1.0)
        await agent.hang_up()
        # connect returned; the handler goes on to tell the caller
        assert await phone.heard_say("The line was answered. Goodbye.")
        assert await phone.hung_up() == "app"
    [result] = results
    assert (result.state, result.status, result.ended) == ("answered", 200, "other hung up")
    assert result.talked == pytest.approx(4.1, abs=0.05)
    assert [type(e) for e in phone.events if isinstance(e, (Bridged, Unbridged))] == [
        Bridged,
        Unbridged,
    ]
    assert op.attempts[0].rang == pytest.approx(2.0)


async def test_the_caller_hanging_up_while_bridged_hangs_up_the_far_side():
    handler, results = connecting()
    async with app(handler) as running:
        op = running.callee(OP)
        phone = await running.dial()
        agent = await op.answer()
        await agent.wait(1.5)
        await phone.hang_up()
        assert await agent.hung_up() == "app"
        assert agent.now == pytest.approx(1.5, abs=0.05)
    assert results[0].ended == "hung up" and results[0].talked == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize(
    ("status", "state"), [(486, "busy"), (603, "rejected"), (480, "no answer"), (404, "failed")]
)
async def test_a_refusal_is_reported_and_the_handler_goes_on(status, state):
    handler, results = connecting(after="Please try later.")
    async with app(handler) as running:
        op = running.callee(OP)
        phone = await running.dial()
        await phone.wait(1.0)
        attempt = await op.refuse(status)
        assert await phone.heard_say(f"The line was {state}. Please try later.")
        await phone.hung_up()
    [result] = results
    assert (result.state, result.status, result.talked, result.ended) == (state, status, 0, None)
    assert (attempt.state, attempt.rang, op.phones) == ("refused", 1.0, [])


async def test_busy_at_once():
    handler, results = connecting()
    async with app(handler) as running:
        running.callee(OP, respond=486)
        phone = await running.dial()
        await phone.heard_say("The line was busy")
        await phone.hung_up()
    assert results[0].reason == "Busy Here"
    said = [e for e in phone.events if isinstance(e, Said)]
    assert said[0].at == 0.0  # no ringing first


async def test_no_answer_within_the_timeout_is_cancelled():
    handler, results = connecting(timeout=12)
    async with app(handler) as running:
        op = running.callee(OP)  # never answers
        phone = await running.dial()
        attempt = await op.ringing()
        assert await attempt.settled() == "no answer"
        assert attempt.rang == pytest.approx(12.0)
        heard = phone.heard
        await phone.heard_say("The line was no answer")
    assert (results[0].state, results[0].status) == ("no answer", 408)
    # 12 s: two cycles of 2 s ringing and 4 s off
    assert [(round(s, 1), round(n, 1)) for s, n in ring_spans(heard)] == [(0, 2), (6, 2)]
    with pytest.raises(HeardTimeout, match="waited 1 s for a call to ring"):
        async with app(handler) as running:
            await running.callee(OP).ringing(timeout=1)


async def test_the_caller_hanging_up_while_it_rings_cancels_the_call():
    outcome: list = []

    async def handler(call):
        try:
            outcome.append(await call.connect(OP))
            await call.say("never heard")
        except CallEndedError as exc:
            outcome.append(exc)

    async with app(handler) as running:
        op = running.callee(OP, respond=200, after=10)
        phone = await running.dial()
        attempt = await op.ringing()
        await phone.wait(3.0)
        await phone.hang_up()
        assert await attempt.settled() == "cancelled"
    assert (attempt.status, attempt.rang, op.phones) == (487, 3.0, [])
    result = outcome[0]
    assert (result.state, result.status, result.ended) == ("no answer", 487, "hung up")
    assert isinstance(outcome[1], CallEndedError)  # the handler went on after connect


async def test_caller_id_and_voip_dial_reach_the_callee():
    got: list = []

    async def handler(call):
        got.append(await call.connect(OP, caller_id=call.caller))

        async def announce(out):
            await out.say("You have a call")

        got.append(await voip.dial("sip:supervisor@pbx.example", announce, timeout=5))
        got.append(await voip.dial("sip:nobody@pbx.example", announce))

    async with app(handler) as running:
        op = running.callee(OP, respond=486)
        boss = running.callee("<sip:Supervisor@PBX.example;transport=tcp>", respond=200)
        phone = await running.dial("5551234")
        await asyncio.sleep(0.5)
        assert await boss.phones[0].heard_say("You have a call")
        assert await boss.phones[0].hung_up() == "app"
        await phone.hung_up()
    assert op.attempts[0].caller_id == "5551234"
    assert [r.state for r in got] == ["busy", "answered", "failed"]
    assert got[2].status == 404


async def test_bad_connects_are_refused_clearly():
    seen: list = []

    async def handler(call):
        for bad in (
            {"uri": "5551234"},
            {"uri": OP, "timeout": 0},
            {"uri": OP, "ringback": "uk"},
            {"uri": OP, "caller_id": "Ann Smith"},
        ):
            try:
                await call.connect(**bad)
            except InvalidArgumentError as exc:
                seen.append(str(exc))
        call.hangup()
        try:
            await call.connect(OP)
        except CallEndedError as exc:
            seen.append(exc)

    async with app(handler) as running:
        await running.dial()
    assert "SIP URI" in seen[0] and "timeout" in seen[1] and "'uk'" in seen[2]
    assert "caller_id must be a number" in seen[3]
    assert isinstance(seen[4], CallEndedError)


async def test_the_readme_example():
    async def handler(call):
        await call.say("Connecting you to sales.")
        result = await call.connect("sip:sales@pbx.example", timeout=20, caller_id=call.caller)
        if result.state == "busy":
            await call.say("Sales is busy. Please call again later.")
        elif result.state != "answered":
            await call.say("Nobody could take your call. Goodbye.")
        elif result.ended == "other hung up":
            await call.say("Thank you for calling. Goodbye.")

    async with app(handler) as running:
        sales = running.callee("sip:sales@pbx.example")
        phone = await running.dial("5551234")
        await sales.ringing()
        await phone.wait(3)  # it rings: the caller hears ringback
        agent = await sales.answer()
        await agent.speak("Sales, how can I help?")
        await phone.heard_say("Sales, how can I help?")
        await agent.hang_up()
        await phone.heard_say("Thank you for calling")


async def test_the_far_sides_words_are_found_in_what_the_caller_heard():
    handler, _ = connecting(after="Goodbye.")
    async with app(handler) as running:
        sales = running.callee(OP, respond=200, after=1)
        phone = await running.dial()
        await phone.wait(1.5)
        agent = sales.phones[0]
        await agent.speak("Sorry, wrong department.")
        await agent.hang_up()
        await phone.wait(0.5)  # unbridged by now
        assert await phone.heard_say("Sorry, wrong department.") == "Sorry, wrong department."
        with pytest.raises(HeardTimeout):
            await phone.heard_say("Transferring you to billing.", timeout=5)


def test_caller_id_uri():
    from voip.sipuri import caller_id_uri

    own = "sip:1001@pbx.example:5080;transport=tcp"
    assert caller_id_uri("+15550100", own) == "sip:+15550100@pbx.example:5080"
    assert caller_id_uri('"Sales" <sip:100@pbx>', own) == '"Sales" <sip:100@pbx>'
    assert caller_id_uri("sips:100@pbx", own) == "sips:100@pbx"
    for bad in ("", "Ann Smith", "Ann <tel:100>"):
        with pytest.raises(InvalidArgumentError):
            caller_id_uri(bad, own)
