"""Settings of the SIP backend, from the command line, the environment or a TOML file."""

from __future__ import annotations

import argparse
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ...errors import InvalidArgumentError
from ...guard import SCANNER_USER_AGENTS
from ...sipmsg import AllowList, split_hostport

__all__ = [
    "SipOptions",
    "add_sip_arguments",
    "sip_options_from_args",
    "split_register_uri",
    "check_security",
    "uri_wants_tls",
    "CODECS",
    "SRTP_MODES",
]

CODECS = ("PCMU", "PCMA", "G722")
"""Codecs offered, in the default order of preference."""

SRTP_MODES = ("off", "optional", "mandatory")
"""``srtp`` settings: plain RTP only; SRTP when the other side offers or accepts it;
SRTP or no call."""


@dataclass
class SipOptions:
    """How the SIP endpoint listens, registers and sends media."""

    listen: str = "0.0.0.0:5060"
    """Address and port for SIP, e.g. ``127.0.0.1:5062``."""
    transports: tuple[str, ...] = ("udp", "tcp")
    """SIP transports to open on that port."""
    rtp_ports: tuple[int, int] = (4000, 4999)
    """First and last UDP port for RTP (each call takes two: RTP and RTCP)."""
    public_address: str = ""
    """Address to put in Contact and SDP when behind NAT (empty: the listen address)."""
    stun: tuple[str, ...] = ()
    """STUN servers (``host:port``) used to learn the public address."""
    codecs: tuple[str, ...] = CODECS
    """Codecs allowed, in our order of preference for calls we place (answering, the
    caller's order among them usually wins); codecs not listed are disabled."""
    allow: AllowList = field(default_factory=AllowList)
    """Source addresses allowed to call; empty: anyone."""
    max_calls: int = 4
    """Concurrent calls; more get 486 Busy Here (the pjsua2 wheel allows at most 4)."""
    grace: float = 10.0
    """Seconds running handlers get to finish on SIGTERM before calls are hung up."""
    register: str = ""
    """Registrar account URI, e.g. ``sip:1001@pbx.example`` (empty: direct mode)."""
    password: str = ""
    auth_user: str = ""
    """User name for digest authentication (empty: the user part of ``register``)."""
    realm: str = "*"
    """Digest realm the credentials are for (``*``: whatever the registrar asks)."""
    register_expiry: int = 300
    """Seconds a registration lasts; PJSIP refreshes it shortly before (at least 10)."""
    register_retry: int = 60
    """Seconds between registration attempts after a failure (registrar down, rejected)."""
    sip_log: bool = False
    """Log every SIP message."""
    pjsip_log_level: int = 2
    """PJSIP's own log verbosity (0-6) when it goes to our log."""
    inband_dtmf: str = "auto"
    """In-band DTMF detection: ``auto`` (when RFC 4733 is not negotiated), ``on``, ``off``."""
    invite_rate: float = 5.0
    """New-call INVITEs a second taken from one source address (bursts of twice that);
    more get 503. 0: no limit."""
    options_rate: float = 5.0
    """OPTIONS and other out-of-dialog requests but INVITE a second from one source
    (bursts of twice that); more are dropped. 0: no limit."""
    call_rate: float = 20.0
    """New calls a second from all sources together; more get 503. 0: no limit (pjsua2
    2.15 aborts above about 60 a second)."""
    scanner_user_agents: tuple[str, ...] = SCANNER_USER_AGENTS
    """User-Agent fragments whose requests are dropped unanswered (case-insensitive);
    empty: drop none."""
    tls_listen: str = ""
    """Address and port for SIP over TLS (empty: the ``listen`` host and its port + 1, so
    5061 beside 5060). Used when ``transports`` has ``tls`` or a certificate is given."""
    tls_cert: str = ""
    """PEM certificate (with its chain) shown on TLS connections. With ``tls_key`` it turns
    TLS on; a server needs it, a dialler only for a PBX that asks for client certificates."""
    tls_key: str = ""
    """PEM private key of ``tls_cert`` (not encrypted)."""
    tls_ca: str = ""
    """PEM file of the CA certificates trusted to verify the other side. Empty: a dialler
    (no ``tls_cert``) trusts the system's CAs; a server trusts none, and so verifies no
    one (PJSIP 2.15 stalls TLS handshakes it accepts when given the system's long list).
    Required with ``tls_verify_client``."""
    tls_verify_client: bool = False
    """Only accept TLS clients whose certificate ``tls_ca`` verifies."""
    tls_verify_server: bool = True
    """Drop a TLS connection we open (a call placed, a registration, a BYE to a phone's
    own TLS port) when the other side's certificate is not signed by a trusted CA (see
    ``tls_ca``) for the name or address dialled. Only applies when there is a CA list."""
    srtp: str = "off"
    """SRTP for the audio (SDES keys in the SDP): ``off``, ``optional`` (used when the
    other side offers or accepts it) or ``mandatory`` (calls offering plain RTP are
    refused with 488; calls placed offer SRTP alone). Unless ``srtp_without_tls``,
    either takes and places calls over TLS only (PJSIP refuses others with 406)."""
    srtp_without_tls: bool = False
    """Allow SRTP with SIP over UDP or TCP, whose SDP carries the keys in clear: for
    tests, or a network where nobody else sees the SIP."""
    python_media: bool = False
    """Mix and record everything in Python, frame by frame. By default PJSIP plays
    plain sounds (``playPCM``, ``playTone``, ``say``) and records ``recordPCM`` by
    itself, in C, which costs a fraction of the CPU; this is for comparison and
    diagnosis."""

    @property
    def host_port(self) -> tuple[str, int]:
        return split_hostport(self.listen, 5060)

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


