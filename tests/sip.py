"""Helpers for SIP tests: an app serving on loopback, and callers of two kinds.

Every process gets its own SIP port and RTP range, so tests never share sockets.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from voip.sipuri import join_hostport

from .helpers import ROOT

PEER = Path(__file__).resolve().parent / "peers" / "pjsua_peer.py"
CALLEE = Path(__file__).resolve().parent / "peers" / "pjsua_callee.py"

pytest.importorskip("pjsua2", reason="the SIP tests need pjsua2-python (pip install -e '.[test]')")

_ports = itertools.count(0)


def next_ports() -> tuple[int, int]:
    """A SIP port and the first of 100 RTP ports, unique within this test run.

    The RTP ports stay below Linux's ephemeral ports (32768 and up): there a client
    socket of any other process may take one, and its packets would land in a capture
    of the app's range."""
    n = next(_ports) + (os.getpid() % 40) * 50
    return 16000 + n, 20000 + 100 * (n % 127)


class App:
    def __init__(
        self, proc: subprocess.Popen[str], port: int, rtp: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.proc = proc
        self.port = port
        self.rtp = rtp
        """The first port of the app's RTP range (its first call's RTP port)."""
        self.uri = f"sip:app@{join_hostport(host, port)}"
        self.log = ""
        """What the app printed and logged."""
        self.reader: threading.Thread | None = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=5)
        return self.proc.returncode


@contextmanager
def serving(
    script: str | Path,
    *args: str,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: str = "SIP listening",
    prefix: tuple[str, ...] = (),
):
    """Run ``script --sip`` listening on ``host`` (IPv4's loopback unless told, e.g.
    ``::1``, or ``::`` for both IPv4 and IPv6) and ``port`` (0: one of its own) until the
    block ends; yields an :class:`App`, whose ``uri`` is on ``host`` (on 127.0.0.1 for
    ``::``), once the app has logged ``ready``. ``prefix``: a command that runs it (e.g.
    ``setpriv`` with its arguments).

    On leaving, the app gets SIGTERM and must exit 0; its log is in ``app.log``.
    """
    own_port, rtp = next_ports()
    port = port or own_port
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [*prefix, sys.executable, str(script), "--sip", "--listen", join_hostport(host, port)]
        + ["--rtp-ports", f"{rtp}-{rtp + 99}", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
    )
    app = App(proc, port, rtp, "127.0.0.1" if host == "::" else host)
    deadline = time.monotonic() + 40
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        app.log += line
        if ready in line:
            break
    else:
        proc.kill()
    if ready not in app.log:
        app.stop()
        raise AssertionError(f"the app did not start:\n{app.log}")

    def drain() -> None:  # keep reading, so that the pipe never fills up
        for line in proc.stdout:  # type: ignore[union-attr]
            app.log += line

    app.reader = threading.Thread(target=drain, daemon=True)
    app.reader.start()
    try:
        yield app
    finally:
        code = app.stop()
        assert code == 0, f"the app exited with {code}:\n{app.log}"


