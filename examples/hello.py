#!/usr/bin/env python3
"""Hello world: answer the call and play three tones (420, 560 and 650 Hz, half a second each).

Shows the smallest voip app: an ``async def handler(call)`` passed to ``runVoipClient``.
Run it and a simulated call starts at once on your speaker.

Headless (writes what the caller hears to out.wav):

    python examples/hello.py --no-audio --speaker out.wav --hangup-after 10
"""

from voip import runVoipClient


async def handler(call):
    await call.playTone(420, 0.5)
    await call.playTone(560, 0.5)
    await call.playTone(650, 0.5)


if __name__ == "__main__":
    runVoipClient(handler)
