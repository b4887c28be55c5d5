#!/usr/bin/env python3
"""The demo: three tones, your number read back, then a four digit code.

Type 1 2 3 4 on the keyboard to hear "password correct"; anything else says
"password incorrect". Headless: python test.py --no-audio --keys ww1234 --speaker out.wav
"""

import asyncio
from pathlib import Path

from voip import loadWAVtoPCM, runVoipClient

ASSETS = Path(__file__).resolve().parent / "assets"
enter_code = loadWAVtoPCM(ASSETS / "enter_code.wav")
password_correct = loadWAVtoPCM(ASSETS / "password_correct.wav")
password_incorrect = loadWAVtoPCM(ASSETS / "password_incorrect.wav")
too_slow = loadWAVtoPCM(ASSETS / "timeout.wav")


async def handler(call):
    await call.playTone(420, 0.5)
    await call.playTone(560, 0.5)
    await call.playTone(650, 0.5)
    await call.say("You are calling from " + " ".join(call.caller))
    prompt = call.playPCM(enter_code)
    try:
        code = await asyncio.wait_for(
            call.getDTMF(n=4, filter="0123456789", on_first=lambda key: prompt.cancel()), 60
        )
    except TimeoutError:
        await call.playPCM(too_slow)
        return
    if code == "1234":
        await call.playPCM(password_correct)
    else:
        await call.playPCM(password_incorrect)


if __name__ == "__main__":
    runVoipClient(handler)
