#!/usr/bin/env python3
"""Text to speech: ``voip.tts.TTStoPCM`` turns text into PCM that ``playPCM`` plays.

Speech comes from libespeak-ng (bundled with the ``espeakng-loader`` package). Options
use espeak's command line syntax, e.g. ``["-v", "en-us"]`` for the American voice or
``["-s", "140"]`` for slower speech. ``await call.say(text)`` is the shortcut that
synthesises off the event loop and plays in one step.

Headless:

    python examples/tts.py --no-audio --speaker out.wav --hangup-after 30
"""

from voip import runVoipClient
from voip.tts import TTStoPCM


async def handler(call):
    await call.playPCM(TTStoPCM("this is a test of speech to text"))
    # espeak options: an American English voice
    await call.playPCM(TTStoPCM("this is a test of speech to text", opts=["-v", "en-us"]))
    # the shortcut: synthesis runs in a worker thread, then the speech plays
    await call.say("goodbye", ["-v", "en-us", "-s", "140"])


if __name__ == "__main__":
    runVoipClient(handler)
