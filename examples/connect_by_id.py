#!/usr/bin/env python3
"""Two people connect by ID: each enters their own ID and the one they want to talk to;
once both have asked for each other, they are bridged.

The first to arrive waits (up to two minutes, hearing a soft tick every few seconds);
the second is put through at once. Either hanging up ends the conversation, and the other
is told. Meant to run encrypted, SIP over TLS and the audio over SRTP
(server_setup.md, "TLS and SRTP"):

    python examples/connect_by_id.py --sip --transport tls --tls-listen 0.0.0.0:5061 \\
        --tls-cert cert.pem --tls-key key.pem --srtp mandatory

In the simulator there is one caller, who waits in vain: try it with the test kit
(tests/test_examples.py) or two phones over SIP.
"""

import asyncio

from voip import runVoipClient

WAIT_SECONDS = 120
waiting = {}  # (my ID, the ID I want) -> (my call, a future for the other's call)


async def ask(call, prompt):
    answer = await call.gather(prompt, finish_on_key="#", timeout=10, attempts=3, valid=r"\d+")
    return answer.digits if answer else None


async def handler(call):
    me = await ask(call, "Enter your I D, then hash.")
    them = me and await ask(call, "Enter the I D of the person you want, then hash.")
    if not them or them == me:
        await call.say("Sorry, that did not work. Goodbye.")
        return
    if (them, me) in waiting:  # they are waiting for us: put them through
        other, found = waiting.pop((them, me))
        found.set_result(call)
        why = await call.bridge(other)
    else:
        found = asyncio.get_running_loop().create_future()
        waiting[(me, them)] = (call, found)
        try:
            await call.say(f"Waiting for {' '.join(them)}.")
            other = await asyncio.wait_for(ticking(call, found), WAIT_SECONDS)
        except TimeoutError:
            await call.say("Nobody came. Goodbye.")
            return
        finally:
            if waiting.get((me, them), (None,))[0] is call:
                del waiting[(me, them)]
        why = await call.bridge(other)  # joins the bridge the other caller made
    if why == "other hung up":
        await call.say("The other person hung up. Goodbye.")


async def ticking(call, found):
    """A soft tick every 3 s while waiting for the other caller; returns their call."""
    while not found.done():
        await call.playTone(880, 0.05, volume=0.2)
        await asyncio.wait([found], timeout=3)
    return found.result()


if __name__ == "__main__":
    runVoipClient(handler)
