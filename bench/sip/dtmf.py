#!/usr/bin/env python3
"""The DTMF latency benchmark's app and caller, one program (see bench/dtmf_latency.py;
its baseline is bench/sip/answerer.py --print-keys).

``app --sip ...``: the voip app; its handler prints ``KEY <key> <time.time()>`` as soon as
``getDTMF`` returns. ``call URI
--port P --rtp-port R --digits N``: a pjsua2 caller that places one call and sends N digits
one at a time over RFC 4733 (``sendDtmf``), ``--gap`` seconds apart, then hangs up and
prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

KEYS = "0123456789*#"


async def handler(call):
    while True:
        key = await call.getDTMF()
        print(f"KEY {key} {time.time():.6f}", flush=True)


def run_app() -> int:
    from voip import runVoipClient

    sys.argv = [sys.argv[0], *sys.argv[2:]]
    runVoipClient(handler)
    return 0


def _pj():
    # The test peers' pjsua2 set-up (tests/peers/pjsua_endpoint.py), shared.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "peers"))
    import pjsua2 as pj
    from pjsua_endpoint import account_config, start_endpoint

    return pj, account_config, start_endpoint


def run_caller(argv: list[str]) -> int:
    pj, account_config, start_endpoint = _pj()
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--rtp-range", type=int, default=100)
    p.add_argument("--digits", type=int, default=200)
    p.add_argument("--gap", type=float, default=0.25, help="seconds between digits")
    p.add_argument("--settle", type=float, default=1.0, help="seconds from answer to 1st digit")
    args = p.parse_args(argv)

    class Call(pj.Call):
        answered = False
        ended = False
        status = 0

        def onCallState(self, prm: pj.OnCallStateParam) -> None:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.answered = True
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.status = info.lastStatusCode
                self.ended = True

    ep = start_endpoint(args.port)
    acc = pj.Account()
    acc.create(account_config("dtmf", args.port, args.rtp_port, args.rtp_range), True)
    call = Call(acc)
    call.makeCall(args.uri, pj.CallOpParam(True))

    def pump_until(pred, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if pred():
                return True
            ep.libHandleEvents(1)
        return pred()

    result: dict = {"sent": [], "answered": False}
    if pump_until(lambda: call.answered or call.ended, 10):
        result["answered"] = call.answered
    if call.answered:
        pump_until(lambda: call.ended, args.settle)
        start = time.monotonic()
        for i in range(args.digits):
            if call.ended:
                break
            pump_until(lambda: False, max(0.0, start + i * args.gap - time.monotonic()))
            key = KEYS[i % len(KEYS)]
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            prm.digits = key
            call.sendDtmf(prm)
            result["sent"].append([key, time.time()])
        pump_until(lambda: call.ended, 1.0)  # let the last end-of-event packets go
    if not call.ended:
        call.hangup(pj.CallOpParam())
        pump_until(lambda: call.ended, 5)
    result["status"] = call.status
    call = None  # no pjsua2 Call may outlive the endpoint
    acc.shutdown()
    del acc
    gc.collect()
    ep.libDestroy()
    print(json.dumps(result), flush=True)
    return 0


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "app":
        return run_app()
    if mode == "call":
        return run_caller(sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
