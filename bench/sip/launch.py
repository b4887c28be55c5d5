"""Starting and stopping the SIP benchmark's processes on loopback.

Ports: SIP ports are picked by the OS (bound once to port 0, then released) and RTP ranges
come from 10000-15999, away from the test suite's ranges (tests/sip.py: SIP 16000 up,
RTP 20000 up), so a benchmark can run while the tests do.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from ..common import ROOT

HERE = Path(__file__).resolve().parent
CALLER = HERE / "caller.py"
ANSWERER = HERE / "answerer.py"
GREETER = HERE / "greeter.py"
LOADGEN = HERE / "loadgen.py"

RTP_RANGE = 100
_rtp_blocks = itertools.count((os.getpid() * 7) % 60)


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (voip listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for SIP")


def rtp_block() -> int:
    """The first port of a block of ``RTP_RANGE`` UDP ports in 10000-15999."""
    return 10000 + RTP_RANGE * (next(_rtp_blocks) % 60)


class Server:
    """A process answering calls on ``uri`` until :meth:`stop`."""

    def __init__(
        self,
        proc: subprocess.Popen[str],
        port: int,
        label: str,
        rtp: int,
        rtp_range: int = RTP_RANGE,
    ) -> None:
        self.proc = proc
        self.port = port
        self.label = label
        self.rtp = rtp
        """The first of its ``rtp_range`` RTP ports."""
        self.rtp_range = rtp_range
        self.uri = f"sip:bench@127.0.0.1:{port}"
        self.log = ""
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def rtp_ports(self) -> tuple[int, int]:
        """The first and last port its RTP and RTCP may come from: its block, plus the
        pair PJSIP 2.15 takes just past the end of a port range before it wraps around
        when given the whole block as its range, as the bare answerer is (the 51st call
        of a 100-port range used the 101st port; voip stops its range two short)."""
        return self.rtp, self.rtp + self.rtp_range + 1

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.proc.returncode


@contextmanager
def serving(
    kind: str,
    voip: Sequence[str] = (str(GREETER),),
    bare: Sequence[str] = (str(ANSWERER),),
    *,
    port: int = 0,
    rtp: int = 0,
    rtp_range: int = RTP_RANGE,
    ready: str = "SIP listening",
    timeout: float = 20,
    env: dict[str, str] | None = None,
):
    """Run the voip app (``kind="voip"``) or the bare answerer (``"bare"``) on loopback.

    ``voip`` and ``bare`` are the programs (and their first arguments) to start; the
    ports are appended here: voip's options to the first, ``--port``, ``--rtp-port`` and
    ``--rtp-range`` to the second (any kind but ``"voip"`` runs it, e.g. another peer that
    takes the same options). The program prints ``ready`` once ready, within ``timeout``
    seconds. ``port`` and ``rtp`` (the first of ``rtp_range`` RTP ports): 0 picks them.
    ``env``: variables to set in its environment besides ours.
    """
    port, rtp = port or free_sip_port(), rtp or rtp_block()
    if kind == "voip":
        cmd = [*voip, "--sip", "--listen", f"127.0.0.1:{port}"]
        cmd += ["--rtp-ports", f"{rtp}-{rtp + rtp_range - 1}"]
        # One caller at up to 50 calls a second: far above the per-address limit that
        # protects a server on the internet (voip.guard), which is not what is measured.
        cmd += ["--invite-rate", "0", "--call-rate", "0"]
    else:
        cmd = [*bare, "--port", str(port), "--rtp-port", str(rtp)]
        cmd += ["--rtp-range", str(rtp_range)]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, *cmd],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    server = Server(proc, port, kind, rtp, rtp_range)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        server.log += line
        if ready in line:
            break
    if ready not in server.log:
        server.stop()
        raise RuntimeError(f"the {kind} answerer did not start:\n{server.log}")

    def drain() -> None:  # keep reading so that the pipe never fills up
        for line in proc.stdout:  # type: ignore[union-attr]
            server.log += line

    server._reader = threading.Thread(target=drain, daemon=True)
    server._reader.start()
    try:
        yield server
    finally:
        server.stop()


def call(uri: str, *args: str, timeout: float = 300) -> dict:
    """Run the benchmark caller against ``uri``; returns its JSON result."""
    port, rtp = free_sip_port(), rtp_block()
    proc = subprocess.run(
        [sys.executable, str(CALLER), uri, "--port", str(port), "--rtp-port", str(rtp)]
        + ["--rtp-range", str(RTP_RANGE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"the caller failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
            f"\n{proc.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


class LoadGen:
    """The load generator (bench/sip/loadgen.py), driven line by line through its stdin."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        """Its SIP port (on 127.0.0.1)."""
        self.log = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.log += line
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """Wait for the next line starting with ``prefix``; RuntimeError if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError(f"the load generator never said {prefix!r}:\n{self.log[-3000:]}")
            if line.startswith(prefix):
                return line.strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def call(self, uri: str, timeout: float = 30) -> float:
        """Place the calls; returns once all are up, with the time (``time.time()``) they were."""
        self.send(f"CALL {uri}")
        return float(self.expect("UP", timeout).split()[1])

    def hangup(self, timeout: float = 30) -> dict:
        """Hang up every call; returns the load generator's JSON result."""
        if self.proc.poll() is None:
            self.send("HANGUP")
        return json.loads(self.expect("{", timeout))


@contextmanager
def load_generator(*args: str):
    """Start bench/sip/loadgen.py (``args``: its options besides the ports) and wait until
    it is ready. On the way out its stdin is closed, which hangs up any call left; it is
    killed if it does not end then."""
    port, rtp = free_sip_port(), rtp_block()
    proc = subprocess.Popen(
        [sys.executable, str(LOADGEN), "--port", str(port), "--rtp-port", str(rtp)]
        + ["--rtp-range", str(RTP_RANGE), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    gen = LoadGen(proc, port)
    try:
        gen.expect("READY", 20)
        yield gen
    finally:
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
