#!/usr/bin/env python3
"""A time-out on keypad input: ``asyncio.wait_for`` around ``getDTMF``.

Waits up to 60 seconds for four digits and prints them, or prints a message when time
runs out. The time-out can be shortened with the environment variable
``TIMEOUT_SECONDS`` (e.g. to try the time-out without waiting a minute).

Headless:

    python examples/timeout.py --no-audio --keys w1234 --hangup-after 10
    TIMEOUT_SECONDS=2 python examples/timeout.py --no-audio --hangup-after 10
"""

import asyncio
import os

from voip import runVoipClient

TIMEOUT = float(os.environ.get("TIMEOUT_SECONDS", "60"))


async def handler(call):
    await call.playTone(1000, 0.25)
    try:
        # wait for 4 numbers for max 60 seconds
        keys = await asyncio.wait_for(call.getDTMF(n=4, filter="1234567890"), TIMEOUT)
    except TimeoutError:
        keys = "not enough keys pressed in the alloted time"
    print(keys)


if __name__ == "__main__":
    runVoipClient(handler)
