"""``--metrics HOST:PORT``: the server's Prometheus metrics, scraped over HTTP while real
calls come and go; and the multiprocess mode the ``--workers`` supervisor will serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from voip.backends.pjsip.metrics import CallMetrics, placed_result
from voip.callstate import Action
from voip.lifecycle import Outcome

from .helpers import ROOT, write_app
from .sip import next_ports, peer, peer_result, serving

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        return parse(reply.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled counter not seen yet (as Prometheus reads it)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


APP = """
    from voip import runVoipClient

    async def handler(call):
        if call.caller_name == "bad":
            raise RuntimeError("this call's bug")
        await call.playTone(500, 10)

    runVoipClient(handler)
"""


def test_calls_answered_refused_and_failed_are_counted(tmp_path):
    port = next_ports()[0]
    app_path = write_app(tmp_path, APP)
    with serving(app_path, "--max-calls", "1", "--metrics", f"127.0.0.1:{port}") as app:
        before = scrape(port)
        bad = peer_result(peer(app.uri, "--name", "bad", "--duration", "3"))
        held = peer(app.uri, "--name", "good", "--duration", "4")
        time.sleep(1.5)
        during = scrape(port)
        busy = peer_result(peer(app.uri, "--duration", "1"))
        good = peer_result(held)
        after = scrape(port)
    assert bad["answered"] and good["answered"] and busy["status"] == 486
    assert value(before, "voip_calls_up", direction="in") == 0
    assert value(before, "voip_calls_answered_total", direction="in") == 0
    assert value(during, "voip_calls_up", direction="in") == 1
    assert value(during, "voip_calls_answered_total", direction="in") == 2
    assert value(after, "voip_calls_up", direction="in") == 0
    assert value(after, "voip_calls_answered_total", direction="in") == 2
    assert value(after, "voip_calls_answered_total", direction="out") == 0
    assert value(after, "voip_calls_refused_total", reason="full") == 1
    refused = {labels: v for (n, labels), v in after.items() if n == "voip_calls_refused_total"}
    assert list(refused.values()) == [1]  # that one, and nothing else
    assert value(after, "voip_handler_errors_total") == 1
    # The bad call's handler raised, so we hung up; the good caller hung up itself.
    assert value(after, "voip_calls_ended_total", direction="in", by="local") == 1
    assert value(after, "voip_calls_ended_total", direction="in", by="remote") == 1
    assert value(after, "voip_call_setup_seconds_count") == 2
    # INVITE to ACK on loopback: milliseconds, well inside the first 200 OK's resend.
    assert 0 < value(after, "voip_call_setup_seconds_sum") < 1.0
    assert value(after, "voip_call_setup_seconds_bucket", le="0.5") == 2
    assert value(after, "process_resident_memory_bytes") > 10_000_000
    assert "metrics at http://127.0.0.1:" in app.log


def scanner_options(sip_port: int, sock: socket.socket) -> bytes:
    host, port = sock.getsockname()
    return (
        f"OPTIONS sip:app@127.0.0.1:{sip_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-scan1\r\n"
        f"From: <sip:100@{host}>;tag=scan\r\nTo: <sip:100@127.0.0.1>\r\n"
        f"Call-ID: scan-1@{host}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_refusals_by_the_allow_list_and_a_scanner_are_counted_apart(tmp_path):
    port = next_ports()[0]
    app_path = write_app(tmp_path, APP)
    with serving(app_path, "--allow", "192.0.2.0/24", "--metrics", f"127.0.0.1:{port}") as app:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.sendto(scanner_options(app.port, sock), ("127.0.0.1", app.port))
            # The SIP thread takes requests in order: the scan is counted by this call's end.
            refused = peer_result(peer(app.uri, "--duration", "1"))
        samples = scrape(port)
    assert refused["status"] == 403
    assert value(samples, "voip_calls_refused_total", reason="allow-list") == 1
    assert value(samples, "voip_requests_refused_total", reason="scanner") == 1
    assert value(samples, "voip_calls_refused_total", reason="scanner") == 0
    assert value(samples, "voip_calls_answered_total", direction="in") == 0
    assert value(samples, "voip_call_setup_seconds_count") == 0


def start_app(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    app_path = write_app(tmp_path, APP)
    sip, rtp = next_ports()
    return subprocess.run(
        [sys.executable, str(app_path), "--sip", "--listen", f"127.0.0.1:{sip}"]
        + ["--rtp-ports", f"{rtp}-{rtp + 99}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("bad", ["127.0.0.1:99999", "127.0.0.1:port"])
def test_a_bad_metrics_address_exits_2_saying_what_is_accepted(tmp_path, bad):
    proc = start_app(tmp_path, "--metrics", bad)
    assert proc.returncode == 2
    assert f"metrics = '{bad}' (from --metrics on the command line) is not accepted" in (
        proc.stderr
    )
    assert "HOST:PORT with a port from 0 (any free port) to 65535" in proc.stderr
    assert "SIP listening" not in proc.stderr + proc.stdout


def test_a_metrics_port_in_use_exits_2_before_sip_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_app(tmp_path, "--metrics", f"127.0.0.1:{port}")
    assert proc.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in proc.stderr
    assert "give --metrics a free port" in proc.stderr
    assert "SIP listening" not in proc.stderr + proc.stdout


def fake_call(incoming: bool, ended_by: str | None = None, age: float = 0.0) -> SimpleNamespace:
    life = SimpleNamespace(ended_by=ended_by)
    return SimpleNamespace(incoming=incoming, started=time.monotonic() - age, life=life)


def test_outgoing_calls_by_result_and_failures_before_the_ack():
    metrics = CallMetrics()
    out = fake_call(False, "local")
    metrics.observe(Action.SETTLE_ANSWERED, out, 0)
    metrics.observe(Action.LOG_ANSWERED, out, 0)
    metrics.observe(Action.LOG_ENDED, out, 0)
    for code in (486, 487, 603, 503, 0):
        metrics.observe(Action.SETTLE_FAILED, fake_call(False), code)
    metrics.observe(Action.LOG_FAILED, fake_call(True), 488)  # PJSIP's media refusal
    metrics.observe(Action.LOG_FAILED, fake_call(True), 500)
    metrics.handled(Outcome(None, "local"))  # no error: not counted
    samples = parse(generate_latest(metrics.registry).decode())
    placed = {
        dict(labels)["result"]: v
        for (name, labels), v in samples.items()
        if name == "voip_calls_placed_total"
    }
    assert placed == {"answered": 1, "busy": 1, "no-answer": 1, "refused": 1, "failed": 2}
    assert value(samples, "voip_calls_ended_total", direction="out", by="local") == 1
    assert value(samples, "voip_calls_up", direction="out") == 0
    assert value(samples, "voip_call_setup_seconds_count") == 0  # incoming calls only
    assert value(samples, "voip_calls_refused_total", reason="media") == 1
    assert value(samples, "voip_calls_refused_total", reason="failed") == 1
    assert value(samples, "voip_handler_errors_total") == 0
    assert [placed_result(c) for c in (200, 600, 408, 404, 0)] == [
        "answered",
        "busy",
        "no-answer",
        "refused",
        "failed",
    ]


WORKER = """
    import sys, time
    from types import SimpleNamespace
    from voip.backends.pjsip.metrics import CallMetrics
    from voip.callstate import Action
    from voip.lifecycle import Outcome

    worker, calls = sys.argv[1], int(sys.argv[2])
    metrics = CallMetrics(worker=worker)
    for _ in range(calls):
        call = SimpleNamespace(incoming=True, started=time.monotonic() - 0.02, life=None)
        metrics.observe(Action.LOG_ANSWERED, call, 0)
    metrics.refused("full", True)
    metrics.handled(Outcome(RuntimeError("bug"), "local"))
