"""The far side in a test: someone the app calls, with ``call.connect`` or ``voip.dial``.

::

    async with app(handler) as running:
        sales = running.callee("sip:sales@pbx.example")   # rings until told
        phone = await running.dial("5551234")
        await sales.ringing()
        agent = await sales.answer()          # the far side's Phone
        await agent.speak("Sales, how can I help?")

A :class:`Callee` stands at one URI of :meth:`~voip.testing.RunningApp.callee`. Each
call the app places to it is an :class:`Attempt`: it rings until the test answers it
(:meth:`Callee.answer`, which gives the far side's :class:`~voip.testing.Phone`) or
refuses it (:meth:`Callee.refuse`: 486 busy, 603 declined ...), until the app gives up
(its timeout: no answer, 408; the caller hanging up: cancelled, 487), or, made with
``respond=``, until it answers or refuses on its own ``after`` seconds of ringing. The
far side's phone hears what the app's call sends it (the caller, once bridged);
its :meth:`~voip.testing.Phone.hung_up` says ``"app"`` when the app's side hung up and
``"caller"`` when this phone did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from ..call import CallInfo
from ..checks import seconds
from ..dialling import DialResult
from ..errors import InvalidArgumentError
from ..lifecycle import Handler, Outcome, check_handler
from ..sipuri import parse_name_addr
from .phone import DEFAULT_TIMEOUT, HeardTimeout, Phone

__all__ = ["Callee", "Attempt", "REASONS"]

log = logging.getLogger("voip.testing")

REASONS = {
    200: "OK",
    404: "Not Found",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    600: "Busy Everywhere",
    603: "Decline",
}
"""Reason phrases of the statuses a callee answers with."""

AttemptState = Literal["ringing", "answered", "refused", "no answer", "cancelled"]

Answer = Callable[[CallInfo, Handler, str], tuple["asyncio.Task[Outcome]", Phone]]
"""Starts an answered call: the app's handler on a call to a new phone, which it returns."""


class Attempt:
    """One call the app placed to a :class:`Callee`."""

    def __init__(self, callee: Callee, handler: Handler, caller_id: str | None) -> None:
        self.callee = callee
        self.caller_id = caller_id
        """The caller id the app presented (``connect(..., caller_id=)``), or None."""
        self.state: AttemptState = "ringing"
        """``ringing``, then ``answered``, ``refused`` (by the test or ``respond``),
        ``no answer`` (the app's timeout) or ``cancelled`` (the app gave up: its caller
        hung up)."""
        self.status = 0
        """The final SIP status it ended with (0 while it rings)."""
        self.phone: Phone | None = None
        """The far side's phone, once answered."""
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._end: float | None = None
        self._task: asyncio.Task[Outcome] | None = None
        self._decided: asyncio.Future[None] = self._loop.create_future()

    @property
    def rang(self) -> float:
        """Seconds it rang (so far, while it rings)."""
        return (self._loop.time() if self._end is None else self._end) - self._start

    async def settled(self, timeout: float = DEFAULT_TIMEOUT) -> AttemptState:
        """Wait until it stops ringing; returns how (:attr:`state`)."""
        await self.callee._until(lambda: self.state != "ringing", timeout, "the call to settle")
        return self.state

    def _settle(self, state: AttemptState, status: int) -> None:
        if self.state != "ringing":
            return
        self.state, self.status, self._end = state, status, self._loop.time()
        if state == "answered":
            uri = self.callee.uri
            n = len(self.callee.attempts)
            info = CallInfo(uri, parse_name_addr(uri)[2], call_id=f"kit-out-{n}")
            name = f"{parse_name_addr(uri)[2] or 'callee'} {n}"
            self._task, self.phone = self.callee._answer(info, self._handler, name)
        if not self._decided.done():
            self._decided.set_result(None)
        self.callee._notify()


class Callee:
    """Someone at one URI the app may call (see the module)."""

    def __init__(self, uri: str, respond: int | None, after: float, answer: Answer) -> None:
        if respond is not None and respond != 200 and not 400 <= respond <= 699:
            raise InvalidArgumentError(
                f"respond is 200 (answer) or a refusal such as 486 (busy), 603 (decline), "
                f"480 (unavailable), got {respond!r}"
            )
        after = seconds("after", after)
        self.uri = uri
        self.respond = respond
        self.after = float(after)
        self.attempts: list[Attempt] = []
        """Every call the app placed here, in order."""
        self._answer = answer
        self._changed: asyncio.Future[None] | None = None

    @property
    def phones(self) -> list[Phone]:
        """The far side's phones of the answered calls, in order."""
        return [a.phone for a in self.attempts if a.phone is not None]

    # -- what the test does ----------------------------------------------------------

    async def ringing(self, timeout: float = DEFAULT_TIMEOUT) -> Attempt:
        """Wait until a call from the app rings here (the oldest still ringing)."""
        await self._until(lambda: self._ringing() is not None, timeout, "a call to ring")
        attempt = self._ringing()
        assert attempt is not None
        return attempt

    async def answer(self, timeout: float = DEFAULT_TIMEOUT) -> Phone:
        """Answer the call ringing here (waiting for one); returns the far side's phone."""
        attempt = await self.ringing(timeout)
        attempt._settle("answered", 200)
        assert attempt.phone is not None
        return attempt.phone

    async def refuse(self, status: int = 486, timeout: float = DEFAULT_TIMEOUT) -> Attempt:
        """Refuse the call ringing here (waiting for one) with ``status``: 486 busy, 603
        declined, 480 unavailable ..."""
        if not 400 <= status <= 699:
            raise InvalidArgumentError(f"refuse with a 4xx-6xx status such as 486, got {status}")
        attempt = await self.ringing(timeout)
        attempt._settle("refused", status)
        return attempt

    # -- the app's side: a call placed here ----------------------------------------------

    async def ring(self, handler: Handler, timeout: float, caller_id: str | None) -> DialResult:
        """The app calls: ring until answered, refused, ``timeout`` or cancelled."""
        check_handler(handler)
        attempt = Attempt(self, handler, caller_id)
        self.attempts.append(attempt)
        self._notify()
        loop = asyncio.get_running_loop()
        auto = None
        if self.respond is not None:
            state: AttemptState = "answered" if self.respond == 200 else "refused"
            auto = loop.call_later(self.after, attempt._settle, state, self.respond)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(attempt._decided)
        except TimeoutError:
            attempt._settle("no answer", 408)
            return DialResult(408, "no answer", False)  # as voip.dial over SIP says it
        except asyncio.CancelledError:
            attempt._settle("cancelled", 487)
            raise
        finally:
            if auto is not None:
                auto.cancel()
        if attempt._task is None:
            return DialResult(attempt.status, REASONS.get(attempt.status, ""), False)
        outcome = await attempt._task  # cancelled with us: the handler stops, we hang up
        return DialResult(200, "OK", True, outcome.error)

    def _ringing(self) -> Attempt | None:
        return next((a for a in self.attempts if a.state == "ringing"), None)

    async def _until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not ready():
                    if self._changed is None:
                        self._changed = asyncio.get_running_loop().create_future()
                    await self._changed
        except TimeoutError:
            raise HeardTimeout(
                f"callee {self.uri}: waited {timeout:g} s for {what}; "
                f"{len(self.attempts)} call(s) came: {[a.state for a in self.attempts]}"
            ) from None

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)


def uri_key(uri: Any) -> str:
    """A URI as callees are found by it: no display name, parameters or headers."""
    bare = parse_name_addr(str(uri))[1]
    return bare.split(";", 1)[0].split("?", 1)[0].strip().lower()
