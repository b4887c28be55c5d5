"""kamailio as a cluster's front: finding it, writing its configuration, its command line.

The configuration is rendered from ``kamailio.cfg.in``, shipped in the package beside
this module, into a runtime directory of the front's own (its control socket for
``kamcmd``, the dispatcher's list of workers, ``tls.cfg`` when TLS is on, kamailio's own
runtime files). kamailio runs in the foreground (``-DD``), logging to stderr, where the
supervisor reads it.

The request guard's policy (:mod:`voip.guard`) is rendered from the same
:class:`~voip.backends.pjsip.options.SipOptions` into ``#!define`` lines at the top of the
configuration (:func:`policy_defines`). The per-address rates differ from the guard's
token buckets in one way: kamailio counts requests in fixed windows of
:func:`rate_window` seconds (an htable key per address and window, gone once unused),
taking the guard's burst (twice the rate, at least 2) in each window: the same average
rate and burst, but a burst may straddle two windows (up to twice the burst in a
moment). The guard's "one call awaiting its ACK per address" is applied as the guard
applies it by default (one, and not with an allow-list): an htable keeps, per source,
the Call-ID of its call answered (a worker's 2xx relayed) and not yet ACKed.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..backends.pjsip.metrics import FrontStatistics
from ..backends.pjsip.options import SipOptions
from ..errors import VoipError
from ..guard import NOT_ALLOWED, awaiting_ack_reason, burst_of, rate_reason
from ..sipuri import join_hostport
from .shares import LOOPBACK, ClusterPlan

__all__ = [
    "Front",
    "KamailioMissing",
    "PROBE_INTERVAL",
    "find_kamailio",
    "front_address",
    "host_addresses",
    "listen_lines",
    "module_dirs",
    "parse_destinations",
    "parse_statistics",
    "read_statistics",
    "register_contact",
    "render_config",
    "dispatcher_list",
    "outbound_defines",
    "policy_defines",
    "rate_window",
    "tls_config",
]

PROBE_INTERVAL = 2
"""Seconds between two OPTIONS probes of each worker."""
INSTALL = "sudo apt install kamailio"
INSTALL_TLS = "sudo apt install kamailio-tls-modules"
_SIOCGIFADDR = 0x8915
_IF_INET6 = Path("/proc/net/if_inet6")
_WILDCARDS = ("", "0.0.0.0", "::")


class KamailioMissing(VoipError):
    """kamailio (or kamcmd) is not installed, or not on PATH."""


@dataclass(frozen=True)
class Front:
    """The kamailio programs, found."""

    kamailio: str
    kamcmd: str


def module_dirs(kamailio: str) -> list[Path]:
    """Where ``kamailio`` loads its modules from (its ``-I`` says; empty if it does not)."""
    try:
        info = subprocess.run([kamailio, "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = re.search(r"Default paths to modules:\s*(\S+)", info.stdout + info.stderr)
    return [Path(d) for d in found[1].split(":")] if found else []


def find_kamailio(path: str | None = None, tls: bool = False) -> Front:
    """kamailio and kamcmd on ``path`` (default: ``$PATH``), with its TLS module when
    ``tls``; raises :class:`KamailioMissing` with the line that installs what is
    missing."""
    search = os.environ.get("PATH", "") if path is None else path
    kamailio = shutil.which("kamailio", path=search)
    kamcmd = shutil.which("kamcmd", path=search)
    if kamailio and kamcmd:
        dirs = module_dirs(kamailio) if tls else []
        if dirs and not any((d / "tls.so").exists() for d in dirs):
            raise KamailioMissing(
                "TLS with --workers needs kamailio's TLS module (tls.so, not in"
                f" {':'.join(map(str, dirs))}): install it with `{INSTALL_TLS}`"
            )
        return Front(kamailio, kamcmd)
    hint = ""
    if Path("/usr/sbin/kamailio").exists():
        hint = " (/usr/sbin/kamailio exists: add /usr/sbin to PATH)"
    raise KamailioMissing(
        f"--workers needs kamailio as the public SIP front, and"
        f" {'kamcmd' if kamailio else 'kamailio'} is not on PATH{hint}: install it with"
        f" `{INSTALL}`"
    )


def dispatcher_list(plan: ClusterPlan) -> str:
    """The dispatcher's destinations: set 1, every worker over UDP on the loopback."""
    return "".join(f"1 {w.uri} 0 0 socket=udp:{LOOPBACK}:{plan.inner_port}\n" for w in plan.workers)


