"""Past four calls: ``--workers N``, real kamailio in front of real workers, real callers.

The app greets each caller with a 500 Hz tone, echoes the caller's two digits as tones,
then holds a 300 Hz tone until the caller hangs up (tests/soak.py's app, whose
``check_call`` reads each recording: every tone at its length, the hold tone unbroken to
the hang-up). The callers are tests/peers/pjsua_multi.py (4 calls each, the wheel's
limit) and tests/peers/pjsua_peer.py, all through the front's port on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import ROOT, wait_until
from .kamailio import KAMAILIO, MODULES, port_free
from .sip import App, multi, multi_results, next_ports, peer, peer_result, serving
from .soak import APP as HOLDING_APP
from .soak import check_call
from .test_flood import heard_right

GRACE_APP = HOLDING_APP.replace(
    "playTone(300, 3600)  # until the caller hangs up",
    "playTone(300, 2.0)  # then the handler returns: the app hangs up",
)
assert GRACE_APP != HOLDING_APP


def require_front() -> None:
    if KAMAILIO is None or not (MODULES / "dispatcher.so").exists():
        pytest.skip("kamailio and its dispatcher module are not installed (apt install kamailio)")


def front_port(workers: int) -> int:
    """A listen port free on 127.0.0.1 (UDP and TCP) whose cluster ports are free too."""
    start = 13000 + (os.getpid() % 30) * 30
    for port in range(start, 13900):
        if all(port_free(p) for p in (port, *range(port + 1000, port + 1001 + workers))):
            return port
    raise RuntimeError("no free port for the cluster")


@contextmanager
def cluster(
    tmp_path: Path,
    source: str,
    workers: int = 3,
    *args: str,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
):
    """The app in ``source`` served with ``--workers`` on ``host`` (and ``env`` added to
    its environment) until the block ends (then SIGTERM: every process must exit 0)."""
    require_front()
    app_path = tmp_path / "app.py"
    app_path.write_text(textwrap.dedent(source))
    assert KAMAILIO is not None
    env = {**(env or {}), "PATH": f"{os.environ.get('PATH', '')}:{os.path.dirname(KAMAILIO)}"}
    with serving(
        app_path,
        *("--workers", str(workers), "--transport", "udp", *args),
        env=env,
        host=host,
        port=front_port(workers),
        ready="cluster up",
    ) as app:
        yield app


def options(port: int, *headers: str) -> int | None:
    """The status answering an OPTIONS to the front on 127.0.0.1 (None: no answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.0)
        me = s.getsockname()[1]
        lines = [
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{me}x{len(headers)}",
            "Max-Forwards: 70",
            f"From: <sip:test@127.0.0.1:{me}>;tag=t{me}",
            f"To: <sip:127.0.0.1:{port}>",
            f"Call-ID: {me}-{len(headers)}@127.0.0.1",
            "CSeq: 1 OPTIONS",
            *headers,
            "Content-Length: 0",
        ]
        s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), ("127.0.0.1", port))
        try:
            return int(s.recv(4096).split(b" ", 2)[1])
        except TimeoutError:
            return None


def calls_held(
    app: App, tmp_path: Path, callers: int, each: int, seconds: float
) -> list[subprocess.Popen[str]]:
    """``callers`` pjsua2 callers placing ``each`` calls at once, hung up after
    ``seconds``, each recording into a directory of its own; returns once the workers
    have answered them all."""
    procs = []
    for k in range(callers):
        wavs = tmp_path / f"caller-{k}"  # each caller names its recordings call-0.wav ...
        wavs.mkdir()
        procs.append(
            multi(
                app.uri,
                *("--calls", str(each), "--concurrent", str(each)),
                *("--min", str(seconds), "--max", str(seconds)),
                *("--record-dir", str(wavs), "--seed", str(k)),
            )
        )
    total = callers * each
    wait_until(app.proc, lambda: sum(answered_on(app, w) for w in (1, 2, 3)) == total, 10)
    return procs


def pids(app: App, name: str) -> list[int]:
    """The pids the supervisor logged for ``name`` (e.g. ``worker 1``), oldest first."""
    return [int(p) for p in re.findall(rf"{name} (?:up|restarted) \(pid (\d+)\)", app.log)]


def answered_on(app: App, worker: int) -> int:
    """Calls worker ``worker`` logged answered."""
    return len(re.findall(rf"\[worker {worker}\] .* answered", app.log))


MANY_AT_ONCE = ("--invite-rate", "20", "--allow", "127.0.0.1")
"""The callers here place up to 12 calls at once from one address, as a PBX's trunk
would: above the front's default per-address burst (10 INVITEs, --invite-rate 5), and
several awaiting their ACK at once, which the front (as the guard) allows to the
trusted sources of --allow alone."""


