#!/usr/bin/env python3
"""A small phone tree, as data: ``voip.Menu``.

* 1: the tones demo (hello.py)
* 2: the echo test (echo.py); press any key to leave it
* 3: leave a message: after the beep, until you stop talking (or press #); you hear it
  back
* 4: opening hours, a menu of its own: 1 weekdays, 2 weekends, * back to the first menu

The first key stops the welcome (barge-in). A key that is not a choice says so and asks
again, and so does silence for ``TIMEOUT_SECONDS`` (10); after three tries it says
goodbye and hangs up. Other apps' handlers (hello.py, echo.py) are options as they are.

Headless (the tones demo, chosen a second into the welcome):

    python examples/menu.py --no-audio --keys ww1 --speaker out.wav --hangup-after 30
"""

import os

from echo import handler as echo_test
from hello import handler as tones_demo

from voip import Menu, runVoipClient

TIMEOUT_SECONDS = float(os.environ.get("TIMEOUT_SECONDS", "10"))
"""Seconds of silence before a menu asks again."""

WELCOME = (
    "Welcome to the demo phone tree. For the tones demo, press 1. For the echo test, "
    "press 2. To leave a message, press 3. For our opening hours, press 4."
)


async def voicemail(call):
    """Record a message until the caller stops talking, then play it back."""
    await call.say("Please speak after the tone. Press hash when you are done.")
    message = await call.record(silence_timeout=2, max_seconds=30)
    if not call.active:  # they hung up: the message is what they said
        call.log.info("message of %.1f s left (%s)", message.seconds, message.reason)
        return
    if message.seconds:
        await call.say("Here is what you said.")
        await call.playPCM(message.pcm)
    await call.say("Goodbye.")


async def weekdays(call):
    await call.say("On weekdays we are open from nine to five.")


async def weekends(call):
    await call.say("On weekends we are closed.")


hours = Menu(
    "For weekdays, press 1. For weekends, press 2. To go back, press star.",
    {"1": weekdays, "2": weekends},
    timeout=TIMEOUT_SECONDS,
)

handler = Menu(
    WELCOME,
    {"1": tones_demo, "2": echo_test, "3": voicemail, "4": hours},
    timeout=TIMEOUT_SECONDS,
)


if __name__ == "__main__":
    runVoipClient(handler)