def add_sip_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SIP (with --sip, or `voip serve`)")
    g.add_argument(
        "--sip", action="store_true", help="answer real SIP calls instead of simulating one"
    )
    g.add_argument("--config", metavar="TOML", help="read SIP settings from this TOML file")
    g.add_argument("--listen", metavar="HOST:PORT", help="SIP address (default 0.0.0.0:5060)")
    g.add_argument(
        "--transport",
        action="append",
        choices=["udp", "tcp", "tls"],
        help="SIP transport; repeat for several (default: udp and tcp, plus tls with --tls-cert)",
    )
    g.add_argument(
        "--rtp-ports", metavar="FIRST-LAST", help="UDP ports for RTP (default 4000-4999)"
    )
    g.add_argument("--public-address", metavar="ADDR", help="address to advertise behind NAT")
    g.add_argument("--stun", action="append", metavar="HOST:PORT", help="STUN server; repeatable")
    g.add_argument("--codecs", metavar="LIST", help="codec preference, e.g. PCMU,PCMA,G722")
    g.add_argument(
        "--allow", action="append", metavar="CIDR", help="only accept calls from here; repeatable"
    )
    g.add_argument("--max-calls", type=int, metavar="N", help="concurrent calls (1-4, default 4)")
    g.add_argument(
        "--grace", type=float, metavar="SECONDS", help="shutdown grace period (default 10)"
    )
    g.add_argument("--register", metavar="URI", help="register this account, e.g. sip:1001@pbx")
    g.add_argument("--password", help="registration password")
    g.add_argument("--auth-user", help="authentication user name (default: the URI's user)")
    g.add_argument("--realm", help="authentication realm (default: any)")
    g.add_argument(
        "--register-expiry",
        type=int,
        metavar="SECONDS",
        help="registration lifetime asked of the registrar (default 300)",
    )
    g.add_argument(
        "--register-retry",
        type=int,
        metavar="SECONDS",
        help="wait between registration attempts after a failure (default 60)",
    )
    g.add_argument("--sip-log", action="store_true", help="log every SIP message")
    g.add_argument(
        "--inband-dtmf",
        choices=["auto", "on", "off"],
        help="detect DTMF tones in the audio (default auto: when RFC 4733 is not negotiated)",
    )
    g.add_argument(
        "--invite-rate",
        type=float,
        metavar="N",
        help="new calls a second from one address before 503 (default 5; 0: no limit)",
    )
    g.add_argument(
        "--options-rate",
        type=float,
        metavar="N",
        help="OPTIONS and other requests a second from one address before they are dropped"
        " (default 5; 0: no limit)",
    )
    g.add_argument(
        "--call-rate",
        type=float,
        metavar="N",
        help="new calls a second from everyone together before 503 (default 20; 0: no limit)",
    )
    g.add_argument(
        "--scanner-user-agent",
        action="append",
        metavar="TEXT",
        help="drop requests whose User-Agent contains TEXT, in addition to known scanners;"
        " repeatable",
    )
    g.add_argument(
        "--tls-listen", metavar="HOST:PORT", help="SIP over TLS address (default: SIP port + 1)"
    )
    g.add_argument("--tls-cert", metavar="PEM", help="TLS certificate (chain); turns TLS on")
    g.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    g.add_argument("--tls-ca", metavar="PEM", help="CA certificates trusted to verify peers")
    g.add_argument(
        "--tls-verify-client",
        action="store_true",
        help="only accept TLS clients with a certificate signed by --tls-ca",
    )
    g.add_argument(
        "--tls-no-verify-server",
        dest="tls_verify_server",
        action="store_false",
        default=None,
        help="accept any certificate from servers we connect to (tests only)",
    )
    g.add_argument(
        "--srtp",
        choices=list(SRTP_MODES),
        help="encrypt audio: off (default), optional, mandatory (plain RTP refused)",
    )
    g.add_argument(
        "--srtp-without-tls",
        action="store_true",
        help="allow SRTP keys over plain UDP/TCP SIP (tests only: they travel in clear)",
    )
    g.add_argument(
        "--python-media",
        action="store_true",
        help="mix and record every sound in Python (default: PJSIP plays plain sounds and"
        " records recordPCM itself, for less CPU)",
    )