def ipv4_addresses() -> list[str]:
    """This host's IPv4 addresses, one per interface that has one (Linux)."""
    found = []
    for _index, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                request = struct.pack("256s", name.encode()[:15])
                answer = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address
            found.append(socket.inet_ntoa(answer[20:24]))
    return found


def host_addresses(if_inet6: Path = _IF_INET6) -> list[str]:
    """This host's IPv4 addresses, then its IPv6 ones but the link-local (which need a
    zone kamailio's Record-Route cannot carry), from ``if_inet6`` (Linux)."""
    try:
        lines = if_inet6.read_text().splitlines()
    except OSError:
        lines = []  # no IPv6
    ipv6 = [ipaddress.IPv6Address(int(line.split()[0], 16)) for line in lines if line.strip()]
    return ipv4_addresses() + [str(a) for a in ipv6 if not a.is_link_local]


def _is_ipv6(host: str) -> bool:
    return ":" in host


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, as --listen may give
        return host == "localhost"


def _wildcard(host: str, addresses: Callable[[], list[str]]) -> list[str]:
    """The addresses a listen host stands for: 0.0.0.0 each IPv4 one, ``::`` (both
    families, as a lone server takes it) each of either, another host itself."""
    if host not in _WILDCARDS:
        return [host]
    return [a for a in addresses() if host == "::" or not _is_ipv6(a)]


def listen_lines(
    plan: ClusterPlan,
    transports: tuple[str, ...],
    public_address: str = "",
    addresses: Callable[[], list[str]] = host_addresses,
    tls: tuple[str, int] | None = None,
) -> str:
    """kamailio's ``listen`` lines for callers (TLS on ``tls``, host and port, when
    ``transports`` has it). A wildcard host (0.0.0.0, or ``::`` for IPv4 and IPv6) is
    each of this host's addresses (kamailio would put the wildcard in its Record-Route);
    a public address is advertised on those of its family but the loopback's."""
    lines = []
    for transport in transports:
        host, port = (plan.front_host, plan.front_port) if transport != "tls" else tls or ("", 0)
        if not port:
            continue
        for address in _wildcard(host, addresses):
            line = f"listen={transport}:{join_hostport(address, port)}"
            if (
                public_address
                and _is_ipv6(public_address) == _is_ipv6(address)
                and not _loopback(address)
            ):
                line += f" advertise {join_hostport(public_address, port)}"
            lines.append(line)
    return "\n".join(lines)


def scanner_pattern(fragments: Sequence[str]) -> str:
    """A POSIX regular expression matching a lower-case User-Agent that holds any of
    ``fragments`` (each character but letters, digits and spaces in brackets, so none
    is special; the characters brackets cannot hold are left out)."""
    alternatives = []
    for fragment in fragments:
        chars = [
            c if c.isalnum() or c == " " else f"[{c}]" for c in fragment.lower() if c not in '\\]^"'
        ]
        if chars:
            alternatives.append("".join(chars))
    return "|".join(alternatives)


def rate_window(rate: float) -> tuple[int, int]:
    """The front's window for a rate (requests a second): its length in seconds and the
    requests taken in each, the guard's burst (:func:`~voip.guard.burst_of`, whole
    requests). Rates of 1 a second and above: 2 s windows; below, longer windows of the
    same burst."""
    burst = burst_of(rate)
    return max(2, round(burst / rate)), max(1, int(burst))


def policy_defines(opts: SipOptions) -> list[str]:
    """The ``#!define`` lines that turn the policy's parts on in ``kamailio.cfg.in``."""
    lines = []
    if scanner_pattern(opts.scanner_user_agents):
        lines.append("WITH_SCANNERS")
    if opts.allow.networks:
        lines.append("WITH_ALLOW")
    for name, rate in (
        ("INVITE", opts.invite_rate),
        ("OTHERS", opts.options_rate),
        ("CALL", opts.call_rate),
    ):
        if rate > 0:
            window, limit = rate_window(rate)
            lines += [f"{name}_WINDOW {window}", f"{name}_LIMIT {limit}"]
    if "tls" in opts.sip_transports:
        lines.append("WITH_TLS")
    if opts.srtp != "off" and not opts.srtp_without_tls:
        lines.append("SRTP_NEEDS_TLS")  # as a lone server: calls not over TLS get 406
    return [f"#!define {line}" for line in lines]


