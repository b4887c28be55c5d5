#!/usr/bin/env python3
"""Voice mail boxes with ``voip.Mailbox``: callers leave messages, owners listen to them.

A caller enters a box number and hash, hears the box's greeting and leaves a message
after the beep (it ends after three seconds of silence, on hash, or when they hang up).
The box's owner presses star during the greeting and enters the PIN and hash; they hear
how many new messages there are, then each message, the new ones first and each oldest
first, with when it was left and who by. During or after a message, 7 deletes it and 9
(or nothing) keeps it, as in Asterisk. The boxes and their PINs are ``PINS``; the
messages are kept in ``voicemail/`` next to this script (``VOICEMAIL`` to put them
elsewhere), shared by every process that answers calls, and a message cut short by a
crash is kept up to where it was cut.

Headless, a message for box 100 (any WAV of someone talking as the caller):

    python examples/voicemail.py --no-audio --keys w100# --mic voice.wav --hangup-after 30

then the owner of box 100 (star during the greeting, PIN 1234) listening to it, keeping
it as heard:

    python examples/voicemail.py --no-audio --keys "w100#*1234#" --speaker out.wav \\
        --hangup-after 60
"""

import os
from pathlib import Path

from voip import Mailbox, runVoipClient

VOICEMAIL = Path(os.environ.get("VOICEMAIL", Path(__file__).resolve().parent / "voicemail"))
PINS = {"100": "1234", "101": "4321"}
"""Each box and its owner's PIN."""


def spaced(digits):
    """Digits said one by one: "5 5 5 1 2 3 4", not "five million..."."""
    return " ".join(digits) or "an unknown number"


def counted(n, what):
    return f"{n or 'no'} {what}{'' if n == 1 else 's'}"


async def handler(call):
    box = await call.gather(
        "Please enter a mailbox number, then hash.",
        valid=lambda digits: digits in PINS,
        attempts=3,
        invalid_prompt="There is no such mailbox.",
    )
    if not box:
        return
    with Mailbox(VOICEMAIL) as mailbox:
        star = await call.gather(
            f"Mailbox {spaced(box.digits)}. Please leave a message after the beep.",
            num_digits=1,
            filter="*",
            finish_on_key="",
            timeout=1,
        )
        if star:
            await owner(call, mailbox, box.digits)
        elif call.active:
            await leave_message(call, mailbox, box.digits)


async def leave_message(call, mailbox, box):
    path = mailbox.start(box, caller=call.caller)  # indexed now: a crash keeps it
    await call.record(silence_timeout=3, max_seconds=120, path=path)
    message = mailbox.finish(path)  # None if the caller said nothing
    if message and call.active:
        await call.say("Thank you. Your message has been recorded. Goodbye.")


async def owner(call, mailbox, box):
    pin = await call.gather(
        "Please enter your PIN, then hash.",
        valid=lambda digits: digits == PINS[box],
        attempts=3,
        invalid_prompt="That PIN is wrong.",
    )
    if not pin:
        if call.active:
            await call.say("Goodbye.")
        return
    messages = mailbox.messages(box)  # the new ones first, each oldest first
    new = sum(not message.heard for message in messages)
    old = len(messages) - new
    await call.say(f"You have {counted(new, 'new message')} and {counted(old, 'old message')}.")
    for number, message in enumerate(messages, 1):
        when = message.received.astimezone()  # the server's local time
        answer = await call.gather(
            [
                f"Message {number}, left {when:%A at %H:%M} by {spaced(message.caller)}.",
                message.path,  # the recording itself, a WAV file
                "To delete it, press 7. To keep it, press 9.",
            ],
            num_digits=1,
            filter="79",
            timeout=5,
        )
        if answer.reason == "hangup":
            return
        if answer.digits == "7":
            mailbox.delete(message)
            await call.say("Message deleted.")
        else:
            mailbox.mark_heard(message)
            await call.say("Message kept.")
    await call.say("No more messages. Goodbye.")


if __name__ == "__main__":
    runVoipClient(handler)
