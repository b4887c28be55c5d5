"""Rooms and queues across workers for real: kamailio in front of 3 workers, 8 pjsua2
callers in one room, each hearing the other 7 and never itself; two callers waiting in a
queue on two workers, taken in order by an agent on the third (voip/cluster/places.py).

Room "1" is homed on worker 3 (test_places.py checks ``home_of("1", 3) == 3``). Each
caller plays its own tone and records what it hears; the front spreads the calls over the
workers, and a worker with a fifth call to take answers 486 (the front tries the next):
8 members over 3 workers of 4 calls, the two legs to worker 3 included.
"""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pytest

from voip import loadWAVtoPCM, savePCMtoWAV
from voip.cluster.places import home_of

from .helpers import goertzel_power, tone, wait_until
from .sip import peer, peer_result
from .test_cluster import cluster, pids
from .test_queue_sip import CENTER, heard_in_order, two_callers_and_an_agent

pytestmark = pytest.mark.timeout(240)

ROOM_APP = """
    import asyncio
    from voip import Room, runVoipClient

    room = Room("1", gate=False)  # pure tones: WebRTC's detector is erratic on them

    async def handler(call):
        joined = asyncio.ensure_future(room.join(call, beep=False))
        while not joined.done() and room.size < 8:  # the members on every worker
            await asyncio.sleep(0.1)
        call.log.info("the room has %d members, %d here", room.size, len(room))
        call.log.info("left the room: %s", await joined)

    runVoipClient(handler)
"""

FREQS = (450.0, 600.0, 750.0, 900.0, 1050.0, 1200.0, 1350.0, 1500.0)
APART = 0.7
"""Seconds between two callers' calls (each pjsua2 caller is a process starting up)."""
TOGETHER = 5.0
"""Seconds all 8 are measured together."""


def joined_on(log: str, worker: int, what: str = r"\(") -> int:
    """Joins of room "1" worker ``worker`` logged: members (default) or legs."""
    return len(re.findall(rf"\[worker {worker}\] .*joined room '1' {what}", log))


def test_a_room_of_eight_over_three_workers_each_hearing_the_other_seven(tmp_path):
    n = len(FREQS)
    heard = [tmp_path / f"heard{k}.wav" for k in range(n)]
    with cluster(tmp_path, ROOM_APP, 3) as app:
        procs = []
        for k, freq in enumerate(FREQS):
            savePCMtoWAV(tone(freq, 30.0, 0.1), tmp_path / f"say{k}.wav")
            play = ("--play", str(tmp_path / f"say{k}.wav"), "--record", str(heard[k]))
            # All hang up together, TOGETHER + 4 s after the last one's call.
            duration = (n - 1 - k) * APART + TOGETHER + 4.0
            procs.append(peer(app.uri, *play, "--duration", f"{duration:.1f}"))
            time.sleep(APART)
        results = [peer_result(p, timeout=90) for p in procs]
        members = [joined_on(app.log, w) for w in (1, 2, 3)]
        legs = [joined_on(app.log, w, "as the leg") for w in (1, 2, 3)]
    assert all(r["answered"] for r in results), results
    print("members per worker", members, "legs per worker", legs)
    assert sum(members) == n and min(members) >= 2, members  # really over 3 workers
    assert legs == [1, 1, 2], legs  # one leg each to worker 3, both joined there
    # Each member's handler saw the 8 (room.size), of whom 2 or 3 on its worker.
    sizes = re.findall(r"the room has (\d) members, (\d) here", app.log)
    assert sorted(sizes) == sorted((str(n), str(m)) for m in members for _ in range(m)), sizes
    # From 1.5 s after the last caller's audio started (its leg up), for TOGETHER s, frame
    # by frame (20 ms: the tones are on its 50 Hz bins). Not one Goertzel over the whole:
    # the jitter buffers between two processes' clocks drop or repeat a frame now and
    # then, and a tone's pieces on either side of the jump would sum out of phase.
    start = max(r["media_at"] for r in results) + 1.5
    wrong = {}
    for k, r in enumerate(results):
        pcm = loadWAVtoPCM(heard[k])
        at = int((start - r["media_at"]) * 8000)
        window = pcm[at : at + int(TOGETHER * 8000)]
        assert len(window) == int(TOGETHER * 8000), (k, len(pcm) / 8000)
        frames = window.reshape(-1, 160)
        power = {f: np.array([goertzel_power(x, f) for x in frames]) for f in FREQS}
        # A 0.1 tone gives about 0.0025 (sent at that level through G.711 and the bridges).
        present = {f: float(np.mean(p > 0.001)) for f, p in power.items()}
        own = float(np.mean(power[FREQS[k]]))
        print(k, {int(f): f"{v:.0%}" for f, v in present.items()}, f"own {own:.1e}")
        others = [present[f] for j, f in enumerate(FREQS) if j != k]
        if min(others) < 0.95 or own > 1e-5:
            wrong[k] = (present, own)
    assert not wrong, wrong


