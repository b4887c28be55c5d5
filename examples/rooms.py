#!/usr/bin/env python3
"""Voice chat rooms: callers who enter the same room number all hear each other.

The caller keys a room number and #, hears how many people are in the room, and joins
it with a beep (everyone in the room hears it). In the room, * mutes and unmutes the
caller (they alone hear "muted" or "unmuted") and # leaves it. A caller who is not
speaking adds nothing to what the others hear: the room is silence-gated, frame by
frame, by a voice activity detector, so that nobody's line noise or hum reaches it.

Rooms hold 4 people in one process: over SIP a process holds at most 4 calls (the
pjsua2 wheel's limit). A caller to a full room hears so and may choose another; a fifth
caller to a process with 4 calls up is refused by the server itself (486 Busy Here).
With ``--workers N`` a room spans the workers (8 people over 3).

Headless: enter room 12, then mute after 3 s:

    python examples/rooms.py --no-audio --keys "ww12#wwwwww*" --hangup-after 15

(the simulator has one caller: they are alone in the room; the test kit has several,
see tests/test_examples.py).
"""

import asyncio
import contextlib

from voip import CallEndedError, Room, RoomFullError, runVoipClient

ROOMS: dict[str, Room] = {}
"""The rooms by number, made when someone first enters one."""


def people(n):
    if n == 0:
        return "You are the first one in this room."
    return f"There {'is' if n == 1 else 'are'} {n} {'person' if n == 1 else 'people'} in this room."


async def keys_in_room(call, room):
    """* mutes and unmutes the caller, # leaves the room."""
    with contextlib.suppress(CallEndedError):
        while True:
            key = await call.getDTMF(1, filter="*#")
            if key == "#":
                room.leave(call)
                return
            muted = not room.is_muted(call)
            room.mute(call, muted)
            call.say("Muted." if muted else "Unmuted.")


async def handler(call):
    for _ in range(3):
        answer = await call.gather(
            "Please enter a room number, then press hash.",
            finish_on_key="#",
            filter="0123456789#",
            timeout=10,
            attempts=2,
        )
        if not answer:
            break
        number = answer.digits
        room = ROOMS.get(number)
        if room is None:
            room = ROOMS[number] = Room(number)
        await call.say(f"Room {' '.join(number)}. {people(room.size)}")
        keys = asyncio.ensure_future(keys_in_room(call, room))
        try:
            why = await room.join(call)
        except RoomFullError as exc:
            call.log.info("%s", exc)
            await call.say("Sorry, this room is full.")
            continue
        finally:
            keys.cancel()
        if why == "left" and call.active:
            await call.say("You have left the room. Goodbye.")
        return
    if call.active:
        await call.say("Goodbye.")


if __name__ == "__main__":
    runVoipClient(handler)
