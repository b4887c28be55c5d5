"""kamailio as a cluster's front: finding it, writing its configuration, its command line.

The configuration is rendered from ``kamailio.cfg.in``, shipped in the package beside
this module, into a runtime directory of the front's own (its control socket for
``kamcmd``, the dispatcher's list of workers, kamailio's own runtime files). kamailio
runs in the foreground (``-DD``), logging to stderr, where the supervisor reads it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import VoipError
from .shares import LOOPBACK, ClusterPlan

__all__ = [
    "Front",
    "KamailioMissing",
    "PROBE_INTERVAL",
    "find_kamailio",
    "render_config",
    "dispatcher_list",
]

PROBE_INTERVAL = 2
"""Seconds between two OPTIONS probes of each worker."""
INSTALL = "sudo apt install kamailio"
_SIOCGIFADDR = 0x8915


class KamailioMissing(VoipError):
    """kamailio (or kamcmd) is not installed, or not on PATH."""


@dataclass(frozen=True)
class Front:
    """The kamailio programs, found."""

    kamailio: str
    kamcmd: str


def find_kamailio(path: str | None = None) -> Front:
    """kamailio and kamcmd on ``path`` (default: ``$PATH``); raises
    :class:`KamailioMissing` with the line that installs them."""
    search = os.environ.get("PATH", "") if path is None else path
    kamailio = shutil.which("kamailio", path=search)
    kamcmd = shutil.which("kamcmd", path=search)
    if kamailio and kamcmd:
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


def listen_lines(
    plan: ClusterPlan,
    transports: tuple[str, ...],
    public_address: str = "",
    addresses: Callable[[], list[str]] = ipv4_addresses,
) -> str:
    """kamailio's ``listen`` lines for callers. A wildcard host (0.0.0.0) is each of this
    host's addresses (kamailio would put 0.0.0.0 in its Record-Route); a public address
    is advertised on all but the loopback's."""
    hosts = addresses() if plan.front_host in ("", "0.0.0.0") else [plan.front_host]
    lines = []
    for transport in (t for t in transports if t != "tls"):
        for host in hosts:
            line = f"listen={transport}:{host}:{plan.front_port}"
            if public_address and not host.startswith("127."):
                line += f" advertise {public_address}:{plan.front_port}"
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


def render_config(
    plan: ClusterPlan,
    transports: tuple[str, ...],
    rundir: Path,
    public_address: str = "",
    scanners: Sequence[str] = (),
    children: int = 4,
    addresses: Callable[[], list[str]] = ipv4_addresses,
) -> str:
    """The configuration for ``plan``, its front listening on ``transports`` (udp, tcp),
    dropping requests from ``scanners`` (User-Agent fragments), its files in ``rundir``."""
    pattern = scanner_pattern(scanners)
    values = {
        "@SCAN@": "1" if pattern else "0",
        "@SCANNERS@": pattern or "-",
        "@LISTEN@": listen_lines(plan, transports, public_address, addresses),
        "@INNER_PORT@": str(plan.inner_port),
        "@CHILDREN@": str(children),
        "@CTL@": str(rundir / "ctl.sock"),
        "@LIST@": str(rundir / "dispatcher.list"),
        "@PROBE@": str(PROBE_INTERVAL),
    }
    text = resources.files(__package__).joinpath("kamailio.cfg.in").read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def write_front(
    plan: ClusterPlan,
    transports: tuple[str, ...],
    rundir: Path,
    public_address: str = "",
    scanners: Sequence[str] = (),
) -> Path:
    """Write the configuration and the dispatcher list into ``rundir``; the
    configuration's path."""
    rundir.mkdir(parents=True, exist_ok=True)
    (rundir / "dispatcher.list").write_text(dispatcher_list(plan))
    cfg = rundir / "kamailio.cfg"
    cfg.write_text(render_config(plan, transports, rundir, public_address, scanners))
    return cfg


def command(front: Front, cfg: Path, rundir: Path) -> list[str]:
    """kamailio in the foreground, logging to stderr, its runtime files in ``rundir``."""
    return [front.kamailio, "-DD", "-E", "-f", str(cfg), "-Y", str(rundir), "-w", str(rundir)]


def kamcmd(front: Front, rundir: Path, *args: str) -> list[str]:
    """A ``kamcmd`` command line on the front's control socket."""
    return [front.kamcmd, "-s", f"unix:{rundir / 'ctl.sock'}", *args]
