#!/usr/bin/env python3
"""Malformed and hostile SIP messages, in the spirit of RFC 4475's torture tests.

Written for this project (none of RFC 4475's or pjproject's messages is copied): each
:class:`Torture` is built for one target (host, port, transport); every Via asks for
``rport``, so that a response, if any, comes back to the socket that sent the request.
``expect`` says what a robust server may answer: a set of acceptable final status codes,
where ``None`` stands for "no response at all" (a datagram it cannot parse must simply be
dropped). ``why`` notes where PJSIP is more lenient than RFC 3261 asks.

As a script it sends them all to a server and prints the status codes that came back,
one line each: ``python tests/peers/torture.py 127.0.0.1 5060 [--tcp]``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

CRLF = b"\r\n"

_counter = itertools.count(1)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    transport: str
    """``UDP`` or ``TCP``: goes into Via and the Request-URI."""
    local_port: int
    """The sender's port, for Via, Contact and From (answers follow rport anyway)."""

    @property
    def uri(self) -> str:
        return f"sip:app@{self.host}:{self.port}"


@dataclass(frozen=True)
class Torture:
    name: str
    data: bytes
    expect: frozenset[int | None]
    """Acceptable outcomes: status codes, and None for no response."""
    why: str = ""


def _tag() -> str:
    return f"t{next(_counter)}x{random.randrange(1 << 30):x}"


def headers_for(t: Target, method: str, *, cseq: int = 1, branch: str | None = None) -> dict:
    """The mandatory headers of a request, as an ordered dict one may edit."""
    n = _tag()
    via_branch = branch or f"z9hG4bK-{n}"
    return {
        "Via": f"SIP/2.0/{t.transport} 127.0.0.1:{t.local_port};branch={via_branch};rport",
        "Max-Forwards": "70",
        "From": f"<sip:torture@127.0.0.1:{t.local_port}>;tag={n}",
        "To": f"<{t.uri}>",
        "Call-ID": f"{n}@torture.invalid",
        "CSeq": f"{cseq} {method}",
    }


def build(
    start_line: str | bytes,
    headers: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]],
    body: bytes = b"",
    *,
    content_length: str | None = "auto",
    eol: bytes = CRLF,
) -> bytes:
    """A message from its parts. ``content_length``: ``"auto"`` (the body's length),
    None (no such header), or any text to put there as it is."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if content_length == "auto":
        items.append(("Content-Length", str(len(body))))
    elif content_length is not None:
        items.append(("Content-Length", content_length))
    out = [start_line.encode() if isinstance(start_line, str) else start_line]
    for name, value in items:
        out.append(name.encode() + b": " + (value.encode() if isinstance(value, str) else value))
    return eol.join(out) + eol + eol + body


def options(t: Target, **edits: str | bytes | None) -> bytes:
    """A well-formed OPTIONS, with headers replaced (or removed, given None)."""
    h: dict = headers_for(t, "OPTIONS")
    h["Accept"] = "application/sdp"
    for name, value in edits.items():
        key = name.replace("_", "-")
        if value is None:
            h.pop(key, None)
        else:
            h[key] = value
    return build(f"OPTIONS {t.uri} SIP/2.0", h)


def sdp(t: Target, *, media: str = "m=audio 9 RTP/AVP 0 101", conn: str = "IN IP4 127.0.0.1"):
    return (
        "\r\n".join(
            [
                "v=0",
                "o=torture 1 1 IN IP4 127.0.0.1",
                "s=-",
                f"c={conn}",
                "t=0 0",
                media,
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:101 telephone-event/8000",
                "",
            ]
        )
    ).encode()


def _junk(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


FORGED_LOG_LINE = "12:00:00 INFO voip.call: [c9] call from <sip:forged@192.0.2.9> answered"
"""Text a request carries that must never reach the app's log as a line of its own."""

ANY_ERROR = frozenset({None, 400, 404, 405, 416, 420, 481, 483, 488, 500, 501, 505, 513})
"""A refusal, or silence: what a server may do with a request it should not serve."""
OK = frozenset({200})
NOTHING = frozenset({None})


