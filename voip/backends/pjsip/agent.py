"""A SIP user agent: the endpoint, one account, and the calls in and out of it.

Both the server (answering) and the dialler (calling out) are built on it. Everything
here except :meth:`SipAgent.dial` runs on the SIP thread.

An incoming call is answered at once and its handler starts on the caller's ACK. A
caller that never ACKs would hold one of the process's 4 call slots for about a minute
(PJSIP retransmits its 200 OK for 32 s, then delays its BYE until an ACK that never
comes): such a call is ended without a BYE after :data:`ACK_TIMEOUT` seconds
(:mod:`.terminate`), and the guard lets one source address have only one call awaiting
its ACK at a time (:class:`~voip.guard.AwaitingAck`).

Each call's life is a :class:`~voip.callstate.CallStateMachine`: PJSIP's callbacks,
the screens, timers and hang-ups feed it events, and :meth:`SipAgent._perform` carries
out the actions it returns (answer, log, start the handler, send the BYE ...).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, assert_never

from ...bridge import MediaBridge
from ...call import Call
from ...callstate import Action, Event, State
from ...dialling import DialResult, DialState
from ...errors import InvalidArgumentError
from ...guard import RequestGuard, RequestHead, parse_request_head, screen_kind
from ...sipmsg import parse_headers
from ...sipuri import (
    caller_id_uri,
    join_hostport,
    sips_as_tls,
    split_hostport,
    split_register_uri,
)
from .calls import HANGUP_DRAIN, PortPool, SipCall, callback
from .native import NativePorts
from .options import SipOptions
from .prefilter import RequestFilter
from .registration import registration_step
from .security import check_security, configure_srtp
from .stack import SipStack, pj
from .terminate import CallTerminator
from .transfer import send_refer, settle

if TYPE_CHECKING:
    from .metrics import CallMetrics

__all__ = ["SipAgent", "DialResult", "DialState", "Screen", "Vet", "ACK_TIMEOUT"]

log = logging.getLogger("voip.sip")

ACK_TIMEOUT = 8.0
"""Seconds an answered call may wait for the caller's ACK before it is ended without a
BYE. PJSIP sends the 200 OK again after 0.5, 1.5, 3.5 and 7.5 s: a caller whose ACKs get
lost has had five chances; an honest one ACKs within milliseconds."""

Screen = Callable[[str], tuple[int, str]]
"""Given a new call's source address: ``(0, "")`` to answer it, or a SIP status to
refuse it with and the reason (for the log)."""
Vet = Callable[[Mapping[str, str], str], tuple[int, str]]
"""Given a new call's headers and source (``host:port``), once screened: as a
:data:`Screen` answers (a leg between workers for a caller no longer there: 410)."""


class _Account(pj.Account if pj is not None else object):  # type: ignore[misc]
    def __init__(self, agent: SipAgent) -> None:
        super().__init__()
        self.agent = agent

    @callback
    def onIncomingCall(self, prm: Any) -> None:
        self.agent._incoming(prm)

    @callback
    def onRegState(self, prm: Any) -> None:
        self.agent._reg_state(prm)


class SipAgent:
    """Owns the SIP stack and every live :class:`SipCall`."""

    def __init__(
        self,
        opts: SipOptions,
        loop: asyncio.AbstractEventLoop,
        on_call: Callable[[Call], None] | None = None,
        screen: Screen | None = None,
        metrics: CallMetrics | None = None,
        vet: Vet | None = None,
    ) -> None:
        """``on_call(call)`` runs on the loop for each answered incoming call; without
        it incoming calls are refused (603). ``screen`` may refuse them first, after
        the :class:`~voip.guard.RequestGuard` built from ``opts``. ``metrics`` is told
        every call's actions and every refusal. ``vet`` may refuse a call, screened,
        from its headers (SIP thread)."""
        self.opts = opts
        self.loop = loop
        self.stack = SipStack(opts)
        self.calls: dict[int, SipCall] = {}
        """Live calls by pjsua id, kept until DISCONNECTED (SIP thread only)."""
        self.ports = PortPool(self.stack.conference)
        self.native = NativePorts()
        """PJSIP's own players and recorders (loaded with the endpoint, unless
        ``python_media``)."""
        self._on_call = on_call
        self._vet = vet
        self.guard = RequestGuard(
            allow=opts.allow,
            invite_rate=opts.invite_rate,
            options_rate=opts.options_rate,
            call_rate=opts.call_rate,
            scanner_user_agents=opts.scanner_user_agents,
            screen=screen,
            answer_options=bool(opts.front_host),
        )
        self.metrics = metrics
        if metrics is not None:
            self.guard.refusals.on_refused = metrics.refused
        self.filter = RequestFilter(self.guard)
        """Screens requests before PJSIP handles them (see :mod:`.prefilter`)."""
        self.terminator = CallTerminator()
        """Ends calls never ACKed (see :mod:`.terminate`); loaded when answering calls."""
        self._account: Any = None
        self._direct_account: Any = None
        """Calls past the outbound proxy (a cluster's worker's, to its siblings)."""
        self._ipv6_accounts: list[Any] = []
        """The accounts taking calls over IPv6 (see :meth:`_ipv6_account`)."""
        self._ids = itertools.count(1)
        self.registered = False
        """Whether the registrar holds our contact (registered mode; SIP thread)."""
        self._aor = ""
        self._id_uri = "sip:voip@localhost"
        """The account's URI: the From of calls placed without a caller id."""
        self._closing = False
        self._retry_timer: asyncio.TimerHandle | None = None

    # -- loop side -----------------------------------------------------------------------

    async def start(self) -> None:
        # Certificates are checked here: PJSIP would only fail when a connection comes.
        check_security(self.opts, listening=self._on_call is not None)
        await self.loop.run_in_executor(None, self.stack.start, self._setup, self._teardown)

    async def stop(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        await self.loop.run_in_executor(None, self.stack.stop)

    async def dial(
        self,
        uri: str,
        timeout: float | None = None,
        caller_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        direct: bool = False,
    ) -> tuple[Call | None, DialResult]:
        """Call ``uri`` (from ``caller_id``: see :func:`~voip.sipuri.caller_id_uri`;
        None: from the account; ``headers`` added to the INVITE; ``direct``: not through
        the outbound proxy, if there is one); returns the answered :class:`Call` (None if
        not answered) and a :class:`DialResult` that is final unless the call was
        answered."""
        if not uri.lower().startswith(("sip:", "sips:")):
            raise InvalidArgumentError(f"{uri!r} is not a SIP URI (e.g. sip:app@127.0.0.1:5062)")
        uri = sips_as_tls(uri)
        local = None if caller_id is None else caller_id_uri(caller_id, self._id_uri)
        outcome: asyncio.Future[tuple[Call | None, DialResult]] = self.loop.create_future()
        place = self.stack.submit(self._place, uri, outcome, local, dict(headers or {}), direct)
        sip_call = await asyncio.wrap_future(place)
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
        # Our address as PJSIP publishes it (the interface's, or the public address):
        # right even when listening on 0.0.0.0 or on a port it chose.
        cfg.idUri = f"sip:voip@{_published(stack, stack.transport_ids[0])}"
        rtp = cfg.mediaConfig.transportConfig
        rtp.port = o.rtp_ports[0]
        # PJSIP takes RTP ports from port to port + portRange (RTCP one above each): the
        # range must stop two short of our last port, or the 51st call of 100 ports goes
        # outside it (seen with PJSIP 2.15), where a firewall would drop its audio.
        rtp.portRange = o.rtp_ports[1] - o.rtp_ports[0] - 1
        # A cluster's worker: SIP on the loopback, audio where kamailio meets callers.
        media_host = _media_host(o.front_host or host)
        public = "" if ":" in o.public_address else o.public_address  # IPv4 only, too
        if media_host not in ("", "0.0.0.0"):
            rtp.boundAddress = media_host
        if public or media_host not in ("", "0.0.0.0"):
            rtp.publicAddress = public or media_host
        configure_srtp(cfg.mediaConfig, o)
        # Made before the main account, to be given the calls over their transports.
        self._ipv6_accounts = [
            self._ipv6_account(stack, tid, cfg.mediaConfig) for tid in stack.ipv6_transport_ids
        ]
        direct = None
        if o.outbound_proxy:  # a cluster's worker: calls out go through the front
            # But not its calls to its sibling workers (voip.cluster.places): an account
            # without the proxy, made after the main one, which keeps the incoming calls.
            direct = pj.AccountConfig()
            direct.idUri = cfg.idUri
            direct.mediaConfig = cfg.mediaConfig
            cfg.sipConfig.proxies.append(o.outbound_proxy)
        if o.register:
            self._configure_registration(cfg)
        self._id_uri = cfg.idUri
        self._account = _Account(self)
        self._account.create(cfg, True)
        if direct is not None:
            self._direct_account = _Account(self)
            self._direct_account.create(direct)
        self.filter.install()
        if not o.python_media and self.native.load():
            log.info("media: PJSIP plays plain sounds and records recordPCM itself")
        else:
            log.info("media: every sound is mixed and recorded in Python")
        if self._on_call is not None:
            self.terminator.load()

    def _ipv6_account(self, stack: SipStack, transport_id: int, media: Any) -> Any:
        """An account for the calls coming over one IPv6 transport.

        This PJSIP build (no IPv6) cannot make the Contact of a call that came over IPv6
        (it answers 500), so an account bound to the transport is given its Contact.
        pjsua gives a new call to the account that matches it best, its transport first,
        and of equals to the one made first: this one, for the calls over its transport,
        when made before the main account (which suits every transport).
        """
        info = stack.ep.transportGetInfo(transport_id)
        address = _published(stack, transport_id)
        kind = info.typeName.lower()  # udp, tcp or tls, over IPv6
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:voip@{address}"
        cfg.sipConfig.contactForced = f"<sip:voip@{address}" + (
            ">" if kind == "udp" else f";transport={kind}>"
        )
        cfg.sipConfig.transportId = transport_id
        cfg.mediaConfig = media
        account = _Account(self)
        account.create(cfg)
        return account

    def _configure_registration(self, cfg: Any) -> None:
        """Registered mode: the account registers its contact (our listen address; a
        cluster's front puts its own there) with the registrar of ``opts.register`` and
        PJSIP keeps the registration fresh."""
        o = self.opts
        aor, user, registrar = split_register_uri(o.register)
        self._aor = aor
        cfg.idUri = aor
        reg = cfg.regConfig
        reg.registrarUri = registrar
        reg.registerOnAdd = True
        reg.timeoutSec = o.register_expiry
        # Temporary failures (timeouts, 5xx, a lost TCP connection): PJSIP tries again
        # at once, then every retryIntervalSec, give or take randomRetryIntervalSec.
        reg.retryIntervalSec = o.register_retry
        reg.randomRetryIntervalSec = min(10, o.register_retry // 4)
        reg.dropCallsOnFail = False
        if o.password:
            cred = pj.AuthCredInfo("digest", o.realm or "*", o.auth_user or user, 0, o.password)
            cfg.sipConfig.authCreds.append(cred)
        # The Contact is the listening address, not a TCP connection's source port
        # (PJSIP's default): calls must reach us however the REGISTER travelled.
        cfg.natConfig.contactUseSrcPort = False
        log.info(
            "registering as %s with %s (every %d s)%s",
            aor,
            registrar,
            o.register_expiry,
            "" if o.password else "; no --password given",
        )

    def _reg_state(self, prm: Any) -> None:
        """PJSIP's account registration changed: say so, and retry what PJSIP won't."""
        step = registration_step(prm.code, prm.expiration, self.registered, self._closing)
        self.registered = step.registered
        o = self.opts
        line = step.text(
            aor=self._aor,
            code=prm.code,
            reason=prm.reason,
            expires=prm.expiration,
            retry=o.register_retry,
            user=o.auth_user or split_register_uri(o.register)[1],
        )
        log.log(step.level, "%s", line)
        if step.retry == "ours":
            self._retry_later()

    def _retry_later(self) -> None:
        """A slow retry of a registration PJSIP gave up on (e.g. bad credentials)."""
        try:
            self.loop.call_soon_threadsafe(self._schedule_retry)
        except RuntimeError:  # the loop is closed: we are shutting down
            pass

    def _schedule_retry(self) -> None:  # on the loop
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        self._retry_timer = self.loop.call_later(self.opts.register_retry, self._retry_now)

    def _retry_now(self) -> None:  # on the loop
        self._retry_timer = None
        self.stack.submit(self._reregister)

    def _reregister(self) -> None:
        if self._account is None or self._closing or self.registered:
            return
        log.info("registering as %s again", self._aor)
        try:
            self._account.setRegistration(True)
        except pj.Error as exc:
            log.warning("cannot send REGISTER for %s: %s", self._aor, exc.reason)
            self._retry_later()

    def _unregister(self, stack: SipStack) -> None:
        """Remove our contact from the registrar, waiting a moment for its answer."""
        self._closing = True
        if not self.registered:
            return
        log.info("unregistering %s", self._aor)
        try:
            self._account.setRegistration(False)
        except pj.Error as exc:
            log.info("cannot unregister %s: %s", self._aor, exc.reason)
            return
        for _ in range(75):  # 1.5 s at most: a registrar that is down must not hold us
            if not self.registered:
                break
            stack.pump(0.02)

    def _teardown(self, stack: SipStack) -> None:
        self.filter.uninstall()
        for sip_call in list(self.calls.values()):
            # As its state allows: a call still awaiting its ACK is ended without a BYE,
            # as at its ACK deadline (PJSIP would send none before the ACK, 32 s away).
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
        self._unregister(stack)
        self._account.shutdown()
        self._account = None
        if self._direct_account is not None:
            self._direct_account.shutdown()
            self._direct_account = None
        for account in self._ipv6_accounts:
            account.shutdown()
        self._ipv6_accounts = []
        self.ports.close(stack.ep)
        self.native.close()
        gc.collect()  # no pjsua2 object may outlive the endpoint

    def _new_call(self, call_id: int, direct: bool = False) -> SipCall:
        bridge = MediaBridge(self.loop)
        sip_call = SipCall(
            self._direct_account if direct and self._direct_account else self._account,
            call_id,
            bridge,
            self.stack,
            self.ports,
            self._feed,
            self.opts.inband_dtmf,
            self.native,
        )
        return sip_call

    def _incoming(self, prm: Any) -> None:
        source = prm.rdata.srcAddress
        host = split_hostport(source, 0)[0]
        message = prm.rdata.wholeMsg
        head = parse_request_head(message.encode("utf-8", "surrogateescape"))
        sip_call = self._new_call(prm.callId)
        sip_call.incoming = True
        self.calls[prm.callId] = sip_call
        sip_call.feed(Event.INVITE_RECEIVED)
        headers = parse_headers(message)
        code = 603 if self._on_call is None else self._admit(head, host)
        if not code and self._vet is not None:
            code, reason = self._vet(headers, source)
            if code:
                log.info("refused call from %s: %s (%d)", source, reason, code)
        if code:
            sip_call.hangup_now(code)
            return
        call = sip_call.make_call_object(headers, f"c{next(self._ids)}", source)
        sip_call.peer = f"from {call.getRemoteUri()} ({source})"
        sip_call.ack_slot = (host, head.branch if head is not None else "")
        # Answered now; the handler starts on the caller's ACK (CONFIRMED), when they
        # are listening: started now, the first 20-60 ms of the greeting would be lost.
        sip_call.feed(Event.ADMITTED)

    def _admit(self, head: RequestHead | None, host: str) -> int:
        """0 to answer a new call from ``host``, else the status to refuse it with.

        The request filter has applied the guard already, unless it is off; the server's
        screen is asked again because calls may have come up since.
        """
        if not self.filter.active:
            if head is not None:
                verdict = self.guard.check(head, host)
                if verdict.action != "pass":
                    return verdict.status or 403
        if self.guard.screen is None:
            return 0
        status, reason = self.guard.screen(host)
        if status:
            self.guard.refusals.refused(host, f"{reason} ({status})", screen_kind(status))
        return status

    def _place(
        self,
        uri: str,
        outcome: asyncio.Future[Any],
        local: str | None,
        headers: dict[str, str],
        direct: bool,
    ) -> SipCall:
        sip_call = self._new_call(pj.PJSUA_INVALID_ID, direct)
        sip_call.outcome = outcome
        sip_call.peer = f"to {uri}"
        sip_call.feed(Event.PLACED)
        prm = pj.CallOpParam(True)
        if local is not None:
            # The From header (pjsua_msg_data.local_uri, PJSIP 2.13 on); its tag is PJSIP's.
            prm.txOption.localUri = local
            sip_call.peer += f" from {local}"
        for name, value in headers.items():
            header = pj.SipHeader()
            header.hName, header.hValue = name, value
            prm.txOption.headers.append(header)
        try:
            sip_call.makeCall(uri, prm)
        except pj.Error as exc:
            sip_call.feed(Event.PLACE_FAILED, 0, exc.reason)
            return sip_call
        self.calls[sip_call.getId()] = sip_call
        return sip_call

    # -- a call's life: events in, actions out (see voip.callstate) ----------------------

    def _feed(self, sip_call: SipCall, event: Event, code: int, reason: str) -> None:
        for action in sip_call.life.handle(event):
            self._perform(action, sip_call, code, reason)
            if self.metrics is not None:
                self.metrics.observe(action, sip_call, code)

    def _perform(self, action: Action, sip_call: SipCall, code: int, reason: str) -> None:
        """Carry out one of the call's actions; ``code`` and ``reason`` come with the event."""
        call = sip_call.call
        match action:
            case Action.HOLD_ACK_SLOT:
                self.guard.awaiting_ack.answered(*sip_call.ack_slot)
            case Action.ANSWER:
                answer = pj.CallOpParam()
                answer.statusCode = 200
                sip_call.answer(answer)
            case Action.START_ACK_TIMER:
                if self.terminator.available:
                    self._after(ACK_TIMEOUT, sip_call, Event.ACK_TIMEOUT)
            case Action.RELEASE_ACK_SLOT:
                self.guard.awaiting_ack.settled(*sip_call.ack_slot)
            case Action.START_HANDLER:
                assert self._on_call is not None and call is not None
                sip_call.bridge.post(self._on_call, call)
            case Action.SETTLE_ANSWERED:
                call = sip_call.make_call_object({}, f"o{next(self._ids)}")
                answered = (call, DialResult(200, "OK", True))
                sip_call.bridge.post(_settle, sip_call.outcome, answered)
            case Action.SETTLE_FAILED:
                failed = (None, DialResult(code, reason, False))
                sip_call.bridge.post(_settle, sip_call.outcome, failed)
            case Action.LOG_ANSWERED:
                assert call is not None
                call.log.info("call %s answered", sip_call.peer)
            case Action.LOG_FAILED:
                assert call is not None
                call.log.warning("call %s failed: %d %s", sip_call.peer, code, reason)
            case Action.LOG_NEVER_ACKED:
                # Logged as a refusal: once per source and minute, however many there are.
                self.guard.refusals.refused(
                    sip_call.ack_slot[0],
                    f"call answered but never ACKed in {ACK_TIMEOUT:g} s: ended (no BYE)",
                    "never-acked",
                )
            case Action.LOG_ENDED:
                assert call is not None
                them = "caller" if sip_call.incoming else "callee"
                who = "we" if sip_call.life.ended_by == "local" else them
                call.log.info("call ended (%s hung up)", who)
            case Action.START_DRAIN_TIMER:
                self._after(HANGUP_DRAIN, sip_call, Event.DRAINED)
            case Action.HANG_UP:
                sip_call.send_hangup(code)
            case Action.DROP:
                if not self._end_now(sip_call):
                    sip_call.send_hangup()  # PJSIP sends the BYE once the ACK comes
            case Action.REFER:
                send_refer(sip_call)
            case Action.SETTLE_TRANSFER:
                settle(sip_call, code, reason)
            case Action.RELEASE:
                sip_call.release()
                # Kept until now on purpose: a Python Call collected earlier can hang up
                # a newer call that reused its id (pjproject #3856).
                self.calls.pop(sip_call.getId(), None)
            case _:
                assert_never(action)

    def _after(self, delay: float, sip_call: SipCall, event: Event) -> None:
        """Feed ``event`` to the call in ``delay`` seconds, unless it is gone by then."""
        # Weakly: the call may end (and its object go) long before; no polling either.
        ref = weakref.ref(sip_call)

        def due() -> None:  # on the loop
            if ref() is not None:
                self.stack.submit(self._feed_if_alive, ref, event)  # fails quietly once stopped

        try:
            self.loop.call_soon_threadsafe(self.loop.call_later, delay, due)
        except RuntimeError:  # the loop is closed: we are shutting down
            pass

    def _feed_if_alive(self, ref: weakref.ref[SipCall], event: Event) -> None:
        sip_call = ref()
        if sip_call is not None:
            sip_call.feed(event)

    def _end_now(self, sip_call: SipCall) -> bool:
        """End a call awaiting its ACK now, without a BYE (PJSIP would wait for the ACK).
        pjsua reports it DISCONNECTED before this returns; False if it could not."""
        if not self.terminator.available:
            return False
        info = sip_call.getInfo()
        if info.state >= pj.PJSIP_INV_STATE_CONFIRMED:
            return False
        return self.terminator.end(info.id)

    def active_calls(self) -> int:
        return sum(
            1 for c in self.calls.values() if c.call is not None and c.life.state is not State.ENDED
        )


def _media_host(host: str) -> str:
    """The address RTP is bound to for SIP's ``host``. Audio is on IPv4 whatever SIP
    listens on (this PJSIP build has no IPv6 media): next to ``::1`` on IPv4's loopback,
    next to another IPv6 address on every IPv4 address."""
    if host == "::1":
        return "127.0.0.1"
    return "" if ":" in host else host


def _published(stack: SipStack, transport_id: int) -> str:
    """The address a transport publishes, as a URI writes it (PJSIP's ``localName``
    leaves an IPv6 address without its brackets)."""
    host, _, port = stack.ep.transportGetInfo(transport_id).localName.rpartition(":")
    return join_hostport(host, int(port))


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
