"""INVITEs answered but never ACKed: each holds one of the process's 4 call slots only
until the ACK deadline (voip.backends.pjsip.agent.ACK_TIMEOUT, 8 s), and one source
address holds at most one such call at a time (also at a cluster's kamailio front).

Without the deadline PJSIP keeps such a call for 32 s (retransmitting its 200 OK), then
for as long again trying to send its BYE: 4 datagrams made the app refuse every caller
(486) for about 65 s.
"""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from .peers import torture
from .peers.torture import Responses, Target, status_of
from .sip import App, peer, peer_result, serving
from .test_cluster import cluster
from .test_defences import TONE_APP, assert_still_answers, tone_app

ACK_TIMEOUT = 8.0
"""The app's ACK deadline (the test checks the value it logs)."""


def udp_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def invite(app: App, sock: socket.socket, **sdp: str) -> bytes:
    """A well-formed INVITE with an offer, from ``sock``'s address and port (``sdp``:
    :func:`torture.sdp`'s ``media`` and ``conn`` lines, if not its own)."""
    host, port = sock.getsockname()
    t = Target("127.0.0.1", app.port, "UDP", port)
    h = torture.headers_for(t, "INVITE")
    h["Contact"] = f"<sip:caller@{host}:{port}>"  # where a BYE would go
    h["Content-Type"] = "application/sdp"
    return torture.build(f"INVITE {t.uri} SIP/2.0", h, torture.sdp(t, **sdp))


def final_status(sock: socket.socket, timeout: float = 3.0) -> tuple[int | None, bytes]:
    """The first final response that comes to ``sock``, and the response itself."""
    got = Responses(sock, "UDP").read(timeout, lambda g: any((status_of(m) or 0) >= 200 for m in g))
    final = next((m for m in got if (status_of(m) or 0) >= 200), b"")
    return status_of(final) if final else None, final


