#!/usr/bin/env python3
"""The phone tree of menu.py, plus 0 for the operator: ``call.transfer``, falling back
to ``call.connect``, and a ``voip.Queue`` while the operator is busy.

On 0 the caller hears "Transferring you to the operator." and the app asks the caller's
phone to call the operator itself (a blind transfer, SIP REFER): once it has, the call
is no longer ours. Otherwise, by the status ``transfer`` reports:

* 486 or 600 (the phone took the REFER, but the operator was busy): the caller waits
  in the queue (below).
* Anything else (the phone refused the REFER: 603, 405, 501, 403 ...; or reported
  nothing): the app calls the operator itself and bridges the caller through
  (``call.connect``, ringback meanwhile). Busy, declined or unanswered within
  ``RING_SECONDS`` (20): the caller waits in the queue.

In the queue "operator" the caller hears hold music and their place in line. Whoever is
first in line has the app ring the operator every ``RETRY_SECONDS`` (15), with
``voip.dial``; the operator's call, once answered, takes that caller from the queue
(``queue.take``) and the two talk until one hangs up. The next caller is then first and
rings the operator in turn. After ``HOLD_SECONDS`` (300) a caller is asked to call
again. A waiting caller who hangs up cancels a call to the operator still ringing.

``OPERATOR_URI`` (default ``sip:operator@127.0.0.1:5070``) is where the operator is.
A connected caller takes two of a process's 4 SIP calls. (The file shadows the standard
library's ``operator`` module only for imports from examples/ itself: the tests load it
under another name.)

Headless (the simulator's phone always accepts a transfer: it is logged):

    python examples/operator.py --no-audio --keys ww0 --speaker out.wav --hangup-after 10
"""

import asyncio
import os

from menu import TIMEOUT_SECONDS, WELCOME
from menu import handler as phone_tree

from voip import Menu, Queue, dial, runVoipClient

OPERATOR_URI = os.environ.get("OPERATOR_URI", "sip:operator@127.0.0.1:5070")
RING_SECONDS = 20.0
"""How long the operator's phone rings before we give up on that attempt."""
RETRY_SECONDS = 15.0
"""Seconds between calls to a busy operator, while someone waits."""
HOLD_SECONDS = 300.0
"""How long a caller waits at most before being asked to call again."""

OPERATOR_BUSY = {486, 600}
"""Transfer statuses meaning the caller's phone reached the operator, who was busy."""

operators = Queue("operator")


async def operator(call):
    await call.say("Transferring you to the operator.")
    moved = await call.transfer(OPERATOR_URI)
    if moved or not call.active:  # transferred: the call is no longer ours
        return
    call.log.info("transfer failed (%s %s)", moved.status, moved.reason)
    if moved.status not in OPERATOR_BUSY:  # their phone would not: we call the operator
        connected = await call.connect(OPERATOR_URI, timeout=RING_SECONDS)
        if connected.state == "answered" or not call.active:
            await goodbye(call)
            return
        if connected.state == "failed":
            await call.say("Sorry, the operator cannot be reached. Goodbye.")
            return
    await wait_for_operator(call)


async def wait_for_operator(call):
    """On hold in the queue; first in line, ring the operator now and then."""
    ringing = asyncio.create_task(ring_operator(call))
    try:
        result = await operators.wait(call, timeout=HOLD_SECONDS)
    finally:
        ringing.cancel()
    call.log.info("left the queue: %s after %.0f s", result.reason, result.waited)
    if result.reason == "timeout" and call.active:
        await call.say("Sorry, the operator is still busy. Please call again later.")
    else:
        await goodbye(call)


async def ring_operator(call):
    """Every ``RETRY_SECONDS`` while ``call`` is first in line: call the operator, who
    on answering takes the first caller (this one); stop once they have answered."""
    while True:
        await asyncio.sleep(RETRY_SECONDS)
        if operators.position(call) == 1:
            tried = await dial(OPERATOR_URI, take_caller, timeout=RING_SECONDS)
            call.log.info("called the operator: %s", tried.state)
            if tried.answered:
                return


async def take_caller(operator_call):
    """The operator answered: talk with the first caller in line, if one still waits."""
    await operators.take(operator_call, timeout=0)


async def goodbye(call):
    if call.active:
        await call.say("Thank you for calling. Goodbye.")


handler = Menu(
    WELCOME + " For the operator, press 0.",
    {**phone_tree.options, "0": operator},
    timeout=TIMEOUT_SECONDS,
)


if __name__ == "__main__":
    runVoipClient(handler)
