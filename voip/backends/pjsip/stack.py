"""The pjsua2 endpoint and the one thread that talks to it.

PJSIP's threading rules are strict (Python objects touched from its threads, GIL
dead-locks, callbacks that must not block): here every pjsua2 call
and every SIP callback happens on one thread we own, the *SIP thread*, which runs PJSIP
with ``threadCnt = 0`` and pumps ``libHandleEvents`` (it blocks in PJSIP's own socket
poll until a packet or one of PJSIP's timers is due, as PJSIP's worker thread would).
Other threads hand it work with :meth:`SipStack.submit`, which ends that wait at once
(:mod:`.wakeup`); it hands events to the asyncio loop through each call's
:class:`~voip.bridge.MediaBridge`.

Three threads of PJSIP's own also enter Python, each only to hand something on: the
conference clock calls a call's media port for each 20 ms frame (the bridge's
``exchange``; not while the port is paused, :mod:`.conference`); the media thread, which
carries RTP, reports RFC 4733 digits (``bridge.post``); the event thread reports the end
of a sound PJSIP played or a recording reaching its ``maxlen`` (:mod:`.native`: to the
bridge, or to :meth:`SipStack.submit`). Any of them may log through PJSIP's log writer.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ...errors import VoipError
from ...quiet import quiet_fds
from ...sipuri import join_hostport
from .binding import pj
from .clib import check_version
from .conference import Conference
from .options import SipOptions, SrtpMode
from .priority import realtime_threads
from .security import configure_tls
from .wakeup import Waker

__all__ = ["SipStack", "SipError", "pj"]

log = logging.getLogger("voip.sip")


POLL_MS = 10
"""Longest the SIP thread waits in PJSIP's poll before looking at submitted work, when
the waker could not be installed (and in :meth:`SipStack.pump`)."""
IDLE_MS = 1000
"""Longest wait in PJSIP's poll with the waker on: PJSIP shortens it to its next timer,
and submitted work ends it at once."""

_CODEC_IDS = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/16000"}
_PJ_TO_PY_LEVEL = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}
_NOT_ERRORS = (
    "Error reading CA certificates from buffer",
    "6 [SSL_ERROR_ZERO_RETURN]",
    "RTP socket bind() at ",
    "RTCP socket bind() at ",
)
"""PJSIP errors and warnings that are not: the first comes with every TLS connection
when no CA list is configured (a TLS server without --tls-ca), the second whenever
the other side closes a TLS connection properly, the last two when a call's RTP port is
taken and PJSIP goes on to the next (each account counts its ports from the first of
the range: with IPv6 there are several, see the agent's ``_ipv6_account``)."""
_BAD_PACKET = ("Dropping ", "Error processing ", "Error parsing '", "Error adding SDP media")
"""How PJSIP's complaints about a malformed packet start. Whoever sends the packets
chooses how many complaints there are (a flood of garbage: one a packet; an offer of 900
payload types: 880) and what the copy of the packet that follows the first line says
(lines that look like ours): see :class:`BadPacketLog`."""


class BadPacketLog:
    """Logs PJSIP's complaints about malformed packets: only their first line, made
    printable, and at most one every ``every`` seconds, with a count of the others."""

    def __init__(
        self,
        logger: logging.Logger,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.suppressed = 0
        """Complaints not logged since the last one that was."""
        self._clock = clock
        self._next = float("-inf")
        self._lock = threading.Lock()  # PJSIP logs from its SIP and media threads

    def __call__(self, level: int, text: str) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self.suppressed += 1
                return
            self._next = now + self.every
            more, self.suppressed = self.suppressed, 0
        line = "".join(c if c.isprintable() else "?" for c in text.split("\n", 1)[0][:300])
        if more:
            line += f" ({more} more malformed packets since the last such line)"
        self.logger.log(level, "%s", line)


_ANY = ("", "0.0.0.0", "::")
"""Listen hosts that mean every interface."""


def _listeners(opts: SipOptions) -> list[tuple[str, str, int]]:
    """(transport, address, port) of each SIP transport to open. A ``::`` host is both
    ``0.0.0.0`` and ``::``: PJSIP's IPv6 sockets take IPv6 only, so one server takes
    both kinds of callers with a transport of each."""
    listeners = []
    for name in opts.sip_transports:
        host, port = opts.tls_host_port if name == "tls" else opts.host_port
        for address in ["0.0.0.0", "::"] if host == "::" else [host]:
            listeners.append((name, address, port))
    return listeners


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SipError(VoipError):
    """PJSIP refused something; the message says what and why."""


def _require_pjsua2() -> None:
    if pj is None:
        raise SipError(
            "real SIP calls need the pjsua2 bindings: pip install 'voip[sip]' "
            "(the pjsua2-python wheel; CPython 3.8-3.12)"
        )


if pj is not None:

    class _LogWriter(pj.LogWriter):  # type: ignore[misc]
        """PJSIP's log lines into Python logging (logger ``voip.pjsip``)."""

        def __init__(self) -> None:
            super().__init__()
            self.logger = logging.getLogger("voip.pjsip")
            self.messages = logging.getLogger("voip.sip.messages")
            self.bad_packets = BadPacketLog(self.logger)

        def write(self, entry: Any) -> None:
            text = entry.msg.rstrip()
            if text.lstrip().startswith(("TX ", "RX ")):  # a whole SIP message (--sip-log)
                self.messages.info("%s", text)
                return
            level = _PJ_TO_PY_LEVEL.get(entry.level, logging.DEBUG)
            if text.startswith(_NOT_ERRORS):
                level = logging.DEBUG
            elif text.startswith(_BAD_PACKET):
                self.bad_packets(level, text)
                return
            self.logger.log(level, "%s", text)

    class _Endpoint(pj.Endpoint):  # type: ignore[misc]
        """Reports the calls PJSIP refuses by itself (e.g. when every call slot is busy,
        or an offer of plain RTP when SRTP is mandatory)."""

        srtp: SrtpMode = "off"
        """The ``srtp`` setting, to explain a 488."""
        srtp_needs_tls = False
        """Whether PJSIP refuses calls not over TLS (406), SRTP being on."""

        def onRejectedIncomingCall(self, prm: Any) -> None:
            try:
                reason = prm.reason
                if prm.statusCode == 486:
                    reason = "4 calls up, the most one process holds"
                elif prm.statusCode == 488 and self.srtp == "mandatory":
                    offer = prm.rdata.wholeMsg
                    if "a=crypto:" not in offer and "/SAVP" not in offer:
                        reason = "its offer has no SRTP (plain RTP) and --srtp is mandatory"
                elif prm.statusCode == 406 and self.srtp_needs_tls:
                    reason = "not over TLS, and SRTP keys only travel over TLS"
                log.warning(
                    "refused call from %s (%s): %s (%d)",
                    prm.remoteInfo,
                    prm.rdata.srcAddress,
                    reason,
                    prm.statusCode,
                )
            except Exception:
                log.exception("onRejectedIncomingCall")


class SipStack:
    """Creates, runs and destroys the endpoint on the SIP thread."""

    def __init__(self, opts: SipOptions) -> None:
        _require_pjsua2()
        self.opts = opts
        self.ep: Any = None
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="voip-sip", daemon=True)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stopping = False
        self._setup: Callable[[SipStack], None] = lambda _stack: None
        self._teardown: Callable[[SipStack], None] = lambda _stack: None
        self._log_writer: Any = None
        self._waker = Waker()
        self.conference = Conference()
        """The conference bridge, to pause idle media ports (loaded with the endpoint)."""

    # -- any thread ----------------------------------------------------------------------

    def start(
        self,
        setup: Callable[[SipStack], None] | None = None,
        teardown: Callable[[SipStack], None] | None = None,
    ) -> None:
        """Start the endpoint; ``setup(stack)`` then runs on the SIP thread (create
        accounts there), ``teardown(stack)`` before the endpoint is destroyed."""
        self._setup = setup or self._setup
        self._teardown = teardown or self._teardown
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` on the SIP thread; the future gets its result or exception."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if threading.current_thread() is self._thread:
            _run_into(fut, lambda: fn(*args))
        elif self._stopping or not self._thread.is_alive():
            # Queued work would never run, and would keep pjsua2 objects alive.
            fut.set_exception(SipError("the SIP endpoint has stopped"))
        else:
            self._queue.put((lambda: fn(*args), fut))
            self._waker.wake()
        return fut

    def stop(self) -> None:
        """Tear down and destroy the endpoint, then end the SIP thread."""
        if self._thread.is_alive():
            self._queue.put((self._request_stop, concurrent.futures.Future()))
            self._waker.wake()
            self._thread.join()

    # -- the SIP thread ------------------------------------------------------------------

    def _request_stop(self) -> None:
        self._stopping = True

    def _main(self) -> None:
        try:
            self._create()
            self._setup(self)
        except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
            self._start_error = exc if isinstance(exc, VoipError) else _as_sip_error(exc)
            self._destroy()
            self._started.set()
            return
        self._started.set()
        while not self._stopping:
            self._drain()
            self.ep.libHandleEvents(IDLE_MS if self._waker.active else POLL_MS)
        try:
            self._teardown(self)
        except Exception:
            log.exception("SIP teardown failed")
        self._drain()
        self._destroy()

    def _drain(self) -> None:
        while True:
            try:
                fn, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            _run_into(fut, fn)

    def pump(self, seconds: float) -> None:
        """Handle SIP events for ``seconds`` (SIP thread only; e.g. to let BYEs go out)."""
        for _ in range(max(1, int(seconds * 1000 / POLL_MS))):
            self.ep.libHandleEvents(POLL_MS)

    def _create(self) -> None:
        o = self.opts
        ep = _Endpoint()
        ep.srtp = o.srtp
        ep.srtp_needs_tls = o.srtp != "off" and not o.srtp_without_tls
        with quiet_fds(1, 2):  # PJSIP prints its first lines before its log settings apply
            ep.libCreate()
        self.ep = ep
        check_version(ep.libVersion().full)  # one warning if its struct layouts are unknown
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "voip (pjsua2)"
        for server in o.stun:
            cfg.uaConfig.stunServer.append(server)
        cfg.uaConfig.stunIgnoreFailure = True
        self._log_writer = _LogWriter()
        cfg.logConfig.writer = self._log_writer
        cfg.logConfig.level = max(o.pjsip_log_level, 4 if o.sip_log else 0)
        cfg.logConfig.consoleLevel = cfg.logConfig.level
        cfg.logConfig.msgLogging = bool(o.sip_log)
        cfg.logConfig.decor = 0
        m = cfg.medConfig
        m.clockRate = 8000
        m.sndClockRate = 8000
        m.audioFramePtime = 20
        m.ptime = 20
        m.noVad = True
        m.ecTailLen = 0
        m.threadCnt = 1
        # With the null sound device the conference clock must never stop, or outgoing
        # audio and RFC 4733 digits stall (platform notes).
        m.sndAutoCloseTime = -1
        ep.libInit(cfg)
        self.conference.load()  # before the sound device: it closes the device
        with realtime_threads(o.media_priority):
            ep.audDevManager().setNullDev()  # starts the media clock, a thread of PJSIP's
        kinds = {
            "udp": pj.PJSIP_TRANSPORT_UDP,
            "tcp": pj.PJSIP_TRANSPORT_TCP,
            "tls": pj.PJSIP_TRANSPORT_TLS,
        }
        self.transport_ids = []
        self.ipv6_transport_ids = []
        """The transports on IPv6 (also in :attr:`transport_ids`)."""
        for name, host, port in _listeners(o):
            ipv6 = ":" in host
            tc = pj.TransportConfig()
            tc.port = port
            if host not in _ANY:
                tc.boundAddress = host
            # The public address is for the transports of its family (a name counts as
            # IPv4); the others publish their own.
            # (A cluster's worker publishes its loopback address: only kamailio sees it.)
            public = o.public_address if (":" in o.public_address) == ipv6 else ""
            public = "" if o.front_host else public
            if public or host not in _ANY:
                tc.publicAddress = public or host
            if name == "tls":
                configure_tls(tc.tlsConfig, o)
            if name in ("tcp", "tls"):
                # PJSIP leaves Nagle on: a 200 OK would wait ~40 ms for the peer's delayed
                # ACK, and the caller would miss the start of the greeting.
                opt = pj.SockOpt()
                opt.level = socket.IPPROTO_TCP
                opt.optName = socket.TCP_NODELAY
                opt.setOptValInt(1)
                tc.sockOptParams.sockOpts.append(opt)
            kind = kinds[name] | (pj.PJSIP_TRANSPORT_IPV6 if ipv6 else 0)
            try:
                self.transport_ids.append(ep.transportCreate(kind, tc))
            except pj.Error as exc:
                raise SipError(
                    f"cannot listen for SIP on {name.upper()} {join_hostport(host, port)}:"
                    f" {exc.reason} (is another program using the port?)"
                ) from None
            if ipv6:
                self.ipv6_transport_ids.append(self.transport_ids[-1])
        self._set_codecs(ep)
        ep.libStart()
        self._waker.install()
        where = []
        plain = [t.upper() for t in o.sip_transports if t != "tls"]
        if plain:
            where.append(f"{o.listen} ({'+'.join(plain)})")
        if "tls" in o.sip_transports:
            tls_host, tls_port = o.tls_host_port
            where.append(f"{tls_host}:{tls_port} (TLS)")
        log.info(
            "SIP listening on %s, RTP ports %d-%d%s",
            ", ".join(where),
            *o.rtp_ports,
            "" if o.srtp == "off" else f", SRTP {o.srtp}",
        )
        if self.ipv6_transport_ids:
            log.info(
                "calls over IPv6 have their audio on IPv4 (this PJSIP build has no IPv6"
                " media); offers of audio on IPv6 only are refused (488)"
            )
        if plain and o.tls_cert and o.srtp != "off" and not o.srtp_without_tls:
            log.warning(
                "calls over %s will be refused (406): with --srtp the keys only travel"
                " over TLS (--srtp-without-tls allows them in clear)",
                "/".join(plain),
            )
        streams = [t.upper() for t in o.sip_transports if t in ("tcp", "tls")]
        if streams and not o.allow.networks and not _loopback(o.host_port[0]):
            # pjsua2 2.15 has 64 socket slots and asserts (aborts) when they run out; a
            # burst of connections does that before any SIP is read (tests/peers/tcp_churn.py).
            log.warning(
                "%s open to everyone: a burst of connections can abort this process"
                " (pjsua2 2.15's 64 socket slots); cap new connections in the"
                " firewall, or use UDP only (server_setup.md, section 4)",
                "/".join(streams),
            )

    def _set_codecs(self, ep: Any) -> None:
        wanted = {_CODEC_IDS[c]: 255 - i for i, c in enumerate(self.opts.codecs)}
        for info in ep.codecEnum2():
            cid = info.codecId
            ep.codecSetPriority(cid, next((p for k, p in wanted.items() if cid.startswith(k)), 0))

    def _destroy(self) -> None:
        if self.ep is None:
            return
        self._waker.uninstall()
        try:
            self.ep.libDestroy()
        except Exception:
            log.exception("libDestroy failed")
        self.ep = None


def _run_into(fut: concurrent.futures.Future[Any], fn: Callable[[], Any]) -> None:
    if not fut.set_running_or_notify_cancel():
        return
    try:
        fut.set_result(fn())
    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
        fut.set_exception(_as_sip_error(exc))


def _as_sip_error(exc: BaseException) -> BaseException:
    if pj is not None and isinstance(exc, pj.Error):
        return SipError(f"{exc.title or 'PJSIP'}: {exc.reason} ({exc.srcFile}:{exc.srcLine})")
    return exc
