#!/usr/bin/env python3
"""The media benchmark's load generator: holds concurrent calls to an app, sending a tone.

A pjsua2 process, driven through stdin so that the benchmark decides when the held
period starts and ends:

1. it starts its endpoint and prints ``READY`` (an app that registers with its peer,
   as pyVoIP does, may start only now: the REGISTER gets an answer);
2. on the line ``CALL <uri>`` it places ``--calls`` calls to ``<uri>`` at once, the first
   one with the header ``X-Bench-Block: 1`` if ``--block-one`` is given, and sends a
   440 Hz tone (PJSIP's ToneGenerator) on each as soon as its media is up; with
   ``--bursts``, call ``k`` (header ``X-Bench-Index: k``) sends bursts instead, 100 ms
   of tone then ``300 + 50 k`` ms of silence, from a generator of its own (each call's
   pattern its own, so that whose bursts a stream carries can be told);
3. once every call is answered and has media it prints ``UP <time.time()>``;
4. on the line ``HANGUP`` (or after ``--max-seconds``) it hangs up every call, waits for
   them to end and prints one JSON line: per call its status, whether it was the marked
   one, and the app's RTP address for it (from the SDP answer).

    python bench/sip/loadgen.py --port 5080 --rtp-port 13000 --calls 4
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import sys
import time

# The test peers' pjsua2 set-up (tests/peers/pjsua_endpoint.py), shared.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "peers"))

import pjsua2 as pj  # noqa: E402
from pjsua_endpoint import account_config, start_endpoint, tone_generator  # noqa: E402

BLOCK_HEADER = "X-Bench-Block"
INDEX_HEADER = "X-Bench-Index"
BURST_MS = 100
"""Marks the call whose handler is to block the app's event loop (bench/sip/media_app.py)."""
ANSWER_TIMEOUT = 20.0
"""Seconds for every call to be answered (pyVoIP answers a second after the INVITE)."""


class Lines:
    """Lines from stdin without blocking, so that PJSIP can be pumped meanwhile."""

    def __init__(self) -> None:
        self._buf = b""
        self.closed = False

    def poll(self) -> list[str]:
        if self.closed or not select.select([0], [], [], 0)[0]:
            return []
        data = os.read(0, 4096)
        if not data:
            self.closed = True
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [ln.decode().strip() for ln in lines]


class Call(pj.Call):
    def __init__(self, acc: pj.Account, tone: pj.ToneGenerator, block: bool) -> None:
        super().__init__(acc)
        self.tone = tone
        self.block = block
        self.answered = False
        self.media = False
        self.ended = False
        self.status = 0
        self.remote_rtp = ""

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered = True
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.status = info.lastStatusCode
            self.ended = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()  # kept: its media vector dies with it
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.tone.startTransmit(self.getAudioMedia(mi.index))
                self.remote_rtp = self.getStreamInfo(mi.index).remoteRtpAddress
                self.media = True


def place(acc: pj.Account, tone: pj.ToneGenerator, uri: str, block: bool, index: int) -> Call:
    call = Call(acc, tone, block)
    prm = pj.CallOpParam(True)
    for name, value in ((BLOCK_HEADER, "1" if block else ""), (INDEX_HEADER, str(index))):
        if value:
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            prm.txOption.headers.append(header)
    call.makeCall(uri, prm)
    return call


def end_calls(ep: pj.Endpoint, calls: list[Call]) -> list[dict]:
    """Hang up every call, wait for them to end; what became of each."""
    for call in calls:
        if not call.ended:
            call.hangup(pj.CallOpParam())
    deadline = time.monotonic() + 10
    while any(not c.ended for c in calls) and time.monotonic() < deadline:
        ep.libHandleEvents(10)
    return [
        {"status": c.status, "answered": c.answered, "block": c.block, "remote_rtp": c.remote_rtp}
        for c in calls
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--rtp-range", type=int, default=100)
    p.add_argument("--calls", type=int, default=4, help="concurrent calls (1-4)")
    p.add_argument("--block-one", action="store_true", help=f"send {BLOCK_HEADER} on one call")
    p.add_argument("--bursts", action="store_true", help="tone bursts, a pattern per call")
    p.add_argument("--max-seconds", type=float, default=600, help="hang up after this anyway")
    args = p.parse_args()

    ep = start_endpoint(args.port)
    acc = pj.Account()
    cfg = account_config("load", args.port, args.rtp_port, args.rtp_range)
    # When an answer lists several codecs PJSIP re-INVITEs to keep one; pyVoIP answers
    # with all it has, and on that re-INVITE starts a second sender for the call (twice
    # the packets). Every app gets the same plain INVITE and ACK instead.
    cfg.mediaConfig.lockCodecEnabled = False
    acc.create(cfg, True)
    tones = [
        tone_generator(on_msec=BURST_MS, off_msec=300 + 50 * k) if args.bursts else None
        for k in range(args.calls)
    ]
    tone = tone_generator()
    stdin = Lines()
    print("READY", flush=True)
    calls: list[Call] = []
    result: dict = {"up": False}
    start = time.monotonic()
    hangup = False
    while not hangup and not stdin.closed and time.monotonic() - start < args.max_seconds:
        ep.libHandleEvents(10)
        for line in stdin.poll():
            if line.startswith("CALL ") and not calls:
                uri = line.split(None, 1)[1]
                calls = [
                    place(acc, tones[i] or tone, uri, args.block_one and i == 0, i)
                    for i in range(args.calls)
                ]
                placed = time.monotonic()
            elif line == "HANGUP":
                hangup = True
        if calls and not result["up"]:
            if all(c.answered and c.media for c in calls):
                result["up"] = True
                print(f"UP {time.time():.6f}", flush=True)
            elif any(c.ended for c in calls) or time.monotonic() - placed > ANSWER_TIMEOUT:
                break  # a call failed: no held period
    result["calls"] = end_calls(ep, calls)
    calls = []  # no pjsua2 Call may outlive the endpoint
    acc.shutdown()
    del acc
    gc.collect()
    ep.audDevManager().setNoDev()  # stop the clock before the tone generator goes
    del tone, tones
    ep.libDestroy()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
