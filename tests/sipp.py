"""Running SIPp, the SIP load generator, against an app served by :func:`tests.sip.serving`.

SIPp reports through its exit status (0: every call went through the scenario), the
statistics CSV (``-trace_stat``) and the scenario's ``<log>`` actions (``-trace_logs``),
which say how each call ended. Scenarios are in tests/peers/sipp_*.xml.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from voip.sipuri import join_hostport

from .sip import App, next_ports

SIPP = shutil.which("sipp")
PEERS = Path(__file__).resolve().parent / "peers"

needs_sipp = pytest.mark.skipif(
    SIPP is None, reason="SIPp is not installed (apt-get install sip-tester)"
)
"""Mark a test module with ``pytestmark = needs_sipp``."""


@dataclass
class SippRun:
    returncode: int
    log: list[str]
    """The lines the scenario's <log> actions wrote."""
    stats: dict[str, str]
    """The last row of the statistics CSV, by column (e.g. ``SuccessfulCall(C)``)."""
    output: str

    def calls(self, outcome: str) -> list[int]:
        """Call numbers of the log lines ``OUTCOME <n>``."""
        return sorted(int(ln.split()[1]) for ln in self.log if ln.split()[:1] == [outcome])


def run_sipp(
    scenario: Path,
    app: App,
    workdir: Path,
    *args: str,
    timeout: float = 40,
    sip_ip: str = "127.0.0.1",
    media_ip: str = "127.0.0.1",
) -> SippRun:
    """Run SIPp as a caller of ``app`` on its own SIP and media ports, bounded in time,
    from ``sip_ip`` to the app's port there, offering audio on ``media_ip`` (``::1``:
    the offer says ``c=IN IP6 ::1``).

    Our ports are unique within this test run only: if another run on the machine holds
    one, SIPp exits at once with status 254 (cannot bind), and we try fresh ports.
    """
    for _attempt in range(3):
        run = _run_sipp_once(scenario, app, workdir, args, timeout, sip_ip, media_ip)
        if not (run.returncode == 254 and "Address already in use" in run.output):
            break
    return run


def _run_sipp_once(
    scenario: Path,
    app: App,
    workdir: Path,
    args: tuple[str, ...],
    timeout: float,
    sip_ip: str,
    media_ip: str,
) -> SippRun:
    port, media = next_ports()
    name = f"{scenario.stem}_{port}"  # this run's own files
    log, stats, errors = (workdir / f"{name}{ext}" for ext in (".log", ".csv", "_errors.log"))
    cmd = [SIPP or "sipp", join_hostport(sip_ip, app.port), "-sf", str(scenario), "-s", "app"]
    cmd += ["-i", sip_ip, "-p", str(port), "-mi", media_ip, "-mp", str(media)]
    cmd += ["-nostdin", "-timeout", f"{int(timeout) - 5}s", "-timeout_error"]
    cmd += ["-trace_logs", "-log_file", str(log), "-trace_stat", "-stf", str(stats)]
    cmd += ["-trace_err", "-error_file", str(errors), *args]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        raise AssertionError(f"SIPp did not finish in {timeout} s:\n{exc.stdout}") from None
    rows = list(csv.reader(stats.read_text().splitlines(), delimiter=";")) if stats.exists() else []
    output = proc.stdout[-3000:] + proc.stderr
    if errors.exists():
        output += "\nunexpected messages:\n" + errors.read_text()[-3000:]
    return SippRun(
        proc.returncode,
        log.read_text().splitlines() if log.exists() else [],
        dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {},
        output,
    )