def _parse_ports(text: str) -> tuple[int, int]:
    first, sep, last = str(text).partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        raise InvalidArgumentError(f"rtp ports {text!r}: use FIRST-LAST, e.g. 4000-4999") from None
    if not 1024 <= lo <= hi <= 65535 or hi - lo < 3:
        raise InvalidArgumentError(
            f"rtp ports {text!r}: need an increasing range of at least 4 ports within"
            " 1024-65535 (each call takes 2)"
        )
    return lo, hi


def _convert(name: str, value: Any) -> Any:
    """Turn a command-line or TOML value into the field's type, checking it."""
    if name == "transports":
        items = [value] if isinstance(value, str) else list(value)
        bad = [t for t in items if t not in ("udp", "tcp", "tls")]
        if bad or not items:
            raise InvalidArgumentError(f"transports {items}: choose from udp, tcp, tls")
        return tuple(dict.fromkeys(items))
    if name == "tls_listen":
        if value:
            split_hostport(value, 5061)  # validates the port
        return str(value)
    if name == "srtp":
        if value not in SRTP_MODES:
            raise InvalidArgumentError(f"srtp {value!r}: choose from {', '.join(SRTP_MODES)}")
        return value
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{name} {value!r}: true or false")
        return value
    if name == "rtp_ports":
        return _parse_ports(value)
    if name == "stun":
        return tuple([value] if isinstance(value, str) else value)
    if name == "codecs":
        items = [c.strip().upper() for c in (value.split(",") if isinstance(value, str) else value)]
        bad = [c for c in items if c not in CODECS]
        if bad or not items:
            raise InvalidArgumentError(f"codecs {items}: choose from {', '.join(CODECS)}")
        return tuple(items)
    if name == "allow":
        return AllowList([value] if isinstance(value, str) else value)
    if name == "max_calls":
        if not 1 <= int(value) <= 4:
            raise InvalidArgumentError(
                f"max calls {value}: a process holds 1 to 4 calls (the pjsua2 wheel's limit); "
                "run more processes for more"
            )
        return int(value)
    if name == "listen":
        split_hostport(value, 5060)  # validates the port
        return value
    if name == "register":
        if value:
            split_register_uri(value)  # validates it
        return str(value)
    if name == "register_expiry":
        if int(value) < 10:
            raise InvalidArgumentError(
                f"register expiry {value}: at least 10 seconds (PJSIP refreshes a"
                " registration 5 s before it expires, and no sooner than 5 s after it)"
            )
        return int(value)
    if name in ("invite_rate", "options_rate", "call_rate"):
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = -1.0
        if not rate >= 0:
            raise InvalidArgumentError(
                f"{name.replace('_', ' ')} {value!r}: a number of requests a second, 0 for no limit"
            )
        return rate
    if name == "scanner_user_agents":
        return tuple([value] if isinstance(value, str) else value)
    if name == "register_retry":
        if int(value) < 1:
            raise InvalidArgumentError(f"register retry {value}: at least 1 second")
        return int(value)
    return value


