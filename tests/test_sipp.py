"""SIPp, the SIP load generator, against our apps: concurrent calls and RFC 4733 keys.

Scenarios are in tests/peers/sipp_*.xml. SIPp reports through its exit status (0: every
call went through the scenario), the statistics CSV (``-trace_stat``) and the scenario's
``<log>`` actions (``-trace_logs``), which say how each call ended.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from voip import loadWAVtoPCM

from .helpers import frame_freqs
from .sip import App, next_ports, peer, peer_result, serving

SIPP = shutil.which("sipp")
PEERS = Path(__file__).resolve().parent / "peers"
PCAPS = Path("/usr/share/sip-tester")
"""RFC 4733 captures shipped with SIPp (Debian's sip-tester): dtmf_2833_<key>.pcap."""

pytestmark = pytest.mark.skipif(
    SIPP is None, reason="SIPp is not installed (apt-get install sip-tester)"
)


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


def run_sipp(scenario: Path, app: App, workdir: Path, *args: str, timeout: float = 40) -> SippRun:
    """Run SIPp as a caller of ``app`` on its own SIP and media ports, bounded in time.

    Our ports are unique within this test run only: if another run on the machine holds
    one, SIPp exits at once with status 254 (cannot bind), and we try fresh ports.
    """
    for _attempt in range(3):
        run = _run_sipp_once(scenario, app, workdir, args, timeout)
        if not (run.returncode == 254 and "Address already in use" in run.output):
            break
    return run


def _run_sipp_once(
    scenario: Path, app: App, workdir: Path, args: tuple[str, ...], timeout: float
) -> SippRun:
    port, media = next_ports()
    name = f"{scenario.stem}_{port}"  # this run's own files
    log, stats, errors = (workdir / f"{name}{ext}" for ext in (".log", ".csv", "_errors.log"))
    cmd = [SIPP or "sipp", f"127.0.0.1:{app.port}", "-sf", str(scenario), "-s", "app"]
    cmd += ["-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media)]
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


def write_app(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_five_simultaneous_calls_four_answered_the_fifth_busy(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        from voip import runVoipClient

        async def handler(call):
            await call.playTone(440, 6)

        runVoipClient(handler)
        """,
    )
    heard = tmp_path / "after.wav"
    with serving(app_path) as app:
        # 5 calls at 5 per second, all held at once: each answered call lasts the 6 s tone.
        run = run_sipp(
            PEERS / "sipp_busy.xml", app, tmp_path, "-m", "5", "-l", "5", "-r", "5", "-rp", "1s"
        )
        # The app is still serving: a plain caller hears its tone.
        after = peer_result(peer(app.uri, "--record", str(heard), "--duration", "2"))
    assert run.returncode == 0, run.output
    assert run.calls("ANSWERED") == [1, 2, 3, 4], (run.log, app.log)
    assert run.calls("BUSY") == [5], (run.log, app.log)
    # Every answered call was hung up by the app once its handler returned.
    assert run.calls("ENDED") == [1, 2, 3, 4], (run.log, app.log)
    wanted = {"OutgoingCall(C)": "5", "SuccessfulCall(C)": "5", "FailedCall(C)": "0"}
    assert {k: run.stats.get(k) for k in wanted} == wanted, run.stats
    assert app.log.count(") answered") == 5, app.log  # 4 from SIPp, then the plain caller
    assert app.log.count("(486)") == 1, app.log

    assert after["status"] == 200 and after["answered"], (after, app.log)
    freqs = [f for f in frame_freqs(loadWAVtoPCM(heard)) if f is not None]
    near = sum(abs(f - 440) < 10 for f in freqs)
    # 1.5 s of the 2 s call at least; a frame or two at the edges may be off.
    assert near > 75 and near >= 0.95 * len(freqs), freqs


KEYS_APP = """
    import os
    from voip import runVoipClient

    async def handler(call):
        call.log.info("GOT %s", await call.getDTMF(n=int(os.environ["KEYS"])))

    runVoipClient(handler)
"""


def capture(key: str) -> Path:
    """SIPp's capture of ``key`` pressed once."""
    name = {"*": "star", "#": "pound"}.get(key, key)
    return PCAPS / f"dtmf_2833_{name}.pcap"


def keys_scenario(keys: str, workdir: Path) -> Path:
    """tests/peers/sipp_dtmf.xml replaying ``keys``, one capture each, 400 ms apart.

    No pause after the last one: the app may hang up as soon as it has the keys, and a BYE
    arriving during a <pause> would be unexpected.
    """
    play = '\n  <pause milliseconds="400"/>\n  '.join(
        f'<nop><action><exec play_pcap_audio="{capture(k)}"/></action></nop>' for k in keys
    )
    template = (PEERS / "sipp_dtmf.xml").read_text()
    assert "<!-- @PLAY@ -->" in template
    path = workdir / f"keys_{len(keys)}.xml"
    path.write_text(template.replace("<!-- @PLAY@ -->", play))
    return path


def test_each_key_replayed_from_sipps_captures_arrives(tmp_path):
    keys = "0123456789*#"
    if not all(capture(k).exists() for k in keys):
        pytest.skip(f"SIPp's RFC 4733 captures are not in {PCAPS}")
    app_path = write_app(tmp_path, KEYS_APP)
    with serving(app_path, env={"KEYS": "1"}) as app:
        for k in keys:
            run = run_sipp(keys_scenario(k, tmp_path), app, tmp_path, "-m", "1", timeout=20)
            assert run.returncode == 0, (k, run.output, app.log)
            assert run.log == ["KEYS SENT", "ENDED BY THE APP"], run.log
    got = [ln.rsplit(" ", 1)[1] for ln in app.log.splitlines() if " GOT " in ln]
    assert got == list(keys), app.log
    assert app.log.count("call ended (we hung up)") == len(keys), app.log


def test_a_code_replayed_from_sipps_captures_arrives_whole(tmp_path):
    if not all(capture(k).exists() for k in "1234"):
        pytest.skip(f"SIPp's RFC 4733 captures are not in {PCAPS}")
    app_path = write_app(tmp_path, KEYS_APP)
    with serving(app_path, env={"KEYS": "4"}) as app:
        run = run_sipp(keys_scenario("1234", tmp_path), app, tmp_path, "-m", "1", timeout=20)
    assert run.returncode == 0, (run.output, app.log)
    # Each capture ends its event with the end packet three times: still one key each.
    assert "GOT 1234" in app.log, app.log
    assert app.log.count("] key ") == 4, app.log
