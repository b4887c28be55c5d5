"""``--workers`` with the front on IPv6 (``--listen [::1]:PORT``, or ``[::]:PORT`` for
IPv4 and IPv6 at once): kamailio takes the callers on IPv6, the workers stay on
127.0.0.1, and the audio is IPv4 (the wheel has none on IPv6), as for a lone server
(tests/test_ipv6.py, whose app and checks these are)."""

from __future__ import annotations

import json
import re
import socket
import ssl

import pytest

from .sip import next_ports, peer, peer_result, start_callee
from .sipp import PEERS, needs_sipp, run_sipp
from .test_cluster import cluster
from .test_connect_sip import CONNECTOR
from .test_ipv6 import GREETING_APP, assert_heard_the_call, call_and_record
from .test_ipv6 import pytestmark as pytestmark  # skipped without IPv6 on loopback
from .test_tls import make_pair, needs_openssl


@pytest.mark.parametrize(
    "host, transport, allow",
    [("::1", "udp", ()), ("::1", "tcp", ()), ("::", "udp", ("--allow", "::1,127.0.0.1"))],
)
def test_a_caller_over_ipv6_hears_the_cluster_and_its_keys_arrive(tmp_path, host, transport, allow):
    heard = tmp_path / "heard.wav"
    with cluster(tmp_path, GREETING_APP, 2, "--transport", "udp,tcp", *allow, host=host) as app:
        args = ["--sip-ip", "::1", *(["--tcp"] if transport == "tcp" else [])]
        result = peer_result(call_and_record(f"sip:app@[::1]:{app.port}", heard, *args))
    assert_heard_the_call(result, heard)
    assert f"cluster up: SIP on [{host}]:{app.port}" in app.log, app.log
    # The worker saw the call come from the front's loopback side; the caller's ACK
    # reached it (else no keys, the call ended unACKed) and its BYE reached the caller
    # before the caller's own hang-up at 5 s: the Record-Route of both sockets, IPv6 and
    # IPv4, led them through the front.
    assert result["seconds"] < 5, result
    answered = r"\[worker \d\] .* call from <sip:peer@\[::1\]> \(127\.0\.0\.1:\d+\) answered"
    assert re.search(answered, app.log), app.log
    assert "GOT KEYS 42" in app.log
    assert "call ended (we hung up)" in app.log


def test_the_fronts_allow_list_refuses_an_ipv6_caller_outside_it(tmp_path):
    with cluster(tmp_path, GREETING_APP, 1, "--allow", "127.0.0.1", host="::") as app:
        result = peer_result(peer(f"sip:app@[::1]:{app.port}", "--sip-ip", "::1"))
    assert not result["answered"] and result["status"] == 403, result
    assert "refused SIP from ::1: not in the allow-list (403)" in app.log, app.log


@needs_sipp
def test_an_offer_of_audio_on_ipv6_only_is_refused_by_the_worker_through_the_front(tmp_path):
    with cluster(tmp_path, GREETING_APP, 1, host="::1") as app:
        run = run_sipp(
            PEERS / "sipp_busy.xml", app, tmp_path, "-m", "1", sip_ip="::1", media_ip="::1"
        )
    assert run.returncode == 0, run.output
    assert run.calls("NOT_ACCEPTABLE") == [1], (run.log, app.log)
    # The worker sees the front's loopback side as the source; the reason is the guard's.
    assert "refused SIP from 127.0.0.1: its offer has audio on IPv6 only" in app.log, app.log
    assert "answered" not in app.log, app.log


def test_a_front_on_ipv6_alone_refuses_the_workers_calls_out_and_says_why(tmp_path):
    callee, uri = start_callee("--wait", "10")
    env = {"CONNECT_TO": uri, "CONNECT_TIMEOUT": "5"}
    try:
        with cluster(tmp_path, CONNECTOR, 1, env=env, host="::1") as app:
            result = peer_result(peer(f"sip:app@[::1]:{app.port}", "--sip-ip", "::1"))
        out, _ = callee.communicate(timeout=30)
    finally:
        callee.kill()
    assert result["answered"], result
    why = "rejected (403 The Front Has No IPv4 Address (listen on [::]))"
    assert f"connect to {uri}: {why}" in app.log, app.log
    assert "listen on [::] (IPv4 and IPv6) to call out" in app.log, app.log
    assert not json.loads(out.strip().splitlines()[-1])["from"]  # nothing reached it


def test_a_front_on_both_families_takes_both_kinds_of_callers_at_once(tmp_path):
    heard4, heard6 = tmp_path / "ipv4.wav", tmp_path / "ipv6.wav"
    with cluster(tmp_path, GREETING_APP, 2, host="::") as app:
        assert app.uri == f"sip:app@127.0.0.1:{app.port}"
        over_ipv4 = call_and_record(app.uri, heard4)
        over_ipv6 = call_and_record(f"sip:app@[::1]:{app.port}", heard6, "--sip-ip", "::1")
        results = peer_result(over_ipv4), peer_result(over_ipv6)
    for result, heard in zip(results, (heard4, heard6), strict=True):
        assert_heard_the_call(result, heard)
    assert app.log.count("GOT KEYS 42") == 2, app.log
    assert re.search(r"call from <sip:peer@127\.0\.0\.1> .* answered", app.log), app.log
    assert re.search(r"call from <sip:peer@\[::1\]> .* answered", app.log), app.log


@needs_openssl
def test_a_front_on_ipv6_takes_sip_over_tls_there(tmp_path):
    pair = make_pair(tmp_path / "tls")
    tls_port = next_ports()[0]
    tls = ("--tls-listen", f"[::1]:{tls_port}", "--tls-cert", str(pair.cert))
    with cluster(tmp_path, GREETING_APP, 1, *tls, "--tls-key", str(pair.key), host="::1") as app:
        assert f"TLS on [::1]:{tls_port} through kamailio" in app.log, app.log
        context = ssl.create_default_context(cafile=str(pair.cert))
        context.check_hostname = False  # the test certificate names 127.0.0.1
        with socket.create_connection(("::1", tls_port), timeout=5) as raw:
            with context.wrap_socket(raw) as conn:
                me = conn.getsockname()[1]
                conn.sendall(
                    (
                        f"OPTIONS sip:[::1]:{tls_port} SIP/2.0\r\n"
                        f"Via: SIP/2.0/TLS [::1]:{me};branch=z9hG4bK{me}\r\n"
                        f"From: <sip:probe@[::1]>;tag={me}\r\nTo: <sip:[::1]:{tls_port}>\r\n"
                        f"Call-ID: {me}@ipv6\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                        "Content-Length: 0\r\n\r\n"
                    ).encode()
                )
                answer = conn.recv(4096).decode()
    assert answer.startswith("SIP/2.0 200 OK"), answer
    assert "voip front (kamailio)" in answer, answer