_REGISTER_URI = re.compile(
    r"(?P<scheme>sips?):(?P<user>[^@:;<>\s]+)@(?P<host>\[[^\]]+\]|[^:;<>\s\[]+)"
    r"(?::(?P<port>\d{1,5}))?(?P<params>(?:;[^;<>\s]*)*)",
    re.IGNORECASE,
)


def split_register_uri(uri: str) -> tuple[str, str, str]:
    """The account URI, its user and the registrar URI of a ``register`` setting.

    ``sip:1001@pbx.example:5080;transport=tcp`` gives
    ``("sip:1001@pbx.example:5080;transport=tcp", "1001", "sip:pbx.example:5080;transport=tcp")``.
    Raises :class:`InvalidArgumentError` for anything but ``sip(s):USER@HOST[:PORT][;params]``.
    """
    text = uri.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    m = _REGISTER_URI.fullmatch(text)
    if m is None:
        raise InvalidArgumentError(
            f"register {uri!r}: use sip:USER@HOST[:PORT], e.g. sip:1001@pbx.example"
            " (the password goes in --password, not in the URI)"
        )
    port = m.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise InvalidArgumentError(f"register {uri!r}: port {port} is out of range")
    hostport = m.group("host") + (f":{port}" if port else "")
    scheme, params = m.group("scheme").lower(), m.group("params")
    return (
        f"{scheme}:{m.group('user')}@{hostport}{params}",
        m.group("user"),
        f"{scheme}:{hostport}{params}",
    )


