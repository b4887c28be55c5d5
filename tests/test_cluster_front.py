"""The front's defences and TLS: ``--workers`` with real kamailio, real workers, real peers.

kamailio applies the request guard's policy (voip/cluster/kamailio.cfg.in, route[POLICY])
from the same settings as a lone server: scanners dropped, the allow-list's 403, the
per-address rates, each refusal logged once a minute per source in the line fail2ban's
filter (server_setup.md, section 4) matches. A TCP burst that aborts a lone process
(tests/peers/tcp_churn.py) meets kamailio instead; and with a certificate kamailio is the
TLS listener while the workers do SRTP with the callers directly.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from voip import loadWAVtoPCM, savePCMtoWAV

from .helpers import ROOT, frame_freqs, tone
from .sip import App, next_ports, peer, peer_result, voip_dial
from .sipp import PEERS, SIPP, run_sipp
from .test_cluster import cluster, pids
from .test_defences import TONE_APP
from .test_tls import (
    OPENSSL,
    TONES_APP,
    assert_audio_encrypted,
    assert_sip_encrypted,
    assert_tones,
    audio_packets,
    capture,
    make_pair,
    read_capture,
)

CHURN = Path(__file__).resolve().parent / "peers" / "tcp_churn.py"
GREETING_APP = TONE_APP.format(seconds=2)
"""Plays 440 Hz for 2 s to each caller, then hangs up."""


def fail2ban_filter() -> re.Pattern[str]:
    """The ``failregex`` of server_setup.md's fail2ban filter, ``<HOST>`` as fail2ban
    reads it (an address, captured as ``host``)."""
    doc = (ROOT / "server_setup.md").read_text()
    (line,) = re.findall(r"^failregex = (.*)$", doc, re.MULTILINE)
    return re.compile(line.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))


def refusal_lines(app: App) -> list[str]:
    """kamailio's refusal lines, as the supervisor copied them."""
    return [ln for ln in app.log.splitlines() if "[kamailio]" in ln and "refused SIP from" in ln]


