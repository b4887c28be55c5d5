"""A SIP user agent: the endpoint, one account, and the calls in and out of it.

Both the server (answering) and the dialler (calling out) are built on it. Everything
here except :meth:`SipAgent.dial` runs on the SIP thread.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...bridge import MediaBridge
from ...call import Call
from ...errors import InvalidArgumentError
from ...sipmsg import parse_headers
from .calls import SipCall, callback
from .options import SipOptions
from .stack import SipStack, pj

__all__ = ["SipAgent", "DialResult", "Screen"]

log = logging.getLogger("voip.sip")

Screen = Callable[[str], int]
"""Given an incoming call's source address, 0 to answer it or a SIP status to refuse."""


@dataclass(frozen=True)
class DialResult:
    """How an outgoing call went."""

    status: int
    """The final SIP status: 200 when answered, else e.g. 486 (busy), 603 (declined),
    480 or 408 (no answer), 404 (no such user), 0 if no response came at all."""
    reason: str
    answered: bool
    error: BaseException | None = None
    """What the handler raised, if it did."""

    @property
    def state(self) -> str:
        """``answered``, ``busy``, ``no answer``, ``rejected`` or ``failed``."""
        if self.answered:
            return "answered"
        if self.status in (486, 600):
            return "busy"
        if self.status in (408, 480, 487):
            return "no answer"
        if self.status in (403, 603):
            return "rejected"
        return "failed"


class _Account(pj.Account if pj is not None else object):  # type: ignore[misc]
    def __init__(self, agent: SipAgent) -> None:
        super().__init__()
        self.agent = agent

    @callback
    def onIncomingCall(self, prm: Any) -> None:
        self.agent._incoming(prm)


class SipAgent:
    """Owns the SIP stack and every live :class:`SipCall`."""

    def __init__(
        self,
        opts: SipOptions,
        loop: asyncio.AbstractEventLoop,
        on_call: Callable[[Call], None] | None = None,
        screen: Screen | None = None,
    ) -> None:
        """``on_call(call)`` runs on the loop for each answered incoming call; without
        it incoming calls are refused (603). ``screen`` may refuse them first."""
        self.opts = opts
        self.loop = loop
        self.stack = SipStack(opts)
        self.calls: dict[int, SipCall] = {}
        """Live calls by pjsua id, kept until DISCONNECTED (SIP thread only)."""
        self._on_call = on_call
        self._screen = screen
        self._account: Any = None
        self._ids = itertools.count(1)

    # -- loop side -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.loop.run_in_executor(None, self.stack.start, self._setup, self._teardown)

    async def stop(self) -> None:
        await self.loop.run_in_executor(None, self.stack.stop)

    async def dial(self, uri: str, timeout: float | None = None) -> tuple[Call | None, DialResult]:
        """Call ``uri``; returns the answered :class:`Call` (None if not answered) and a
        :class:`DialResult` that is final unless the call was answered."""
        if not uri.lower().startswith(("sip:", "sips:")):
            raise InvalidArgumentError(f"{uri!r} is not a SIP URI (e.g. sip:app@127.0.0.1:5062)")
        outcome: asyncio.Future[tuple[Call | None, DialResult]] = self.loop.create_future()
        sip_call = await asyncio.wrap_future(self.stack.submit(self._place, uri, outcome))
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), timeout)
        except (TimeoutError, asyncio.CancelledError):
            self.stack.submit(sip_call.hangup_now, 487)
            raise

    # -- SIP thread ----------------------------------------------------------------------

    def _setup(self, stack: SipStack) -> None:
        o = self.opts
        cfg = pj.AccountConfig()
        host, port = o.host_port
        shown = o.public_address or (host if host not in ("", "0.0.0.0") else "127.0.0.1")
        cfg.idUri = f"sip:voip@{shown}:{port}" if port else f"sip:voip@{shown}"
        rtp = cfg.mediaConfig.transportConfig
        rtp.port = o.rtp_ports[0]
        rtp.portRange = o.rtp_ports[1] - o.rtp_ports[0] + 1
        if host not in ("", "0.0.0.0"):
            rtp.boundAddress = host
        if o.public_address or host not in ("", "0.0.0.0"):
            rtp.publicAddress = o.public_address or host
        self._account = _Account(self)
        self._account.create(cfg, True)

    def _teardown(self, stack: SipStack) -> None:
        for sip_call in list(self.calls.values()):
            sip_call.hangup_now()
        # Let the BYEs go out and DISCONNECTED arrive: pjsua2 aborts the process if
        # Python Call objects are still alive at libDestroy.
        for _ in range(100):
            if not self.calls:
                break
            stack.pump(0.02)
        for sip_call in self.calls.values():
            log.warning("call %d did not end in time; dropping it", sip_call.getId())
            sip_call._stop_media()
        self.calls.clear()
        self._account.shutdown()
        self._account = None
        gc.collect()  # no pjsua2 object may outlive the endpoint

    def _new_call(self, call_id: int) -> SipCall:
        bridge = MediaBridge(self.loop)
        sip_call = SipCall(
            self._account, call_id, bridge, self.stack, self._state_changed, self.opts.inband_dtmf
        )
        return sip_call

    def _incoming(self, prm: Any) -> None:
        source = prm.rdata.srcAddress
        sip_call = self._new_call(prm.callId)
        self.calls[prm.callId] = sip_call
        code = 603 if self._on_call is None else 0
        if not code and self._screen is not None:
            code = self._screen(source)
        if code:
            sip_call.hangup_now(code)
            return
        call = sip_call.make_call_object(parse_headers(prm.rdata.wholeMsg), f"c{next(self._ids)}")
        answer = pj.CallOpParam()
        answer.statusCode = 200
        sip_call.answer(answer)
        call.log.info("call from %s (%s) answered", call.getRemoteUri(), source)
        assert self._on_call is not None
        sip_call.bridge.post(self._on_call, call)

    def _place(self, uri: str, outcome: asyncio.Future[Any]) -> SipCall:
        sip_call = self._new_call(pj.PJSUA_INVALID_ID)
        sip_call.outcome = outcome
        prm = pj.CallOpParam(True)
        try:
            sip_call.makeCall(uri, prm)
        except pj.Error as exc:
            result = DialResult(0, exc.reason, False)
            sip_call.bridge.post(_settle, outcome, (None, result))
            return sip_call
        self.calls[sip_call.getId()] = sip_call
        return sip_call

    def _state_changed(self, sip_call: SipCall) -> None:
        info = sip_call.getInfo()
        outcome = sip_call.outcome
        if outcome is not None and info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            call = sip_call.make_call_object({}, f"o{next(self._ids)}")
            result = DialResult(200, "OK", True)
            sip_call.outcome = None
            sip_call.bridge.post(_settle, outcome, (call, result))
        if sip_call.disconnected:
            if outcome is not None:
                result = DialResult(sip_call.status, sip_call.reason, False)
                sip_call.outcome = None
                sip_call.bridge.post(_settle, outcome, (None, result))
            # Kept until now on purpose: a Python Call collected earlier can hang up a
            # newer call that reused its id (pjproject #3856).
            self.calls.pop(info.id, None)

    def active_calls(self) -> int:
        return sum(1 for c in self.calls.values() if c.call is not None and not c.disconnected)


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
