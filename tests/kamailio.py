"""A kamailio registrar and proxy for tests, on loopback, in a directory of its own.

:class:`Kamailio` writes its configuration (from ``tests/peers/kamailio.cfg``), a db_text
subscriber table and a runtime directory under a temporary path, runs kamailio in the
foreground, answers what its location table holds through ``kamcmd``, and stops it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parent / "peers" / "kamailio.cfg"
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


KAMAILIO = _find("kamailio")
KAMCMD = _find("kamcmd")


def require_kamailio() -> None:
    """Skip the calling test unless kamailio, kamcmd and the modules used are installed."""
    if KAMAILIO is None or KAMCMD is None:
        pytest.skip("kamailio is not installed (apt-get install kamailio)")
    needed = ("registrar", "usrloc", "auth_db", "db_text", "tm", "ctl")
    missing = [m for m in needed if not (MODULES / f"{m}.so").exists()]
    if missing:
        pytest.skip(f"kamailio modules missing from {MODULES}: {', '.join(missing)}")


def port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(first: int = 15060, count: int = 100) -> int:
    """The first port from ``first`` free on 127.0.0.1 for both UDP and TCP."""
    start = first + (os.getpid() % 10) * 10  # concurrent test runs start apart
    for k in range(count):
        port = first + (start - first + k) % count
        if port_free(port):
            return port
    raise RuntimeError(f"no free port in {first}-{first + count - 1} for kamailio")


class Kamailio:
    """One kamailio process; :meth:`start` and :meth:`stop` may be repeated."""

    def __init__(self, workdir: Path, users: dict[str, str], port: int | None = None) -> None:
        self.dir = workdir
        self.users = users
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctl = self.dir / "ctl.sock"
        self.cfg = self.dir / "kamailio.cfg"
        self.logs: list[Path] = []
        """One stderr file per run, oldest first."""
        self._write_files()

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    def _write_files(self) -> None:
        db = self.dir / "db"
        (self.dir / "run").mkdir(parents=True, exist_ok=True)
        db.mkdir(parents=True, exist_ok=True)
        text = TEMPLATE.read_text()
        for key, value in (("@PORT@", str(self.port)), ("@DB@", str(db)), ("@CTL@", self.ctl)):
            text = text.replace(key, str(value))
        self.cfg.write_text(text)
        (db / "version").write_text(
            "id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n"
        )
        rows = []
        for n, (user, password) in enumerate(self.users.items(), 1):
            ha1 = hashlib.md5(f"{user}:127.0.0.1:{password}".encode()).hexdigest()
            ha1b = hashlib.md5(f"{user}@127.0.0.1:127.0.0.1:{password}".encode()).hexdigest()
            rows.append(f"{n}:{user}:127.0.0.1:{password}:{ha1}:{ha1b}\n")
        (db / "subscriber").write_text(
            "id(int,auto) username(string) domain(string) password(string) ha1(string) "
            "ha1b(string) \n" + "".join(rows)
        )

    # -- process -------------------------------------------------------------------------

    def start(self, timeout: float = 15) -> None:
        assert self.proc is None, "already running"
        assert KAMAILIO is not None
        log = self.dir / f"kamailio-{len(self.logs) + 1}.log"
        self.logs.append(log)
        self.ctl.unlink(missing_ok=True)
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [KAMAILIO, "-DD", "-E", "-f", str(self.cfg), "-Y", str(self.dir / "run")]
                + ["-w", str(self.dir), "-m", "32", "-M", "8", "-a", "no"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.dir,
                start_new_session=True,  # its children get the signal with it, not ours
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ctl.exists() and "kamailio" in self.rpc("core.version", check=False).stdout:
                return
            time.sleep(0.1)
        out = self.log
        self.stop()
        raise AssertionError(f"kamailio did not start:\n{out}")

    def stop(self, timeout: float = 10) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only its processes
                proc.wait()
        # Children kamailio forked exit with the main process; make sure none linger.
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            pass
        else:
            time.sleep(0.2)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- looking inside ------------------------------------------------------------------

    @property
    def log(self) -> str:
        """Everything kamailio logged, every run."""
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    @property
    def current_log(self) -> str:
        return self.logs[-1].read_text(errors="replace") if self.logs else ""

    def register_count(self, all_runs: bool = False) -> int:
        """REGISTER requests received (this run, unless ``all_runs``)."""
        return (self.log if all_runs else self.current_log).count("TEST REGISTER from")

    def rpc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``kamcmd`` on the control socket (it exits 0 even on errors: they print
        ``error: ...``, which ``check`` turns into an AssertionError)."""
        assert KAMCMD is not None
        proc = subprocess.run(
            [KAMCMD, "-s", f"unix:{self.ctl}", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        failed = proc.returncode != 0 or proc.stdout.startswith("error:")
        if check and failed:
            raise AssertionError(f"kamcmd {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc

    def contacts(self, user: str) -> list[str]:
        """The contacts registered for ``user`` (empty when none)."""
        # "s:": kamcmd would send a numeric user name as an integer.
        proc = self.rpc("ul.lookup", "location", f"s:{user}", check=False)
        return re.findall(r"Address:\s*(\S+)", proc.stdout)

    def wait_for_contact(self, user: str, timeout: float) -> list[str]:
        """Poll the location table until ``user`` has a contact; [] after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.contacts(user)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)
