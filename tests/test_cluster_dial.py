"""A cluster's own calls out go through its front: ``call.connect`` from a worker.

The app (tests/test_connect_sip.py's) connects each caller to a pjsua2 callee; the
worker's INVITE goes to kamailio (its outbound proxy), which record-routes it and relays
it from the front's public address. The caller and the callee hear each other.
"""

from __future__ import annotations

import re

import pytest

from .test_cluster import cluster
from .test_connect_sip import CONNECTOR, connect_call, runs_of

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
