#!/usr/bin/env python3
"""An intercom: a caller records an announcement, everyone in the lobby hears it at once.

Each caller hears a menu of one key. 1 records an announcement after the beep (it ends
after two seconds of silence, or on hash): it is played at once to everyone in the lobby
and kept in a ``voip.Mailbox``, and the caller hears to how many people it went.
2 plays the announcements kept, the newest first, each with when and who by (any key
skips to the next). Any other key, or none, joins the lobby: a ``voip.Room`` whose
members hear each other, a beep as someone joins or leaves, and every announcement;
star leaves it for the menu again. Whoever records is at the menu, not in the lobby,
so they do not hear their own announcement.

The announcements are kept in ``intercom/`` next to this script (``INTERCOM_DIR`` to put
them elsewhere). The lobby holds 4 people in one process: over SIP a process holds at
most 4 calls (the pjsua2 wheel's limit); with ``--workers N`` it spans the workers, and
an announcement reaches the lobby on every worker.

Headless, an announcement (any WAV of someone talking after 5 s of silence as the
caller: the simulator plays it from the answer, and the recording starts after the menu's
key, a prompt and the beep; the simulator has one caller, so the lobby is empty and the
announcement is only kept):

    python examples/intercom.py --no-audio --keys w1 --mic voice.wav --hangup-after 30

then hearing it:

    python examples/intercom.py --no-audio --keys w2 --speaker out.wav --hangup-after 30
"""

import os
from pathlib import Path

from voip import Mailbox, Room, RoomFullError, runVoipClient

INTERCOM_DIR = Path(os.environ.get("INTERCOM_DIR", Path(__file__).resolve().parent / "intercom"))
BOX = "lobby"
"""The mailbox's box that holds the announcements."""
LOBBY = Room("lobby")
"""Everyone listening: the callers who chose neither 1 nor 2."""
MENU = (
    "To record an announcement, press 1. To hear the announcements, press 2. "
    "To join the lobby, press 3, or wait."
)


def people(n):
    return f"{n} {'person' if n == 1 else 'people'}" if n else "no one"


def spaced(digits):
    """Digits said one by one: "5 5 5 1 2 3 4", not "five million..."."""
    return " ".join(digits) or "an unknown caller"


async def handler(call):
    with Mailbox(INTERCOM_DIR) as mailbox:
        while call.active:
            choice = await call.gather(MENU, num_digits=1, finish_on_key="", timeout=3)
            if choice.digits == "1":
                await announce(call, mailbox)
            elif choice.digits == "2":
                await replay(call, mailbox)
            elif call.active:
                await call.say(f"The lobby, {people(LOBBY.size)} here. Press star to leave.")
                try:
                    if await LOBBY.join(call, leave_key="*") != "key":
                        return  # hung up
                except RoomFullError:
                    await call.say("Sorry, the lobby is full. Goodbye.")
                    return


async def announce(call, mailbox):
    await call.say("Speak your announcement after the beep.")
    path = mailbox.start(BOX, caller=call.caller)  # indexed now: a crash keeps it
    recorded = await call.record(silence_timeout=2, max_seconds=60, path=path)
    if mailbox.finish(path) is None:  # the caller said nothing
        if call.active:
            await call.say("I heard nothing.")
        return
    listeners = LOBBY.size
    LOBBY.play(recorded.pcm)  # to everyone in the lobby now, each from its start
    call.log.info("announcement of %.1f s played to %d", recorded.seconds, listeners)
    if call.active:
        await call.say(f"Your announcement was played to {people(listeners)}, and kept.")


async def replay(call, mailbox):
    kept = sorted(mailbox.messages(BOX), key=lambda message: message.received, reverse=True)
    count = f"{len(kept) or 'No'} announcement{'' if len(kept) == 1 else 's'}"
    await call.say(f"{count}, the newest first." if kept else f"{count}.")
    for message in kept:
        when = message.received.astimezone()  # the server's local time
        skipped = await call.gather(
            [f"At {when:%H:%M}, from {spaced(message.caller)}.", message.path],
            num_digits=1,
            finish_on_key="",
            timeout=0.5,
        )
        if skipped.reason == "hangup":
            return


if __name__ == "__main__":
    runVoipClient(handler)
