"""``--workers N --metrics HOST:PORT``: one endpoint for every worker, per worker and in
total, scraped while real callers go through real kamailio to real workers.

Two workers of one call each (``--max-calls 1``): two calls held fill them, so that a
third is refused; a caller named ``bad`` makes the handler raise; a worker SIGKILLed
with a call up is restarted under the same index.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from .helpers import ROOT, wait_until
from .kamailio import KAMCMD, port_free
from .sip import App, peer, peer_result, peers
from .test_cluster import cluster, front_port, pids, require_front
from .test_metrics import Samples, scrape, value

APP = """
    from voip import runVoipClient

    async def handler(call):
        if call.caller_name == "bad":
            raise RuntimeError("this call's bug")
        await call.playTone(300, 3600)  # until the caller hangs up

    runVoipClient(handler)
"""
WORKERS = ("1", "2")


def metrics_port() -> int:
    start = 19500 + (os.getpid() % 50) * 4
    return next(p for p in range(start, start + 200) if port_free(p))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over workers (and over labels not given), as ``sum without (worker)``."""
    return sum(
        v
        for (n, got), v in samples.items()
        if n == name and set(labels.items()) <= got and ("worker", "") not in got
    )


def per_worker(samples: Samples, name: str, **labels: str) -> dict[str, float]:
    return {w: total(samples, name, worker=w, **labels) for w in WORKERS}