def torture_messages(t: Target) -> Iterator[Torture]:
    """Every message, built for ``t`` (fresh Call-IDs and branches on each call)."""
    uri = t.uri
    udp = t.transport == "UDP"

    def opt(name: str, expect: frozenset, why: str = "", **edits) -> Torture:
        return Torture(name, options(t, **edits), expect, why)

    # -- pure junk -----------------------------------------------------------------------
    yield Torture("binary junk 1 KB", _junk(1, 1024), NOTHING)
    yield Torture("binary junk 1400 B", _junk(2, 1400), NOTHING)
    yield Torture("all NUL bytes", b"\0" * 512, NOTHING)
    yield Torture("all 0xFF bytes", b"\xff" * 512, NOTHING)
    yield Torture("one byte", b"S", NOTHING)
    yield Torture("only CRLFs", CRLF * 64, NOTHING, "keep-alive style; nothing to answer")
    yield Torture(
        "an HTTP request", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", ANY_ERROR | {None}
    )
    yield Torture(
        "TLS ClientHello bytes",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + _junk(3, 500),
        NOTHING,
    )

    # -- start line ----------------------------------------------------------------------
    h = headers_for(t, "OPTIONS")
    yield Torture("SIP version 7.0", build(f"OPTIONS {uri} SIP/7.0", h), ANY_ERROR)
    h = headers_for(t, "OPTIONS")
    yield Torture("version missing", build(f"OPTIONS {uri}", h), ANY_ERROR)
    h = headers_for(t, "OPTIONS")
    yield Torture("lower-case sip/2.0", build(f"OPTIONS {uri} sip/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    yield Torture("no Request-URI", build("OPTIONS  SIP/2.0", h), ANY_ERROR)
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "unknown URI scheme",
        build(f"OPTIONS zork:app@{t.host}:{t.port} SIP/2.0", h),
        frozenset({None, 400, 416}),
        "RFC 3261 8.2.2.1: 416 Unsupported URI Scheme",
    )
    h = headers_for(t, "FROBNICATE")
    yield Torture(
        "unknown method",
        build(f"FROBNICATE {uri} SIP/2.0", h),
        frozenset({None, 405, 501}),
        "RFC 3261 asks for 405; pjsua drops requests no module takes",
    )
    long_method = "X" * 3000
    h = headers_for(t, long_method)
    yield Torture("3000-character method", build(f"{long_method} {uri} SIP/2.0", h), ANY_ERROR)
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "escaped Request-URI user",
        build(f"OPTIONS sip:%61%70p;x=%20%22@{t.host}:{t.port};lr SIP/2.0", h),
        OK,
        "escapes are legal in the user part and parameters",
    )
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "escaped NUL in Request-URI",
        build(f"OPTIONS sip:a%00pp@{t.host}:{t.port} SIP/2.0", h),
        ANY_ERROR | OK,
    )
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "IPv6 reference in Request-URI",
        build(f"OPTIONS sip:app@[::1]:{t.port} SIP/2.0", h),
        ANY_ERROR | OK,
    )
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "port 99999 in Request-URI",
        build(f"OPTIONS sip:app@{t.host}:99999 SIP/2.0", h),
        ANY_ERROR | OK,
    )

    # -- mandatory headers ---------------------------------------------------------------
    for header in ("Via", "From", "To", "Call-ID", "CSeq"):
        yield opt(
            f"no {header} header",
            ANY_ERROR,
            "a request without it cannot be answered properly",
            **{header: None},
        )
    yield opt(
        "no Max-Forwards", OK | ANY_ERROR, "RFC 3261 says SHOULD; tolerated", Max_Forwards=None
    )
    yield opt("Max-Forwards 0", frozenset({483, 200}), Max_Forwards="0")
    yield opt("Max-Forwards 99999999999", ANY_ERROR | OK, Max_Forwards="99999999999")
    yield opt("two Call-IDs", ANY_ERROR | OK, Call_ID=f"{_tag()}@a\r\nCall-ID: {_tag()}@b")
    yield opt("empty From", ANY_ERROR, From="")
    yield opt("From without brackets or tag", ANY_ERROR | OK, From="sip:x@y")
    yield opt(
        "Via with no branch",
        ANY_ERROR | OK,
        Via=f"SIP/2.0/{t.transport} 127.0.0.1:{t.local_port};rport",
    )
    yield opt(
        "Via port 0",
        ANY_ERROR | OK,
        Via=f"SIP/2.0/{t.transport} 127.0.0.1:0;branch=z9hG4bK{_tag()};rport",
    )
    yield opt(
        "Via garbage host", ANY_ERROR, Via=f"SIP/2.0/{t.transport} [:::::]:x;branch=z9hG4bK{_tag()}"
    )

    # -- CSeq ----------------------------------------------------------------------------
    yield opt("CSeq -1", ANY_ERROR, CSeq="-1 OPTIONS")
    yield opt("CSeq 2^32", ANY_ERROR | OK, CSeq="4294967296 OPTIONS", why="over 2^31: invalid")
    yield opt("CSeq 40 digits", ANY_ERROR | OK, CSeq="9" * 40 + " OPTIONS")
    yield opt("CSeq method mismatch", ANY_ERROR | OK, CSeq="1 INVITE")
    yield opt("CSeq no number", ANY_ERROR, CSeq="OPTIONS")

    # -- Content-Length ------------------------------------------------------------------
    h = headers_for(t, "OPTIONS")
    body = b"hello world\r\n"
    h["Content-Type"] = "text/plain"
    if udp:
        # Over TCP a length longer than what follows means "wait for more": that is the
        # slowloris test (test_torture's own), not a torture message.
        yield Torture(
            "Content-Length longer than the body",
            build(f"OPTIONS {uri} SIP/2.0", h, body, content_length="5000"),
            ANY_ERROR | OK,
            "RFC 3261 18.3 says 400; PJSIP takes the body it has",
        )
    h = headers_for(t, "OPTIONS")
    h["Content-Type"] = "text/plain"
    yield Torture(
        "Content-Length shorter than the body",
        build(f"OPTIONS {uri} SIP/2.0", h, body + b"TRAILING", content_length="4"),
        ANY_ERROR | OK,
        "UDP: the rest is ignored; TCP: the rest is the next (broken) message",
    )
    for text in ("-5", "99999999999999999999", "0x10", "abc", ""):
        h = headers_for(t, "OPTIONS")
        yield Torture(
            f"Content-Length {text!r}",
            build(f"OPTIONS {uri} SIP/2.0", h, content_length=text),
            ANY_ERROR | OK,
        )
    h = headers_for(t, "OPTIONS")
    h["Content-Type"] = "application/octet-stream"
    yield Torture(
        "NUL bytes in a body of the right length",
        build(f"OPTIONS {uri} SIP/2.0", h, b"\0\0abc\0\xff\0"),
        OK,
        "a body may hold any bytes",
    )

    # -- header syntax -------------------------------------------------------------------
    yield opt(
        "log lines inside a malformed request",
        ANY_ERROR,
        "no CSeq: PJSIP complains, and used to copy the whole packet into the log",
        CSeq=None,
        X_Note=f"x\r\n{FORGED_LOG_LINE}\r\nX-More: y",
    )
    h = headers_for(t, "OPTIONS")
    h["Subject"] = b"bad \xff\xfe\xc3\x28 utf-8 \xed\xa0\x80"
    yield Torture("invalid UTF-8 in a header", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    h["From"] = b'"\xc3\x28\xff" <sip:torture@127.0.0.1>;tag=' + _tag().encode()
    yield Torture("invalid UTF-8 display name", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    h["Subject"] = b"before\0after"
    yield Torture("NUL in a header", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "NUL in the start line",
        build(f"OPTIONS {uri}".encode() + b"\0 SIP/2.0", h),
        ANY_ERROR,
    )
    h = headers_for(t, "OPTIONS")
    h["Subject"] = "first line\r\n  folded onto a second\r\n\tand a third"
    yield Torture(
        "folded header lines",
        build(f"OPTIONS {uri} SIP/2.0", h),
        OK,
        "line folding is legal SIP (RFC 3261 7.3.1)",
    )
    h = headers_for(t, "OPTIONS")
    yield Torture(
        "bare LF line ends",
        build(f"OPTIONS {uri} SIP/2.0", h, eol=b"\n"),
        ANY_ERROR | OK,
    )
    h = headers_for(t, "OPTIONS")
    h["X-Huge"] = "h" * 3500
    yield Torture("3.5 KB header", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    h["X-Huge"] = "h" * 30000
    yield Torture("30 KB header", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    items = list(headers_for(t, "OPTIONS").items())
    items += [(f"X-Many-{i}", "v") for i in range(800)]
    yield Torture("800 headers", build(f"OPTIONS {uri} SIP/2.0", items), ANY_ERROR | OK)
    items = list(headers_for(t, "OPTIONS").items())
    via = items[0][1]
    items[0:1] = [("Via", via)] + [
        ("Via", f"SIP/2.0/UDP 192.0.2.{i % 250 + 1}:5060;branch=z9hG4bK{i}") for i in range(200)
    ]
    yield Torture("200 Via headers", build(f"OPTIONS {uri} SIP/2.0", items), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    h["Contact"] = ", ".join(f"<sip:c{i}@192.0.2.1:5060>" for i in range(300))
    yield Torture("300 Contacts", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    h["From"] = "<" * 2000 + "sip:x@y" + ">" * 2000
    yield Torture("2000 nested angle brackets", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR)
    h = headers_for(t, "OPTIONS")
    h["To"] = '"' + "\\" * 3001 + f'" <{uri}>'
    yield Torture("unterminated quoted string", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    h["Via"] += ";" + ";".join(f"p{i}={i}" for i in range(600))
    yield Torture("600 Via parameters", build(f"OPTIONS {uri} SIP/2.0", h), ANY_ERROR | OK)
    h = headers_for(t, "OPTIONS")
    big = b"B" * (63 * 1024)
    h["Content-Type"] = "application/octet-stream"
    yield Torture(
        "64 KB message",
        build(f"OPTIONS {uri} SIP/2.0", h, big),
        ANY_ERROR | OK,
        "bigger than PJSIP's packet buffer",
    )

    # -- truncation ----------------------------------------------------------------------
    whole = options(t)
    for where, cut in (("start line", 7), ("headers", len(whole) // 3), ("end", len(whole) - 3)):
        yield Torture(
            f"truncated in the {where}",
            whole[:cut],
            NOTHING | ANY_ERROR | (OK if where == "end" else NOTHING),
            "cut in the final CRLFs, a datagram is still a whole message",
        )

    # -- responses and requests nobody asked for -----------------------------------------
    h = headers_for(t, "INVITE")
    h["To"] += ";tag=nobody"
    yield Torture("stray 200 OK to an INVITE", build("SIP/2.0 200 OK", h, sdp(t)), NOTHING)
    h = headers_for(t, "OPTIONS")
    yield Torture("stray 999 response", build("SIP/2.0 999 Whatever", h), NOTHING)
    h = headers_for(t, "BYE")
    h["To"] += ";tag=nobody"
    yield Torture("BYE for no dialog", build(f"BYE {uri} SIP/2.0", h), frozenset({481}))
    h = headers_for(t, "CANCEL")
    yield Torture("CANCEL for no transaction", build(f"CANCEL {uri} SIP/2.0", h), frozenset({481}))
    h = headers_for(t, "ACK")
    yield Torture("ACK for nothing", build(f"ACK {uri} SIP/2.0", h), NOTHING)
    h = headers_for(t, "INFO")
    h["To"] += ";tag=nobody"
    h["Content-Type"] = "application/dtmf-relay"
    yield Torture(
        "INFO digits for no dialog",
        build(f"INFO {uri} SIP/2.0", h, b"Signal=5\r\nDuration=160\r\n"),
        frozenset({481}),
    )

    # -- INVITEs with broken offers (refused before any call exists) ---------------------
    def invite(name: str, body: bytes, expect: frozenset, ctype: str = "application/sdp"):
        h = headers_for(t, "INVITE")
        h["Contact"] = f"<sip:torture@127.0.0.1:{t.local_port}>"
        h["Content-Type"] = ctype
        return Torture(name, build(f"INVITE {uri} SIP/2.0", h, body), expect)

    refused = frozenset({400, 415, 488, 500, 606})
    yield invite("INVITE with binary junk as SDP", _junk(4, 300), refused)
    yield invite(
        "INVITE with SDP lacking m=", b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\n", refused
    )
    yield invite(
        "INVITE offering only a video codec", sdp(t, media="m=video 9 RTP/AVP 31"), refused
    )
    yield invite(
        "INVITE with 900 payload types",
        sdp(t, media="m=audio 9 RTP/AVP " + " ".join(str(i % 128) for i in range(900))),
        refused | OK,
    )
    yield invite("INVITE with a bad c= line", sdp(t, conn="IN IP4 999.1.1.1"), refused | OK)
    yield invite(
        "INVITE with a text body",
        b"not an offer",
        frozenset({415, 488, 400}),
        ctype="text/plain",
    )


def open_socket(host: str, port: int, transport: str, timeout: float = 2.0) -> socket.socket:
    if transport == "UDP":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
    else:
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    return s


class Responses:
    """Reads SIP responses from a socket, datagrams or a TCP stream."""

    def __init__(self, sock: socket.socket, transport: str) -> None:
        self.sock = sock
        self.transport = transport
        self.buffer = b""

    def read(self, timeout: float, until: Callable[[list[bytes]], bool]) -> list[bytes]:
        """Messages received until ``until(messages)`` holds or ``timeout`` passes."""
        got: list[bytes] = []
        end = time.monotonic() + timeout
        while not until(got):
            left = end - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                if self.transport == "UDP":
                    got.append(self.sock.recv(65536))
                    continue
                chunk = self.sock.recv(65536)
            except OSError:  # a time-out, or the other end gone
                break
            if not chunk:
                break
            self.buffer += chunk
            got.extend(self._split())
        return got

    def _split(self) -> list[bytes]:
        out = []
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value.strip() or 0)
            if len(rest) < length:
                break
            out.append(head + b"\r\n\r\n" + rest[:length])
            self.buffer = rest[length:]
        return out


def status_of(message: bytes) -> int | None:
    """The status code of a response, None if it is not one."""
    parts = message.split(b" ", 2)
    if len(parts) >= 2 and parts[0] == b"SIP/2.0" and parts[1].isdigit():
        return int(parts[1])
    return None


def headers(message: bytes, *names: str) -> list[str]:
    """Every value of a header (any of ``names``, e.g. its compact form too), in order."""
    wanted = {n.lower().encode() for n in names}
    found = []
    for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in wanted:
            found.append(value.strip().decode(errors="replace"))
    return found


def header(message: bytes, *names: str) -> str:
    """The first value of a header (any of ``names``, e.g. its compact form too)."""
    return next(iter(headers(message, *names)), "")


def after_invite(invite: bytes, response: bytes, t: Target) -> list[bytes]:
    """What a well-behaved caller sends after a final response to ``invite``: the ACK
    (same branch for an error, a new one for a 2xx), and for a 2xx a BYE, so that the call
    the server may have set up ends at once instead of holding one of its 4 slots."""
    status = status_of(response) or 0
    cseq = int(header(invite, "CSeq").split()[0])
    common = {
        "Max-Forwards": "70",
        "From": header(invite, "From"),
        "To": header(response, "To"),
        "Call-ID": header(invite, "Call-ID"),
    }
    ruri = invite.split(b" ", 2)[1].decode()
    if status >= 300:
        h = {"Via": header(invite, "Via"), **common, "CSeq": f"{cseq} ACK"}
        return [build(f"ACK {ruri} SIP/2.0", h)]
    contact = header(response, "Contact", "m")
    target = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else ruri
    # Through a proxy that record-routes (a cluster's front): its Route set, reversed.
    routes = [r.strip() for rr in headers(response, "Record-Route") for r in rr.split(",")]
    out = []
    for method, number in (("ACK", cseq), ("BYE", cseq + 1)):
        via = f"SIP/2.0/{t.transport} 127.0.0.1:{t.local_port};branch=z9hG4bK-{_tag()};rport"
        h = {"Via": via, **common, "CSeq": f"{number} {method}"}
        if routes:
            h["Route"] = ", ".join(reversed(routes))
        out.append(build(f"{method} {target} SIP/2.0", h))
    return out


def send(sock: socket.socket, t: Target, data: bytes) -> None:
    if t.transport == "UDP":
        sock.sendto(data[:65507], (t.host, t.port))
    else:
        sock.sendall(data)


def ask_options(host: str, port: int, transport: str = "UDP", timeout: float = 3) -> list:
    """The statuses answering one well-formed OPTIONS sent on a fresh socket ([] if
    nothing came back within ``timeout``)."""
    with open_socket(host, port, transport) as sock:
        t = Target(host, port, transport, sock.getsockname()[1])
        send(sock, t, options(t))
        return [status_of(m) for m in Responses(sock, transport).read(timeout, bool)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--tcp", action="store_true")
    p.add_argument("--wait", type=float, default=0.5, help="seconds to wait for answers")
    args = p.parse_args()
    transport = "TCP" if args.tcp else "UDP"
    # Every Via asks for rport: answers come back to the socket that sent the request.
    target = Target(args.host, args.port, transport, 9)
    for msg in torture_messages(target):
        try:
            sock = open_socket(args.host, args.port, transport)
            send(sock, target, msg.data)
            got = Responses(sock, transport).read(args.wait, lambda g: False)
            for response in got:
                if msg.data.startswith(b"INVITE") and (status_of(response) or 0) >= 200:
                    for follow in after_invite(msg.data, response, target):
                        send(sock, target, follow)
                    break
            sock.close()
        except OSError as exc:
            print(f"{msg.name}: {exc}")
            continue
        statuses = [status_of(m) for m in got]
        print(f"{msg.name}: {statuses or 'no answer'}")


if __name__ == "__main__":
    main()
