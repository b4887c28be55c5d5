"""One SIP request over UDP, asyncio: is a worker (or the front) up, a worker joining a
front (:mod:`.join`), and the status answering it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

__all__ = ["ask", "ask_options"]


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, status: asyncio.Future[int]) -> None:
        self.status = status

    def datagram_received(self, data: bytes, addr: object) -> None:
        line = data.split(b"\r\n", 1)[0].split()
        # A provisional answer (100 Trying) is not the answer.
        if len(line) >= 2 and line[0] == b"SIP/2.0" and line[1].isdigit() and line[1] >= b"200":
            if not self.status.done():
                self.status.set_result(int(line[1]))


async def ask(
    host: str,
    port: int,
    method: str,
    headers: Sequence[str] = (),
    local_host: str | None = None,
    timeout: float = 1.0,
) -> int | None:
    """The final status answering one ``method`` request with ``headers`` sent to
    ``host``:``port`` over UDP, from ``local_host`` (None: the address the kernel picks);
    None: no answer within ``timeout``."""
    loop = asyncio.get_running_loop()
    status: asyncio.Future[int] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Answer(status),
        remote_addr=(host, port),
        local_addr=None if local_host is None else (local_host, 0),
    )
    try:
        local_host, local_port = transport.get_extra_info("sockname")[:2]
        tag = secrets.token_hex(6)
        request = (
            f"{method} sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local_host}:{local_port};rport;branch=z9hG4bK{tag}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:supervisor@{local_host}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {tag}@{local_host}\r\n"
            f"CSeq: 1 {method}\r\n"
            + "".join(f"{h}\r\n" for h in headers)
            + "Content-Length: 0\r\n\r\n"
        )
        transport.sendto(request.encode())
        return await asyncio.wait_for(status, timeout)
    except TimeoutError:
        return None
    finally:
        transport.close()


async def ask_options(host: str, port: int, timeout: float = 1.0) -> int | None:
    """The status answering one OPTIONS sent to ``host``:``port`` over UDP (None: no
    answer within ``timeout``)."""
    return await ask(host, port, "OPTIONS", timeout=timeout)
