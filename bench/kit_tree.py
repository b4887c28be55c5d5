#!/usr/bin/env python3
"""The phone tree of the test kit's benchmark (bench/kit.py): 120 s of call time.

Prompts, a menu that times out once, hold music, an account number typed slowly, and
waits, until the app hangs up 120 s after the answer. bench/kit.py runs it in the kit
and, as a script, in the real-time simulator: ``python bench/kit_tree.py --no-audio
--keys KEYS --hangup-after 130``.
"""

import asyncio

from voip import runVoipClient

CALL_SECONDS = 120.0


async def handler(call):
    loop = asyncio.get_running_loop()
    answered = loop.time()
    await call.say("Welcome to the benchmark line")
    key = ""
    while not key:
        menu = call.say("For sales press 1, for support press 2")
        try:
            key = await asyncio.wait_for(
                call.getDTMF(filter="12", on_first=lambda _key, m=menu: m.cancel()), 15
            )
        except TimeoutError:
            await call.say("Sorry, I did not get that")
    if key == "2":
        await call.say("Please hold for the next agent")
        hold = call.playTone(440, 3600, volume=0.2)
        await asyncio.sleep(30)
        hold.cancel()
        await call.say("All our agents are busy. Enter your six digit account number")
        try:
            account = await asyncio.wait_for(call.getDTMF(n=6), 20)
            await call.say("Thank you. We will call you back about account " + " ".join(account))
        except TimeoutError:
            await call.say("We will call you back")
    else:
        await call.say("Connecting you to sales")
    await asyncio.sleep(max(0.0, answered + CALL_SECONDS - loop.time()))
    await call.say("Goodbye")


if __name__ == "__main__":
    runVoipClient(handler)
