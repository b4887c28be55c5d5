"""Malformed and hostile SIP, raw over UDP and TCP: the app answers what deserves an
answer, drops the rest, and afterwards still answers OPTIONS and a real call.

The messages are tests/peers/torture.py's (RFC 4475's categories, written for this
project): junk, broken start lines, missing or broken mandatory headers, bad
Content-Length and CSeq, NUL bytes, invalid UTF-8, folding, huge and truncated messages,
stray responses, INVITEs with broken offers. After each one a well-formed OPTIONS must get
its 200 at once, so a failure names the message that did the harm.
"""

from __future__ import annotations

import logging
import socket
import textwrap
import threading
import time
from contextlib import ExitStack

import pytest

from voip import loadWAVtoPCM

from .helpers import tone_runs
from .peers import torture
from .peers.torture import Responses, Target, open_socket, send, status_of
from .sip import App, peer, peer_result, serving

KEY_APP = """
    import asyncio
    from voip import runVoipClient

    async def handler(call):
        await call.playTone(500, 0.5)
        key = await asyncio.wait_for(call.getDTMF(), 10)
        call.log.info("GOT KEY %s", key)
        await call.playTone(600 + 100 * int(key), 0.3)

    runVoipClient(handler)
"""


NO_RATE_LIMITS = ("--options-rate", "0", "--invite-rate", "0", "--call-rate", "0")
"""Every message reaches PJSIP itself (the request guard would drop most of a burst from
one address: what is tested here is what lies behind it)."""


def key_app(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(KEY_APP))
    return path


def probe(app: App, transport: str) -> list[int | None]:
    """Statuses answering one well-formed OPTIONS, on a fresh socket."""
    return torture.ask_options("127.0.0.1", app.port, transport)


def real_call(app: App, tmp_path, key: str, *args: str) -> tuple[dict, list]:
    """A pjsua2 caller that presses ``key``: its result and the tones it heard."""
    wav = tmp_path / f"heard-{key}.wav"
    result = peer_result(
        peer(app.uri, "--record", str(wav), "--dtmf", key, "--dtmf-at", "0.9", *args)
    )
    heard = tone_runs(loadWAVtoPCM(wav), [500] + [600 + 100 * k for k in range(10)])
    return result, [(f, round(length, 2)) for f, _start, length in heard if length >= 0.05]


def assert_call_works(app: App, tmp_path, key: str, *args: str) -> None:
    result, heard = real_call(app, tmp_path, key, *args)
    assert result["answered"] and result["status"] == 200, (result, app.log[-2000:])
    want = [500, 600 + 100 * int(key)]
    assert [f for f, _ in heard] == want, heard
    assert abs(heard[0][1] - 0.5) <= 0.04 and abs(heard[1][1] - 0.3) <= 0.04, heard
    assert f"GOT KEY {key}" in app.log


def final_statuses(got: list[bytes]) -> set[int | None]:
    """The final statuses among the answers (None when there was none)."""
    finals = {s for s in map(status_of, got) if s is None or s >= 200}
    return finals or {None}


def torture_one(app: App, msg: torture.Torture, transport: str) -> set[int | None]:
    """Send one message on its own socket; the final statuses it got. A well-behaved
    caller's ACK (and BYE) follows an INVITE's final answer."""
    target = Target("127.0.0.1", app.port, transport, 9)  # every Via asks for rport
    with open_socket("127.0.0.1", app.port, transport) as sock:
        send(sock, target, msg.data)
        assert probe(app, transport) == [200], f"no answer to OPTIONS after {msg.name!r}"
        # The probe's answer came after this message was read (in order on UDP; on TCP
        # another connection may come first, hence the longer wait).
        responses = Responses(sock, transport)
        got = responses.read(
            0.05 if transport == "UDP" else 0.1, lambda g: final_statuses(g) != {None}
        )
        if msg.data.startswith(b"INVITE"):
            final = next((m for m in got if (status_of(m) or 0) >= 200), None)
            if final is not None:
                follow = torture.after_invite(msg.data, final, target)
                for data in follow:
                    send(sock, target, data)
                if len(follow) == 2:  # ACK and BYE: the BYE's 200 ends the call
                    bye = responses.read(
                        3, lambda g: any(b"BYE" in m and status_of(m) == 200 for m in g)
                    )
                    assert any(status_of(m) == 200 and b"BYE" in m for m in bye), msg.name
    return final_statuses(got)


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_torture_messages_then_options_and_a_call_still_work(tmp_path, transport):
    with serving(key_app(tmp_path), *NO_RATE_LIMITS) as app:
        target = Target("127.0.0.1", app.port, transport, 9)
        wrong = {}
        names = []
        for msg in torture.torture_messages(target):
            names.append(msg.name)
            got = torture_one(app, msg, transport)
            if not got <= msg.expect:
                wrong[msg.name] = (sorted(got, key=str), sorted(msg.expect, key=str), msg.why)
        assert probe(app, "UDP") == [200] and probe(app, "TCP") == [200]
        assert_call_works(app, tmp_path, "7", *(["--tcp"] if transport == "TCP" else []))
        assert app.proc.poll() is None, app.log[-3000:]
    assert len(names) >= 70
    assert not wrong, wrong
    # The messages' own text never reaches the log (PJSIP copies a malformed request
    # into its complaint; only the first line of each complaint is kept), and a flood of
    # complaints is a few lines.
    assert torture.FORGED_LOG_LINE not in app.log
    assert "torture.invalid" not in app.log  # every message's Call-ID
    complaints = [ln for ln in app.log.splitlines() if "voip.pjsip" in ln and "packet" in ln]
    assert len(complaints) < 10, complaints