def front_address(host: str, addresses: Callable[[], list[str]] = host_addresses) -> str:
    """The front's own address for listen host ``host``: itself, or for a wildcard this
    host's first IPv4 address that is not the loopback (the loopback if it has none)."""
    if host not in _WILDCARDS:
        return host
    ipv4 = (a for a in addresses() if not _is_ipv6(a) and not _loopback(a))
    return next(ipv4, LOOPBACK)


def register_contact(
    plan: ClusterPlan, public_address: str, addresses: Callable[[], list[str]] = host_addresses
) -> str:
    """The ``host:port`` the front puts in its workers' REGISTERs (``--register``), for
    the PBX to send calls to: ``--public-address`` or the front's own address, and the
    listen port."""
    host = public_address or front_address(plan.front_host, addresses)
    return join_hostport(host, plan.front_port)


def outbound_defines(
    plan: ClusterPlan,
    transports: tuple[str, ...],
    addresses: Callable[[], list[str]] = host_addresses,
    tls: tuple[str, int] | None = None,
) -> list[str]:
    """The ``#!define`` lines naming the sockets the workers' calls out leave from
    (``OUT_UDP``, ``OUT_TCP``, ``OUT_TLS`` on ``tls``, host and port, for the transports
    the front opens): the listen host, or for a wildcard one this host's first IPv4
    address that is not the loopback. The workers call IPv4 addresses alone (this PJSIP
    build), so a front on IPv6 alone has none: ``NO_IPV4_OUT`` has it refuse them."""
    host = front_address(plan.front_host, addresses)
    if _is_ipv6(host):
        return ["#!define NO_IPV4_OUT"]
    lines = [
        f"#!define OUT_{t.upper()} {t}:{host}:{plan.front_port}"
        for t in ("udp", "tcp")
        if t in transports
    ]
    if tls is not None and "tls" in transports:
        tls_host = front_address(tls[0], addresses)
        if not _is_ipv6(tls_host):
            lines.append(f"#!define OUT_TLS tls:{tls_host}:{tls[1]}")
    return lines


def tls_config(opts: SipOptions) -> str:
    """kamailio's ``tls.cfg``: the certificate for callers (TLS 1.2 and up, as voip's
    own listener); with ``--tls-verify-client``, callers must show one ``--tls-ca``
    signed. As a client (the workers' calls out over TLS, a BYE to a caller whose
    connection is gone) it verifies the server's certificate against ``--tls-ca`` or
    the system's CAs, as a lone server's PJSIP does, unless ``--tls-no-verify-server``;
    kamailio 5.6 checks the chain, not the name in it."""
    verify = "yes" if opts.tls_verify_client else "no"
    server = [
        "[server:default]",
        "method = TLSv1.2+",
        f"certificate = {opts.tls_cert}",
        f"private_key = {opts.tls_key}",
        f"verify_certificate = {verify}",
        f"require_certificate = {verify}",
    ]
    if opts.tls_ca:
        server.append(f"ca_list = {opts.tls_ca}")
    verify = "yes" if opts.tls_verify_server else "no"
    client = [
        "[client:default]",
        "method = TLSv1.2+",
        f"verify_certificate = {verify}",
        f"require_certificate = {verify}",
    ]
    cas = opts.tls_ca or ssl.get_default_verify_paths().cafile
    if cas:  # none: nothing passes the verification
        client.append(f"ca_list = {cas}")
    return "\n".join([*server, "", *client, ""])


