"""call.transfer(): in the test kit (accepted, refused, attended), bad input, and the result."""

from __future__ import annotations

import asyncio

import pytest

from voip import CallEndedError, InvalidArgumentError, Transferred, VoipError
from voip.testing import HungUp, TonePlayed, app, dial

pytestmark = pytest.mark.timeout(60)

SALES = "sip:sales@pbx.example.com"


async def put_through(call):
    """Says hello, transfers to sales; if that fails, says so and plays a 700 Hz tone."""
    await call.say("Putting you through")
    result = await call.transfer(SALES)
    call.log.info("RESULT %r", result)
    if not result:
        await call.say(f"Sorry, sales did not answer: {result.status}")
        await call.playTone(700, 0.5)


async def test_the_phone_accepts_the_transfer_and_the_app_hangs_up():
    results = []

    async def handler(call):
        await call.say("Putting you through")
        results.append(await call.transfer(SALES))
        results.append((call.active, call.ended_by))

    async with dial(handler) as phone:
        await phone.heard_say("Putting you through")
        assert await phone.hung_up() == "app"
    assert phone.transferred_to == SALES and phone.transfers == [SALES]
    assert results == [Transferred(SALES, True, 200, "OK"), (False, "local")]
    assert bool(results[0]) is True
    assert isinstance(phone.events[-1], HungUp) and phone.events[-1].by == "local"


async def test_the_phone_refuses_the_transfer_and_the_call_stays_with_the_app():
    async with dial(put_through, refuses_transfer=True) as phone:
        await phone.heard_say("Putting you through")
        await phone.heard_say("Sorry, sales did not answer: 603")
        await phone.heard_tone(700, 0.5)
        assert phone.transfers == [SALES] and phone.transferred_to is None
        await phone.hang_up()
    assert TonePlayed(700, 0.5, at=phone.events[-3].at) in phone.events


async def test_a_refusal_is_false_with_its_status_and_reason():
    results = []

    async def handler(call):
        results.append(await call.transfer("sips:bob@example.com;transport=tls"))
        results.append(call.active)

    async with dial(handler, refuses_transfer=True) as phone:
        await phone.wait(1)
    refused, active = results
    assert not refused and (refused.ok, refused.status, refused.reason) == (False, 603, "Decline")
    assert refused.target == "sips:bob@example.com;transport=tls" and active


async def test_attended_transfer_puts_one_caller_through_to_the_other():
    """The app holds two calls and connects them: the first caller is transferred to
    the second, whose call with the app the transfer replaces."""
    calls = []
    results = []

    async def handler(call):
        calls.append(call)
        if len(calls) == 2:
            results.append(await calls[0].transfer(calls[1]))
        await call.ended.wait()

    async with app(handler) as running:
        first = await running.dial("5551111")
        second = await running.dial("5552222")
        assert await first.hung_up() == "app"
        assert await second.hung_up() == "caller"  # the target leaves the replaced call
    assert first.transferred_to == "sip:5552222@localhost"
    assert results == [Transferred(first.transferred_to, True, 200, "OK")]


@pytest.mark.parametrize(
    "target",
    ["tel:+15551234", "sales", "", None, 42, "sip:a b@host", "sip:a@host\r\nX: y", "SIP:"],
)
async def test_a_target_that_is_no_sip_uri_is_refused(target):
    errors = []

    async def handler(call):
        try:
            await call.transfer(target)
        except InvalidArgumentError as exc:
            errors.append(str(exc))

    async with dial(handler) as phone:
        await phone.wait(1)
    assert len(errors) == 1 and phone.transfers == []


async def test_bad_timeouts_and_a_call_transferred_to_itself_are_refused():
    errors = []

    async def handler(call):
        for kwargs in ({"timeout": 0}, {"timeout": -1}, {"timeout": True}, {"timeout": "5"}):
            with pytest.raises(InvalidArgumentError, match="timeout"):
                await call.transfer(SALES, **kwargs)
        with pytest.raises(InvalidArgumentError, match="itself"):
            await call.transfer(call)
        errors.append("checked")

    async with dial(handler) as phone:
        await phone.wait(1)
    assert errors == ["checked"]


async def test_transferring_a_call_that_ended_raises():
    raised = []

    async def handler(call):
        call.hangup()
        try:
            await call.transfer(SALES)
        except CallEndedError as exc:
            raised.append(exc)

    async with dial(handler) as phone:
        await phone.hung_up()
    assert len(raised) == 1 and phone.transfers == []


class _Silent:
    """A backend that never reports the outcome."""

    def __init__(self) -> None:
        self.abandoned = 0
        self.referred: list[str] = []

    def refer(self, target, replaces, report):
        self.referred.append(target)

    def abandon(self):
        self.abandoned += 1


async def test_no_outcome_within_the_timeout_is_a_failure_and_the_call_stays_up():
    silent = _Silent()
    results = []

    async def handler(call):
        call.transferer = silent
        results.append(await call.transfer(SALES, timeout=5))
        results.append(call.active)

    async with dial(handler) as phone:
        await phone.wait(5.5)
    timed_out, active = results
    assert (timed_out.ok, timed_out.status) == (False, 0) and "5 s" in timed_out.reason
    assert active and silent.abandoned == 1 and silent.referred == [SALES]


async def test_one_transfer_at_a_time_and_a_cancelled_one_is_abandoned():
    silent = _Silent()
    raised = []

    async def handler(call):
        call.transferer = silent
        first = asyncio.ensure_future(call.transfer(SALES))
        await asyncio.sleep(1)
        try:
            await call.transfer("sip:support@pbx.example.com")
        except VoipError as exc:
            raised.append(str(exc))
        first.cancel()
        await asyncio.wait({first})
        raised.append(silent.abandoned)

    async with dial(handler) as phone:
        await phone.wait(2)
    assert raised == ["a transfer of this call is already going on", 1]
    assert silent.referred == [SALES]


async def test_the_caller_hanging_up_during_the_transfer_ends_the_wait_not_the_handler():
    silent = _Silent()
    results = []

    async def handler(call):
        call.transferer = silent
        results.append(await call.transfer(SALES))
        results.append(call.ended_by)

    async with dial(handler) as phone:
        await phone.wait(1)
        await phone.hang_up()
    ended, by = results
    assert (ended.ok, ended.status, by) == (False, 0, "remote")
    assert "ended" in ended.reason and silent.abandoned == 1
