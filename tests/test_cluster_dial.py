"""A cluster's own calls out go through its front: ``call.connect`` from a worker.

The app (tests/test_connect_sip.py's) connects each caller to a pjsua2 callee; the
worker's INVITE goes to kamailio (its outbound proxy), which record-routes it and relays
it from the front's public address. The caller and the callee hear each other. A
joined machine's worker (``--join``) calls out through the front it joined the same way.
A call to a ``sips:`` target leaves over the front's TLS, which verifies the target's
certificate against ``--tls-ca``: an untrusted one gets no call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from voip import loadWAVtoPCM, savePCMtoWAV

from .helpers import tone, tone_spans, wait_until, write_app
from .sip import next_ports, peer, peer_result, serving, start_callee, voip_dial
from .test_cluster import cluster, pids
from .test_cluster_metrics import metrics_port
from .test_connect_sip import CONNECTOR, connect_call, runs_of
from .test_metrics import scrape, value
from .test_tls import make_pair, needs_openssl

pytestmark = pytest.mark.timeout(120)


def test_a_workers_call_out_leaves_from_the_front_and_both_sides_hear_each_other(tmp_path):
    pcm_a, pcm_b, result_a, result_b, log = connect_call(
        tmp_path,
        ("--after", "1", "--duration", "3"),
        serve=lambda env: cluster(tmp_path, CONNECTOR, 1, env=env),
    )
    assert result_a["answered"] and result_b["answered"], (result_a, result_b, log[-3000:])
    # The callee saw the call come from the front's public address, not the worker's.
    front = re.search(r"cluster up: SIP on (\S+) ", log)
    assert front and result_b["source"] == front[1], (result_b, log[-3000:])
    assert "5550100" in result_b["from"]
    # Each heard the other for the callee's 3 s (the BYE came back through the front).
    assert sum(length for _, length in runs_of(pcm_a, 900)) == pytest.approx(3.0, abs=0.4)
    assert sum(length for _, length in runs_of(pcm_b, 600)) == pytest.approx(3.0, abs=0.4)
    assert "state='answered'" in log and "ended='other hung up'" in log
    assert result_a["seconds"] < 8  # the app played its tone, then hung up


def in_rotation(metrics: int, worker: str) -> bool:
    """Whether the front whose metrics are on port ``metrics`` sends calls to ``worker``."""
    return bool(value(scrape(metrics), "voip_front_destination_up", destination=worker))


@contextmanager
def joined_only(tmp_path: Path, env: dict[str, str], logs: list[str]):
    """The connecting app on a front whose own worker is stopped (SIGSTOP: its probes
    go unanswered) and on a second machine's worker joined to it, which so takes the
    call; yields the front; ``logs`` gets the joined machine's log at the end."""
    port = metrics_port()
    with cluster(tmp_path, CONNECTOR, 1, "--metrics", f"127.0.0.1:{port}", env=env) as front:
        second = tmp_path / "second"
        second.mkdir()
        (second / "app.py").write_text(textwrap.dedent(CONNECTOR))
        join = ("--workers", "1", "--join", f"sip:127.0.0.1:{front.port}")
        with serving(
            second / "app.py", *join, env=env, host="127.0.0.2", ready="cluster up"
        ) as app:
            local = pids(front, "worker 1")[0]
            os.kill(local, signal.SIGSTOP)
            try:
                own = f"sip:127.0.0.1:{front.port + 1001}"
                wait_until(front.proc, lambda: not in_rotation(port, own), 10)
                yield front
            finally:
                os.kill(local, signal.SIGCONT)
        logs.append(app.log)


def test_a_joined_machines_call_out_leaves_from_the_front_too(tmp_path):
    logs: list[str] = []
    pcm_a, pcm_b, result_a, result_b, log = connect_call(
        tmp_path,
        ("--after", "1", "--duration", "3"),
        serve=lambda env: joined_only(tmp_path, env, logs),
    )
    assert result_a["answered"] and result_b["answered"], (result_a, result_b, logs)
    assert "state='answered'" in logs[0] and "state='answered'" not in log
    front = re.search(r"cluster up: SIP on (\S+) ", log)
    assert front and result_b["source"] == front[1], (result_b, log[-3000:])
    assert sum(length for _, length in runs_of(pcm_a, 900)) == pytest.approx(3.0, abs=0.4)
    assert sum(length for _, length in runs_of(pcm_b, 600)) == pytest.approx(3.0, abs=0.4)


TLS_TARGET = """
    import asyncio, os
    from voip import runVoipClient, savePCMtoWAV

    async def handler(call):
        heard = asyncio.ensure_future(call.recordPCM(maxlen=8000 * 3))
        await call.playTone(900, 3.0)
        savePCMtoWAV(await heard, os.environ["HEARD"])

    runVoipClient(handler)
"""
"""Answers over TLS alone, plays 900 Hz for 3 s while recording what it hears, hangs up."""


