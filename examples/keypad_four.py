#!/usr/bin/env python3
"""Keypad input with ``n`` and ``filter``: wait for four digits and print them.

Keys outside the filter (``*``, ``#``, A-D) are ignored, so ``1#2*34`` prints ``1234``.

Headless:

    python examples/keypad_four.py --no-audio --keys "w1#2*34" --hangup-after 10
"""

from voip import runVoipClient


async def handler(call):
    await call.playTone(1000, 0.25)
    keys = await call.getDTMF(n=4, filter="1234567890")
    print(keys)


if __name__ == "__main__":
    runVoipClient(handler)
