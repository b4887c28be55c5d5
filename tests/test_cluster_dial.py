"""A cluster's own calls out go through its front: ``call.connect`` from a worker.

The app (tests/test_connect_sip.py's) connects each caller to a pjsua2 callee; the
worker's INVITE goes to kamailio (its outbound proxy), which record-routes it and relays
it from the front's public address. The caller and the callee hear each other. A
joined machine's worker (``--join``) calls out through the front it joined the same way.
"""

from __future__ import annotations

import os
import re
import signal
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import wait_until
from .sip import serving
from .test_cluster import cluster, pids
from .test_cluster_metrics import metrics_port
from .test_connect_sip import CONNECTOR, connect_call, runs_of
from .test_metrics import scrape, value

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
