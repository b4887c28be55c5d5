#!/usr/bin/env python3
"""A voice mail box: the caller leaves a message after the beep, kept as a WAV file.

The message ends when the caller stops talking for three seconds, presses #, or hangs up
(the usual way: the handler goes on after the hang-up and stores what was said). Each
message is ``messages/<caller>-<date>T<time>.wav`` next to this script (``MESSAGES`` to
put them elsewhere), written as it is recorded.

Headless, with any WAV of someone talking as the caller:

    python examples/voicemail_box.py --no-audio --mic voice.wav --hangup-after 20
"""

import os
import time
from pathlib import Path

from voip import runVoipClient

MESSAGES = Path(os.environ.get("MESSAGES", Path(__file__).resolve().parent / "messages"))


async def handler(call):
    MESSAGES.mkdir(parents=True, exist_ok=True)
    await call.say("Please leave a message after the beep. Press hash when you are done.")
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    path = MESSAGES / f"{call.caller or 'unknown'}-{stamp}.wav"
    message = await call.record(silence_timeout=3, max_seconds=120, path=path)
    if message.seconds == 0:
        path.unlink(missing_ok=True)
        call.log.info("no message left")
        return
    call.log.info("message of %.1f s kept in %s (%s)", message.seconds, path, message.reason)
    if call.active:  # they did not hang up: thank them
        await call.say("Thank you. Your message has been recorded. Goodbye.")


if __name__ == "__main__":
    runVoipClient(handler)
