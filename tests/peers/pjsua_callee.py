#!/usr/bin/env python3
"""A plain pjsua2 callee, independent of the voip package: the far end an app calls.

It listens as sip:callee@127.0.0.1:--port and takes one call: it rings (180) for
--after seconds, then answers (--respond 200), refuses with --respond's status (486,
603 ...) or, with --respond none, rings until the caller gives up. Answered, it plays
--play into the call, records what it hears to --record and hangs up after --duration
seconds unless the other side does first. It waits --wait seconds for a call at most.
The last line it prints is a JSON summary: {"from": the INVITE's From, "source": the
address it came from, "offer_keys": whether its offer held SDES keys (a=crypto), "rang": seconds
it rang, "status": the final status of the INVITE, "answered": bool, "cancelled": bool
(the caller sent CANCEL), "seconds": call length after the answer}.
"""

import argparse
import json
import re
import sys
import time

import pjsua2 as pj
from pjsua_endpoint import account_config, start_endpoint
from pjsua_peer import Call as PeerCall


class Call(PeerCall):
    """The caller peer's call (plays, records, times), taken instead of placed."""

    cancelled = False

    def onCallState(self, prm):
        super().onCallState(prm)
        if self.ended_at is not None and self.answered_at is None:
            self.cancelled = self.status == 487  # the caller sent CANCEL


class Account(pj.Account):
    def __init__(self, args):
        super().__init__()
        self.args = args
        self.call = None
        self.rang_at = None
        self.sender = ""
        self.source = ""
        self.offer_keys = False

    def onIncomingCall(self, prm):
        if self.call is not None:  # one call only
            other = pj.Call(self, prm.callId)
            busy = pj.CallOpParam()
            busy.statusCode = 486
            other.hangup(busy)
            return
        m = re.search(r"^(?:From|f)\s*:\s*(.*)$", prm.rdata.wholeMsg, re.M | re.I)
        self.sender = m.group(1).strip() if m else ""
        self.source = prm.rdata.srcAddress
        self.offer_keys = "a=crypto:" in prm.rdata.wholeMsg
        self.call = Call(self, self.args.record, self.args.play, call_id=prm.callId)
        ring = pj.CallOpParam()
        ring.statusCode = 180
        self.call.answer(ring)
        self.rang_at = time.monotonic()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=5092, help="local SIP port")
    p.add_argument("--rtp-port", type=int, default=6200)
    p.add_argument("--after", type=float, default=0.0, help="seconds of ringing first")
    p.add_argument("--respond", default="200", help="200, a 4xx-6xx status, or none")
    p.add_argument("--play")
    p.add_argument("--record")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--wait", type=float, default=30.0)
    args = p.parse_args()

    ep = start_endpoint(args.port, log_level=1)
    acc = Account(args)
    acc.create(account_config("callee", args.port, args.rtp_port, 10))
    print("ready", flush=True)

    start = time.monotonic()
    responded = False
    rang = 0.0
    while time.monotonic() - start < args.wait:
        ep.libHandleEvents(10)
        call, now = acc.call, time.monotonic()
        if call is None:
            continue
        if call.ended_at is not None:
            break
        if call.answered_at is None:
            rang = now - acc.rang_at
        if not responded and args.respond != "none" and now - acc.rang_at >= args.after:
            final = pj.CallOpParam()
            final.statusCode = int(args.respond)
            if final.statusCode == 200:
                call.answer(final)
            else:
                call.hangup(final)
            responded = True
        if call.answered_at is not None and now - call.answered_at >= args.duration:
            call.hangup(pj.CallOpParam())
            break
    call = acc.call
    end = time.monotonic() + 2
    while call is not None and call.ended_at is None and time.monotonic() < end:
        ep.libHandleEvents(10)
    summary = {
        "from": acc.sender,
        "source": acc.source,
        "offer_keys": acc.offer_keys,
        "rang": round(rang, 3),
        "answered": False,
        "seconds": 0,
    }
    if call is not None:
        answered = call.answered_at is not None
        seconds = ((call.ended_at or time.monotonic()) - call.answered_at) if answered else 0
        summary.update(
            status=call.status,
            answered=answered,
            cancelled=call.cancelled,
            seconds=round(seconds, 3),
        )
        call.recorder = call.player = None
    del call
    acc.call = None
    ep.libHandleEvents(50)
    acc.shutdown()
    del acc
    ep.libDestroy()
    print(json.dumps(summary), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
