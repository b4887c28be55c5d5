"""pjsua2 subclasses: a call, and the media port that connects it to its bridge.

Each :class:`SipCall` owns the :class:`~voip.call.Call` a handler sees and its
:class:`~voip.bridge.MediaBridge`. PJSIP calls these classes' callbacks on the SIP thread
(call state, media state), on its media thread (DTMF digits) or on its conference clock
(frames); every callback only hands data to the bridge, or the call's state changes to
the agent as :class:`~voip.callstate.Event` s (:meth:`SipCall.feed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ...audio.inband import InbandDTMFDetector
from ...audio.pcm import FRAME_SAMPLES, PCM
from ...bridge import MediaBridge
from ...call import Call, CallInfo
from ...callstate import CallStateMachine, Event
from ...sipmsg import info_dtmf_keys
from ...sipuri import parse_name_addr
from .conference import Conference
from .frames import FrameBuffer, keep_thread_state, read_pcm
from .links import SipLink
from .native import NativePorts
from .offload import NativeMedia
from .options import InbandMode
from .stack import SipStack, pj
from .transfer import (
    PendingTransfer,
    SipTransferer,
    refuse_replaces,
    refuse_transfer_request,
    transfer_status,
)

__all__ = ["SipCall", "FramePort", "PortPool", "callback"]

log = logging.getLogger("voip.sip")

_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)

HANGUP_DRAIN = 0.25
"""Seconds between the handler hanging up and the BYE, so the caller hears it all."""
PAUSE_AFTER = 0.2
"""Seconds a call's mixer stays idle before its port is paused."""