ENV_PREFIX = "VOIP_"
_LISTS = ("transports", "stun", "allow", "codecs", "scanner_user_agents")
_FLAGS = (
    "sip_log",
    "tls_verify_client",
    "tls_verify_server",
    "srtp_without_tls",
    "python_media",
)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``VOIP_LISTEN``, ``VOIP_PASSWORD``, ``VOIP_ALLOW`` (comma-separated)...:
    one variable per setting, its name upper-cased."""
    values: dict[str, Any] = {}
    for f in fields(SipOptions):
        text = environ.get(ENV_PREFIX + f.name.upper())
        if text is None:
            continue
        if f.name in _LISTS:
            values[f.name] = [part.strip() for part in text.split(",") if part.strip()]
        elif f.name in _FLAGS:
            values[f.name] = _flag(f.name, text)
        elif f.name in ("grace", "invite_rate", "options_rate", "call_rate"):
            values[f.name] = _number(f.name, text, float)
        elif f.name in ("max_calls", "register_expiry", "register_retry", "pjsip_log_level"):
            values[f.name] = _number(f.name, text, int)
        else:
            values[f.name] = text
    return values


def _flag(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise InvalidArgumentError(f"{ENV_PREFIX}{name.upper()}={text!r}: use 1 or 0 (yes, no)")


def _number(name: str, text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise InvalidArgumentError(
            f"{ENV_PREFIX}{name.upper()}={text!r} is not a {'whole ' if kind is int else ''}number"
        ) from None


def sip_options_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> SipOptions:
    """Defaults, then the TOML file (``--config``), then ``VOIP_<SETTING>`` environment
    variables (e.g. ``VOIP_PASSWORD``, which keeps a secret off the command line), then
    the command line."""
    values: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgumentError(f"{path}: cannot read the SIP settings: {exc}") from None
        table = data.get("sip", data)
        known = {f.name for f in fields(SipOptions)}
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in known:
                raise InvalidArgumentError(
                    f"{path}: unknown setting {key!r}; known: {', '.join(sorted(known))}"
                )
            values[name] = value
    values.update(_from_environment(os.environ if environ is None else environ))
    cli = {
        "listen": args.listen,
        "transports": args.transport,
        "rtp_ports": args.rtp_ports,
        "public_address": args.public_address,
        "stun": args.stun,
        "codecs": args.codecs,
        "allow": args.allow,
        "max_calls": args.max_calls,
        "grace": args.grace,
        "register": args.register,
        "password": args.password,
        "auth_user": args.auth_user,
        "realm": args.realm,
        "register_expiry": getattr(args, "register_expiry", None),
        "register_retry": getattr(args, "register_retry", None),
        "sip_log": args.sip_log or None,
        "inband_dtmf": args.inband_dtmf,
        "invite_rate": getattr(args, "invite_rate", None),
        "options_rate": getattr(args, "options_rate", None),
        "call_rate": getattr(args, "call_rate", None),
        "tls_listen": getattr(args, "tls_listen", None),
        "tls_cert": getattr(args, "tls_cert", None),
        "tls_key": getattr(args, "tls_key", None),
        "tls_ca": getattr(args, "tls_ca", None),
        "tls_verify_client": getattr(args, "tls_verify_client", False) or None,
        "tls_verify_server": getattr(args, "tls_verify_server", None),
        "srtp": getattr(args, "srtp", None),
        "srtp_without_tls": getattr(args, "srtp_without_tls", False) or None,
        "python_media": getattr(args, "python_media", False) or None,
    }
    values.update({k: v for k, v in cli.items() if v is not None})
    extra_agents = getattr(args, "scanner_user_agent", None)
    if extra_agents:
        known = values.get("scanner_user_agents", SCANNER_USER_AGENTS)
        values["scanner_user_agents"] = [*known, *extra_agents]
    return SipOptions(**{k: _convert(k, v) for k, v in values.items()})


def uri_wants_tls(uri: str) -> bool:
    """Whether calling ``uri`` takes SIP over TLS: ``sips:`` or ``;transport=tls``."""
    text = uri.strip().lstrip("<").lower()
    return text.startswith("sips:") or ";transport=tls" in text


def check_security(opts: SipOptions, *, listening: bool) -> None:
    """Check the TLS and SRTP settings before PJSIP sees them.

    PJSIP takes any file name for a certificate and only fails when a connection
    comes; here a missing, unreadable or mismatched file is an error at start-up, naming
    the setting. ``listening``: for a server (a TLS listener needs a certificate), not
    for a dialler. Raises :class:`InvalidArgumentError`.
    """
    if bool(opts.tls_cert) != bool(opts.tls_key):
        given, missing = ("tls_cert", "tls_key") if opts.tls_cert else ("tls_key", "tls_cert")
        raise InvalidArgumentError(
            f"{_flag_name(given)} needs {_flag_name(missing)} too (the certificate's private key"
            " and the certificate go together)"
        )
    tls = "tls" in opts.sip_transports
    if listening and tls and not opts.tls_cert:
        raise InvalidArgumentError(
            "TLS needs a certificate: give --tls-cert FILE and --tls-key FILE"
            " (server_setup.md shows how to make a self-signed pair for testing)"
        )
    if opts.tls_verify_client and not opts.tls_ca:
        raise InvalidArgumentError(
            "--tls-verify-client needs --tls-ca, the CA certificates that signed the"
            " clients' certificates"
        )
    if opts.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        for key in ("tls_cert", "tls_key"):
            _readable(key, getattr(opts, key))
        try:
            context.load_cert_chain(opts.tls_cert, opts.tls_key, password=_no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cannot use --tls-cert {opts.tls_cert} with --tls-key {opts.tls_key}: {exc}"
                " (both PEM, the key unencrypted and the certificate's own)"
            ) from None
    if opts.tls_ca:
        _readable("tls_ca", opts.tls_ca)
        try:
            ssl.create_default_context(cafile=opts.tls_ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"--tls-ca {opts.tls_ca}: not a PEM file of CA certificates ({exc})"
            ) from None
    if listening and opts.srtp != "off" and not tls and not opts.srtp_without_tls:
        raise InvalidArgumentError(
            f"--srtp {opts.srtp} needs SIP over TLS to carry the keys: add --tls-cert and"
            " --tls-key, or --srtp-without-tls for a test (the keys then travel in clear)"
        )


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _readable(name: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise InvalidArgumentError(f"{_flag_name(name)} {path}: {exc.strerror or exc}") from None


def _no_password() -> bytes:
    raise InvalidArgumentError(
        "the key is encrypted; PJSIP needs it plain: openssl pkey -in KEY -out PLAIN.pem"
    )