@needs_openssl
@pytest.mark.parametrize("front", ["trusting", "distrusting", "without TLS"])
def test_a_workers_call_to_a_sips_target_leaves_over_the_fronts_tls(tmp_path, front):
    """The target's certificate trusted by the front's --tls-ca: both hear each other.
    Not trusted, or no TLS at the front: the call fails at once, and no SIP reaches the
    target (never a plain fallback)."""
    ours, theirs = make_pair(tmp_path / "ours"), make_pair(tmp_path / "theirs")
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    savePCMtoWAV(tone(600, 12.0), tmp_path / "a.wav")
    heard_a, heard_b = tmp_path / "heard_a.wav", tmp_path / "heard_b.wav"
    target_port, front_tls = next_ports()[0], next_ports()[0]
    target_tls = ("--transport", "tls", "--tls-listen", f"127.0.0.1:{target_port}")
    target_tls += ("--tls-cert", str(theirs.cert), "--tls-key", str(theirs.key))
    ca = theirs.cert if front == "trusting" else ours.cert
    front_args = ("--tls-listen", f"127.0.0.1:{front_tls}", "--tls-cert", str(ours.cert))
    front_args += ("--tls-key", str(ours.key), "--tls-ca", str(ca))
    env = {"CONNECT_TO": f"sips:app@127.0.0.1:{target_port}", "CONNECT_TIMEOUT": "10"}
    target_app = write_app(target_dir, TLS_TARGET)
    with serving(target_app, *target_tls, env={"HEARD": str(heard_b)}) as target:
        tls = front_args if front != "without TLS" else ()
        with cluster(tmp_path, CONNECTOR, 1, *tls, env=env) as app:
            caller = peer(app.uri, "--play", str(tmp_path / "a.wav"), "--record", str(heard_a))
            result = peer_result(caller)
    assert result["answered"], (result, app.log[-3000:])
    pcm_a = loadWAVtoPCM(heard_a)
    if front != "trusting":
        why = {
            "distrusting": "failed (503 No Answer Over TLS (Certificate Not Trusted?))",
            "without TLS": "rejected (403 The Front Has No TLS (give it --tls-cert))",
        }[front]
        assert f"connect to sips:app@127.0.0.1:{target_port}: {why}" in app.log, app.log
        assert "call from" not in target.log and not heard_b.exists(), target.log
        assert tone_spans(pcm_a, 1700), "the caller heard the app say connect failed"
        return
    assert "answered (200 OK)" in app.log, app.log[-3000:]
    # Each heard the other: the target's 900 Hz for its 3 s, the caller's 600 Hz.
    assert sum(length for _, length in runs_of(pcm_a, 900)) == pytest.approx(3.0, abs=0.4)
    pcm_b = loadWAVtoPCM(heard_b)
    assert sum(length for _, length in runs_of(pcm_b, 600)) == pytest.approx(3.0, abs=0.4)
    assert re.search(r"call from .* answered", target.log), target.log


@needs_openssl
@pytest.mark.parametrize("srtp", ["optional", "mandatory"])
def test_a_workers_srtp_keys_leave_the_front_over_tls_alone(tmp_path, srtp):
    """A caller over TLS with SRTP, connected to a callee over UDP: --srtp optional
    offers it plain RTP (its keys taken out at the front), as a lone server does off
    TLS, and both hear each other; mandatory cannot call it (403), and says why."""
    ours = make_pair(tmp_path / "tls")
    front_tls = next_ports()[0]
    mic, heard_a, heard_b = tmp_path / "a.wav", tmp_path / "heard_a.wav", tmp_path / "heard_b.wav"
    savePCMtoWAV(tone(600, 20.0), mic)
    savePCMtoWAV(tone(900, 20.0), tmp_path / "b.wav")
    wait = "30" if srtp == "optional" else "12"  # mandatory: no call comes
    callee, uri = start_callee(
        *("--after", "1", "--duration", "3", "--wait", wait),
        *("--play", str(tmp_path / "b.wav"), "--record", str(heard_b)),
    )
    tls = ("--tls-listen", f"127.0.0.1:{front_tls}", "--tls-cert", str(ours.cert))
    tls += ("--tls-key", str(ours.key), "--srtp", srtp)
    env = {"CONNECT_TO": uri, "CONNECT_TIMEOUT": "10"}
    try:
        with cluster(tmp_path, CONNECTOR, 1, *tls, env=env) as app:
            dial = voip_dial(
                f"sips:app@127.0.0.1:{front_tls}",
                *("--srtp", srtp, "--tls-ca", str(ours.cert), "--mic", str(mic)),
                *("--speaker", str(heard_a), "--hangup-after", "15"),
            )
        out, err = callee.communicate(timeout=60)
    finally:
        callee.kill()
    assert dial.returncode == 0, dial.stderr
    result_b = json.loads(out.strip().splitlines()[-1])
    if srtp == "mandatory":
        assert f"connect to {uri}: rejected (403 SRTP Keys Only Travel Over TLS)" in app.log
        assert not result_b["from"], result_b  # nothing reached the callee
        return
    assert result_b["answered"] and not result_b["offer_keys"], (result_b, app.log[-3000:])
    assert f"connect to {uri}: answered (200 OK)" in app.log, app.log[-3000:]
    pcm_a, pcm_b = loadWAVtoPCM(heard_a), loadWAVtoPCM(heard_b)
    assert sum(length for _, length in runs_of(pcm_a, 900)) == pytest.approx(3.0, abs=0.4)
    assert sum(length for _, length in runs_of(pcm_b, 600)) == pytest.approx(3.0, abs=0.4)
