"""Settings of the SIP backend, from the command line, the environment or a TOML file."""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ...errors import InvalidArgumentError
from ...sipmsg import AllowList, split_hostport

__all__ = [
    "SipOptions",
    "add_sip_arguments",
    "sip_options_from_args",
    "split_register_uri",
    "CODECS",
]

CODECS = ("PCMU", "PCMA", "G722")
"""Codecs offered, in the default order of preference."""


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

    @property
    def host_port(self) -> tuple[str, int]:
        return split_hostport(self.listen, 5060)


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
        choices=["udp", "tcp"],
        help="SIP transport; repeat for several (default: udp and tcp)",
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


def _parse_ports(text: str) -> tuple[int, int]:
    first, sep, last = str(text).partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        raise InvalidArgumentError(f"rtp ports {text!r}: use FIRST-LAST, e.g. 4000-4999") from None
    if not 1024 <= lo <= hi <= 65535 or hi - lo < 1:
        raise InvalidArgumentError(
            f"rtp ports {text!r}: need an increasing range of at least 2 ports within 1024-65535"
        )
    return lo, hi


def _convert(name: str, value: Any) -> Any:
    """Turn a command-line or TOML value into the field's type, checking it."""
    if name == "transports":
        items = [value] if isinstance(value, str) else list(value)
        bad = [t for t in items if t not in ("udp", "tcp")]
        if bad or not items:
            raise InvalidArgumentError(f"transports {items}: choose from udp, tcp")
        return tuple(dict.fromkeys(items))
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
_LISTS = ("transports", "stun", "allow", "codecs")


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
        elif f.name == "sip_log":
            values[f.name] = text.strip().lower() in ("1", "true", "yes", "on")
        elif f.name in ("grace",):
            values[f.name] = _number(f.name, text, float)
        elif f.name in ("max_calls", "register_expiry", "register_retry", "pjsip_log_level"):
            values[f.name] = _number(f.name, text, int)
        else:
            values[f.name] = text
    return values


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
    }
    values.update({k: v for k, v in cli.items() if v is not None})
    return SipOptions(**{k: _convert(k, v) for k, v in values.items()})