def received(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every datagram that came to ``sock`` (queued or arriving within ``seconds``)."""
    return Responses(sock, "UDP").read(seconds, lambda g: False)


def test_unacked_invites_free_their_slots_at_the_ack_deadline(tmp_path):
    with serving(tone_app(tmp_path, 2)) as app, ExitStack() as held:
        # Four sources (the whole of 127/8 is loopback): one unACKed call each, the most
        # one address may hold, and the most the process holds.
        socks = [held.enter_context(udp_socket(f"127.0.0.{n}")) for n in range(2, 6)]
        for sock in socks:
            sock.sendto(invite(app, sock), ("127.0.0.1", app.port))
        started = time.monotonic()
        assert [final_status(s)[0] for s in socks] == [200] * 4, app.log[-3000:]

        # Every slot is taken: an honest caller is refused meanwhile.
        busy = peer_result(peer(app.uri, "--duration", "1"))
        assert busy["status"] == 486 and not busy["answered"], (busy, app.log[-3000:])
        assert time.monotonic() - started < ACK_TIMEOUT - 1, "the busy call came too late"

        # Past the deadline (8 s; without it, about 65 s) the slots are free again.
        time.sleep(max(0.0, started + ACK_TIMEOUT + 1.5 - time.monotonic()))
        assert_still_answers(app, tmp_path)

        # Ended without a BYE, and the 200 OK is not sent again (PJSIP would have
        # retransmitted it at 7.5, 11.5, 15.5 ... s after the first).
        time.sleep(max(0.0, started + 12.5 - time.monotonic()))
        late = [received(s, 0.05) for s in socks]
    byes = [m for msgs in late for m in msgs if m.startswith(b"BYE ")]
    assert not byes, byes
    # Never ACKed, never "answered": the lines are the one caller's answered after them.
    assert app.log.count(") answered") == app.log.count("] call ended (") == 1, app.log
    # Retransmissions of the 200 came at 0.5, 1.5, 3.5 and 7.5 s; none after the deadline.
    assert [sum(status_of(m) == 200 for m in msgs) for msgs in late] == [4] * 4, late
    never_acked = [ln for ln in app.log.splitlines() if "never ACKed" in ln]
    assert len(never_acked) == 4, app.log[-3000:]
    assert all("ACKed in 8 s" in ln for ln in never_acked), never_acked
    sources = {ln.split("refused SIP from ")[1].split(":")[0] for ln in never_acked}
    assert sources == {f"127.0.0.{n}" for n in range(2, 6)}, never_acked


def tcp_invite(app: App, sock: socket.socket) -> bytes:
    host, port = sock.getsockname()
    t = Target("127.0.0.1", app.port, "TCP", port)
    h = torture.headers_for(t, "INVITE")
    h["Contact"] = f"<sip:caller@{host}:{port};transport=tcp>"
    h["Content-Type"] = "application/sdp"
    return torture.build(f"INVITE {t.uri};transport=tcp SIP/2.0", h, torture.sdp(t))


def served(tmp_path: Path, where: str):
    """The tone app served alone, or by one worker behind kamailio (UDP and TCP)."""
    if where == "alone":
        return serving(tone_app(tmp_path, 2))
    return cluster(tmp_path, TONE_APP.format(seconds=2), 1, "--transport", "udp,tcp")


@pytest.mark.parametrize("where", ["alone", "at the front"])
def test_one_unacked_call_per_source_address(tmp_path, where):
    with served(tmp_path, where) as app, ExitStack() as held:
        first, second = (held.enter_context(udp_socket("127.0.0.1")) for _ in range(2))
        first_invite = invite(app, first)
        first.sendto(first_invite, ("127.0.0.1", app.port))
        status, answer = final_status(first)
        assert status == 200, app.log[-3000:]

        # Another call from the same address while the first awaits its ACK: over UDP
        # no answer (its sender tries again in 0.5 s), over TCP 503.
        second_invite = invite(app, second)
        second.sendto(second_invite, ("127.0.0.1", app.port))
        assert received(second, 0.4) == [], app.log[-3000:]
        tcp = held.enter_context(torture.open_socket("127.0.0.1", app.port, "TCP"))
        tcp.sendall(tcp_invite(app, tcp))
        got = Responses(tcp, "TCP").read(3, lambda g: any((status_of(m) or 0) >= 200 for m in g))
        assert [s for s in map(status_of, got) if (s or 0) >= 200] == [503], got
        # A retransmission of the first INVITE is not a new call: its 200 comes again.
        first.sendto(first_invite, ("127.0.0.1", app.port))
        again = Responses(first, "UDP").read(2, lambda g: any(status_of(m) == 200 for m in g))
        assert any(status_of(m) == 200 for m in again), again

        # Once the first call is ACKed, the second INVITE, sent again, is answered.
        t = Target("127.0.0.1", app.port, "UDP", first.getsockname()[1])
        ack, bye = torture.after_invite(first_invite, answer, t)
        first.sendto(ack, ("127.0.0.1", app.port))
        time.sleep(0.3)
        second.sendto(second_invite, ("127.0.0.1", app.port))
        status, second_answer = final_status(second)
        assert status == 200, app.log[-3000:]
        first.sendto(bye, ("127.0.0.1", app.port))
        t = Target("127.0.0.1", app.port, "UDP", second.getsockname()[1])
        for data in torture.after_invite(second_invite, second_answer, t):
            # Apart: kamailio's children relay each datagram on its own, and a BYE that
            # overtook its ACK would end the call before its handler ran (seen in CI).
            second.sendto(data, ("127.0.0.1", app.port))
            time.sleep(0.3)
    assert app.log.count("HANDLER RAN") == 2, app.log
    refused = [ln for ln in app.log.splitlines() if "refused SIP from 127.0.0.1" in ln]
    assert any("awaits its ACK (dropped: UDP callers send it again)" in ln for ln in refused)
    assert any("awaits its ACK (503)" in ln for ln in refused), refused
