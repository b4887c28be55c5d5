#!/usr/bin/env python3
"""The voip app the SIP benchmarks call: answers and plays a greeting tone.

Callers in the benchmark hang up as soon as the call is answered, so the handler is
cancelled mid-greeting. Run like any voip app: ``python bench/sip/greeter.py --sip ...``.
"""

from voip import runVoipClient


async def handler(call):
    await call.playTone(440, 5)


if __name__ == "__main__":
    runVoipClient(handler)
