#!/usr/bin/env python3
"""A plain pjsua2 load generator: N calls in a row to URI, each hung up by the caller
after a random time (seeded). Prints one JSON line: {"calls": N, "answered": n,
"statuses": {code: count}}."""

import argparse
import json
import random
import time

import pjsua2 as pj
from pjsua_endpoint import account_config, start_endpoint


class Call(pj.Call):
    def __init__(self, acc):
        super().__init__(acc)
        self.answered = False
        self.ended = False
        self.status = 0

    def onCallState(self, prm):
        info = self.getInfo()
        self.status = info.lastStatusCode
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered = True
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--port", type=int, default=5091)
    p.add_argument("--rtp-port", type=int, default=6100)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--min", type=float, default=0.05, help="shortest call, seconds")
    p.add_argument("--max", type=float, default=0.4, help="longest call, seconds")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)

    ep = start_endpoint(args.port, codecs=None)  # a stock PJSIP phone's offer
    acc = pj.Account()
    acc.create(account_config("load", args.port, args.rtp_port, 20))

    answered = 0
    statuses: dict[int, int] = {}
    for _ in range(args.calls):
        call = Call(acc)
        call.makeCall(args.uri, pj.CallOpParam(True))
        hold = rng.uniform(args.min, args.max)
        start = time.monotonic()
        hung_up = False
        while not call.ended and time.monotonic() - start < 10:
            ep.libHandleEvents(5)
            if call.answered and not hung_up and time.monotonic() - start >= hold:
                call.hangup(pj.CallOpParam())
                hung_up = True
        answered += call.answered
        statuses[call.status] = statuses.get(call.status, 0) + 1
        del call
        ep.libHandleEvents(5)
    acc.shutdown()
    del acc
    ep.libDestroy()
    print(json.dumps({"calls": args.calls, "answered": answered, "statuses": statuses}))


if __name__ == "__main__":
    main()
