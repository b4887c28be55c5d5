#!/usr/bin/env python3
"""The load benchmark's voip app: greets every caller with a speech prompt (the media
benchmark's, played once, so that a recording holds it once), then holds the call with
a tone until the caller hangs up. PJSIP plays both (its player and tone generator, in C).

Run as a cluster: ``python bench/sip/greeting_app.py --sip --workers 25 --listen ...``.
"""

from __future__ import annotations

from bench.sip.media_app import PROMPT_WAV
from voip import loadWAVtoPCM, runVoipClient
from voip.backends.pjsip.offload import WHOLE_TONE_SECONDS
from voip.call import Call

prompt = loadWAVtoPCM(PROMPT_WAV)


async def handler(call: Call) -> None:
    await call.playPCM(prompt)
    while call.active:  # until the caller hangs up
        # A minute at a time, each made whole and played as a file (a longer tone would
        # loop a second of it: offload.WHOLE_TONE_SECONDS); as the load benchmark measured.
        await call.playTone(425, WHOLE_TONE_SECONDS)


if __name__ == "__main__":
    runVoipClient(handler)
