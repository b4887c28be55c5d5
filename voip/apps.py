"""Helpers for writing apps: decorators that wrap a handler."""

from __future__ import annotations

import asyncio
import functools

from .call import Call
from .lifecycle import Handler

__all__ = ["one_at_a_time", "BUSY_TEXT"]

BUSY_TEXT = "Sorry, this line is busy. Please call again later."


def one_at_a_time(handler: Handler) -> Handler:
    """Let one caller at a time into ``handler``; others hear a "busy" prompt and are
    hung up. Usable as ``@one_at_a_time`` on the handler, or ``runVoipClient(
    one_at_a_time(handler))``.
    """
    lock = asyncio.Lock()

    @functools.wraps(handler)
    async def wrapped(call: Call) -> object:
        if lock.locked():
            call.log.info("busy: another caller is in %s", handler.__name__)
            await call.say(BUSY_TEXT)
            return None
        async with lock:
            return await handler(call)

    return wrapped
