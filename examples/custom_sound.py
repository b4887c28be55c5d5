#!/usr/bin/env python3
"""Playing a custom sound: load assets/my_sound.wav with loadWAVtoPCM and play it.

Sounds should be 16-bit 8000 Hz WAVs (``sox -V my_sound.mp3 -r 8000 -c 1 -t wav
my_sound.wav``; sox reads MP3 with Debian's ``libsox-fmt-mp3``); other WAVs are
converted on load. The file is found relative to this
script, so it runs from any directory.

Headless:

    python examples/custom_sound.py --no-audio --speaker out.wav --hangup-after 20
"""

from pathlib import Path

from voip import loadWAVtoPCM, runVoipClient

ASSETS = Path(__file__).resolve().parent.parent / "assets"

my_sound = loadWAVtoPCM(ASSETS / "my_sound.wav")


async def handler(call):
    await call.playPCM(my_sound)


if __name__ == "__main__":
    runVoipClient(handler)
