"""``--join``: a second machine's workers behind a front, on loopback.

The front is a cluster on 127.0.0.1 with one worker; the "second machine" is a
supervisor listening on 127.0.0.2 with two workers that joins it. Callers reach the
joined workers through the front and hear the app right (tests/soak.py's app and
``check_call``); on SIGTERM the joiner leaves, and the front's own worker takes what comes.
"""

from __future__ import annotations

import asyncio
import re
import signal
import textwrap
import time

from voip.cluster.probe import ask

from .sip import multi, multi_results, peer, peer_result, serving
from .soak import APP as HOLDING_APP
from .soak import check_call
from .test_cluster import MANY_AT_ONCE, answered_on, cluster
from .test_cluster_metrics import metrics_port
from .test_metrics import scrape, value


def wait_for(text: str, log: object, timeout: float = 15) -> None:
    """Poll ``log()`` until it holds ``text``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while text not in log():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never logged: {text}"
        time.sleep(0.05)


def test_a_second_machine_joins_with_two_workers_takes_calls_and_leaves_cleanly(tmp_path):
    front_metrics = metrics_port()
    front_args = (*MANY_AT_ONCE, "--metrics", f"127.0.0.1:{front_metrics}")
    with cluster(tmp_path, HOLDING_APP, 1, *front_args) as front:
        second = tmp_path / "second"
        second.mkdir()
        (second / "app.py").write_text(textwrap.dedent(HOLDING_APP))
        second_metrics = metrics_port()  # the front's is taken by now
        join = ("--workers", "2", "--join", f"sip:127.0.0.1:{front.port}")
        join += ("--metrics", f"127.0.0.1:{second_metrics}")
        with serving(second / "app.py", *join, host="127.0.0.2", ready="cluster up") as joined:
            workers = [f"sip:127.0.0.2:{joined.port + 1001 + i}" for i in range(2)]
            for uri in workers:
                wait_for(f"worker {uri} joined", lambda: front.log)
            # The front's metrics show them in its rotation; the joined machine's, joined.
            in_rotation = {
                uri: value(scrape(front_metrics), "voip_front_destination_up", destination=uri)
                for uri in workers
            }
            mine = scrape(second_metrics)
            # Six calls at once: more than the front's one worker holds (4).
            callers = []
            for k in range(2):
                wavs = tmp_path / f"caller-{k}"
                wavs.mkdir()
                callers.append(
                    multi(
                        front.uri,
                        *("--calls", "3", "--concurrent", "3", "--min", "4", "--max", "4"),
                        *("--record-dir", str(wavs), "--seed", str(k)),
                    )
                )
            calls = [c for p in callers for c in multi_results(p, timeout=60)[0]]
            on_second = [answered_on(joined, w) for w in (1, 2)]
            on_front = answered_on(front, 1)
            joined.proc.send_signal(signal.SIGTERM)
            assert joined.proc.wait(timeout=30) == 0, joined.log[-3000:]
        assert "left the front" in joined.log, joined.log[-3000:]
        for uri in workers:
            wait_for(f"worker {uri} left", lambda: front.log)
        # Gone from the front's list at once: the next call goes to its own worker,
        # without first trying a joined one.
        after = peer_result(peer(front.uri, "--dtmf", "12", "--duration", "2"), timeout=30)
    assert in_rotation == dict.fromkeys(workers, 1), in_rotation
    assert value(mine, "voip_front_up") == 1 and value(mine, "voip_worker_up", worker="2") == 1
    assert len(calls) == 6 and all(c["answered"] for c in calls), calls
    wrong = {c["n"]: why for c in calls if (why := check_call(c))}
    assert not wrong, wrong
    assert all(n >= 1 for n in on_second) and sum(on_second) + on_front == 6, (on_second, on_front)
    assert after["answered"], after
    assert answered_on(front, 1) == on_front + 1
    assert not re.search(r"worker sip:127\.0\.0\.2:\d+ did not answer", front.log), front.log


def join(front_port: int, source: str, contact: str, expires: int) -> int | None:
    """The front's answer to a join sent from ``source`` for ``contact``."""
    headers = (f"Contact: <{contact}>", f"Expires: {expires}")
    return asyncio.run(ask("127.0.0.1", front_port, "REGISTER", headers, source, timeout=3))


def test_only_allowed_addresses_join_for_themselves_and_a_silent_join_expires(tmp_path):
    with cluster(tmp_path, HOLDING_APP, 1, "--join-allow", "127.0.0.2") as front:
        # Outside --join-allow, a REGISTER is a caller's: the front takes none.
        assert join(front.port, "127.0.0.3", "sip:127.0.0.3:17001", 30) == 405
        # Allowed, but for another address than its own: refused.
        assert join(front.port, "127.0.0.2", "sip:127.0.0.9:17001", 30) == 403
        # For itself: taken, then dropped once its 2 s pass without a refresh.
        assert join(front.port, "127.0.0.2", "sip:127.0.0.2:17001", 2) == 200
        wait_for("worker sip:127.0.0.2:17001 joined", lambda: front.log)
        wait_for(
            "worker sip:127.0.0.2:17001 removed: its join was not refreshed in time",
            lambda: front.log,
            timeout=30,
        )
    assert "127.0.0.3:17001 joined" not in front.log and "127.0.0.9:17001 joined" not in front.log
    assert "cfgutils" not in front.log, front.log  # route[JOIN]'s lock worked
