#!/usr/bin/env python3
"""The voip app of the media benchmark: plays a prompt in a loop and records every call.

Each call's handler loops ``call.playPCM(prompt, loop=True)`` and records with
``call.recordPCM`` until the caller hangs up, then prints ``RECORDED <call> <seconds>
<peak>`` (what the recorder held, to show it got the caller's audio). On the call that
carries the header ``X-Bench-Block`` (bench/sip/loadgen.py --block-one) the handler also
blocks the event loop for 200 ms every second, with ``time.sleep``.

``--engine seed`` swaps voip's numpy mixer for the per-sample engine of
bench/seed_engine.py (through bench/sip/seed_mixer.py), for this process only. Other
options are voip's own:

    python bench/sip/media_app.py [--engine seed] --sip --listen 127.0.0.1:5070
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import numpy as np

import voip.bridge
from bench.common import ROOT
from voip import RecordController, loadWAVtoPCM, runVoipClient
from voip.audio.pcm import SAMPLE_RATE
from voip.call import Call

PROMPT_WAV = ROOT / "assets" / "menu" / "welcome.wav"
BLOCK_HEADER = "X-Bench-Block"
BLOCK_SECONDS = 0.2
BLOCK_EVERY = 1.0

prompt = np.zeros(0, dtype=np.float32)


async def handler(call: Call) -> None:
    controller = RecordController()
    recording = call.recordPCM(controller)
    call.playPCM(prompt, loop=True)
    try:
        if call.headers.get(BLOCK_HEADER):
            while True:
                await asyncio.sleep(BLOCK_EVERY - BLOCK_SECONDS)
                time.sleep(BLOCK_SECONDS)  # on purpose: the whole event loop stops
        await call.ended.wait()
    finally:
        pcm = await recording  # resolved with what it holds when the call ends
        peak = float(np.abs(pcm).max()) if len(pcm) else 0.0
        print(f"RECORDED {call.info.call_id} {len(pcm) / SAMPLE_RATE:.2f} {peak:.3f}", flush=True)


def main() -> None:
    global prompt
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=["numpy", "seed"], default="numpy")
    p.add_argument("--prompt", default=str(PROMPT_WAV), help="the WAV to play in a loop")
    args, rest = p.parse_known_args()
    prompt = loadWAVtoPCM(args.prompt)
    if args.engine == "seed":
        from bench.sip.seed_mixer import SeedMixer

        voip.bridge.Mixer = SeedMixer  # type: ignore[misc]  # every call's bridge makes one
    runVoipClient(handler, rest)


if __name__ == "__main__":
    sys.exit(main())
