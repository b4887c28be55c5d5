"""SIP URIs and addresses: pure helpers, no PJSIP.

Callers' identities (``parse_name_addr``), ``host:port`` settings (``split_hostport``),
registration accounts (``split_register_uri``) and what a URI asks of the transport
(``uri_wants_tls``, ``sips_as_tls``), the From of a call placed with a caller id
(``caller_id_uri``).
"""

from __future__ import annotations

import re

from .errors import InvalidArgumentError

__all__ = [
    "parse_name_addr",
    "split_hostport",
    "join_hostport",
    "split_register_uri",
    "uri_wants_tls",
    "sips_as_tls",
    "caller_id_uri",
]

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


def uri_wants_tls(uri: str) -> bool:
    """Whether calling ``uri`` takes SIP over TLS: ``sips:`` or ``;transport=tls``."""
    text = uri.strip().lstrip("<").lower()
    return text.startswith("sips:") or ";transport=tls" in text


def sips_as_tls(uri: str) -> str:
    """``sips:bob@host`` as ``sip:bob@host;transport=tls``: TLS to the host all the same.

    For a ``sips:`` Request-URI PJSIP insists on ``sips:`` Contacts both ways (480 "SIPS
    Required"), which many phones cannot use (baresip 1.0 fails with ENOSYS), so voip
    answers with ``sip:`` ones and calls ``sips:`` URIs this way.
    """
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "sips":
        return uri
    if ";transport=" in rest.lower():
        return f"sip:{rest}"
    head, sep, headers = rest.partition("?")
    return f"sip:{head};transport=tls{sep}{headers}"


_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
"""A SIP URI's user part (RFC 3261's unreserved and user-unreserved characters)."""


def caller_id_uri(caller_id: str, own_uri: str) -> str:
    """The From of an outgoing call presenting ``caller_id``: a SIP URI or a name-addr
    (``'"Sales" <sip:5550100@pbx.example>'``) as it is; a bare user (a number such as
    ``"5550100"``) at the host of ``own_uri``, the account's URI.

    Raises :class:`InvalidArgumentError` for anything else.
    """
    text = caller_id.strip() if isinstance(caller_id, str) else ""
    if text.lower().startswith(("sip:", "sips:")) or text.endswith(">"):
        if not parse_name_addr(text)[1].lower().startswith(("sip:", "sips:")):
            raise InvalidArgumentError(f"caller_id {caller_id!r} is not a SIP URI")
        return text
    if not _USER.fullmatch(text):
        raise InvalidArgumentError(
            f"caller_id must be a number or user such as '5550100', or a SIP URI, got {caller_id!r}"
        )
    scheme, _, rest = own_uri.strip().strip("<>").partition(":")
    host = rest.rpartition("@")[2].split(";", 1)[0]
    return f"{scheme}:{text}@{host}"
