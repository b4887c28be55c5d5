"""``call.connect(uri)``: put the caller through to someone else.

``connect`` places a call through the context's dialler (:mod:`voip.dialling`: over SIP
in the server and the simulator, to a callee in the test kit), plays ringback to the
caller while it rings, bridges the answered call to the caller (:mod:`voip.bridging`)
and returns a :class:`Connected` once the bridge ends. The answered call's handler is a
short one of ours: it bridges, and returns (hanging up the far side) when the bridge
ends, whoever ended it. The caller hanging up while it rings cancels the attempt (a SIP
CANCEL).

Ringback is generated here, from the moment the call is placed: provisional responses
(180 Ringing, 183 Session Progress) are not looked at, and early media the far side may
send before answering is not played to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .audio.pcm import PCM, as_pcm
from .audio.tones import RINGBACK, ringback_tone
from .bridging import BridgeEnd
from .checks import seconds
from .dialling import DIALLER, DialResult, DialState
from .errors import InvalidArgumentError, VoipError
from .linking import check_free
from .sipuri import caller_id_uri

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Connected", "connect"]

CANCELLED = DialResult(487, "Request Terminated", False)
"""The attempt the caller gave up on, hanging up while it rang."""

_THEIRS: dict[BridgeEnd, BridgeEnd] = {
    "hung up": "other hung up",
    "other hung up": "hung up",
    "unbridged": "unbridged",
}
"""Why a bridge ended, from the far call's side to the caller's."""


@dataclass(frozen=True)
class Connected:
    """How :meth:`voip.call.Call.connect` went."""

    state: DialState
    """``answered``, ``busy``, ``no answer`` (also: nobody answered in time, or the
    caller hung up while it rang), ``rejected`` or ``failed``, as :func:`voip.dial`
    reports it."""
    status: int
    """The final SIP status: 200 when answered, 486 busy, 487 cancelled (the caller hung
    up while it rang), 408 no answer in time ... (see :class:`~voip.dialling.DialResult`)."""
    reason: str
    """The status's reason phrase."""
    talked: float = 0.0
    """Seconds the two callers were bridged (0 unless answered)."""
    ended: BridgeEnd | None = None
    """Why it ended, from this call's side: ``"hung up"`` (the caller hung up, while it
    rang or while bridged), ``"other hung up"`` (the far side did), ``"unbridged"``
    (:meth:`~voip.call.Call.unbridge`: the far side is then hung up); None when it was
    never answered and the caller is still there."""


class _Talk:
    """What the answered call's handler tells ``connect``."""

    answered = False
    started = 0.0
    talked = 0.0
    ended: BridgeEnd | None = None


async def connect(
    self: Call,
    uri: str,
    *,
    timeout: float = 30.0,
    caller_id: str | None = None,
    ringback: bool | str | PCM | Sequence[float] = True,
) -> Connected:
    """Call ``uri`` and put this call's caller through to whoever answers; returns a
    :class:`Connected` once one of them hangs up.

    While it rings the caller hears ``ringback``: ``True`` the North American ring
    tone (440 + 480 Hz, 2 s on, 4 s off; ``"eu"`` the European 425 Hz, 1 s on, 4 s
    off), 8 kHz PCM of your own (played looped), or ``False`` for silence. On answer
    the two are bridged (:meth:`bridge`): the handler waits in ``connect`` until the
    far side hangs up (``ended == "other hung up"``: the handler goes on, e.g. to say
    goodbye) or the caller does (the far side is hung up; the handler goes on too, as
    after :meth:`gather`). Busy, declined, unanswered within ``timeout`` seconds
    (the attempt is cancelled) and failed calls return at once with their ``state``.
    The caller hanging up while it rings cancels the attempt (CANCEL).

    ``caller_id``: who the far side is told is calling, e.g. ``call.caller`` to pass
    the caller's number on, or ``'"Sales" <sip:5550100@pbx.example>'`` (the INVITE's
    From; a proxy or carrier may replace it). Over SIP the call goes out through this
    process's endpoint; in the test kit to a :meth:`~voip.testing.RunningApp.callee`.

    Raises :class:`CallEndedError` if the call has ended, :class:`InvalidArgumentError`
    for a bad argument or a call in a bridge or room already.
    """
    _check(uri, timeout, caller_id)
    tone = _ringback_pcm(ringback)
    self._check_active()
    check_free(self)
    dialler = DIALLER.get()
    if dialler is None:
        raise VoipError(
            "call.connect() places the call through what runs the handler: run it with "
            "runVoipClient (simulator or --sip), voip.dial or the test kit"
        )
    loop = asyncio.get_running_loop()
    ringing = None if tone is None else self.playPCM(tone, loop=True)
    talk = _Talk()

    async def far_side(far: Call) -> None:
        talk.answered = True
        if ringing is not None:
            ringing.cancel()
        talk.started = loop.time()
        try:
            talk.ended = _THEIRS[await far.bridge(self)]
        finally:
            talk.talked = loop.time() - talk.started

    self.log.info("connecting to %s", uri)
    attempt = asyncio.ensure_future(dialler(uri, far_side, timeout=timeout, caller_id=caller_id))
    gone = asyncio.ensure_future(self.ended.wait())
    try:
        with self.hangup_ends_verb():
            await asyncio.wait({attempt, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done() and not talk.answered:
                self.log.info("caller hung up while %s rang: cancelling the call", uri)
                attempt.cancel()
            await asyncio.wait({attempt})
    finally:
        gone.cancel()
        if ringing is not None:
            ringing.cancel()
        attempt.cancel()  # if we are being cancelled: the far side goes too
    result = CANCELLED if attempt.cancelled() else attempt.result()
    if result.error is not None:
        raise result.error
    ended = talk.ended or ("hung up" if not self.active else None)
    done = Connected(result.state, result.status, result.reason, talk.talked, ended)
    self.log.info(
        "connect to %s: %s (%d %s), talked %.1f s%s",
        uri,
        done.state,
        done.status,
        done.reason,
        done.talked,
        f", {done.ended}" if done.ended else "",
    )
    return done


def _check(uri: Any, timeout: Any, caller_id: Any) -> None:
    if not isinstance(uri, str) or not uri.strip().lower().startswith(("sip:", "sips:")):
        raise InvalidArgumentError(
            f"connect() takes a SIP URI such as 'sip:100@pbx.example', got {uri!r}"
        )
    seconds("timeout", timeout, low_open=True)
    if caller_id is not None:
        caller_id_uri(caller_id, "sip:check@localhost")  # raises for a bad one


def _ringback_pcm(ringback: Any) -> PCM | None:
    """What the caller hears while it rings (None: silence)."""
    if ringback is False or ringback is None:
        return None
    if ringback is True:
        return ringback_tone("us")
    if isinstance(ringback, str):
        if ringback not in RINGBACK:
            raise InvalidArgumentError(
                f"ringback {ringback!r}: use True, False, {', '.join(map(repr, RINGBACK))} "
                "or 8 kHz PCM"
            )
        return ringback_tone(ringback)
    pcm = as_pcm(ringback, "ringback")
    if not len(pcm):
        raise InvalidArgumentError("ringback PCM has no samples (use ringback=False for none)")
    return pcm
