#!/usr/bin/env python3
"""A small call centre with ``voip.Queue``: callers wait in the queue "sales" until an
agent takes them, one after another.

* A caller presses 1 and waits: hold music, and their place in the queue on entry and
  every 30 seconds. After ``HOLD_SECONDS`` (300) they are asked to call again.
* An agent calls the same number, presses 9 (not offered to callers) and enters the
  agent code (``AGENT_CODE``, 4321). They are then bridged to the caller who has waited
  longest, and when that call ends (the caller hangs up, or the agent presses #) they
  hear "Next caller." and get the next one. The agent hangs up to stop.

One process answers at most 4 SIP calls, callers and agents together: so does a queue.

Headless (a caller alone in the queue, hanging up after 20 s):

    python examples/callcenter.py --no-audio --keys ww1 --speaker out.wav --hangup-after 20
"""

import asyncio
import os

from voip import CallEndedError, Queue, runVoipClient

AGENT_CODE = os.environ.get("AGENT_CODE", "4321")
HOLD_SECONDS = float(os.environ.get("HOLD_SECONDS", "300"))
"""How long a caller waits at most before being asked to call again."""

sales = Queue("sales")


async def handler(call):
    choice = await call.gather(
        "Welcome to Example Company. For sales, press 1.", num_digits=1, valid="[19]", attempts=3
    )
    if choice.digits == "1":
        await caller(call)
    elif choice.digits == "9":
        await agent(call)
    elif call.active:
        await call.say("Goodbye.")


async def caller(call):
    result = await sales.wait(call, timeout=HOLD_SECONDS)
    call.log.info("left the queue: %s after %.0f s", result.reason, result.waited)
    if not call.active:
        return
    if result.reason == "timeout":
        await call.say("Sorry, all our agents are busy. Please call again later.")
    else:
        await call.say("Thank you for calling. Goodbye.")


async def agent(call):
    code = await call.gather(
        "Agent code?", num_digits=len(AGENT_CODE), valid=lambda d: d == AGENT_CODE
    )
    if not code:
        if call.active:
            await call.say("Goodbye.")
        return
    await call.say("You are taking calls for sales. Press hash to end a call.")
    keys = asyncio.create_task(hash_ends_a_call(call))
    try:
        while call.active:
            taken = await sales.take(call)
            if taken is not None:
                call.log.info("talked with %s (%s)", taken.caller.caller, taken.end)
            if call.active:
                await call.say("Next caller.")
    finally:
        keys.cancel()


async def hash_ends_a_call(call):
    """The agent's # ends the conversation; the caller is thanked and hung up."""
    try:
        while True:
            await call.getDTMF(1, filter="#")
            call.unbridge()
    except CallEndedError:
        pass


if __name__ == "__main__":
    runVoipClient(handler)
