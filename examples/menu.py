#!/usr/bin/env python3
"""A small phone tree: a welcome prompt, a four digit code, and a branch for each code.

Shows barge-in (the first key stops the prompt through ``on_first``), a time-out, retries
and reusing other apps' handlers as sub-menus:

* 0000: the tones demo (hello.py)
* 1234: the echo test (echo.py); press any key to leave it
* 9999: voicemail: record until # (or 30 s), hear it back, goodbye
* anything else: "invalid code" and the question again, three tries in all

Typing nothing for 60 seconds (``TIMEOUT_SECONDS`` to change it) says "too slow" and
goodbye.

Headless (code 0000 after one second):

    python examples/menu.py --no-audio --keys ww0000 --speaker out.wav --hangup-after 30
"""

import asyncio
import os
from pathlib import Path

from echo import handler as echo_test
from hello import handler as tones_demo

from voip import RecordController, loadWAVtoPCM, runVoipClient

ASSETS = Path(__file__).resolve().parent.parent / "assets"

welcome = loadWAVtoPCM(ASSETS / "menu" / "welcome.wav")
invalid = loadWAVtoPCM(ASSETS / "menu" / "invalid.wav")
goodbye = loadWAVtoPCM(ASSETS / "menu" / "goodbye.wav")
too_slow = loadWAVtoPCM(ASSETS / "timeout.wav")
record_prompt = loadWAVtoPCM(ASSETS / "record_prompt.wav")
playing_back = loadWAVtoPCM(ASSETS / "playing_back.wav")

CODE_TIMEOUT = float(os.environ.get("TIMEOUT_SECONDS", "60"))
"""Seconds the caller has to enter a code (TIMEOUT_SECONDS overrides the 60)."""
TRIES = 3
VOICEMAIL_SECONDS = 30


async def voicemail(call):
    """Record a message until # (or 30 seconds), play it back, say goodbye."""
    await call.playPCM(record_prompt)
    await call.playTone(1000, 0.25)
    call.flushDTMF()  # a # pressed during the prompt must not end the message
    controller = RecordController()
    recorder = call.recordPCM(controller, maxlen=8000 * VOICEMAIL_SECONDS)
    try:
        await asyncio.wait_for(call.getDTMF(filter="#"), VOICEMAIL_SECONDS)
    except TimeoutError:
        pass
    controller.stop()
    message = await recorder
    await call.playPCM(playing_back)
    await call.playPCM(message)
    await call.playPCM(goodbye)


ROUTES = {
    "0000": tones_demo,
    "1234": echo_test,
    "9999": voicemail,
}


async def ask_code(call):
    """Play the welcome prompt and return the four digits typed; the first one stops it."""
    prompt = call.playPCM(welcome)
    try:
        # barge-in: the first digit stops the prompt
        return await asyncio.wait_for(
            call.getDTMF(n=4, filter="0123456789", on_first=lambda key: prompt.cancel()),
            CODE_TIMEOUT,
        )
    finally:
        prompt.cancel()


async def handler(call):
    for _ in range(TRIES):
        try:
            code = await ask_code(call)
        except TimeoutError:
            await call.playPCM(too_slow)
            break
        route = ROUTES.get(code)
        if route is not None:
            call.flushDTMF()  # keys typed after the code are not for the sub-menu
            await route(call)
            return
        await call.playPCM(invalid)
    await call.playPCM(goodbye)


if __name__ == "__main__":
    runVoipClient(handler)
