#!/usr/bin/env python3
"""The voip app of the bridge benchmark: holds calls idle, bridges them in pairs, or
puts them all in a room.

Calls carry ``X-Bench-Index: k`` (bench/sip/loadgen.py). ``--mode idle``: each handler
waits for its caller to hang up. ``--mode bridge``: call ``k`` is bridged to call
``k ^ 1`` (0 with 1, 2 with 3) with ``call.bridge``; each handler prints ``BRIDGED k``
once both are there, and ``ENDED k <reason>`` when its bridge ends. ``--mode room``:
every call joins one ``voip.Room`` without silence gating, ``--mode gated-room`` with it
(the default of ``Room``); each prints ``JOINED k`` and ``LEFT k <reason>``.

    python bench/sip/bridge_app.py --mode bridge --sip --listen 127.0.0.1:5070
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from voip import Room, runVoipClient
from voip.call import Call

INDEX_HEADER = "X-Bench-Index"

mode = "idle"
waiting: dict[int, Call] = {}
rooms = {"room": Room("bench", gate=False), "gated-room": Room("bench")}


async def handler(call: Call) -> None:
    if mode == "idle":
        await call.ended.wait()
        return
    index = int(call.headers.get(INDEX_HEADER, "0"))
    if mode in rooms:
        joined = asyncio.ensure_future(rooms[mode].join(call, beep=False))
        await asyncio.sleep(0)
        print(f"JOINED {index}", flush=True)
        print(f"LEFT {index} {await joined}", flush=True)
        return
    partner = waiting.pop(index ^ 1, None)
    if partner is None:
        waiting[index] = call
        await call.ended.wait()
        return
    bridge = asyncio.ensure_future(call.bridge(partner))
    await asyncio.sleep(0)
    print(f"BRIDGED {index} {index ^ 1}", flush=True)
    print(f"ENDED {index} {await bridge}", flush=True)


def main() -> None:
    global mode
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["idle", "bridge", "room", "gated-room"], default="idle")
    args, rest = p.parse_known_args()
    mode = args.mode
    runVoipClient(handler, rest)


if __name__ == "__main__":
    sys.exit(main())