def dispatcher_flags(app: App) -> list[str]:
    """The front's view of each worker (``AP``: in rotation, ``IP``: out), in list order."""
    front = pids(app, "kamailio")[0]
    rundir = Path(f"/proc/{front}/cmdline").read_bytes().split(b"\0")[6].decode()
    assert KAMCMD is not None
    out = subprocess.run(
        [KAMCMD, "-s", f"unix:{rundir}/ctl.sock", "dispatcher.list"],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout
    return re.findall(r"FLAGS: (\w+)", out)


def multiproc_dir(app: App) -> Path:
    """The directory the supervisor gave its workers (from worker 1's environment)."""
    environ = Path(f"/proc/{pids(app, 'worker 1')[-1]}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert len(found) == 1, environ
    return Path(found[0].decode())


def test_two_workers_are_counted_apart_and_in_total_and_a_restart_forgets_its_calls(tmp_path):
    port = metrics_port()
    with cluster(tmp_path, APP, 2, "--max-calls", "1", "--metrics", f"127.0.0.1:{port}") as app:
        directory = multiproc_dir(app)
        assert sorted(p.name.split("_")[0] for p in directory.iterdir()) == (
            ["counter"] * 2 + ["gauge"] * 2 + ["histogram"] * 2
        )
        # Two held calls: one on each worker (round robin), which fills them both.
        held = peers(app.uri, 2, "--duration", "6")
        wait_until(app.proc, lambda: total(scrape(port), "voip_calls_up") == 2, 15)
        during = scrape(port)
        # Once their probes are answered 503, the front answers a new caller itself.
        wait_until(app.proc, lambda: dispatcher_flags(app) == ["IP", "IP"], 10)
        refused = peer_result(peer(app.uri, "--duration", "1"), timeout=30)
        calls = [peer_result(p, timeout=30) for p in held]
        wait_until(app.proc, lambda: dispatcher_flags(app) == ["AP", "AP"], 10)
        bad = peer_result(peer(app.uri, "--name", "bad", "--duration", "3"), timeout=30)
        wait_until(app.proc, lambda: total(scrape(port), "voip_calls_ended_total") == 3, 10)
        after = scrape(port)

        # A call up on one worker, which is then killed and restarted.
        lost = peer(app.uri, "--duration", "30")
        wait_until(app.proc, lambda: total(scrape(port), "voip_calls_up") == 1, 15)
        up = per_worker(scrape(port), "voip_calls_up", direction="in")
        victim = next(w for w, n in up.items() if n == 1)
        os.kill(pids(app, f"worker {victim}")[0], signal.SIGKILL)
        wait_until(app.proc, lambda: len(pids(app, f"worker {victim}")) == 2, 20)
        restarted = scrape(port)
        lost.kill()
        lost.wait()
    assert [c["answered"] for c in calls] == [True, True], calls
    assert (refused["answered"], refused["status"]) == (False, 503), refused
    assert bad["answered"], bad

    # Per worker: one held call each, both up at once.
    assert per_worker(during, "voip_calls_up", direction="in") == {"1": 1, "2": 1}
    assert per_worker(during, "voip_calls_answered_total", direction="in") == {"1": 1, "2": 1}
    # The third call never reached a worker: no worker counts it.
    assert total(after, "voip_calls_refused_total") == 0
    # In total: three answered, three ended (two by their callers, the bad one by us).
    answered = per_worker(after, "voip_calls_answered_total", direction="in")
    assert sorted(answered.values()) == [1, 2], answered
    assert total(after, "voip_calls_answered_total") == 3
    assert total(after, "voip_calls_ended_total", by="remote") == 2
    assert total(after, "voip_calls_ended_total", by="local") == 1
    assert total(after, "voip_calls_up") == 0
    errors = per_worker(after, "voip_handler_errors_total")
    assert sorted(errors.values()) == [0, 1], errors
    # The bad call went to the worker that then had answered two calls.
    assert max(answered, key=lambda w: answered[w]) == max(errors, key=lambda w: errors[w])
    assert total(after, "voip_call_setup_seconds_count") == 3
    assert 0 < total(after, "voip_call_setup_seconds_sum") < 3 * 0.5
    assert total(after, "voip_worker_up") == 2
    assert value(after, "voip_front_up") == 1

    # The killed worker's call no longer counts as up; what it counted stays.
    other = next(w for w in WORKERS if w != victim)
    assert per_worker(restarted, "voip_calls_up") == {"1": 0, "2": 0}
    killed = per_worker(restarted, "voip_calls_answered_total", direction="in")
    assert killed == {victim: answered[victim] + 1, other: answered[other]}
    assert per_worker(restarted, "voip_worker_restarts_total") == {victim: 1, other: 0}
    assert per_worker(restarted, "voip_worker_up") == {"1": 1, "2": 1}
    assert value(restarted, "voip_front_restarts_total") == 0
    assert f"worker {victim} restarted" in app.log
    # Made at the start, removed at the exit.
    assert not directory.exists()


def test_a_metrics_port_in_use_stops_the_cluster_before_any_worker_starts(tmp_path):
    require_front()
    from .kamailio import KAMAILIO

    assert KAMAILIO is not None
    app_path = tmp_path / "app.py"
    app_path.write_text(textwrap.dedent(APP))
    sip = front_port(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "voip.cli", "serve", str(app_path), "--workers", "2"]
            + ["--listen", f"127.0.0.1:{sip}", "--rtp-ports", "31000-31099"]
            + ["--metrics", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env={**os.environ, "PATH": f"{os.environ['PATH']}:{os.path.dirname(KAMAILIO)}"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in proc.stderr
    assert "[worker" not in proc.stderr, proc.stderr


def test_kamailios_own_statistics_and_dispatcher_state_are_served_with_the_workers(tmp_path):
    port = metrics_port()
    with cluster(tmp_path, APP, 1, "--metrics", f"127.0.0.1:{port}") as app:
        worker = f"sip:127.0.0.1:{app.port + 1001}"
        wait_until(
            app.proc, lambda: value(scrape(port), "voip_front_destination_up", destination=worker)
        )
        before = scrape(port)
        call = peer_result(peer(app.uri, "--duration", "2"), timeout=30)
        after = scrape(port)
    assert call["answered"], call
    # The INVITE, its ACK and BYE passed the front; it answered none of them itself.
    moved = {
        name: value(after, name) - value(before, name)
        for name in ("kamailio_core_rcv_requests_invite", "kamailio_core_rcv_requests_bye")
    }
    assert moved == {
        "kamailio_core_rcv_requests_invite": 1,
        "kamailio_core_rcv_requests_bye": 1,
    }, moved
    assert value(after, "kamailio_core_fwd_requests") > value(before, "kamailio_core_fwd_requests")
    assert value(after, "kamailio_shmem_used_size") > 0
