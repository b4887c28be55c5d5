"""call.bridge(): two callers hear each other, in-process through the test kit (the
audio mixed in Python: a tap and a feed). Over SIP, in PJSIP's bridge: test_bridging_sip.py.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voip import CallEndedError, InvalidArgumentError
from voip.events import Bridged, Unbridged
from voip.testing import app

from .helpers import goertzel_power, tone

pytestmark = pytest.mark.timeout(60)


async def waits_first(waiting: list, call) -> bool:
    """The first caller waits in ``waiting`` until it hangs up (True); any later one
    returns False at once, to be bridged to ``waiting[0]``."""
    if waiting:
        return False
    waiting.append(call)
    await call.ended.wait()
    return True


def lobby_app(after: str = "goodbye"):
    """The first caller waits; the second is bridged to them. Each handler says how its
    bridge ended, then (``after``) hangs up or stays for a tone."""
    waiting: list = []
    results: dict[str, str] = {}

    async def handler(call):
        if await waits_first(waiting, call):
            return
        first = waiting[0]
        why = await call.bridge(first)
        results[call.caller] = why
        if after == "tone" and call.active:
            await call.playTone(440, 1.0)
        elif call.active:
            await call.say("The other party hung up. Goodbye.")

    return handler, results


def level(x: np.ndarray, freq: float) -> float:
    return goertzel_power(x, freq) if len(x) else 0.0


async def test_each_hears_the_other_and_not_itself():
    handler, results = lobby_app()
    async with app(handler) as running:
        a = await running.dial("1001")
        await a.wait(0.5)
        b = await running.dial("1002")
        await b.wait(0.2)
        start_a, start_b = len(a.heard), len(b.heard)
        await asyncio.gather(a.speak(tone(600, 2.0)), b.speak(tone(900, 2.0)))
        await a.wait(0.2)
        heard_a, heard_b = a.heard[start_a:], b.heard[start_b:]
        assert level(heard_a, 900) > 100 * max(level(heard_a, 600), 1e-6)
        assert level(heard_b, 600) > 100 * max(level(heard_b, 900), 1e-6)
        # the other's tone, heard whole: 2 s within a frame or two
        assert await a.heard_tone(900, 1.9) >= 0
        assert await b.heard_tone(600, 1.9) >= 0
        await a.hang_up()
        await b.heard_say("The other party hung up")
        assert await b.hung_up() == "app"
    assert results == {"1002": "other hung up"}
    assert [type(e) for e in b.events if isinstance(e, (Bridged, Unbridged))] == [
        Bridged,
        Unbridged,
    ]
    assert [e for e in b.events if isinstance(e, Bridged)][0].other == "1001"


async def test_unbridge_leaves_both_calls_up():
    waiting: list = []
    results: list[str] = []

    async def handler(call):
        if await waits_first(waiting, call):
            return
        first = waiting[0]
        bridged = asyncio.ensure_future(call.bridge(first))
        await asyncio.sleep(1.0)
        assert call.bridged_to is first and first.bridged_to is call
        assert call.unbridge() is True
        results.append(await bridged)
        assert call.bridged_to is None and call.unbridge() is False
        await call.playTone(440, 0.5)
        await first.playTone(520, 0.5)

    async with app(handler) as running:
        a = await running.dial("1001")
        b = await running.dial("1002")
        await b.heard_tone(440, 0.5)
        await a.heard_tone(520, 0.5)
        await a.speak(tone(600, 0.5))
        await b.wait(0.2)
        assert level(b.heard[-4000:], 600) < 1e-3  # no longer bridged
    assert results == ["unbridged"]


async def test_the_whisper_is_heard_by_its_own_caller_only():
    waiting: list = []

    async def handler(call):
        if await waits_first(waiting, call):
            return
        bridged = asyncio.ensure_future(call.bridge(waiting[0]))
        await asyncio.sleep(0.5)
        await call.playTone(1200, 1.0)  # to this caller alone
        await bridged

    async with app(handler) as running:
        a = await running.dial("1001")
        b = await running.dial("1002")
        await b.heard_tone(1200, 1.0)
        await a.wait(0.5)
        assert level(a.heard, 1200) < 1e-3
        await a.hang_up()


async def test_both_handlers_awaiting_the_same_bridge():
    calls: list = []
    both = asyncio.Event()
    results: dict[str, str] = {}

    async def handler(call):
        calls.append(call)
        if len(calls) == 2:
            both.set()
        await both.wait()
        other = calls[1] if call is calls[0] else calls[0]
        results[call.caller] = await call.bridge(other)

    async with app(handler) as running:
        a = await running.dial("1001")
        b = await running.dial("1002")
        await a.wait(0.5)
        await b.speak(tone(900, 0.5))
        await a.heard_tone(900, 0.4)
        await b.hang_up()
        await a.wait(0.1)
    assert results == {"1001": "other hung up", "1002": "hung up"}


async def test_bad_bridges_are_refused_clearly():
    seen: list[BaseException | str] = []
    waiting: list = []

    async def handler(call):
        if await waits_first(waiting, call):
            return
        first = waiting[0]
        for bad in (call, "sip:someone@example.com"):
            try:
                await call.bridge(bad)
            except InvalidArgumentError as exc:
                seen.append(str(exc))
        first_task = asyncio.ensure_future(call.bridge(first))
        await asyncio.sleep(0.1)
        third = calls_third.result()
        try:
            await third.bridge(first)
        except InvalidArgumentError as exc:
            seen.append(str(exc))
        first_task.cancel()
        await asyncio.sleep(0.1)
        assert first.place is None and call.place is None
        seen.append(await third.bridge(hung_up.result()))
        call.hangup()
        try:
            await call.bridge(first)
        except CallEndedError as exc:
            seen.append(exc)

    calls_third: asyncio.Future = asyncio.get_running_loop().create_future()
    hung_up: asyncio.Future = asyncio.get_running_loop().create_future()

    async def third(call):
        if not calls_third.done():
            calls_third.set_result(call)
        else:
            hung_up.set_result(call)
        await call.ended.wait()

    async with app(third) as others:
        x = await others.dial("2001")
        y = await others.dial("2002")
        await y.hang_up()
        async with app(handler) as running:
            await running.dial("1001")
            await running.dial("1002")
            await x.wait(1.0)
    assert "cannot be bridged to itself" in seen[0]
    assert "takes another call" in seen[1]
    assert "is bridged" in seen[2] and "must leave that first" in seen[2]
    assert seen[3] == "other hung up"
    assert isinstance(seen[4], CallEndedError)