def test_three_workers_take_twelve_calls_each_heard_right_and_refuse_the_thirteenth(tmp_path):
    with cluster(tmp_path, HOLDING_APP, 3, *MANY_AT_ONCE) as app:
        callers = calls_held(app, tmp_path, 3, 4, 7)
        # All 12 up (each worker holding 4, answering the front's probes with 503):
        thirteenth = peer_result(peer(app.uri, "--duration", "2"), timeout=30)
        # The front answers OPTIONS itself, and scanners not at all.
        assert options(app.port) == 200
        assert options(app.port, "User-Agent: friendly-scanner") is None
        results = [multi_results(c, timeout=60) for c in callers]
    calls = [c for lines, _ in results for c in lines]
    assert len(calls) == 12
    wrong = {c["n"]: why for c in calls if (why := check_call(c))}
    assert not wrong, wrong
    assert [answered_on(app, w) for w in (1, 2, 3)] == [4, 4, 4]
    assert not thirteenth["answered"] and thirteenth["status"] in (486, 503), thirteenth


def test_a_worker_killed_leaves_the_others_calls_whole_and_comes_back(tmp_path):
    with cluster(tmp_path, HOLDING_APP, 3, *MANY_AT_ONCE) as app:
        callers = calls_held(app, tmp_path, 2, 3, 9)
        victim = pids(app, "worker 1")[0]
        lost = answered_on(app, 1)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        # A new call at once: the front may still try the dead worker, then the next.
        soon = peer_result(peer(app.uri, "--dtmf", "12", "--duration", "3"), timeout=30)
        assert soon["answered"], soon
        assert time.monotonic() - killed_at < 8
        wait_until(app.proc, lambda: len(pids(app, "worker 1")) == 2, 15)
        assert f"worker 1 (pid {victim}) died: killed by SIGKILL" in app.log
        results = [multi_results(c, timeout=60) for c in callers]
        # Back in the front's list once it answers a probe (every 2 s): calls reach it.
        time.sleep(2.5)
        before = answered_on(app, 1)
        again = multi(app.uri, "--calls", "3", "--concurrent", "3", "--min", "2", "--max", "2")
        later, _ = multi_results(again, timeout=60)
        assert all(c["answered"] for c in later), later
        assert answered_on(app, 1) > before, app.log[-3000:]
    calls = [c for lines, _ in results for c in lines]
    wrong = {c["n"]: why for c in calls if (why := check_call(c))}
    # The dead worker's calls lost their audio; every other call is whole.
    assert 1 <= lost <= 3 and len(wrong) == lost, (lost, wrong)


def test_sigterm_lets_the_calls_finish_then_every_process_exits_0(tmp_path):
    with cluster(tmp_path, GRACE_APP, 3, "--grace", "10") as app:
        (caller,) = calls_held(app, tmp_path, 1, 3, 20)
        children = [p for w in (1, 2, 3) for p in pids(app, f"worker {w}")]
        front = pids(app, "kamailio")[0]
        config = Path(f"/proc/{front}/cmdline").read_bytes().split(b"\0")[4].decode()
        stopped_at = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        # Draining: the workers answer the probes 503 and refuse new calls.
        refused = peer_result(peer(app.uri, "--duration", "1"), timeout=30)
        calls, _ = multi_results(caller, timeout=30)
        assert app.proc.wait(timeout=30) == 0, app.log[-3000:]
        took = time.monotonic() - stopped_at
    assert not refused["answered"] and refused["status"] in (486, 503), refused
    # Each handler ended its call within the grace period: the caller got its BYE.
    assert [c["ended_by"] for c in calls] == ["remote"] * 3, calls
    assert all(c["seconds"] < 8 for c in calls), calls
    assert took < 10 + 5, took
    heard = {c["n"]: heard_right(c["wav"], c["digits"]) for c in calls}
    assert all(ok for ok, _ in heard.values()), heard
    for pid in (*children, front):
        assert not Path(f"/proc/{pid}").exists(), f"{pid} still running"
    leftover = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if config.encode() in cmdline.read_bytes():
                leftover.append(cmdline.parent.name)
        except OSError:
            pass  # gone meanwhile
    assert not leftover, f"kamailio processes left: {leftover}"


def test_workers_without_kamailio_fail_at_once_with_the_line_that_installs_it(tmp_path):
    path = os.pathsep.join(d for d in (os.path.dirname(sys.executable), "/usr/bin", "/bin") if d)
    if any(Path(d, "kamailio").exists() for d in path.split(os.pathsep)):
        pytest.skip("kamailio is on every PATH this test can make")
    port, rtp = next_ports()
    app_path = tmp_path / "app.py"
    app_path.write_text(textwrap.dedent(GRACE_APP))
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "voip.cli", "serve", str(app_path), "--workers", "2"]
        + ["--listen", f"127.0.0.1:{port}", "--rtp-ports", f"{rtp}-{rtp + 99}"],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "sudo apt install kamailio" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 10
