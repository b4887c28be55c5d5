"""Settings of the SIP backend, each declared once (:mod:`voip.settings`).

Each field of :class:`SipOptions` says its parser, help, flag and roles; the flags of
``voip serve`` and ``voip dial``, the ``VOIP_<NAME>`` environment variables and the
``[sip]`` table of a ``--config`` TOML file are all read from these declarations, in
that order of precedence: defaults < TOML < environment < command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ...guard import SCANNER_USER_AGENTS
from ...settings import (
    add_arguments,
    boolean,
    choice,
    integer,
    items,
    number,
    resolve,
    setting,
    text,
)
from ...sipmsg import AllowList
from ...sipuri import split_hostport, split_register_uri

__all__ = [
    "SipOptions",
    "SipRole",
    "add_sip_arguments",
    "sip_options_from_args",
    "CODECS",
    "SRTP_MODES",
    "SrtpMode",
    "InbandMode",
]

CODECS = ("PCMU", "PCMA", "G722")
"""Codecs offered, in the default order of preference."""

SrtpMode = Literal["off", "optional", "mandatory"]
"""``srtp`` settings: plain RTP only; SRTP when the other side offers or accepts it;
SRTP or no call."""
SRTP_MODES: tuple[SrtpMode, ...] = get_args(SrtpMode)

InbandMode = Literal["auto", "on", "off"]
"""``inband_dtmf`` settings: listen for DTMF tones in the audio when RFC 4733 was not
negotiated, always, never."""

MediaPriority = Literal["realtime", "normal"]
"""``media_priority`` settings: PJSIP's media clock thread at ``SCHED_RR`` when the system
allows it (:mod:`.priority` says why), or left at normal priority."""

SipRole = Literal["server", "dialler"]

SERVER = ("server",)

METRICS_PORT = 9464
"""The metrics' port when ``metrics`` names a host alone (OpenTelemetry's Prometheus
exporter's, free of Prometheus' own 9090-9100)."""


# -- parsers of this backend's values --------------------------------------------------------


def _hostport(default_port: int, example: int = 5060) -> Any:
    def parse(value: Any) -> str:
        host_port = text(value)
        try:
            split_hostport(host_port, default_port)
        except ValueError:
            raise ValueError(
                "HOST:PORT with a port from 0 (any free port) to 65535, e.g."
                f" 0.0.0.0:{example} or [::]:{example}"
            ) from None
        return host_port

    return parse


def _optional_hostport(default_port: int, example: int = 5060) -> Any:
    parse = _hostport(default_port, example)
    return lambda value: parse(value) if value != "" else ""


def _port_range(value: Any) -> tuple[int, int]:
    accepted = (
        "FIRST-LAST, an increasing range of at least 4 ports within 1024-65535"
        " (each call takes 2), e.g. 4000-4999"
    )
    first, sep, last = text(value).partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        raise ValueError(accepted) from None
    if not 1024 <= lo <= hi <= 65535 or hi - lo < 3:
        raise ValueError(accepted)
    return lo, hi


def _codec(value: Any) -> str:
    name = text(value).strip().upper()
    if name not in CODECS:
        raise ValueError(f"choose from {', '.join(CODECS)}")
    return name


def _register(value: Any) -> str:
    uri = text(value)
    if uri:
        try:
            split_register_uri(uri)
        except ValueError:
            raise ValueError(
                "sip:USER@HOST[:PORT], e.g. sip:1001@pbx.example (the password goes in"
                " --password, not in the URI)"
            ) from None
    return uri


def _allow(value: Any) -> AllowList:
    return AllowList(items(text)(value))


def _join_allow(value: Any) -> AllowList:
    return AllowList(items(text, empty=False)(value))


def _join(value: Any) -> str:
    uri = text(value).strip()
    if uri:
        host = uri[4:] if uri.lower().startswith("sip:") else ""
        try:
            if not host or any(c in host for c in "@;[]") or not split_hostport(host, 5060)[0]:
                raise ValueError(uri)
        except ValueError:
            raise ValueError(
                "sip:HOST[:PORT], the front's SIP address as this machine reaches it, e.g."
                " sip:192.0.2.10:5060"
            ) from None
    return uri


_RATE = "requests a second from one address, 0 for no limit"


@dataclass
class SipOptions:
    """How the SIP endpoint listens, registers and sends media.

    Build one with keywords (``SipOptions(listen="127.0.0.1:5062")``, unchecked) or from
    every layer with :func:`sip_options_from_args`.
    """

    listen: str = setting(
        "0.0.0.0:5060",
        help="SIP address and port (port 0: any free one)",
        parse=_hostport(5060),
        metavar="HOST:PORT",
        defaults={"dialler": "0.0.0.0:0"},
    )
    """Address and port for SIP, e.g. ``127.0.0.1:5062`` (a dialler's default: any free
    port)."""
    transports: tuple[str, ...] = setting(
        ("udp", "tcp"),
        help="SIP transports to open on that port (tls comes on with --tls-cert too)",
        parse=items(choice("udp", "tcp", "tls"), empty=False),
        flag="--transport",
        metavar="NAME",
        kind="list",
        defaults={"dialler": ("udp",)},
    )
    """SIP transports to open on that port (a dialler adds TLS to call a TLS URI)."""
    rtp_ports: tuple[int, int] = setting(
        (4000, 4999),
        help="UDP ports for RTP, two a call",
        parse=_port_range,
        metavar="FIRST-LAST",
        show_default="4000-4999",
    )
    """First and last UDP port for RTP (each call takes two: RTP and RTCP)."""
    public_address: str = setting(
        "",
        help="address to put in Contact and SDP behind NAT",
        parse=text,
        metavar="ADDR",
        show_default="the listen address",
    )
    """Address to put in Contact and SDP when behind NAT (empty: the listen address)."""
    stun: tuple[str, ...] = setting(
        (),
        help="STUN server to learn the public address from",
        parse=items(_hostport(3478)),
        metavar="HOST:PORT",
        kind="list",
    )
    """STUN servers (``host:port``) used to learn the public address."""
    codecs: tuple[str, ...] = setting(
        CODECS,
        help="codecs allowed, in order of preference",
        parse=items(_codec, empty=False),
        metavar="LIST",
        kind="list",
    )
    """Codecs allowed, in our order of preference for calls we place (answering, the
    caller's order among them usually wins); codecs not listed are disabled."""
    allow: AllowList = setting(
        help="only accept calls from this address or network",
        parse=_allow,
        metavar="CIDR",
        kind="list",
        factory=AllowList,
        roles=SERVER,
        show_default="anyone",
    )
    """Source addresses allowed to call; empty: anyone."""
    max_calls: int = setting(
        4,
        help="concurrent calls; more get 486 Busy Here",
        parse=integer(1, 4, "the pjsua2 wheel holds 4 calls a process; run more for more"),
        metavar="N",
        roles=SERVER,
    )
    """Concurrent calls; more get 486 Busy Here (the pjsua2 wheel allows at most 4)."""
    workers: int = setting(
        0,
        help="answer through kamailio with N worker processes (4 calls each), kamailio"
        " taking the listen address; 0: one process, no kamailio",
        parse=integer(0, 64, "0: one process; each worker holds --max-calls calls"),
        metavar="N",
        roles=SERVER,
    )
    """Worker processes behind a kamailio front (:mod:`voip.cluster`); 0: this process
    answers alone, as before. Each worker is this app on its own loopback SIP port (the
    listen port + 1001 + its index; kamailio's side of the loopback is the listen port
    + 1000) with its share of ``rtp_ports``."""
    join: str = setting(
        "",
        help="run --workers only, joining the front (another machine's voip with"
        " --workers) at this SIP URI, e.g. sip:192.0.2.10:5060",
        parse=_join,
        metavar="URI",
        roles=SERVER,
        show_default="none: this machine is the front",
    )
    """The front this machine's workers join (``sip:HOST[:PORT]``), another supervisor's
    kamailio; empty: this supervisor runs its own front. Joined, it runs ``workers``
    workers on the ``listen`` host (the listen port + 1001 and up, where the front must
    reach them), each added to the front's dispatcher by a REGISTER it refreshes, and
    removed by one with ``Expires: 0`` when this supervisor stops
    (:mod:`voip.cluster.join`)."""
    join_allow: AllowList = setting(
        help="addresses whose workers may join this front (--join); each adds only its own address",
        parse=_join_allow,
        metavar="CIDR",
        kind="list",
        factory=lambda: AllowList(("127.0.0.0/8",)),
        roles=SERVER,
        show_default="loopback only",
    )
    """Source addresses a front (``workers`` without ``join``) takes joining workers
    from; a worker may only join with the address its REGISTER came from. Default: the
    loopback alone, as anyone allowed here receives calls."""
    grace: float = setting(
        10.0,
        help="seconds running calls get to finish on SIGTERM",
        parse=number(0, "seconds"),
        metavar="SECONDS",
        roles=SERVER,
    )
    """Seconds running handlers get to finish on SIGTERM before calls are hung up."""
    register: str = setting(
        "",
        help="register this account with a PBX or provider, e.g. sip:1001@pbx.example",
        parse=_register,
        metavar="URI",
        show_default="none: calls come straight to the listen address",
    )
    """Registrar account URI, e.g. ``sip:1001@pbx.example`` (empty: direct mode)."""
    password: str = setting(
        "",
        help="password for --register and for calls the PBX challenges"
        " (VOIP_PASSWORD keeps it off the command line)",
        parse=text,
        show_default="",
    )
    """Password for digest authentication."""
    auth_user: str = setting(
        "",
        help="authentication user name",
        parse=text,
        metavar="NAME",
        show_default="the user part of --register",
    )
    """User name for digest authentication (empty: the user part of ``register``)."""
    realm: str = setting(
        "*", help="authentication realm", parse=text, show_default="any the registrar asks"
    )
    """Digest realm the credentials are for (``*``: whatever the registrar asks)."""
    register_expiry: int = setting(
        300,
        help="seconds a registration lasts; it is refreshed shortly before",
        parse=integer(10, None, "PJSIP refreshes a registration 5 s before it expires"),
        metavar="SECONDS",
    )
    """Seconds a registration lasts; PJSIP refreshes it shortly before (at least 10)."""
    register_retry: int = setting(
        60,
        help="seconds between registration attempts after a failure",
        parse=integer(1),
        metavar="SECONDS",
    )
    """Seconds between registration attempts after a failure (registrar down, rejected)."""
    sip_log: bool = setting(False, help="log every SIP message", parse=boolean, kind="switch")
    """Log every SIP message."""
    pjsip_log_level: int = setting(
        2,
        help="PJSIP's own log verbosity",
        parse=integer(0, 6),
        metavar="0-6",
    )
    """PJSIP's own log verbosity (0-6) when it goes to our log."""
    inband_dtmf: InbandMode = setting(
        "auto",
        help="detect DTMF tones in the audio: auto (when RFC 4733 is not negotiated), on, off",
        parse=choice(*get_args(InbandMode)),
        metavar="MODE",
    )
    """In-band DTMF detection: ``auto`` (when RFC 4733 is not negotiated), ``on``, ``off``."""
    media_priority: MediaPriority = setting(
        "realtime",
        help="priority of the thread that paces calls' audio: realtime (SCHED_RR, when"
        " allowed) or normal",
        parse=choice(*get_args(MediaPriority)),
        metavar="PRIORITY",
        defaults={"dialler": "normal"},
    )
    """Priority of PJSIP's media clock thread: ``realtime`` (``SCHED_RR`` where the process
    is allowed it, else normal with a warning; a server's default) or ``normal`` (a
    dialler's: one call on a desktop needs no more)."""
    invite_rate: float = setting(
        5.0,
        help="new calls a second from one address before 503 (0: no limit)",
        parse=number(0, _RATE),
        metavar="N",
        roles=SERVER,
    )
    """New-call INVITEs a second taken from one source address (bursts of twice that);
    more get 503. 0: no limit."""
    options_rate: float = setting(
        5.0,
        help="OPTIONS and other requests a second from one address before they are"
        " dropped (0: no limit)",
        parse=number(0, _RATE),
        metavar="N",
        roles=SERVER,
    )
    """OPTIONS and other out-of-dialog requests but INVITE a second from one source
    (bursts of twice that); more are dropped. 0: no limit."""
    call_rate: float = setting(
        20.0,
        help="new calls a second from everyone together before 503 (0: no limit)",
        parse=number(0, "calls a second, 0 for no limit"),
        metavar="N",
        roles=SERVER,
    )
    """New calls a second from all sources together; more get 503. 0: no limit (pjsua2
    2.15 aborts above about 60 a second)."""
    scanner_user_agents: tuple[str, ...] = setting(
        SCANNER_USER_AGENTS,
        help="drop requests whose User-Agent contains TEXT, in addition to known scanners",
        parse=items(text),
        flag="--scanner-user-agent",
        metavar="TEXT",
        kind="list",
        roles=SERVER,
        extends=True,
        show_default="known scanners",
    )
    """User-Agent fragments whose requests are dropped unanswered (case-insensitive);
    empty: drop none. The command line adds to the list; the environment and the TOML
    file replace it."""
    tls_listen: str = setting(
        "",
        help="SIP over TLS address",
        parse=_optional_hostport(5061),
        metavar="HOST:PORT",
        show_default="the SIP port + 1",
    )
    """Address and port for SIP over TLS (empty: the ``listen`` host and its port + 1, so
    5061 beside 5060). Used when ``transports`` has ``tls`` or a certificate is given."""
    tls_cert: str = setting(
        "",
        help="TLS certificate (PEM, with its chain); turns TLS on",
        parse=text,
        metavar="PEM",
        show_default="",
    )
    """PEM certificate (with its chain) shown on TLS connections. With ``tls_key`` it turns
    TLS on; a server needs it, a dialler only for a PBX that asks for client certificates."""
    tls_key: str = setting(
        "", help="private key of --tls-cert (PEM, unencrypted)", parse=text, metavar="PEM"
    )
    """PEM private key of ``tls_cert`` (not encrypted)."""
    tls_ca: str = setting(
        "",
        help="CA certificates trusted to verify the other side",
        parse=text,
        metavar="PEM",
        show_default="a dialler: the system's; a server: none",
    )
    """PEM file of the CA certificates trusted to verify the other side. Empty: a dialler
    (no ``tls_cert``) trusts the system's CAs; a server trusts none, and so verifies no
    one (PJSIP 2.15 stalls TLS handshakes it accepts when given the system's long list).
    Required with ``tls_verify_client``."""
    tls_verify_client: bool = setting(
        False,
        help="only accept TLS clients with a certificate signed by --tls-ca",
        parse=boolean,
        kind="switch",
        roles=SERVER,
    )
    """Only accept TLS clients whose certificate ``tls_ca`` verifies."""
    tls_verify_server: bool = setting(
        True,
        help="accept any certificate from servers we connect to (tests only)",
        parse=boolean,
        kind="switch",
        negative="--tls-no-verify-server",
    )
    """Drop a TLS connection we open (a call placed, a registration, a BYE to a phone's
    own TLS port) when the other side's certificate is not signed by a trusted CA (see
    ``tls_ca``) for the name or address dialled. Only applies when there is a CA list."""
    srtp: SrtpMode = setting(
        "off",
        help="encrypt audio: off, optional, mandatory (plain RTP refused)",
        parse=choice(*SRTP_MODES),
        metavar="MODE",
    )
    """SRTP for the audio (SDES keys in the SDP): ``off``, ``optional`` (used when the
    other side offers or accepts it) or ``mandatory`` (calls offering plain RTP are
    refused with 488; calls placed offer SRTP alone). Unless ``srtp_without_tls``,
    either takes and places calls over TLS only (PJSIP refuses others with 406)."""
    srtp_without_tls: bool = setting(
        False,
        help="allow SRTP keys over plain UDP/TCP SIP (tests only: they travel in clear)",
        parse=boolean,
        kind="switch",
    )
    """Allow SRTP with SIP over UDP or TCP, whose SDP carries the keys in clear: for
    tests, or a network where nobody else sees the SIP."""
    metrics: str = setting(
        "",
        help="serve Prometheus metrics at http://HOST:PORT/metrics",
        parse=_optional_hostport(METRICS_PORT, METRICS_PORT),
        metavar="HOST:PORT",
        roles=SERVER,
        show_default="off",
    )
    """Address and port to serve Prometheus metrics on (calls up, answered, refused by
    reason, handler errors, set-up time; see :mod:`.metrics`); empty: none. A host alone
    takes port 9464. With ``workers``, the supervisor serves every worker's there."""
    python_media: bool = setting(
        False,
        help="mix and record every sound in Python (by default PJSIP plays plain sounds"
        " and records recordPCM itself, for less CPU)",
        parse=boolean,
        kind="switch",
    )
    """Mix and record everything in Python, frame by frame. By default PJSIP plays
    plain sounds (``playPCM``, ``playTone``, ``say``) and records ``recordPCM`` by
    itself, in C, which costs a fraction of the CPU; this is for comparison and
    diagnosis."""

    front_host: str = ""
    """Not a setting: set in the worker processes of a cluster (:mod:`voip.cluster`)
    only, to the host kamailio listens on for callers. Such a worker takes SIP from
    kamailio alone, on its loopback address (which its Contact and Via publish, not
    ``public_address``), binds its RTP there (callers send audio to the worker
    directly), and answers kamailio's OPTIONS with its room (200, or 503 when full
    or stopping)."""
    outbound_proxy: str = ""
    """Not a setting: in a cluster's worker, the front's SIP URI (``sip:HOST:PORT;lr``)
    its own calls out (``voip.dial``, ``call.connect``) go through: kamailio
    record-routes them and relays them from its public address."""
    metrics_worker: str = ""
    """Not a setting: in a cluster's worker whose supervisor serves ``--metrics``, the
    worker's index. Its metrics then carry a ``worker`` label and go to
    ``prometheus_client``'s multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by the
    supervisor), and ``metrics`` is empty: a worker opens no HTTP port."""

    @property
    def host_port(self) -> tuple[str, int]:
        return split_hostport(self.listen, 5060)

    @property
    def join_host_port(self) -> tuple[str, int]:
        """The front's host and port in ``join`` (port 5060 when not given)."""
        return split_hostport(self.join[4:], 5060)

    @property
    def tls_host_port(self) -> tuple[str, int]:
        """Where TLS listens: ``tls_listen``, or the SIP host with its port + 1."""
        host, port = self.host_port
        if self.tls_listen:
            return split_hostport(self.tls_listen, 5061)
        return host, port + 1 if port else 0

    @property
    def sip_transports(self) -> tuple[str, ...]:
        """The transports to open: ``transports``, plus ``tls`` once a certificate is given."""
        if self.tls_cert and "tls" not in self.transports:
            return (*self.transports, "tls")
        return self.transports


def add_sip_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, role: SipRole = "server"
) -> None:
    """The flags of the SIP settings ``role`` uses, and ``--config``."""
    parser.add_argument(
        "--config",
        metavar="TOML",
        help="read SIP settings from this TOML file (a [sip] table; the environment"
        " and the command line override it)",
    )
    add_arguments(parser, SipOptions, role)


def sip_options_from_args(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    role: SipRole = "server",
) -> SipOptions:
    """Defaults (``role``'s), then the TOML file (``--config``), then ``VOIP_<SETTING>``
    environment variables (e.g. ``VOIP_PASSWORD``, which keeps a secret off the command
    line), then the command line. Raises :class:`~voip.errors.InvalidArgumentError`
    naming the setting, where its value came from and what is accepted."""
    return resolve(SipOptions, role, args, environ, getattr(args, "config", None))
