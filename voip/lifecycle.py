"""Running a handler on a call: the rules every backend shares.

* The handler returning ends the call (we hang up).
* The handler raising is logged with its traceback and ends only its own call.
* The caller hanging up cancels the handler task, except during ``call.gather()`` and
  ``call.record()``: for those a hang-up is a normal end (a voice mail ends that way).
  The verb returns with reason ``"hangup"`` and what it holds, and the handler goes on,
  e.g. to store the message, for up to :data:`AFTER_HANGUP` seconds; from then on the
  call's audio and key methods raise :class:`~voip.errors.CallEndedError`.
* ``call.hangup()`` from the handler ends the call but lets the handler finish.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from .call import Call
from .callstate import EndedBy
from .errors import CallEndedError, InvalidArgumentError
from .runtime import CANCEL_GRACE

__all__ = ["Handler", "Outcome", "check_handler", "serve_call"]

log = logging.getLogger(__name__)

Handler = Callable[[Call], Awaitable[object]]


@dataclass(frozen=True)
class Outcome:
    """How a handler ended on one call."""

    error: BaseException | None = None
    """The exception it raised, if any (a hang-up is not an error)."""
    ended_by: EndedBy | Literal[""] = ""
    """``"local"`` if we hung up, ``"remote"`` if the caller did."""


def check_handler(handler: object) -> None:
    """Fail early, with a clear message, on a handler that cannot work."""
    if not callable(handler):
        raise InvalidArgumentError(f"the handler must be an async function, got {handler!r}")
    # An object with `async def __call__` is a handler too.
    if not (
        inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
    ):
        raise InvalidArgumentError(
            f"the handler {getattr(handler, '__name__', handler)!r} must be defined with "
            "`async def handler(call):` so that it can await the call's methods"
        )


AFTER_HANGUP = 30.0
"""Seconds a handler may go on after the caller hung up during a gather or a record,
before it is cancelled."""


async def _invoke(handler: Handler, call: Call) -> None:
    await handler(call)


async def serve_call(handler: Handler, call: Call) -> Outcome:
    """Run ``handler(call)`` to its end under the rules above; never raises for it."""
    task = asyncio.create_task(_invoke(handler, call), name=f"handler {call.info.call_id}")
    call.handler_task = task
    ended = asyncio.create_task(call.ended.wait())
    try:
        await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and call.ended_by == "remote" and call.handler_goes_on:
            call.log.info("caller hung up during a gather or record: the handler goes on")
            await asyncio.wait({task}, timeout=AFTER_HANGUP)
            if not task.done():
                call.log.warning(
                    "handler still running %.0f s after the caller hung up: cancelling it",
                    AFTER_HANGUP,
                )
                task.cancel()
        elif not task.done() and call.ended_by == "remote":
            call.log.info("caller hung up: stopping the handler")
            # Call.mark_ended has cancelled it already. A second cancellation would land
            # in the handler's own clean-up (e.g. ``await recording`` in a finally).
            if not task.cancelling():
                task.cancel()
        if not task.done() and task.cancelling():
            done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE)
            if not done:
                call.log.error(
                    "handler ignored cancellation for %.0f s after the caller hung up; "
                    "abandoning it",
                    CANCEL_GRACE,
                )
                return Outcome(None, call.ended_by)
        await asyncio.wait({task})
    except asyncio.CancelledError:
        # We are being shut down: the handler goes with us.
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE)
        call.hangup()
        raise
    finally:
        ended.cancel()
    error = None
    if not task.cancelled():
        exc = task.exception()
        if isinstance(exc, CallEndedError) and not call.active:
            call.log.info("handler stopped: %s", exc)
        elif exc is not None:
            call.log.error("handler raised", exc_info=exc)
            error = exc
    if call.active:
        call.hangup()
    return Outcome(error, call.ended_by)
