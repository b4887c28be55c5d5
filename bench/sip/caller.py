#!/usr/bin/env python3
"""The benchmark's pjsua2 caller: short calls to URI, timing INVITE sent to 200 OK received.

Every call is hung up (BYE) as soon as it is answered (or ``--hold`` seconds later).
``--calls N --concurrency 1`` places N calls one after another (for set-up latency);
``--seconds S --concurrency K`` keeps K calls in flight for S seconds (for calls per
second); ``--rate R`` starts at most R calls a second. The timestamps are taken in
this process: "INVITE sent" when PJSIP reports the call CALLING (it does so as the INVITE
goes out), "200 OK received" when it reports CONNECTING or CONFIRMED (while handling the
200). Prints one JSON line: setup times in ms, statuses, answered, elapsed seconds.

    python bench/sip/caller.py sip:app@127.0.0.1:5070 --port 5080 --rtp-port 13000 --calls 200
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

# The test peers' pjsua2 set-up (tests/peers/pjsua_endpoint.py), shared.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "peers"))

import pjsua2 as pj  # noqa: E402
from pjsua_endpoint import account_config, start_endpoint  # noqa: E402

CALL_TIMEOUT = 5.0


class Call(pj.Call):
    def __init__(self, acc: pj.Account) -> None:
        super().__init__(acc)
        self.t_made = 0.0
        self.t_invite: float | None = None
        self.t_ok: float | None = None
        self.answered = False
        self.hung_up = False
        self.ended = False
        self.status = 0

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        now = time.perf_counter()  # first: getInfo() itself takes time
        info = self.getInfo()
        state = info.state
        if state == pj.PJSIP_INV_STATE_CALLING and self.t_invite is None:
            self.t_invite = now
        elif state in (pj.PJSIP_INV_STATE_CONNECTING, pj.PJSIP_INV_STATE_CONFIRMED):
            if self.t_ok is None:
                self.t_ok = now
            self.answered = True
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.status = info.lastStatusCode
            self.ended = True


class Caller:
    """The endpoint, its account, and the loop that places, hangs up and collects calls."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ep = start_endpoint(args.port)
        self.acc: pj.Account | None = pj.Account()
        self.acc.create(account_config("bench", args.port, args.rtp_port, args.rtp_range), True)
        self.stuck: list[Call] = []
        """Calls that never ended, kept alive until the endpoint goes (pjproject #3856)."""

    def place(self) -> Call:
        call = Call(self.acc)  # type: ignore[arg-type]
        call.t_made = time.perf_counter()
        call.makeCall(self.args.uri, pj.CallOpParam(True))
        return call

    def pump(self, calls: list[Call], more: bool) -> list[Call]:
        """Handle events once; hang up answered calls; return the calls that ended."""
        self.ep.libHandleEvents(1 if more else 5)
        done = []
        now = time.perf_counter()
        for call in calls:
            if call.ended:
                done.append(call)
            elif not call.hung_up and (
                (call.answered and now - (call.t_ok or 0) >= self.args.hold)
                or now - call.t_made > CALL_TIMEOUT
            ):
                call.hung_up = True
                call.hangup(pj.CallOpParam())
            elif now - call.t_made > 2 * CALL_TIMEOUT:  # no answer to our BYE or CANCEL
                self.stuck.append(call)
                done.append(call)
        return done

    def run(self, count: int, seconds: float) -> tuple[list[Call], float]:
        """Place ``count`` calls (0: no limit) or calls for ``seconds``; wait for all."""
        args = self.args
        finished: list[Call] = []
        in_flight: list[Call] = []
        started = 0
        failed = False
        start = time.perf_counter()
        while True:
            more = (
                (not count or started < count)
                and (not seconds or time.perf_counter() - start < seconds)
                and not failed
            )
            if not more and not in_flight:
                break
            while more and len(in_flight) < args.concurrency:
                # Paced from the start time, so a late call never shifts the later ones.
                if args.rate and time.perf_counter() < start + started / args.rate:
                    break
                in_flight.append(self.place())
                started += 1
                more = not count or started < count
            for call in self.pump(in_flight, more):
                in_flight.remove(call)
                finished.append(call)
                failed = failed or (args.stop_on_failure and not call.answered)
        return finished, time.perf_counter() - start

    def close(self) -> None:
        for call in self.stuck:
            if not call.ended:
                call.hangup(pj.CallOpParam())
        for _ in range(50):
            self.ep.libHandleEvents(10)
        self.stuck = []
        assert self.acc is not None
        self.acc.shutdown()
        self.acc = None
        gc.collect()  # no pjsua2 Call may outlive the endpoint
        self.ep.libDestroy()


def summarise(calls: list[Call], elapsed: float) -> dict:
    """The JSON result (a function of its own, so no Call outlives it by accident)."""
    setup = [
        1000 * (c.t_ok - (c.t_invite if c.t_invite is not None else c.t_made))
        for c in calls
        if c.answered and c.t_ok is not None
    ]
    make = [1000 * (c.t_invite - c.t_made) for c in calls if c.t_invite is not None]
    statuses: dict[str, int] = {}
    for c in calls:
        statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
    return {
        "calls": len(calls),
        "answered": sum(c.answered for c in calls),
        "statuses": statuses,
        "elapsed": elapsed,
        "setup_ms": setup,
        "make_call_ms": make,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("uri")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--rtp-range", type=int, default=100)
    p.add_argument("--calls", type=int, default=0, help="place this many calls (0: no limit)")
    p.add_argument("--seconds", type=float, default=0, help="stop starting calls after this")
    p.add_argument("--concurrency", type=int, default=1, help="calls in flight (1-4)")
    p.add_argument("--rate", type=float, default=0, help="start at most this many calls a second")
    p.add_argument(
        "--stop-on-failure", action="store_true", help="place no more calls once one fails"
    )
    p.add_argument("--hold", type=float, default=0, help="seconds from answer to BYE")
    p.add_argument("--warm-up", type=int, default=5, help="calls first, not counted")
    args = p.parse_args()
    if not args.calls and not args.seconds:
        p.error("give --calls or --seconds")

    caller = Caller(args)
    caller.run(args.warm_up, 0)
    result = summarise(*caller.run(args.calls, args.seconds))
    result["concurrency"] = args.concurrency
    caller.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
