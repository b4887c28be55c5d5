"""baresip, a softphone nobody here wrote, as a caller in SIP tests.

:class:`Baresip` runs ``baresip`` headless with a configuration generated per test from
``tests/peers/baresip.conf``: loopback only, its own SIP, control and RTP ports, a WAV of
silence as its microphone, G.711 only. It is driven through the ``ctrl_tcp`` module (JSON
commands in netstrings; the same socket reports events such as ``CALL_ESTABLISHED``), and
the ``sndfile`` filter dumps what it heard to a WAV that :meth:`Baresip.heard` finds.
"""

from __future__ import annotations

import json
import shutil
import socket
import string
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from voip import savePCMtoWAV

from .sip import next_ports

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")
NEEDED_MODULES = ("g711", "aufile", "aubridge", "sndfile", "ctrl_tcp", "account", "menu")
TEMPLATE = Path(__file__).resolve().parent / "peers" / "baresip.conf"


def missing() -> str:
    """Why baresip cannot be used here, or "" if it can."""
    if BARESIP is None:
        return "baresip is not installed (apt-get install baresip)"
    absent = [m for m in NEEDED_MODULES if not (MODULES / f"{m}.so").exists()]
    if absent:
        return f"baresip modules missing from {MODULES}: {', '.join(absent)}"
    return ""


class BaresipError(AssertionError):
    pass


class Baresip:
    """One baresip process; use as a context manager (it is always terminated).

    ``codec`` is PCMU or PCMA: the only codec its account offers. ``template`` is the
    configuration to fill in (``values`` fills in its names beyond the usual ones), and
    ``account_params`` are added to its account line, e.g. ``;mediaenc=srtp-mand``.
    ``sends`` is what its microphone says from the start of a call (silence after it).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        codec: str = "PCMU",
        lifetime: float = 55,
        template: Path = TEMPLATE,
        account_params: str = "",
        values: Mapping[str, object] | None = None,
        sends: np.ndarray | None = None,
    ) -> None:
        self.dir = workdir / "baresip"
        self.template = template
        self.account_params = account_params
        self.values = dict(values or {})
        self.dump_dir = self.dir / "dump"
        self.dump_dir.mkdir(parents=True)
        self.codec = codec
        self.lifetime = lifetime
        self.source = self.dir / "microphone.wav"
        microphone = np.zeros(int(8000 * (lifetime + 5)), dtype=np.float32)
        if sends is not None:
            microphone[: len(sends)] = sends
        savePCMtoWAV(microphone, self.source)
        self.sip_port = self.ctrl_port = 0
        self.uri = ""
        self.log_path = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.events: list[dict[str, Any]] = []
        """Every event received, in order."""
        self._taken: set[int] = set()
        self._buf = b""
        self._tokens = 0

    def _configure(self) -> None:
        """Take fresh ports and write the configuration for them."""
        (sip_port, rtp), (tls_port, _), (ctrl_port, _) = next_ports(), next_ports(), next_ports()
        # baresip listens for TLS on the SIP port + 1 whatever the configuration says:
        # that port must be ours too.
        assert tls_port == sip_port + 1, (sip_port, tls_port)
        self.sip_port, self.ctrl_port = sip_port, ctrl_port
        self.uri = f"sip:baresip@127.0.0.1:{sip_port}"
        config = string.Template(self.template.read_text()).substitute(
            self.values,
            sip_port=sip_port,
            ctrl_port=ctrl_port,
            rtp_first=rtp,
            rtp_last=rtp + 99,
            source=self.source,
            dump_dir=self.dump_dir,
            modules=MODULES,
        )
        (self.dir / "config").write_text(config)
        # No registration (regint=0): it calls the app directly.
        (self.dir / "accounts").write_text(
            f"<{self.uri}>;regint=0;audio_codecs={self.codec}{self.account_params}\n"
        )
        (self.dir / "contacts").write_text("")

    # -- process -------------------------------------------------------------------------

    def __enter__(self) -> Baresip:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Start baresip and connect to its control socket.

        Other test runs on the machine may hold a port we picked (ours are only unique
        within this run): then baresip says so at start-up and we try fresh ports.
        """
        for attempt in range(attempts):
            self._configure()
            if self._start_once() or attempt == attempts - 1:
                break
            self.stop()
        if "Address already in use" in self.log:
            raise BaresipError(f"baresip could not bind its ports:\n{self.log}")
        try:
            self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2)
        except OSError as exc:
            raise BaresipError(f"baresip's control socket: {exc}\n{self.log}") from None

    def _start_once(self) -> bool:
        """Run baresip until it is ready; False if a port was taken."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                # -t: quit after this many seconds whatever happens (a backstop).
                [BARESIP or "baresip", "-f", str(self.dir), "-t", str(int(self.lifetime))],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while "baresip is ready" not in self.log:
            if "Address already in use" in self.log:
                return False
            if self.proc.poll() is not None:
                raise BaresipError(f"baresip exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise BaresipError(f"baresip did not start:\n{self.log}")
            time.sleep(0.05)
        return "Address already in use" not in self.log

    def stop(self) -> None:
        """Ask baresip to quit (it hangs up and closes its dump files); kill it if need be."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                if self.sock is None:
                    raise OSError("no control socket")
                self._send("quit", "", "quit")
            except OSError:
                self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    @property
    def log(self) -> str:
        """What baresip printed (without its once-a-frame status line)."""
        try:
            text = self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(ln for ln in text.splitlines() if "bit/s)" not in ln)

    def heard(self) -> Path:
        """The WAV of what baresip decoded from the far end (one call per process)."""
        dumps = self.heard_calls()
        if len(dumps) != 1:
            raise BaresipError(f"expected one decoder dump, found {dumps}:\n{self.log}")
        return dumps[0]

    def heard_calls(self) -> list[Path]:
        """The WAVs of what baresip decoded, one per call, in the order the calls began.

        Named after the second each call's audio started: calls must start at least a
        second apart, or the later one's dump overwrites the earlier's."""
        return sorted(self.dump_dir.glob("dump-*-dec.wav"))

    # -- control socket ------------------------------------------------------------------

    def command(self, command: str, params: str = "", timeout: float = 5) -> dict[str, Any]:
        """Run a command (as typed after ``/`` on its console); returns its response."""
        self._tokens += 1
        token = f"t{self._tokens}"
        self._send(command, params, token)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(deadline, f"the response to {command!r}")
            if msg.get("response") and msg.get("token") == token:
                if not msg.get("ok"):
                    raise BaresipError(f"{command} {params}: {msg.get('data')}\n{self.log}")
                return msg

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first event of type ``kind`` not returned before (e.g. ``CALL_CLOSED``)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if i not in self._taken and ev.get("type") == kind:
                    self._taken.add(i)
                    return ev
            self._receive(deadline, f"a {kind} event")

    def _send(self, command: str, params: str, token: str) -> None:
        assert self.sock is not None
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(body), body))

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        """The next message (a response or an event); events are also recorded."""
        assert self.sock is not None
        while True:
            head, colon, rest = self._buf.partition(b":")
            if colon and len(rest) > int(head):
                n = int(head)
                if rest[n : n + 1] != b",":
                    raise BaresipError(f"bad netstring from baresip: {self._buf[:200]!r}")
                msg = json.loads(rest[:n])
                self._buf = rest[n + 1 :]
                if msg.get("event"):
                    self.events.append(msg)
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise BaresipError(f"timed out waiting for {what}; events {self.events}")
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise BaresipError(f"baresip closed its control socket:\n{self.log}")
            self._buf += data