def callback(fn: Callable[..., None]) -> Callable[..., None]:
    """pjsua2 prints and swallows exceptions raised in callbacks: log them properly."""

    def wrapper(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("error in %s", fn.__qualname__)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    return wrapper


class FramePort(pj.AudioMediaPort if pj is not None else object):  # type: ignore[misc]
    """A conference-bridge port that exchanges 20 ms frames with a call's bridge.

    The conference clock asks for a frame to send (``onFrameRequested``) and then gives
    the frame received (``onFrameReceived``). Received audio is read only while something
    needs it (a recording, the in-band DTMF detector): converting it is the costly part.
    The frame sent is written in place into a :class:`~.frames.FrameBuffer`, and the
    clock thread keeps its Python thread state between frames (:mod:`.frames` says why).
    While the call's mixer has nothing to do the port is paused (:meth:`sync`): PJSIP
    then calls neither method. Ports outlive calls: see :class:`PortPool`.
    """

    def __init__(self, conference: Conference) -> None:
        super().__init__()
        self.bridge: MediaBridge | None = None
        self.received: PCM | None = None
        """The frame received last, until the next frame sent hands it to the mixer
        (None: none read since, e.g. nothing wanted it)."""
        self.inband: InbandDTMFDetector | None = None
        """An in-band DTMF detector fed with every received frame, or None."""
        self._on_digit: Callable[[str], None] = _ignore
        self._out = FrameBuffer()
        self._conference = conference
        self._running = (True, True)
        """Whether PJSIP calls onFrameRequested and onFrameReceived (a new port: both)."""

    def attach(self, bridge: MediaBridge, on_digit: Callable[[str], None], inband: bool) -> None:
        """Serve a call (SIP thread)."""
        self.received = None
        self.inband = InbandDTMFDetector() if inband else None
        self._on_digit = on_digit
        self.bridge = bridge  # last: the clock thread starts using the port from here
        self.sync()

    def detach(self) -> None:
        """Serve no call: silence out, nothing read (SIP thread)."""
        self.bridge = None
        self.inband = None
        self._on_digit = _ignore
        self.sync()

    def sync(self) -> None:
        """Pause or resume the port as the call's mixer needs it (SIP thread).

        Frames are exchanged while the mixer has a playback or a recording (recordings
        are fed from ``onFrameRequested`` too); received frames also while the in-band
        detector listens. Called whenever that may have changed: the state read here is
        the latest, so the last call after a change leaves the port as it should be.
        """
        bridge = self.bridge
        active = bridge is not None and bridge.active
        wanted = (active, active or (bridge is not None and self.inband is not None))
        if wanted == self._running:
            return
        sends, receives = wanted
        if self._conference.configure(self.getPortId(), sends=sends, receives=receives):
            self._running = wanted

    @callback
    def onFrameRequested(self, frame: Any) -> None:
        keep_thread_state()
        bridge = self.bridge  # once: the SIP thread may detach the port meanwhile
        if bridge is None:
            out = _SILENCE
        else:
            # Each received frame once, and only a fresh one: a recording started now
            # begins with the next frame heard, not one from before it started.
            received, self.received = self.received, None
            out = bridge.exchange(received if bridge.wants_audio else None)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = self._out.fill(out)  # PJSIP copies it: the buffer is ours again
        frame.size = 2 * FRAME_SAMPLES

    @callback
    def onFrameReceived(self, frame: Any) -> None:
        keep_thread_state()
        bridge, inband = self.bridge, self.inband
        if bridge is None or not (bridge.wants_audio or inband is not None):
            return
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or frame.size == 0:
            received = _SILENCE
        else:
            received = read_pcm(frame.buf)
        self.received = received
        if inband is not None:
            for key in inband.feed(received):
                self._on_digit(key)


class PortPool:
    """Media ports, reused from call to call and destroyed only once the clock is stopped.

    PJSIP 2.15 takes a port off the conference bridge asynchronously, after the port's
    memory is freed: destroying a port while the clock runs crashes the process now and
    then (fixed upstream after 2.15, pjproject #4200). So a port is never destroyed
    while the clock runs: a call's port goes back to the pool when the call ends.
    All methods run on the SIP thread.
    """

    def __init__(self, conference: Conference) -> None:
        self._free: list[FramePort] = []
        self._made = 0
        self._conference = conference

    def take(self) -> FramePort:
        if self._free:
            return self._free.pop()
        port = FramePort(self._conference)
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
        port.createPort(f"voip{self._made}", fmt)
        self._made += 1
        return port

    def give(self, port: FramePort) -> None:
        port.detach()
        self._free.append(port)

    def close(self, ep: Any) -> None:
        """Stop the conference clock, then let the ports go (before the endpoint is)."""
        ep.audDevManager().setNoDev()
        self._free.clear()


def _ignore(_key: str) -> None:
    pass


class SipCall(pj.Call if pj is not None else object):  # type: ignore[misc]
    """One SIP call, incoming or outgoing, and the voip :class:`Call` riding on it."""

    def __init__(
        self,
        account: Any,
        call_id: int,
        bridge: MediaBridge,
        stack: SipStack,
        ports: PortPool,
        on_event: Callable[[SipCall, Event, int, str], None],
        inband: InbandMode = "auto",
        native: NativePorts | None = None,
    ) -> None:
        super().__init__(account, call_id)
        self.bridge = bridge
        self.stack = stack
        self.ports = ports
        self.media: NativeMedia | None = None
        """What PJSIP plays and records for this call by itself (None: all in Python)."""
        if native is not None and native.available:
            self.media = NativeMedia(native, stack, bridge)
            bridge.offload = self.media
        self.link = SipLink(stack)
        """The call's audio in PJSIP's bridge, for other calls to hear (``call.bridge``)."""
        bridge.link = self.link
        self.call: Call | None = None
        self.port: FramePort | None = None
        self.life = CallStateMachine()
        """Where the call is in its life; events go in through :meth:`feed`."""
        self.incoming = False
        """Whether the other side called us."""
        self.started = time.monotonic()
        """When the call was made: its INVITE received, or about to be sent."""
        self.peer = ""
        """Who is at the other end, for the log: ``from <uri> (address)`` or ``to <uri>``."""
        self.ack_slot = ("", "")
        """For an incoming call: its source address and the Via branch of its INVITE (as
        counted in the guard's ``awaiting_ack`` while the call awaits its ACK)."""
        self.outcome: Any = None
        """For an outgoing call: the loop's future waiting for it to be answered or fail."""
        self.transfer: PendingTransfer | None = None
        """The transfer the handler asked for, until its outcome is settled (:mod:`.transfer`)."""
        self._on_event = on_event
        # Callbacks hold this weakly: the handler may keep its Call past the end of the
        # call, and this object must be gone before the endpoint is (pjsua2 asserts).
        self._me = weakref.ref(self)
        self._inband = inband
        bridge.on_activity = _weakly(self._me, SipCall._mixer_activity)

    def make_call_object(self, headers: dict[str, str], call_id: str, source: str = "") -> Call:
        """Build the handler's :class:`Call` from the call's identity, headers and the
        address its INVITE came from."""
        info = self.getInfo()
        name, _uri, number = parse_name_addr(info.remoteUri)
        self.call = Call(
            self.bridge,
            CallInfo(info.remoteUri, number, name, headers, call_id, source),
            hangup=_weakly(self._me, SipCall.request_hangup),
            send_dtmf=_weakly(self._me, SipCall.request_dtmf),
        )
        self.call.transferer = SipTransferer(self)
        return self.call

    # -- requests from the loop, carried out on the SIP thread ---------------------------

    def request_hangup(self) -> None:
        # The last frames mixed are still on their way (conference bridge, network, the
        # far end's jitter buffer): the BYE waits HANGUP_DRAIN (the call's DRAINING state).
        self.stack.submit(self.feed, Event.HANGUP_REQUESTED)

    def _mixer_activity(self) -> None:
        # Work for the mixer resumes the port at once; an idle one pauses it a little
        # later, so that a sound played right after another goes on without a break.
        if self.bridge.active:
            self.stack.submit(self._sync_port)
        else:
            asyncio.get_running_loop().call_later(
                PAUSE_AFTER, _weakly(self._me, SipCall._sync_later)
            )

    def _sync_later(self) -> None:
        self.stack.submit(self._sync_port)

    def _sync_port(self) -> None:
        if self.port is not None:
            self.port.sync()

    def request_dtmf(self, keys: str, method: str) -> None:
        self.stack.submit(self.send_dtmf_now, keys, method)

    def feed(self, event: Event, code: int = 0, reason: str = "") -> None:
        """SIP thread: ``event`` happened to this call (``code`` and ``reason``: the SIP
        status to refuse it with, or the one it ended with); the agent carries out what
        the call's :attr:`life` says to do."""
        self._on_event(self, event, code, reason)

    def hangup_now(self, code: int = 0) -> None:
        """SIP thread: end the call now, as its state allows: refused with ``code`` while
        screened, cancelled while calling out, without a BYE while awaiting its ACK, else
        with a BYE."""
        self.feed(Event.HANGUP, code)

    def send_hangup(self, code: int = 0) -> None:
        """SIP thread: have PJSIP end the call: a final response with ``code`` to an INVITE
        we have not answered, CANCEL for one we sent, else BYE."""
        prm = pj.CallOpParam()
        prm.statusCode = code
        try:
            self.hangup(prm)
        except pj.Error as exc:
            log.debug("hangup: %s", exc.reason)

    def send_dtmf_now(self, digits: str, method: str = "rfc4733") -> None:
        """SIP thread: send digits as RFC 4733 events or SIP INFO (application/dtmf-relay).

        Events fall back to INFO when the other end did not negotiate telephone-event.
        """
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        if method == "info":
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            self.sendDtmf(prm)
            return
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        try:
            self.sendDtmf(prm)
        except pj.Error as exc:
            log.info("RFC 4733 not possible (%s): sending keys by SIP INFO", exc.reason)
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            self.sendDtmf(prm)

    # -- PJSIP callbacks -----------------------------------------------------------------

    @callback
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.feed(Event.CONFIRMED)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.feed(Event.DISCONNECTED, info.lastStatusCode, info.lastReason)

    @callback
    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for mi in info.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            media = self.getAudioMedia(mi.index)
            if self.port is None:
                inband = self._inband == "on" or (
                    self._inband == "auto" and not self._has_4733(mi.index)
                )
                self.port = self.ports.take()
                self.port.attach(self.bridge, _weakly(self._me, SipCall._digit), inband)
            media.startTransmit(self.port)
            self.port.startTransmit(media)
            self.link.attach(media)
            if self.media is not None:
                self.media.media_moved(media.getPortId())

    @callback
    def onDtmfDigit(self, prm: Any) -> None:
        self._digit(prm.digit)

    @callback
    def onCallTsxState(self, prm: Any) -> None:
        # PJSIP reads SIP INFO application/dtmf-relay itself (onDtmfDigit); the plain
        # application/dtmf form (the key alone as the body) is read here.
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        state = event.body.tsxState
        tsx = state.tsx
        if (
            tsx.role != pj.PJSIP_ROLE_UAS
            or tsx.method != "INFO"
            or tsx.state != pj.PJSIP_TSX_STATE_TRYING
            or state.type != pj.PJSIP_EVENT_RX_MSG
        ):
            return
        for key in info_dtmf_keys(state.src.rdata.wholeMsg):
            self._digit(key)

    @callback
    def onCallTransferStatus(self, prm: Any) -> None:
        transfer_status(self, prm)

    @callback
    def onCallTransferRequest(self, prm: Any) -> None:
        refuse_transfer_request(self, prm)

    @callback
    def onCallReplaceRequest(self, prm: Any) -> None:
        refuse_replaces(self, prm)

    def _digit(self, key: str) -> None:
        if self.call is not None:
            self.bridge.post(self.call.feed_dtmf, key)

    def _has_4733(self, index: int) -> bool:
        """Did the SDP negotiation agree on RFC 4733 telephone-events?"""
        try:
            info = self.getStreamInfo(index)
        except pj.Error:
            return True
        return bool(info.audRxEventPt > 0 or info.audTxEventPt > 0)

    def release(self) -> None:
        """SIP thread, the call being over: its Call learns who ended it, its media stops.

        In that order: stopping PJSIP's player reports the end of its sound to the loop,
        and a handler awaiting that sound must see the hang-up first (cancelled, as the
        caller hanging up does), not a sound that played to its end."""
        by = self.life.ended_by
        if self.call is not None and by is not None:
            self.bridge.post(self.call.mark_ended, by)
        self._stop_media()

    def _stop_media(self) -> None:
        # The port goes back to the pool for the next call; the MediaBridge itself is
        # closed on the loop, by Call.mark_ended.
        port, self.port = self.port, None
        if port is not None:
            self.ports.give(port)
        self.link.detach()
        if self.media is not None:
            self.media.end()


def _weakly(ref: weakref.ref[SipCall], method: Callable[..., None]) -> Callable[..., None]:
    """``method`` bound to the SIP call behind ``ref``; does nothing once it is gone."""

    def bound(*args: Any) -> None:
        obj = ref()
        if obj is not None:
            method(obj, *args)

    return bound
