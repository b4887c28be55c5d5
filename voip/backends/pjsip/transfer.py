"""Transfers over SIP: REFER out (``call.transfer()``), and REFERs in, refused.

The loop's side is :class:`SipTransferer` (a :class:`voip.transfer.Transferer`): it
hands the request to the SIP thread, where the call's state table takes it (event
``TRANSFER``, state ``transferring``, :mod:`voip.callstate`). The agent carries out
the ``REFER`` action with :func:`send_refer`: PJSIP's ``xfer`` (blind) or
``xferReplaces`` (attended: the REFER's Refer-To carries a Replaces header naming our
call to the target). PJSIP reports the REFER's answer and then each NOTIFY of the
transferee's call to the target in ``onCallTransferStatus`` (:func:`transfer_status`),
which feeds the outcome back as ``TRANSFERRED`` or ``TRANSFER_FAILED``; ``SETTLE_TRANSFER``
hands it to the loop (:func:`settle`).

A REFER for one of our calls (someone transferring us) is declined with 603: following it
would make PJSIP place a call the agent knows nothing of. So is an INVITE that would
replace one of our calls (``Replaces``: we are the target of someone's attended
transfer): PJSIP would answer it by itself, and the new call would have no handler.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...callstate import Event, State
from ...errors import InvalidArgumentError
from ...transfer import Report
from .stack import pj

if TYPE_CHECKING:
    from ...call import Call
    from .calls import SipCall

__all__ = [
    "PendingTransfer",
    "SipTransferer",
    "refuse_replaces",
    "refuse_transfer_request",
    "send_refer",
    "settle",
    "transfer_status",
]

log = logging.getLogger("voip.sip")


@dataclass(frozen=True)
class PendingTransfer:
    """A transfer asked of a SIP call: where to, and whom to tell the outcome."""

    target: str
    replaces: weakref.ref[SipCall] | None
    """For an attended transfer, our call to the target, which the transferee's replaces."""
    report: Report


class SipTransferer:
    """A SIP call's :class:`~voip.transfer.Transferer`: runs on the loop, hands over to
    the SIP thread. Holds the SIP call weakly, as the handler's ``Call`` may outlive it."""

    def __init__(self, sip_call: SipCall) -> None:
        self._ref = weakref.ref(sip_call)
        self._stack = sip_call.stack

    def refer(self, target: str, replaces: Call | None, report: Report) -> None:
        other = None
        if replaces is not None:
            transferer = replaces.transferer
            if not isinstance(transferer, SipTransferer):
                raise InvalidArgumentError("an attended transfer needs two calls over SIP")
            other = transferer._ref
        self._stack.submit(self._start, PendingTransfer(target, other, report))

    def abandon(self) -> None:
        self._stack.submit(self._give_up)

    def _start(self, pending: PendingTransfer) -> None:  # SIP thread
        sip_call = self._ref()
        if sip_call is not None:
            sip_call.transfer = pending
            sip_call.feed(Event.TRANSFER)

    def _give_up(self) -> None:  # SIP thread
        sip_call = self._ref()
        if sip_call is not None and sip_call.life.state is State.TRANSFERRING:
            sip_call.feed(Event.TRANSFER_FAILED, 0, "abandoned")


def send_refer(sip_call: SipCall) -> None:
    """SIP thread: send the REFER of the call's pending transfer (action ``REFER``)."""
    pending = sip_call.transfer
    assert pending is not None
    prm = pj.CallOpParam(True)
    try:
        if pending.replaces is None:
            sip_call.xfer(pending.target, prm)
            return
        other = pending.replaces()
        if other is None or other.life.state is not State.UP:
            sip_call.feed(Event.TRANSFER_FAILED, 0, "the call to the target is over")
            return
        sip_call.xferReplaces(other, prm)
    except pj.Error as exc:
        sip_call.feed(Event.TRANSFER_FAILED, 0, f"REFER not sent: {exc.reason}")


def settle(sip_call: SipCall, status: int, reason: str) -> None:
    """SIP thread: tell the loop how the pending transfer went (``SETTLE_TRANSFER``)."""
    pending, sip_call.transfer = sip_call.transfer, None
    if pending is not None:
        sip_call.bridge.post(pending.report, status, reason)


def transfer_status(sip_call: SipCall, prm: Any) -> None:
    """SIP thread, ``onCallTransferStatus``: the REFER's answer, or a NOTIFY of how the
    transferee's call to the target goes.

    The outcome is the status of the last report (``finalNotify``: a REFER refused, or
    the NOTIFY that ends the subscription), or any failure status before it. 202
    Accepted (the REFER's answer) and 1xx (the target ringing) are progress.
    """
    status, reason = prm.statusCode, prm.reason
    if sip_call.life.state is not State.TRANSFERRING:
        prm.cont = False  # nobody waits for it any more
        return
    if sip_call.call is not None:
        sip_call.call.log.info("transfer: %d %s", status, reason)
    if prm.finalNotify or status >= 300:
        prm.cont = False
        ok = 200 <= status < 300
        sip_call.feed(Event.TRANSFERRED if ok else Event.TRANSFER_FAILED, status, reason)


def refuse_transfer_request(sip_call: SipCall, prm: Any) -> None:
    """SIP thread, ``onCallTransferRequest``: the other side transfers our call: 603."""
    prm.statusCode = 603
    where = sip_call.call.log if sip_call.call is not None else log
    where.info("declined a transfer to %s (voip does not follow REFER)", prm.dstUri)


def refuse_replaces(sip_call: SipCall, prm: Any) -> None:
    """SIP thread, ``onCallReplaceRequest``: an INVITE would replace this call: 603."""
    prm.statusCode = 603
    prm.reason = "Decline"
    where = sip_call.call.log if sip_call.call is not None else log
    where.info("declined an INVITE replacing this call (voip does not take Replaces)")
