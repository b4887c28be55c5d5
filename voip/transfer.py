"""``call.transfer()``: hand the call to someone else (SIP REFER).

Blind: ``await call.transfer("sip:sales@pbx.example.com")`` asks the other side (the
transferee) to call that URI itself. Attended: ``await call.transfer(other)``, where
``other`` is a call we placed to the target (:func:`voip.dial`) and talked on first,
asks the transferee to call the target in place of our call to it (REFER with
Replaces). Either way the transferee reports how its call went (NOTIFY): a success
ends our call (we hang up, as RFC 5589 has the transferor do), a failure leaves it with
us, and the :class:`Transferred` returned says which, with the status and reason.

A backend carries the request out through the call's :attr:`~voip.call.Call.transferer`
(a :class:`Transferer`): over SIP, PJSIP's REFER and the call's state table
(:mod:`voip.callstate`, state ``transferring``); in the simulator it always succeeds; in
the test kit the :class:`~voip.testing.Phone` accepts or refuses, as the test says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .checks import seconds
from .errors import InvalidArgumentError, VoipError
from .sipuri import parse_name_addr

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Transferred", "Transferer", "Report", "transfer", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0
"""Seconds :meth:`~voip.call.Call.transfer` waits for the outcome by default."""

Report = Callable[[int, str], None]
"""How a backend tells :func:`transfer` the outcome, on the loop, once: the final SIP
status (2xx: the transferee reached the target) and its reason."""


class Transferer(Protocol):
    """What a backend does for :func:`transfer` (set as ``call.transferer``)."""

    def refer(self, target: str, replaces: Call | None, report: Report) -> None:
        """Ask the other side to call ``target`` (replacing our call ``replaces`` with
        the target, for an attended transfer); ``report`` the outcome on the loop."""

    def abandon(self) -> None:
        """The handler stopped waiting (time-out, cancelled): the call is ours again
        and a late outcome is ignored."""


@dataclass(frozen=True)
class Transferred:
    """How :meth:`~voip.call.Call.transfer` went; true when the transfer succeeded
    (``if not (result := await call.transfer(uri)): ... result.reason``)."""

    target: str
    """The URI the other side was asked to call."""
    ok: bool
    """True: the other side reached the target and our call is over (we hung up).
    False: the call is still ours, unless the other side hung up meanwhile
    (``call.active`` says)."""
    status: int
    """The final SIP status reported: 200 on success; e.g. 603 or 405 when the REFER
    was refused, 486 when the target was busy; 0 when no status came (time-out, the
    call ended first, the REFER could not be sent)."""
    reason: str
    """The status's reason phrase, or what happened instead."""

    def __bool__(self) -> bool:
        return self.ok


def target_of(call: Call, target: object) -> str:
    """The URI to REFER ``call`` to: ``target`` itself (checked), or the remote URI of
    ``target``, a call like ``call``."""
    if isinstance(target, type(call)):
        return parse_name_addr(target.info.remote_uri)[1]
    if not isinstance(target, str) or not target.lower().startswith(("sip:", "sips:")):
        raise InvalidArgumentError(
            f"transfer needs a SIP URI such as 'sip:sales@pbx.example.com' or a Call, "
            f"got {target!r}"
        )
    if any(c.isspace() or ord(c) < 32 or c in '<>"' for c in target) or len(target) < 6:
        raise InvalidArgumentError(f"{target!r} is not a SIP URI one can transfer to")
    return target


async def transfer(
    call: Call, target: str | Call, *, timeout: float = DEFAULT_TIMEOUT
) -> Transferred:
    """Transfer the call to ``target``: a SIP URI (``sip:`` or ``sips:``; blind
    transfer), or another :class:`~voip.call.Call` that is up, one we placed to the
    target (attended transfer: the other side replaces our call to the target).

    Returns a :class:`Transferred`, true once the other side reports that it reached
    the target: the call is then over (we hung up; ``call.ended_by`` is ``"local"``),
    and so is the ``target`` call of an attended transfer (the target ends it on taking
    the replacing call; we hang it up if it has not). False
    with the status and reason otherwise (the REFER refused, the target busy or not
    answering, no outcome within ``timeout`` seconds): the call is still ours. The
    caller hanging up meanwhile ends the wait (false, status 0) without cancelling the
    handler, as for ``gather``. Raises :class:`~voip.errors.InvalidArgumentError` for a
    bad target, :class:`~voip.errors.CallEndedError` if a call is over, and
    :class:`~voip.errors.VoipError` if a transfer of this call is already going on.
    """
    uri = target_of(call, target)
    other = target if isinstance(target, type(call)) else None
    if other is call:
        raise InvalidArgumentError("a call cannot be transferred to itself")
    timeout = seconds("timeout", timeout, low_open=True)
    call._check_active()
    if other is not None:
        other._check_active()
    if call.transferer is None:
        raise VoipError("this call cannot be transferred (its backend has no transfer)")
    if call.transferring:
        raise VoipError("a transfer of this call is already going on")
    outcome: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    def report(status: int, reason: str) -> None:
        if not outcome.done():
            outcome.set_result((status, reason))

    kind = "attended transfer" if other is not None else "transfer"
    call.log.info("%s to %s", kind, uri)
    call.transferring = True
    ended = asyncio.ensure_future(call.ended.wait())
    with contextlib.ExitStack() as verbs:
        verbs.enter_context(call.hangup_ends_verb())
        if other is not None:  # the target hangs up on that call once replaced
            verbs.enter_context(other.hangup_ends_verb())
        try:
            call.transferer.refer(uri, other, report)
            either: set[asyncio.Future[Any]] = {outcome, ended}
            await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            call.transferring = False
            ended.cancel()
            if not outcome.done():
                call.transferer.abandon()
    if outcome.done():
        status, reason = outcome.result()
    elif not call.active:
        status, reason = 0, "the call ended before the transfer's outcome was reported"
    else:
        status, reason = 0, f"no outcome reported within {timeout:g} s"
    result = Transferred(uri, 200 <= status < 300, status, reason)
    if result:
        call.log.info("transferred to %s", uri)
        call.hangup()
        if other is not None:  # the target should have ended it; if not, we leave it
            other.hangup()
    else:
        call.log.info("transfer to %s failed: %s %s", uri, status or "-", reason)
    return result