"""


def run_worker(directory, worker: str, calls: int) -> int:
    """A process that takes ``calls`` calls (left up) as worker ``worker``; its pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), worker, str(calls)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return proc.pid


def test_workers_metrics_are_served_per_worker_from_one_directory(tmp_path):
    """The plan for ``--workers``: each worker labels its series, prometheus_client's
    multiprocess mode keeps them in files, and one collector reads them all."""
    first = run_worker(tmp_path, "1", 2)
    run_worker(tmp_path, "2", 3)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    samples = parse(generate_latest(registry).decode())
    answered = {
        w: value(samples, "voip_calls_answered_total", direction="in", worker=w) for w in "12"
    }
    assert answered == {"1": 2, "2": 3}
    assert value(samples, "voip_calls_refused_total", reason="full", worker="2") == 1
    assert value(samples, "voip_handler_errors_total", worker="1") == 1
    assert value(samples, "voip_call_setup_seconds_count", worker="2") == 3
    assert value(samples, "voip_calls_up", direction="in", worker="1") == 2
    # A worker that died: the supervisor says so, and its calls stop counting as up
    # while what it counted stays.
    mark_process_dead(first, str(tmp_path))
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "voip_calls_up", direction="in", worker="1") == 0
    assert value(samples, "voip_calls_up", direction="in", worker="2") == 3
    assert value(samples, "voip_calls_answered_total", direction="in", worker="1") == 2