class Trickle(threading.Thread):
    """A TCP connection that sends one byte of a never-ending header every 100 ms."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = open_socket("127.0.0.1", port, "TCP")
        self.sock.sendall(b"OPTIONS sip:app@127.0.0.1 SIP/2.0\r\nX-Slow: ")
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.sock.sendall(b"z")
            except OSError:
                return
            self.sent += 1


def test_tcp_stream_split_pipelined_and_never_finished(tmp_path):
    with serving(key_app(tmp_path), *NO_RATE_LIMITS) as app:
        t = Target("127.0.0.1", app.port, "TCP", 9)

        # One message in many segments (TCP_NODELAY: each write its own segment).
        with open_socket("127.0.0.1", app.port, "TCP") as sock:
            data = torture.options(t)
            for i in range(0, len(data), 37):
                sock.sendall(data[i : i + 37])
                time.sleep(0.03)
            assert [status_of(m) for m in Responses(sock, "TCP").read(3, bool)] == [200]

        # Five messages in one write: five answers, in order.
        with open_socket("127.0.0.1", app.port, "TCP") as sock:
            batch = [torture.options(t) for _ in range(5)]
            sock.sendall(b"".join(batch))
            got = Responses(sock, "TCP").read(3, lambda g: len(g) >= 5)
            assert [status_of(m) for m in got] == [200] * 5
            sent_ids = [torture.header(m, "Call-ID") for m in batch]
            assert [torture.header(m, "Call-ID") for m in got] == sent_ids

        # Junk between two messages in one write: the first is still answered.
        with open_socket("127.0.0.1", app.port, "TCP") as sock:
            sock.sendall(torture.options(t) + b"\x00\xffNOT SIP\r\n\r\n" + torture.options(t))
            got = Responses(sock, "TCP").read(0.5, lambda g: len(g) >= 2)
            assert [status_of(m) for m in got][:1] == [200], got

        # Connections cut in the middle of a message, again and again. (Not too many too
        # fast: PJSIP gives a closed socket's slot back only after 500 ms, and the
        # pjsua2 wheel aborts when its 64 slots run out: see tests/peers/tcp_churn.py.)
        for k in range(20):
            with socket.create_connection(("127.0.0.1", app.port), timeout=2) as sock:
                sock.sendall(torture.options(t)[: 10 + 7 * k])
        assert probe(app, "TCP") == [200]
        time.sleep(1)

        # Slowloris: connections that never finish a message, one still trickling, one
        # promising a body that never comes; 24 in all (of the 64 socket slots). Meanwhile
        # everyone else is served.
        with ExitStack() as held:
            for k in range(22):
                sock = held.enter_context(open_socket("127.0.0.1", app.port, "TCP"))
                sock.sendall(torture.options(t)[: 30 + 9 * k])
                time.sleep(0.02)  # PJSIP listens with a backlog of 5: SYNs beyond wait 1 s
            sock = held.enter_context(open_socket("127.0.0.1", app.port, "TCP"))
            h = torture.headers_for(t, "OPTIONS")
            sock.sendall(torture.build(f"OPTIONS {t.uri} SIP/2.0", h, content_length="5000"))
            trickle = Trickle(app.port)
            held.callback(trickle.sock.close)
            held.callback(trickle.stop.set)
            trickle.start()
            time.sleep(0.5)
            assert probe(app, "TCP") == [200] and probe(app, "UDP") == [200]
            assert_call_works(app, tmp_path, "4", "--tcp")
            assert_call_works(app, tmp_path, "9")
            assert trickle.sent >= 20 and trickle.is_alive()
        assert probe(app, "TCP") == [200]
        assert app.proc.poll() is None, app.log[-3000:]
    assert app.log.count("GOT KEY") == 2


def test_bad_packet_log_keeps_one_first_line_per_period(caplog):
    """PJSIP's complaints about malformed packets: the first line only, made printable,
    one per period with a count of the rest (the flood and torture tests see it live)."""
    from voip.backends.pjsip.stack import BadPacketLog

    now = [100.0]
    complain = BadPacketLog(logging.getLogger("voip.test.bad"), every=10, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="voip.test.bad"):
        complain(
            logging.WARNING,
            f"Dropping 9 bytes packet from UDP 1.2.3.4:5 : x\n{torture.FORGED_LOG_LINE}",
        )
        for _ in range(99):
            complain(logging.WARNING, "Dropping 9 bytes packet from UDP 1.2.3.4:5 : x")
        now[0] += 10
        complain(logging.ERROR, "Error processing packet from 1.2.3.4:5: \x1b[2Jbad\nCSeq: 1")
    assert [r.getMessage() for r in caplog.records] == [
        "Dropping 9 bytes packet from UDP 1.2.3.4:5 : x",
        "Error processing packet from 1.2.3.4:5: ?[2Jbad"
        " (99 more malformed packets since the last such line)",
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR]