def render_config(
    plan: ClusterPlan,
    opts: SipOptions,
    rundir: Path,
    children: int = 4,
    addresses: Callable[[], list[str]] = host_addresses,
) -> str:
    """The configuration for ``plan``, its front listening as ``opts`` say (transports,
    TLS, public address) and applying their policy (scanners, allow-list, rates), its
    files in ``rundir``."""
    tls = opts.tls_host_port if "tls" in opts.sip_transports else None
    rates = (opts.invite_rate, opts.options_rate, opts.call_rate)
    values = {
        "@DEFINES@": "\n".join(
            policy_defines(opts)
            + outbound_defines(plan, opts.sip_transports, addresses, opts.tls_host_port)
        ),
        "@SCANNERS@": scanner_pattern(opts.scanner_user_agents) or "-",
        "@ALLOW@": ",".join(str(n) for n in opts.allow.networks) or "-",
        "@JOIN_ALLOW@": ",".join(str(n) for n in opts.join_allow.networks),
        "@NOT_ALLOWED@": NOT_ALLOWED,
        "@INVITE_REASON@": rate_reason("invite", opts.invite_rate),
        "@OTHERS_REASON@": rate_reason("other", opts.options_rate),
        "@CALL_REASON@": rate_reason("call", opts.call_rate),
        "@UNACKED_UDP_REASON@": awaiting_ack_reason(1, udp=True),
        "@UNACKED_REASON@": awaiting_ack_reason(1, udp=False),
        "@RATES_EXPIRE@": str(2 * max(rate_window(r or 1)[0] for r in rates)),
        "@TLS_CFG@": str(rundir / "tls.cfg"),
        "@LISTEN@": listen_lines(plan, opts.sip_transports, opts.public_address, addresses, tls),
        "@INNER_PORT@": str(plan.inner_port),
        "@REGISTER_AS@": register_contact(plan, opts.public_address, addresses),
        "@CHILDREN@": str(children),
        "@CTL@": str(rundir / "ctl.sock"),
        "@LIST@": str(rundir / "dispatcher.list"),
        "@PROBE@": str(PROBE_INTERVAL),
    }
    text = resources.files(__package__).joinpath("kamailio.cfg.in").read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def write_front(plan: ClusterPlan, opts: SipOptions, rundir: Path) -> Path:
    """Write the configuration, the dispatcher list and (TLS on) ``tls.cfg`` into
    ``rundir``; the configuration's path."""
    rundir.mkdir(parents=True, exist_ok=True)
    (rundir / "dispatcher.list").write_text(dispatcher_list(plan))
    if "tls" in opts.sip_transports:
        (rundir / "tls.cfg").write_text(tls_config(opts))
    cfg = rundir / "kamailio.cfg"
    cfg.write_text(render_config(plan, opts, rundir))
    return cfg


def command(front: Front, cfg: Path, rundir: Path) -> list[str]:
    """kamailio in the foreground, logging to stderr, its runtime files in ``rundir``."""
    return [front.kamailio, "-DD", "-E", "-f", str(cfg), "-Y", str(rundir), "-w", str(rundir)]


def kamcmd(front: Front, rundir: Path, *args: str) -> list[str]:
    """A ``kamcmd`` command line on the front's control socket."""
    return [front.kamcmd, "-s", f"unix:{rundir / 'ctl.sock'}", *args]


def parse_statistics(text: str) -> dict[str, float]:
    """``GROUP:NAME = VALUE`` lines by ``kamailio_GROUP_NAME`` (characters a Prometheus
    name cannot hold as ``_``); other lines are left out."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        group, colon, name = key.strip().partition(":")
        if not (sep and colon):
            continue
        try:
            found[re.sub(r"[^A-Za-z0-9_]", "_", f"kamailio_{group}_{name}")] = float(value)
        except ValueError:
            continue
    return found


def parse_destinations(text: str) -> dict[str, bool]:
    """``kamcmd dispatcher.list``'s destinations: URI to whether it is active (flags
    ``A...``, not ``I``nactive, ``D``isabled or ``T``rying)."""
    pairs = re.findall(r"URI: (\S+)\s+FLAGS: (\w+)", text)
    return {uri: flags.startswith("A") for uri, flags in pairs}


def read_statistics(front: Front, rundir: Path, timeout: float = 2.0) -> FrontStatistics | None:
    """The running front's statistics over its control socket (None: it did not answer
    within ``timeout`` seconds, e.g. while it restarts)."""
    try:
        stats, dests = (
            subprocess.run(
                kamcmd(front, rundir, *args), capture_output=True, text=True, timeout=timeout
            )
            for args in (("stats.get_statistics", "all"), ("dispatcher.list",))
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if stats.returncode or dests.returncode:
        return None
    return FrontStatistics(parse_statistics(stats.stdout), parse_destinations(dests.stdout))
