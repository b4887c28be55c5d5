"""Small, pure helpers for SIP text: headers, caller identity, source addresses.

No PJSIP here: the backend hands over strings, these return plain values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .errors import InvalidArgumentError

__all__ = [
    "parse_headers",
    "parse_name_addr",
    "AllowList",
    "split_hostport",
    "join_hostport",
    "info_dtmf_keys",
]

# Compact header forms (RFC 3261 section 7.3.3) and their full names.
_COMPACT = {
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "v": "Via",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
}


class _Headers(dict[str, str]):
    """Header name -> value, looked up case-insensitively (``headers["x-foo"]``)."""

    def __init__(self) -> None:
        super().__init__()
        self._lower: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        key = self._lower.setdefault(name.lower(), name)
        old = dict.get(self, key)
        dict.__setitem__(self, key, value if old is None else f"{old}, {value}")

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(self._lower.get(name.lower(), name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self[name] if name in self else default


def parse_headers(message: str) -> dict[str, str]:
    """The headers of a SIP request or response, as a case-insensitive dict.

    Repeated headers are joined with ", " (as RFC 3261 allows), folded lines are unfolded
    and compact names expanded. Malformed lines are skipped, never fatal.
    """
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    lines = re.split(r"\r?\n", head)[1:]  # the first line is the request or status line
    headers = _Headers()
    name = None
    value = ""
    for line in lines:
        if line[:1] in (" ", "\t") and name is not None:
            value += " " + line.strip()
            continue
        if name is not None:
            headers.add(name, value)
        name = None
        if ":" not in line:
            continue
        raw, _, rest = line.partition(":")
        raw = raw.strip()
        if not raw or " " in raw:
            continue
        name = _COMPACT.get(raw.lower(), raw) if len(raw) == 1 else raw
        value = rest.strip()
    if name is not None:
        headers.add(name, value)
    return headers


_NAME_ADDR = re.compile(
    r'^\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^<"]*?))\s*<(?P<uri>[^>]*)>'
)


def parse_name_addr(value: str) -> tuple[str, str, str]:
    """Split a From/To value into (display name, URI, user part).

    ``'"Ann" <sip:5551234@host>;tag=x'`` gives ``("Ann", "sip:5551234@host", "5551234")``.
    """
    m = _NAME_ADDR.match(value)
    if m:
        name = m.group("quoted")
        if name is not None:
            name = re.sub(r"\\(.)", r"\1", name)
        else:
            name = (m.group("token") or "").strip()
        uri = m.group("uri").strip()
    else:
        name = ""
        uri = value.split(";", 1)[0].strip()
    user = ""
    um = re.match(r"^(?:sips?|tel):([^@;>]*)", uri, re.IGNORECASE)
    if um:
        user = um.group(1)
        if "@" not in uri and uri.lower().startswith("sip"):
            user = ""  # sip:host has no user part
    return name, uri, user


def info_dtmf_keys(message: str) -> str:
    """The keys in a SIP INFO whose body is ``application/dtmf`` (the keys themselves).

    Other content types give "" (``application/dtmf-relay`` is PJSIP's to read).
    """
    headers = parse_headers(message)
    ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/dtmf":
        return ""
    parts = re.split(r"\r?\n\r?\n", message, maxsplit=1)
    body = parts[1] if len(parts) > 1 else ""
    return "".join(ch for ch in body.strip().upper() if ch in "0123456789*#ABCD")


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:5062"`` -> ``("127.0.0.1", 5062)``; ``"[::1]:5060"`` and a bare host
    work too; port 0 means any free port. Raises :class:`InvalidArgumentError` for a bad
    port."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise InvalidArgumentError(
            f"{text!r}: the port must be a number from 0 (any free port) to 65535"
        )
    return host, int(port_text)


def join_hostport(host: str, port: int) -> str:
    """``("::1", 5062)`` -> ``"[::1]:5062"``, ``("127.0.0.1", 5062)`` -> ``"127.0.0.1:5062"``:
    the inverse of :func:`split_hostport`, as SIP URIs and Via headers write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AllowList:
    """Source addresses allowed to call: IP addresses and CIDR networks.

    An empty list allows everyone.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks = []
        for entry in entries:
            for part in entry.split(","):
                part = part.strip()
                if not part:
                    continue
                try:
                    self.networks.append(ipaddress.ip_network(part, strict=False))
                except ValueError:
                    raise InvalidArgumentError(
                        f"allow-list entry {part!r} is not an IP address or CIDR network "
                        "(e.g. 192.0.2.10 or 192.0.2.0/24)"
                    ) from None

    def allows(self, source: str) -> bool:
        """``source`` is an address, optionally with a port (``"10.0.0.5:5060"``)."""
        if not self.networks:
            return True
        host, _ = split_hostport(source, 0)
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)
