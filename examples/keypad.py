#!/usr/bin/env python3
"""Keypad input: beep, wait for one key, print it to stdout, then hang up.

Interactive: type a key (0-9, *, #, A-D) in the terminal.

Headless (presses 5 after half a second):

    python examples/keypad.py --no-audio --keys w5 --hangup-after 10
"""

from voip import runVoipClient


async def handler(call):
    # play a tone to signal to the user that we're accepting keypad input
    await call.playTone(1000, 0.25)
    key = await call.getDTMF()
    print(key)


if __name__ == "__main__":
    runVoipClient(handler)
