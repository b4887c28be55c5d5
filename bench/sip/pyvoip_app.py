#!/usr/bin/env python3
"""The media benchmark's baseline: a pyVoIP 1.6.8 app doing what bench/sip/media_app.py does.

Every call is answered and, until the caller hangs up, plays the same prompt in a loop
(pyVoIP's ``write_audio`` takes 8-bit unsigned 8 kHz samples: the prompt is converted
once at start) and records what it receives with ``read_audio``; then it prints
``RECORDED <call> <seconds> <peak>`` as the voip app does.

pyVoIP works through a PBX: it sends every SIP message to its "server", so ``--peer`` is
the caller itself (bench/sip/loadgen.py). It also registers with that server at start-up
and every two minutes; there is no registrar here (pjsua2 does not answer REGISTER), so
registration is switched off. Prints ``SIP listening`` once started; SIGTERM stops it.

    python bench/sip/pyvoip_app.py --peer 127.0.0.1:5080 --port 5070 --rtp-port 12000
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import wave
from array import array

from pyVoIP.VoIP import CallState, VoIPCall, VoIPPhone

from bench.common import ROOT

PROMPT_WAV = ROOT / "assets" / "menu" / "welcome.wav"
FRAME = 160
"""pyVoIP's read size: one 20 ms packet of 8-bit samples."""
AHEAD = 1.0
"""Seconds of prompt kept queued ahead of playback."""


def load_u8(path: str) -> bytes:
    """A 16-bit 8 kHz mono WAV as pyVoIP's 8-bit unsigned samples."""
    with wave.open(path) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
            raise SystemExit(f"{path}: need 8 kHz mono 16-bit")
        samples = array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes((s >> 8) + 128 for s in samples)


class App:
    """The callback pyVoIP runs (in a thread of its own) for every incoming call."""

    def __init__(self, prompt: bytes) -> None:
        self.prompt = prompt
        self.seconds = len(prompt) / 8000
        self.output = threading.Lock()

    def __call__(self, call: VoIPCall) -> None:
        call.answer()
        chunks = []
        queued_until = time.monotonic()
        while call.state == CallState.ANSWERED:
            if queued_until - time.monotonic() < AHEAD:
                call.write_audio(self.prompt)  # appended after what is queued
                queued_until += self.seconds
            chunks.append(call.read_audio(FRAME))  # blocks until audio arrives
        data = b"".join(chunks)
        peak = max((abs(b - 128) for b in data), default=0) / 128
        line = f"RECORDED {call.call_id[:8]} {len(data) / 8000:.2f} {peak:.3f}\n"
        with self.output:  # one line at a time: every call has a thread of its own
            sys.stdout.write(line)
            sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", required=True, help="HOST:PORT of the caller (pyVoIP's 'server')")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--rtp-range", type=int, default=100)
    p.add_argument("--prompt", default=str(PROMPT_WAV))
    args = p.parse_args()
    host, peer_port = args.peer.rsplit(":", 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    phone = VoIPPhone(
        host,
        int(peer_port),
        "bench",
        "",
        myIP="127.0.0.1",
        callCallback=App(load_u8(args.prompt)),
        sipPort=args.port,
        rtpPortLow=args.rtp_port,
        rtpPortHigh=args.rtp_port + args.rtp_range - 1,
    )
    # No registrar: its start-up REGISTER would wait 30 s for an answer, then retry, and
    # the retries would read the caller's INVITEs as their answers.
    phone.sip.register = lambda: True
    phone.start()
    print(f"SIP listening on 127.0.0.1:{args.port}", flush=True)
    while not stop.wait(0.5):
        pass
    phone.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
