#!/usr/bin/env python3
"""Cancelling playback: loop a sound in the background until the caller presses a key.

``playPCM`` returns at once with a Playback; the handler waits for a key meanwhile, then
``playback.cancel()`` stops the sound on the next 20 ms frame. Key 1 then plays a high
tone (880 Hz); any other key a low tone (440 Hz).

Headless:

    python examples/cancel_playback.py --no-audio --keys wwww1 --speaker out.wav \\
        --hangup-after 20
"""

from pathlib import Path

from voip import loadWAVtoPCM, runVoipClient

ASSETS = Path(__file__).resolve().parent.parent / "assets"

my_sound = loadWAVtoPCM(ASSETS / "my_sound.wav")


async def do_thing_for_one(call):
    await call.playTone(880, 0.5)


async def do_thing_for_other(call):
    await call.playTone(440, 0.5)


async def handler(call):
    # loop=True: the sound repeats until cancelled
    playback = call.playPCM(my_sound, loop=True)
    # wait for a keypress
    key = await call.getDTMF()
    # once we get it, cancel the playing sound
    playback.cancel()
    if key == "1":
        await do_thing_for_one(call)
    else:
        await do_thing_for_other(call)


if __name__ == "__main__":
    runVoipClient(handler)
