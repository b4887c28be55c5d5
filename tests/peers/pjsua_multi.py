#!/usr/bin/env python3
"""A plain pjsua2 caller that keeps several calls going at once, for a bounded time.

It keeps up to --concurrent calls (at most 4: the wheel's limit) to URI, starting a new
one whenever one ends, until --seconds have passed or --calls were placed. Each call
sends its own two random digits (RFC 4733) --dtmf-at seconds after the answer, records
what it hears to DIR/call-N.wav (--record-dir), and hangs up after a random time between
--min and --max seconds unless the other side does first. Independent of the voip package.

It prints one JSON line per call as it ends, {"n", "status", "answered", "seconds",
"digits", "wav", "ended_by" ("local": this caller hung up, "remote": the other side)},
and a last line {"placed", "answered", "statuses"}.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import pjsua2 as pj
from pjsua_endpoint import account_config, start_endpoint

PJ_ETOOMANY = 70010


class Call(pj.Call):
    def __init__(self, acc, n, digits, wav):
        super().__init__(acc)
        self.n = n
        self.digits = digits
        self.wav = wav
        self.status = 0
        self.started_at = time.monotonic()
        self.answered_at = None
        self.ended_at = None
        self.recorder = None
        self.sent = False
        self.hung_up = False
        self.hold = 0.0

    def onCallState(self, prm):
        info = self.getInfo()
        self.status = info.lastStatusCode
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended_at = time.monotonic()

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.wav and self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.wav)
                    self.getAudioMedia(mi.index).startTransmit(self.recorder)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--port", type=int, default=5092, help="local SIP port")
    p.add_argument("--rtp-port", type=int, default=6200)
    p.add_argument("--concurrent", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60, help="start no call after this")
    p.add_argument("--calls", type=int, default=0, help="place at most this many (0: no limit)")
    p.add_argument("--min", type=float, default=2.0, help="shortest call, seconds")
    p.add_argument("--max", type=float, default=6.0, help="longest call, seconds")
    p.add_argument("--dtmf-at", type=float, default=0.9)
    p.add_argument("--record-dir", default="")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)

    ep = start_endpoint(args.port, log_level=1, codecs=None)  # a stock PJSIP phone's offer
    acc = pj.Account()
    acc.create(account_config("multi", args.port, args.rtp_port, 40))

    live: list[Call] = []
    placed = answered = 0
    statuses: dict[int, int] = {}
    start = time.monotonic()
    next_start = start
    concurrent = min(args.concurrent, 4)

    def may_start(now):
        if args.calls and placed >= args.calls:
            return False
        return now - start < args.seconds and len(live) < concurrent and now >= next_start

    while True:
        now = time.monotonic()
        if may_start(now):
            n = placed
            digits = "".join(rng.choice("0123456789") for _ in range(2))
            wav = str(Path(args.record_dir) / f"call-{n}.wav") if args.record_dir else ""
            call = Call(acc, n, digits, wav)
            call.hold = rng.uniform(args.min, args.max)
            try:
                call.makeCall(args.uri, pj.CallOpParam(True))
            except pj.Error as exc:
                del call
                if exc.status == PJ_ETOOMANY:  # a slot just freed is not free yet: wait
                    next_start = now + 0.1
                    continue
                line = {"n": n, "status": 0, "answered": False, "seconds": 0}
                line.update(digits=digits, wav="", error=exc.reason)
                print(json.dumps(line), flush=True)
                placed += 1
                continue
            live.append(call)
            placed += 1
            next_start = now + 0.15  # spread the INVITEs a little
        elif not live and not may_start(now + 1):
            break
        ep.libHandleEvents(10)
        now = time.monotonic()
        for call in live:
            if call.answered_at is None or call.ended_at is not None:
                if call.ended_at is None and now - call.started_at > 15:
                    call.hangup(pj.CallOpParam())  # never answered: give up
                    call.hung_up = True
                continue
            if not call.sent and now - call.answered_at >= args.dtmf_at:
                d = pj.CallSendDtmfParam()
                d.digits = call.digits
                d.method = pj.PJSUA_DTMF_METHOD_RFC2833
                try:
                    call.sendDtmf(d)
                except pj.Error:
                    pass
                call.sent = True
            if not call.hung_up and now - call.answered_at >= call.hold:
                call.hangup(pj.CallOpParam())
                call.hung_up = True
        for call in [c for c in live if c.ended_at is not None]:
            live.remove(call)
            # pjsua frees the call's slot a moment after DISCONNECTED: a call made at
            # once may fail with PJ_ETOOMANY (and is then tried again, above).
            next_start = max(next_start, now + 0.1)
            # The recording is complete once its recorder is gone; the call object is
            # dropped only now, after DISCONNECTED (pjproject #3856).
            call.recorder = None
            answered += call.answered_at is not None
            statuses[call.status] = statuses.get(call.status, 0) + 1
            seconds = call.ended_at - call.answered_at if call.answered_at else 0
            line = {"n": call.n, "status": call.status, "answered": call.answered_at is not None}
            line.update(seconds=round(seconds, 3), digits=call.digits, wav=call.wav)
            line.update(ended_by="local" if call.hung_up else "remote")
            print(json.dumps(line), flush=True)
            del call
    ep.libHandleEvents(50)
    acc.shutdown()
    del acc
    ep.libDestroy()
    print(json.dumps({"placed": placed, "answered": answered, "statuses": statuses}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