def worker_of(log: str, line: str) -> list[int]:
    """The workers that logged ``line`` (a regular expression), in the order they did."""
    return [int(w) for w in re.findall(rf"\[worker (\d)\] .*{line}", log)]


def test_two_callers_wait_on_two_workers_and_an_agent_on_a_third_takes_them_in_order(
    tmp_path,
):
    # test_queue_sip.py's call centre, as it is: caller 1, caller 2, then the agent; the
    # front gives three calls in a row to three workers (round robin).
    with cluster(tmp_path, CENTER, 3) as app:
        results = two_callers_and_an_agent(app.uri, tmp_path)
    callers = worker_of(app.log, "waiting in queue 'sales'")
    takers = worker_of(app.log, "took a caller of queue 'sales' on another worker")
    print("callers on", callers, "taken by", takers)
    assert len(callers) == 2 and len(set(callers)) == 2, callers
    assert len(takers) == 2 and takers[0] == takers[1] and takers[0] not in callers, takers
    # Each heard what a lone process's callers and agent hear, in the same order.
    heard_in_order(tmp_path, results, app.log)


HOLDING_OR_ROOM_APP = """
    from voip import Room, runVoipClient

    rooms = {}

    async def handler(call):
        name = call.headers.get("X-Room")
        if name is None:  # a call that only keeps one of its worker's calls busy
            call.log.info("holding")
            await call.playTone(300, 3600)
            return
        room = rooms.setdefault(name, Room(name, gate=False))
        call.log.info("member %s", call.headers.get("X-Name", "?"))
        await room.join(call, beep=False)

    runVoipClient(handler)
"""


