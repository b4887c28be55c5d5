#!/usr/bin/env python3
"""The baseline answerer: bare pjsua2, answers every INVITE with 200 OK at once.

No Python media port, no asyncio, no voip: the floor for what a pjsua2 process costs.
Prints ``SIP listening`` once ready; SIGTERM ends it cleanly (exit 0). With
``--print-keys`` it prints ``KEY <digit> <time.time()>`` from PJSIP's own ``onDtmfDigit``
and ``EVENT <digit> <time> <flags>`` from ``onDtmfEvent`` (the DTMF latency baseline).
With ``--greet`` every call hears a 440 Hz tone from the moment its media is up: one
PJSIP ToneGenerator (C, no Python per frame) connected to each call as a greeting. With
``--bridge`` call ``k`` (header ``X-Bench-Index: k``) is connected to call ``k ^ 1`` in
PJSIP's conference bridge once both have media (the floor of the bridge benchmark).

    python bench/sip/answerer.py --port 5070 --rtp-port 12000
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import signal
import sys
import time

# The test peers' pjsua2 set-up (tests/peers/pjsua_endpoint.py), shared.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "peers"))

import pjsua2 as pj  # noqa: E402
from pjsua_endpoint import account_config, start_endpoint, tone_generator  # noqa: E402

_INDEX = re.compile(r"^X-Bench-Index:\s*(\d+)", re.MULTILINE | re.IGNORECASE)


class Call(pj.Call):
    print_keys = False
    greeting: pj.ToneGenerator | None = None
    """Connected to every call as soon as its media is up (``--greet``)."""
    bridged: dict[int, Call] | None = None
    """With ``--bridge``: the calls with media, by their X-Bench-Index."""

    def __init__(self, acc: pj.Account, call_id: int, index: int = 0) -> None:
        super().__init__(acc, call_id)
        self.ended = False
        self.index = index
        self.media: pj.AudioMedia | None = None

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        if self.print_keys:
            print(f"KEY {prm.digit} {time.time():.6f}", flush=True)

    def onDtmfEvent(self, prm: pj.OnDtmfEventParam) -> None:
        if self.print_keys:
            print(f"EVENT {prm.digit} {time.time():.6f} {prm.flags}", flush=True)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()  # kept: its media vector dies with it
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media = self.getAudioMedia(mi.index)
                if self.greeting is not None:
                    self.greeting.startTransmit(self.media)
                if self.bridged is not None:
                    self.bridged[self.index] = self
                    partner = self.bridged.get(self.index ^ 1)
                    if partner is not None and partner.media is not None:
                        self.media.startTransmit(partner.media)
                        partner.media.startTransmit(self.media)


class Account(pj.Account):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.answered = 0

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        found = _INDEX.search(prm.rdata.wholeMsg)
        call = Call(self, prm.callId, int(found.group(1)) if found else 0)
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)
        self.calls.append(call)
        self.answered += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--rtp-range", type=int, default=100)
    p.add_argument("--print-keys", action="store_true", help="print each DTMF key's time")
    p.add_argument(
        "--poll-ms", type=int, default=10, help="libHandleEvents timeout (callbacks run there)"
    )
    p.add_argument("--greet", action="store_true", help="play a tone on every call at once")
    p.add_argument("--bridge", action="store_true", help="connect call k to call k ^ 1")
    args = p.parse_args()
    Call.print_keys = args.print_keys
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ep = start_endpoint(args.port)
    acc = Account()
    acc.create(account_config("bare", args.port, args.rtp_port, args.rtp_range), True)
    if args.greet:
        Call.greeting = tone_generator()
    if args.bridge:
        Call.bridged = {}
    print(f"SIP listening on 127.0.0.1:{args.port}", flush=True)
    while not stop:
        ep.libHandleEvents(args.poll_ms)
        # Keep each Python Call until DISCONNECTED (pjproject #3856), then drop it.
        if any(c.ended for c in acc.calls):
            acc.calls = [c for c in acc.calls if not c.ended]
    ep.hangupAllCalls()
    for _ in range(100):
        if not acc.calls:
            break
        ep.libHandleEvents(20)
        acc.calls = [c for c in acc.calls if not c.ended]
    print(f"answered {acc.answered} calls", flush=True)
    acc.calls = []
    if Call.bridged is not None:
        Call.bridged.clear()
    acc.shutdown()
    del acc
    gc.collect()  # no pjsua2 object may outlive the endpoint
    ep.audDevManager().setNoDev()  # stop the clock before the tone generator goes
    Call.greeting = None
    ep.libDestroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