def options_from(source: str, port: int, agent: str = "voip-tests") -> int | None:
    """The status answering an OPTIONS sent from ``source`` (None: no answer in 1 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(1.0)
        me = s.getsockname()[1]
        tag = uuid.uuid4().hex[:10]
        s.sendto(
            (
                f"OPTIONS sip:app@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {source}:{me};branch=z9hG4bK{tag}\r\n"
                f"From: <sip:probe@{source}:{me}>;tag={tag}\r\n"
                f"To: <sip:app@127.0.0.1:{port}>\r\nCall-ID: {tag}@{source}\r\n"
                f"CSeq: 1 OPTIONS\r\nUser-Agent: {agent}\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", port),
        )
        try:
            return int(s.recv(4096).split(b" ", 2)[1])
        except TimeoutError:
            return None


def heard_greeting(app: App, tmp_path: Path, source: str = "127.0.0.1") -> dict:
    """A call from ``source``: its result, once it was answered and heard the 440 Hz."""
    wav = tmp_path / f"heard-{time.monotonic_ns()}.wav"
    call = peer(app.uri, "--sip-ip", source, "--record", str(wav), "--duration", "1.5")
    result = peer_result(call, timeout=30)
    assert result["answered"], (result, app.log[-3000:])
    freqs = [f for f in frame_freqs(loadWAVtoPCM(wav)) if f is not None]
    assert len([f for f in freqs if abs(f - 440) < 15]) > 40, freqs
    return result


def test_the_front_refuses_as_the_guard_does_and_logs_for_fail2ban(tmp_path):
    allowed = ("--allow", "127.0.0.1,127.0.0.2", "--invite-rate", "1")
    with cluster(tmp_path, GREETING_APP, 2, *allowed) as app:
        # Outside the allow-list: an INVITE gets 403, anything else no answer.
        outsider = peer_result(peer(app.uri, "--sip-ip", "127.0.0.3", "--duration", "1"))
        assert options_from("127.0.0.3", app.port) is None
        # Scanners get nothing; an honest OPTIONS gets kamailio's 200.
        assert options_from("127.0.0.1", app.port, "friendly-scanner") is None
        assert options_from("127.0.0.1", app.port) == 200
        # 20 calls at 10 a second from 127.0.0.1 (--invite-rate 1: 2 taken every 2 s)
        # while 127.0.0.2 calls once, and is answered.
        wav = tmp_path / "honest.wav"
        honest_call = peer(app.uri, "--sip-ip", "127.0.0.2", "--record", str(wav))
        if SIPP is not None:
            started = time.monotonic()
            run = run_sipp(PEERS / "sipp_busy.xml", app, tmp_path, "-m", "20", "-r", "10")
            took = time.monotonic() - started
        honest = peer_result(honest_call, timeout=30)
        workers = [pids(app, f"worker {w}") for w in (1, 2)]
    assert not outsider["answered"] and outsider["status"] == 403, outsider
    assert honest["answered"] and honest["status"] == 200, honest
    freqs = [f for f in frame_freqs(loadWAVtoPCM(wav)) if f is not None]
    assert len([f for f in freqs if abs(f - 440) < 15]) > 40, freqs
    assert workers == [workers[0][:1], workers[1][:1]]  # nobody restarted
    if SIPP is not None:
        answered, unavailable = run.calls("ANSWERED"), run.calls("UNAVAILABLE")
        assert sorted(answered + unavailable) == list(range(1, 21)), run.log
        # 2 a window of 2 s: the 2 s of the flood span 2 or 3 windows.
        assert 2 <= len(answered) <= 2 * (int(took / 2) + 2), (answered, took)
        assert len(unavailable) >= 12, unavailable
    lines = refusal_lines(app)
    reasons = [ln.split("refused SIP from ", 1)[1] for ln in lines]
    assert "127.0.0.3: not in the allow-list (403)" in reasons, lines
    assert "127.0.0.3: OPTIONS from outside the allow-list (dropped)" in reasons, lines
    assert "127.0.0.1: scanner User-Agent 'friendly-scanner' (dropped)" in reasons, lines
    if SIPP is not None:
        # One line for the whole flood: once a minute per source.
        assert reasons.count("127.0.0.1: INVITEs above 1/s (503)") == 1, lines
    # fail2ban's filter takes every one of them, with the right address.
    failregex = fail2ban_filter()
    hosts = [m.group("host") for ln in lines if (m := failregex.search(ln))]
    assert len(hosts) == len(lines) and set(hosts) == {"127.0.0.1", "127.0.0.3"}, lines


def test_a_tcp_burst_at_the_front_kills_no_process_and_calls_go_on(tmp_path):
    with cluster(tmp_path, GREETING_APP, 2, "--transport", "udp,tcp") as app:
        before = {name: pids(app, name) for name in ("kamailio", "worker 1", "worker 2")}
        churn = subprocess.run(
            [sys.executable, str(CHURN), "127.0.0.1", str(app.port)]
            + ["--hold", "80", "--churn", "400"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        result = json.loads(churn.stdout.strip().splitlines()[-1])
        heard_greeting(app, tmp_path)
        after = {name: pids(app, name) for name in before}
        alive = [p for ps in after.values() for p in ps] + [app.proc.pid]
        assert all(Path(f"/proc/{p}").exists() for p in alive), (alive, app.log[-3000:])
    assert result["held"] == 80 and result["churned"] == 400, result
    assert result["answers"] == [200], result
    assert after == before and all(len(p) == 1 for p in after.values()), after


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_a_call_over_tls_through_the_front_has_srtp_audio_and_no_cleartext(tmp_path):
    pair = make_pair(tmp_path / "tls")
    tls_port, _ = next_ports()
    mic, heard, pcap = tmp_path / "mic.wav", tmp_path / "heard.wav", tmp_path / "call.pcap"
    savePCMtoWAV(tone(700, 12, 0.3), mic)
    tls = ("--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", str(pair.cert))
    tls += ("--tls-key", str(pair.key), "--srtp", "mandatory")
    with cluster(tmp_path, TONES_APP, 2, *tls) as app:
        assert f"TLS on 127.0.0.1:{tls_port} through kamailio" in app.log
        # Over UDP the keys would travel in clear: 406, as a lone server answers.
        plain = peer_result(peer(app.uri, "--duration", "1"))
        bpf = f"tcp port {tls_port} or udp portrange {app.rtp}-{app.rtp + 99}"
        with capture(pcap, bpf):
            proc = voip_dial(
                f"sips:app@127.0.0.1:{tls_port}",
                *("--srtp", "mandatory", "--tls-ca", str(pair.cert), "--mic", str(mic)),
                *("--keys", "ww1234", "--speaker", str(heard), "--hangup-after", "30"),
            )
    assert not plain["answered"] and plain["status"] == 406, plain
    assert proc.returncode == 0, proc.stderr
    assert "GOT KEYS 1234" in app.log, app.log
    assert_tones(loadWAVtoPCM(heard))
    packets = read_capture(pcap)
    assert assert_sip_encrypted(packets, {tls_port}) > 3000
    # The audio went between the caller and a worker (its share of the RTP range).
    # Both ways: the app's tones, and the caller's 700 Hz.
    ours = range(app.rtp, app.rtp + 100, 2)  # RTP on even ports, RTCP on odd
    (rtp,) = {p.src for p in packets if p.proto == "udp" and p.src in ours}
    assert_audio_encrypted(audio_packets(packets, rtp, sent=True), at_least=50)
    assert_audio_encrypted(audio_packets(packets, rtp, sent=False), at_least=50)