def test_a_leg_the_full_home_refuses_is_placed_again_once_it_has_a_call_free(tmp_path):
    # Two workers, A and B. Six calls that only hold, round robin: A gets the 1st, 3rd
    # and 5th (the 1st hangs up at about 12 s), B the others (hung up at about 4 s).
    # Then a room homed on A: its first member takes A's last call, the second goes to B,
    # whose leg A refuses (4 calls up) until the 1st call ends: then they hear each other.
    with cluster(tmp_path, HOLDING_OR_ROOM_APP, 2) as app:
        holders = []
        for k in range(6):
            duration = 12 - 0.5 * k if k == 0 else (40 if k % 2 == 0 else 4 - 0.5 * k)
            holders.append(peer(app.uri, "--duration", str(duration)))
            time.sleep(0.5)
        time.sleep(2.5)  # B's holders have hung up
        a = worker_of(app.log, "holding")[0]  # where the 1st went
        assert worker_of(app.log, "holding").count(a) == 3, app.log[-3000:]
        name = next(n for n in ("a", "b", "c", "d", "e", "f") if home_of(n, 2) == a)
        rec = {k: tmp_path / f"heard_{k}.wav" for k in ("first", "second")}
        members = []
        for k, freq in (("first", 600.0), ("second", 900.0)):
            savePCMtoWAV(tone(freq, 30.0, 0.3), tmp_path / f"{k}.wav")
            play = ("--play", str(tmp_path / f"{k}.wav"), "--record", str(rec[k]))
            room = ("--header", f"X-Room: {name}")
            members.append(peer(app.uri, *play, *room, "--duration", "14"))
            time.sleep(1.0)
        first, second = (peer_result(p, timeout=60) for p in members)
        freed = peer_result(holders[0])  # A's call that ended
        for p in holders[1:]:
            p.kill()
            p.wait()
    joined = worker_of(app.log, rf"joined room '{name}' \(")
    assert joined == [a, 3 - a], joined  # the first at home, the second on B
    assert worker_of(app.log, f"leg of room '{name}' .* was refused \\(486") == [3 - a]
    assert len(worker_of(app.log, f"joined room '{name}' as the leg")) == 2  # once up
    # Each half second: is the other's tone there? The second member hears nobody while
    # its leg is refused; from a retry after A's call ended (1 s apart), both hear each
    # other.
    ended = freed["media_at"] + freed["seconds"]
    for me, path, freq in ((second, rec["second"], 600.0), (first, rec["first"], 900.0)):
        pcm = loadWAVtoPCM(path)
        at = int((ended - me["media_at"]) * 8000)
        before = pcm[: at // 4000 * 4000].reshape(-1, 4000)
        after = pcm[at + 12000 : at + 28000].reshape(-1, 4000)  # 1.5 s to 3.5 s later
        print(freq, "before", [f"{goertzel_power(p, freq):.0e}" for p in before])
        print(freq, "after", [f"{goertzel_power(p, freq):.0e}" for p in after])
        assert len(before) >= 4 and len(after) == 4
        assert all(goertzel_power(p, freq) < 1e-5 for p in before)
        assert all(goertzel_power(p, freq) > 0.005 for p in after)


def test_a_leg_to_a_worker_killed_is_hung_up_and_placed_again_to_the_new_one(tmp_path):
    # Room "d" is homed on worker 1 of 2. Members call until one is on worker 2 (the
    # survivor); worker 1 is killed: worker 2 hangs its leg up (no BYE comes from a dead
    # process) and calls the restarted worker 1. Newcomers call until one is on worker 1:
    # the survivor hears it through the new leg, and it the survivor.
    assert home_of("d", 2) == 1
    names = "abcdefgh"
    freqs = {k: 500.0 + 150 * n for n, k in enumerate(names)}
    rec = {k: tmp_path / f"heard_{k}.wav" for k in names}
    procs = {}
    for k, freq in freqs.items():
        savePCMtoWAV(tone(freq, 40.0, 0.3), tmp_path / f"{k}.wav")

    def worker_of_member(k: str) -> int | None:
        found = re.findall(rf"\[worker (\d)\] .*member {k}$", app.log, re.MULTILINE)
        return int(found[0]) if found else None

    def until_one_on(worker: int, duration: float) -> str:
        """Members call, one at a time (the front takes turns, but not strictly), until
        one is on ``worker``: its name."""
        for k in names:
            if k in procs:
                continue
            play = ("--play", str(tmp_path / f"{k}.wav"), "--record", str(rec[k]))
            named = ("--header", "X-Room: d", "--header", f"X-Name: {k}")
            procs[k] = peer(app.uri, *play, *named, "--duration", str(duration))
            waiting_for(f"member {k}", lambda k=k: worker_of_member(k) is not None)
            if worker_of_member(k) == worker:
                return k
        raise AssertionError(f"no member on worker {worker}:\n{said()}")

    def legs() -> int:
        return len(worker_of(app.log, "joined room 'd' as the leg"))

    def said() -> str:
        """What the workers and the supervisor said of the room and the workers."""
        words = ("room 'd'", "member", "leg", "worker 1", "refused")
        return "\n".join(ln for ln in app.log.splitlines() if any(w in ln for w in words))

    def waiting_for(what: str, ready, timeout: float = 30) -> None:
        try:
            wait_until(app.proc, ready, timeout)
        except AssertionError:
            raise AssertionError(f"{what} never came:\n{said()}") from None

    with cluster(tmp_path, HOLDING_OR_ROOM_APP, 2) as app:
        survivor = until_one_on(2, 30)
        waiting_for("the leg", lambda: legs() == 2)  # worker 2's, at both ends
        os.kill(pids(app, "worker 1")[0], signal.SIGKILL)
        waiting_for("the leg again", lambda: legs() == 4)  # placed again, to the new worker 1
        time.sleep(2.5)  # worker 1 back in the front's rotation (its next probe)
        newcomer = until_one_on(1, 8)
        results = {k: peer_result(p) for k, p in procs.items()}
    assert "the worker on port" in app.log and "is gone: hanging up the leg" in app.log
    # From a second after the newcomer's audio started, for 4 s, each half second.
    start = results[newcomer]["media_at"] + 1.0
    for me, other in ((survivor, newcomer), (newcomer, survivor)):
        pcm = loadWAVtoPCM(rec[me])
        at = int((start - results[me]["media_at"]) * 8000)
        levels = [goertzel_power(p, freqs[other]) for p in pcm[at : at + 32000].reshape(-1, 4000)]
        print(me, "hears", other, [f"{v:.0e}" for v in levels])
        assert all(v > 0.005 for v in levels), (me, other, levels)