def _start_peer(script: Path, uri: str, args: tuple[str, ...]) -> subprocess.Popen[str]:
    port, rtp = next_ports()
    return subprocess.Popen(
        [sys.executable, str(script), uri, "--port", str(port), "--rtp-port", str(rtp), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def peer(uri: str, *args: str) -> subprocess.Popen[str]:
    """Start the plain pjsua2 caller (tests/peers/pjsua_peer.py) on its own ports."""
    return _start_peer(PEER, uri, args)


def start_callee(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the pjsua2 callee (tests/peers/pjsua_callee.py) on its own ports; once it
    listens, returns it and its URI."""
    port, rtp = next_ports()
    proc = subprocess.Popen(
        [sys.executable, str(CALLEE), "--port", str(port), "--rtp-port", str(rtp), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # PJSIP's start-up lines first
        if line.strip() == "ready":
            break
    else:
        raise AssertionError(f"the callee did not start:\n{proc.communicate()[1]}")
    return proc, f"sip:callee@127.0.0.1:{port}"


def peers(uri: str, count: int, *args: str, apart: float = 0.2) -> list[subprocess.Popen[str]]:
    """``count`` pjsua2 callers (:func:`peer`), started ``apart`` seconds from each other.

    All call from 127.0.0.1, and the app's guard lets one call from an address await its
    ACK at a time (voip.guard.AwaitingAck): an INVITE arriving in that millisecond is
    dropped, and its caller sends it again 0.5 s later. Callers started at the same
    instant send their retransmissions in step too, and one can be dropped again and
    again. Phones and PBXs are not that synchronised; these callers are kept apart.
    """
    procs = []
    for n in range(count):
        if n:
            time.sleep(apart)
        procs.append(peer(uri, *args))
    return procs


def peer_result(proc: subprocess.Popen[str], timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    assert lines, f"the peer printed nothing:\n{err}"
    return json.loads(lines[-1])


def voip_dial(uri: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``voip dial`` headless on its own ports."""
    port, rtp = next_ports()
    return subprocess.run(
        [sys.executable, "-m", "voip.cli", "dial", uri, "--no-audio"]
        + ["--listen", f"127.0.0.1:{port}", "--rtp-ports", f"{rtp}-{rtp + 99}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


LOAD = Path(__file__).resolve().parent / "peers" / "pjsua_load.py"


def load(uri: str, *args: str) -> subprocess.Popen[str]:
    """Start the plain pjsua2 load generator (tests/peers/pjsua_load.py)."""
    return _start_peer(LOAD, uri, args)


def stats_app(handler: str) -> str:
    """An app script: ``handler`` (source, dedented, ending with ``runVoipClient``) after
    a ``stats()`` function that measures the app process from inside.

    ``stats()`` collects garbage, then counts the voip objects of calls (``Call``,
    ``SipCall``, ``FramePort``), asyncio tasks, threads, open file descriptors, all Python
    objects the collector tracks, and reads the resident memory (VmRSS). The app also
    prints ``STATS <json>`` on SIGUSR1, so that it can be sampled between calls.
    """
    measure = """
        import asyncio, gc, json, os, signal, threading
        from voip.backends.pjsip.calls import FramePort, SipCall
        from voip.call import Call

        def stats():
            gc.collect()
            objs = gc.get_objects()
            rss = next(int(line.split()[1]) for line in open("/proc/self/status")
                       if line.startswith("VmRSS"))
            try:
                tasks = len(asyncio.all_tasks())
            except RuntimeError:  # no loop running (yet)
                tasks = 0
            return {
                "calls": sum(isinstance(o, Call) for o in objs),
                "sip_calls": sum(isinstance(o, SipCall) for o in objs),
                "ports": sum(isinstance(o, FramePort) for o in objs),
                "tasks": tasks,
                "threads": threading.active_count(),
                "fds": len(os.listdir("/proc/self/fd")),
                "objects": len(objs),
                "rss_kb": rss,
            }

        signal.signal(
            signal.SIGUSR1, lambda *_: print("STATS " + json.dumps(stats()), flush=True)
        )
        """
    return textwrap.dedent(measure) + textwrap.dedent(handler)


def read_stats(log: str) -> list[dict]:
    """The ``STATS`` lines an app made with :func:`stats_app` printed, in order."""
    return [json.loads(ln.split("STATS ", 1)[1]) for ln in log.splitlines() if "STATS {" in ln]


def multi(uri: str, *args: str) -> subprocess.Popen[str]:
    """Start the pjsua2 caller that keeps up to 4 calls going at once
    (tests/peers/pjsua_multi.py) on its own ports."""
    return _start_peer(Path(__file__).resolve().parent / "peers" / "pjsua_multi.py", uri, args)


def multi_results(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[list[dict], dict]:
    """Each call's JSON line from :func:`multi`, and its summary (the last line)."""
    out, err = proc.communicate(timeout=timeout)
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert lines and "placed" in lines[-1], f"the caller did not finish:\n{out}\n{err}"
    return lines[:-1], lines[-1]
