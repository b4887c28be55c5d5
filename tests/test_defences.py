"""An app on an open port: scanners see nothing, rate limits engage, floods leave nothing.

The scanners are SIPVicious' own tools (Debian's sipvicious: svmap, svwar, svcrack), the
flood is SIPp far past what one process takes. The defences are voip.guard's, applied by
the request filter before PJSIP handles a request.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from voip import loadWAVtoPCM

from .helpers import frame_freqs, write_app
from .sip import App, peer, peer_result, serving
from .sipp import PEERS, SIPP, run_sipp

needs_sipvicious = pytest.mark.skipif(
    shutil.which("svmap") is None, reason="sipvicious is not installed (apt-get install sipvicious)"
)

TONE_APP = """
    from voip import runVoipClient

    async def handler(call):
        call.log.info("HANDLER RAN")
        await call.playTone(440, {seconds})

    runVoipClient(handler)
    """

NO_SCANNER_FILTER = {"VOIP_SCANNER_USER_AGENTS": ""}
"""The app's environment when the scanner should get past the User-Agent filter."""


def tone_app(tmp_path: Path, seconds: float) -> Path:
    return write_app(tmp_path, TONE_APP.format(seconds=seconds))


def sipvicious(tool: str, app: App, *args: str) -> str:
    proc = subprocess.run(
        [tool, "127.0.0.1", "-p", str(app.port), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout + proc.stderr


def options(
    app: App, count: int, agent: str = "voip-tests", wait: float = 1.0, tcp: bool = False
) -> list[str]:
    """Send ``count`` OPTIONS at once from one UDP socket (or TCP connection); the status
    lines received until none came for ``wait`` seconds."""
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if tcp:
            sock.connect(("127.0.0.1", app.port))
        via = "TCP" if tcp else "UDP"
        for n in range(count):
            sock.sendto(
                (
                    f"OPTIONS sip:app@127.0.0.1:{app.port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/{via} 127.0.0.1:{port};branch=z9hG4bK-{uuid.uuid4().hex}\r\n"
                    f"From: <sip:probe@127.0.0.1:{port}>;tag={n}\r\n"
                    f"To: <sip:app@127.0.0.1:{app.port}>\r\n"
                    f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
                    f"CSeq: 1 OPTIONS\r\nUser-Agent: {agent}\r\nMax-Forwards: 70\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                ("127.0.0.1", app.port),
            )
        replies = []
        sock.settimeout(wait)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                text = data.decode(errors="replace")
                replies += [ln for ln in text.split("\r\n") if ln.startswith("SIP/2.0 ")]
        except TimeoutError:
            pass
        return replies


def refusals(app: App, reason: str) -> int:
    """How many log lines refused a request for ``reason``."""
    return sum(1 for ln in app.log.splitlines() if "refused SIP from" in ln and reason in ln)


def assert_still_answers(app: App, tmp_path: Path) -> None:
    """A plain caller is answered and hears the app's 440 Hz tone."""
    heard = tmp_path / f"after_{time.monotonic_ns()}.wav"
    after = peer_result(peer(app.uri, "--record", str(heard), "--duration", "1.5"))
    assert after["answered"] and after["status"] == 200, (after, app.log)
    freqs = [f for f in frame_freqs(loadWAVtoPCM(heard)) if f is not None]
    tone = [f for f in freqs if abs(f - 440) < 15]  # the first and last frames may be partial
    assert len(tone) > 40 and len(tone) >= len(freqs) - 2, freqs


@needs_sipvicious
def test_svmap_finds_nothing_unless_the_scanner_filter_is_off(tmp_path):
    app_path = tone_app(tmp_path, 2)
    with serving(app_path) as app:
        scan = sipvicious("svmap", app)
        scanner = [options(app, 1, "friendly-scanner", tcp=tcp) for tcp in (False, True)]
        honest = [options(app, 1, "Linphone/5.2.0", tcp=tcp) for tcp in (False, True)]
        assert_still_answers(app, tmp_path)
    assert "found nothing" in scan and "pjsua" not in scan, scan
    assert scanner == [[], []] and honest == [["SIP/2.0 200 OK"]] * 2
    # Logged once a minute per source, not once per request.
    assert refusals(app, "scanner User-Agent 'friendly-scanner' (dropped)") == 1, app.log
    # The control: without the filter the same scan finds the app.
    with serving(app_path, env=NO_SCANNER_FILTER) as app:
        scan = sipvicious("svmap", app)
    assert "voip (pjsua2)" in scan, scan


@needs_sipvicious
def test_svwar_and_svcrack_learn_nothing_and_ring_nobody(tmp_path):
    app_path = tone_app(tmp_path, 2)
    with serving(app_path) as app:
        war = sipvicious("svwar", app, "-m", "INVITE", "-e", "100-140")
        war_register = sipvicious("svwar", app, "-e", "100-140")
        crack = sipvicious("svcrack", app, "-u", "100", "-r", "1-40")
        assert "HANDLER RAN" not in app.log  # no extension rang
        assert_still_answers(app, tmp_path)
    for output in (war, war_register, crack):
        assert "found nothing" in output and "+---" not in output, output
    assert refusals(app, "scanner User-Agent") == 1, app.log
    # A scanner that is not recognised meets the rate limits, and learns nothing either.
    with serving(app_path, env=NO_SCANNER_FILTER) as app:
        war = sipvicious("svwar", app, "-m", "OPTIONS", "-e", "100-160")
        crack = sipvicious("svcrack", app, "-u", "100", "-r", "1-40")
        assert_still_answers(app, tmp_path)
    for output in (war, crack):
        assert "found nothing" in output and "+---" not in output, output
    assert refusals(app, "requests other than INVITE above 5/s (dropped)") == 1, app.log


def test_options_rate_limit_answers_the_burst_then_drops(tmp_path):
    app_path = tone_app(tmp_path, 2)
    with serving(app_path, env=NO_SCANNER_FILTER) as app:
        started = time.monotonic()
        first = options(app, 30)
        refill = 5 * (time.monotonic() - started)  # tokens back since, at 5 a second
        later = options(app, 30)
        assert_still_answers(app, tmp_path)  # INVITEs have their own limit
    # The default: 5 a second from one address, in bursts of 10.
    assert first == ["SIP/2.0 200 OK"] * len(first) and 10 <= len(first) <= 11, first
    assert min(10, int(refill)) <= len(later) <= min(10, int(refill) + 2), (later, refill)
    assert refusals(app, "requests other than INVITE above 5/s (dropped)") == 1, app.log


def rtp_sockets(app: App) -> int:
    """UDP sockets bound (by anyone) in the app's RTP port range."""
    m = re.search(r"RTP ports (\d+)-(\d+)", app.log)
    assert m, app.log
    first, last = int(m.group(1)), int(m.group(2))
    count = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        port = int(line.split()[1].split(":")[1], 16)
        count += first <= port <= last
    return count


def open_fds(app: App) -> int:
    return len(os.listdir(f"/proc/{app.proc.pid}/fd"))


@pytest.mark.skipif(SIPP is None, reason="SIPp is not installed (apt-get install sip-tester)")
def test_invite_flood_gets_503_and_486_and_leaves_nothing_behind(tmp_path):
    app_path = tone_app(tmp_path, 1)
    with serving(app_path) as app:
        assert_still_answers(app, tmp_path)  # warm up: the first call's one-off allocations
        time.sleep(1)
        fds_before, rtp_before = open_fds(app), rtp_sockets(app)
        # 400 calls at 100 a second from one address: 20 times the INVITE rate limit, and
        # far more than the 4 calls a process holds.
        run = run_sipp(PEERS / "sipp_busy.xml", app, tmp_path, "-m", "400", "-r", "100")
        time.sleep(1.5)  # the last calls' sockets close (PJSIP frees them 500 ms later)
        fds_after, rtp_after = open_fds(app), rtp_sockets(app)
        assert app.proc.poll() is None, app.log
        assert_still_answers(app, tmp_path)
    assert run.returncode == 0, run.output
    answered, ended = run.calls("ANSWERED"), run.calls("ENDED")
    busy, unavailable = run.calls("BUSY"), run.calls("UNAVAILABLE")
    lines = [ln for ln in app.log.splitlines() if "refused SIP" in ln]
    print(  # the figures for docs/reliability.md (pytest -s)
        f"\nINVITE flood: 400 calls at 100/s: {len(answered)} answered, {len(busy)} got 486, "
        f"{len(unavailable)} got 503; open fds {fds_before} before, {fds_after} after; "
        f"RTP sockets after: {rtp_after}; {len(lines)} log lines: {lines}"
    )
    assert sorted(answered + busy + unavailable) == list(range(1, 401)), run.log
    assert answered == ended and 4 <= len(answered) <= 40, (answered, ended)
    assert len(unavailable) >= 300, len(unavailable)
    assert (fds_after, rtp_after) == (fds_before, rtp_before) and rtp_before == 0
    # A few lines for the whole flood (once a minute per source and reason).
    assert refusals(app, "INVITEs above 5/s (503)") == 1, app.log
    assert len(lines) <= 3, app.log
