"""Load on a cluster (`--workers`): SIPp's calls through the kamailio front, with audio
checked on a sample; set-up through the front against straight to a worker; failover."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from tests.kamailio import port_free
from tests.pcap import mulaw_decode, mulaw_encode, write_rtp_pcap
from voip import loadWAVtoPCM
from voip.audio.match import find_sound

from . import capture
from .common import (
    ROOT,
    Context,
    Row,
    Section,
    fmt,
    measured,
    percentile,
    proc_cpu_seconds,
    proc_rss_bytes,
)
from .media_load import Cadence, cadence
from .sip import launch

NAME = "load"
TITLE = "Load: a cluster of workers behind kamailio (SIPp, loopback)"
METHOD = """\
One cluster for the whole benchmark: `bench/sip/greeting_app.py` served with `--workers
25` (4 calls each, pjsua2's limit per process: 100 in all), kamailio in front on
127.0.0.1, every worker answering with a greeting, a speech prompt
(`assets/menu/welcome.wav`, 11.3 s), then a 425 Hz tone until the caller hangs up (both
played by PJSIP, in C). The load is SIPp 3.6 (`bench/sip/sipp_hold.xml`), one process
for hundreds of calls: INVITE to the front with a PCMU offer, ACK and BYE through the
front (its Record-Route), and from the ACK on, RTP replayed from a capture
(`play_pcap_audio`, a 440 Hz µ-law tone written by the benchmark) until it hangs up.
What SIPp receives it does not check: a sample of calls comes from a pjsua2 caller
instead (`tests/peers/pjsua_multi.py`, 4 calls, the most one process holds) which
records what it hears.

*The curve*: first the idle cluster, 5 s after it is up: the CPU (user + system, from
`/proc`, all threads) of every process under the supervisor (the workers, kamailio and
its children; not the supervisor, not SIPp) over 10 s, and their summed RSS; the CPU
again after the last size (the lower of the two is the idle figure); and which
scheduling each worker's media clock (PJSIP's thread that sends its calls' RTP) has: by
default realtime (`SCHED_RR`, `--media-priority`), where the benchmark's user may. Then
for each size *N* (4, 20, 40, 60, 100) in turn: the pjsua2 caller places its 4 calls and
SIPp the other *N* − 4, at 10 new calls a second; once the workers have logged *N*
answered calls, after 1 s, the held period: 20 s in which `tshark` captures every RTP
packet the workers send (their RTP ports) and the processes' CPU and RSS are read at
both ends, with the whole machine's busy time (`/proc/stat`: the load, the capture and
anything else running). Then every call is hung up and the next size starts from a
cluster with no call. *CPU per call* = (the cluster's CPU over the held period − idle) ÷
*N*, in % of one core; *RSS per call* = (summed RSS at the end of the held period −
idle) ÷ *N* (shared pages count once per process in the sum, the same at idle and under
load). *Cadence*: per RTP stream (one per call, by the worker's port), |inter-arrival −
20 ms| of consecutive packets, pooled over all streams: p99, max, and the count of
inter-arrivals over 40 ms; the notes group these gaps into moments (within 100 ms of one
another) and say how many streams each moment held: many at once point at the machine
stalling every process, one at a time at a worker. On loopback the capture time is the
send time: this is the workers' own pacing, and wall-clock timing: other load on the
machine shows in it. *Greeting*: the whole prompt must be found
(`voip.audio.match.find_sound`, score over 0.9) in what the workers sent each sample
call: a second `tshark` captures the sample caller's RTP ports from its first call on,
and each stream's PCMU payloads, in sequence order, are decoded. The sample's recordings
are scored too (*heard*), but are not part of the verdict: the recording peer, a pjsua2
process on the same 2 busy cores, mangles what it hears on its own (seen: 0.48-0.83 in
recordings of streams that scored 1.00 on the wire), so they show the peer's state more
than the workers'. A size is *clean* when all *N* calls were answered, *N* streams
captured, cadence p99 under 2 ms, no gap over 40 ms and every sample greeting sent
whole. Goal: 100 clean (25 workers on this 2-core machine).

*Baselines*, measured in the same run before the curve: the greeting app as **one process
alone** (no `--workers`, no kamailio), its idle CPU and RSS over 10 s, then the sample's
4 calls held as above: each size's per-call CPU, RSS and cadence are set against a call's
in that process (a ratio under 1: a call costs more in the cluster's crowd). And the
largest size again on a **cluster of its own started with `--media-priority normal`**, the
media clocks left at normal priority, captured and judged the same way: the row "media
clocks at realtime priority" sets the default's cadence against it.

*Set-up*: SIPp places short calls (held 0.5 s) one after another, 4 a second, in 4
rounds alternating between the front's port and worker 1's own port (straight, no
kamailio), so that drift in the machine's load falls on both; `tshark` captures SIPp's
SIP port, and each call's set-up is its INVITE's capture time to the 200 OK's, both on
SIPp's side of the wire. p50 and p99 through the front against straight to a worker.

*Failover*, on a cluster of its own of 3 workers (of 25, the dead one would be sent one
call in 25, too few to see when kamailio stops), the two left holding 8 calls, more than
the load needs: SIPp places short calls (held 0.5 s) through the front at 6 a second;
after 4 s worker 1 is killed (SIGKILL). kamailio learns of it from its probes (OPTIONS
every 2 s, one miss marks a worker down) or from a call it sent there going unanswered
for 2 s (`fr_timer`; then it tries the next worker); meanwhile the supervisor restarts
the worker (after 1 s, then its start-up), and the new process answers INVITEs that
kamailio is still retransmitting: that figure is mostly the restart. So the same is done
again once worker 1 is back, with worker 2 hung (SIGSTOP) instead: no restart comes, and
only the front's failover (`fr_timer`, then the probes) keeps calls away from it.
`tshark` captures SIPp's port and the dead worker's port. A call placed after the kill is
*hit* when its INVITE went to the dead worker's port and was not answered there within
500 ms (SIP's T1: kamailio had to send it again, to a dead process or one still
starting), or when it failed. The figure: seconds from
the kill to the 200 OK of the first call placed after the last hit call (with none hit,
the first placed after the kill); the next row, the longest set-up of a hit call; the
notes, how many were hit."""

WORKERS = 25
CALLS_PER_WORKER = 4
CURVE = (4, 20, 40, 60, 100)
QUICK_WORKERS = 3
QUICK_CURVE = (4, 8)
SAMPLE = 4
SAMPLE_RTP = 40
"""RTP ports the pjsua2 caller takes (tests/peers/pjsua_multi.py's range)."""
"""Calls placed by the recording pjsua2 caller at every size (the rest are SIPp's)."""
RATE = 10
"""New calls a second while a size fills up."""
HELD = 20.0
QUICK_HELD = 5.0
IDLE = 10.0
QUICK_IDLE = 3.0
SETTLE = 1.0
ANSWER_SLACK = 15.0
"""Seconds beyond N / RATE for the workers to have answered N calls."""
GREETING_SCORE = 0.9
TARGET_P99_MS = 2.0
GAP_MS = 40.0
TARGET_CALLS = 100
SETUP_CALLS = 100
QUICK_SETUP_CALLS = 16
SETUP_RATE = 4
SETUP_ROUNDS = 4
SHORT_HOLD_MS = 500
FAILOVER_RATE = 6
FAILOVER_WORKERS = 3
FAILOVER_SECONDS = 16.0
QUICK_FAILOVER_SECONDS = 10.0
KILL_AFTER = 4.0
RECOVER = 6.0
"""Seconds between the two failovers: the killed worker restarts and is probed back."""
PROBE_S, FR_TIMER_S = 2, 2
T1 = 0.5
"""SIP's T1: kamailio sends an unanswered INVITE again after this."""
"""kamailio's probe interval and its final-response timer (voip/cluster/kamailio.cfg.in)."""

GREETING_APP = str(launch.HERE / "greeting_app.py")
SCENARIO = launch.HERE / "sipp_hold.xml"
MULTI = ROOT / "tests" / "peers" / "pjsua_multi.py"
PROMPT = ROOT / "assets" / "menu" / "welcome.wav"
_ANSWERED = re.compile(r"^(?:\[worker \d+\] )?.* answered", re.M)
"""A call answered: a worker's line (the supervisor prefixes it) or a lone process's."""


# -- the cluster and its processes ------------------------------------------------------


def _cluster_port(workers: int) -> int:
    """A listen port whose cluster ports (port + 1000 and up) are free too, all below
    Linux's ephemeral ports (32768 and up), where any client socket of the machine may
    take one between this look and the workers' start (seen: a worker could not bind)."""
    first, last = 20000, 32767 - 1000 - workers
    for port in range(first + os.getpid() % 500 * 10, last, 10):
        if all(port_free(p) for p in (port, *range(port + 1000, port + 1001 + workers))):
            return port
    raise RuntimeError("no free ports for the cluster")


@contextmanager
def cluster(workers: int, *extra: str) -> Iterator[launch.Server]:
    """The greeting app served with ``--workers`` (and ``extra`` options), up once the
    supervisor says so."""
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    path = os.pathsep.join([os.environ.get("PATH", ""), os.path.dirname(kamailio)])
    span = -(-workers * CALLS_PER_WORKER * 2 // 100) * 100  # whole blocks of 100
    # Blocks of the bench's RTP ports (launch.rtp_block) of its own, so that no caller
    # (they take the next blocks) binds inside the workers' range.
    blocks = [launch.rtp_block() for _ in range(span // 100)]
    while any(b - a != 100 for a, b in zip(blocks, blocks[1:], strict=False)):  # wrapped
        blocks = [launch.rtp_block() for _ in range(span // 100)]
    rtp = blocks[0]
    args = (GREETING_APP, "--workers", str(workers), "--transport", "udp", *extra)
    with launch.serving(
        "voip",
        args,
        port=_cluster_port(workers),
        rtp=rtp,
        rtp_range=span,
        ready="cluster up",
        timeout=60 + 6 * workers,  # 25 Python processes importing PJSIP on 2 cores
        env={"PATH": path},
    ) as server:
        yield server


def machine_busy() -> tuple[float, float]:
    """Seconds every CPU of the machine has been busy and in all, so far (``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), from ``/proc``."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


@dataclass
class Usage:
    """CPU seconds and summed RSS of a set of processes at one moment."""

    at: float
    cpu: dict[int, float]
    rss: int

    @classmethod
    def now(cls, pids: list[int]) -> Usage:
        cpu, rss = {}, 0
        for pid in pids:
            try:
                cpu[pid] = proc_cpu_seconds(pid)
                rss += proc_rss_bytes(pid)
            except (OSError, RuntimeError):
                continue  # gone
        return cls(time.monotonic(), cpu, rss)

    def cores_since(self, before: Usage) -> float:
        """Cores used between ``before`` and this, over the processes present at both."""
        used = sum(self.cpu[p] - before.cpu[p] for p in self.cpu if p in before.cpu)
        return used / (self.at - before.at)


# -- SIPp -------------------------------------------------------------------------------


def write_pcap(path: Path, seconds: float) -> None:
    """The RTP SIPp replays on each call: a 440 Hz tone, µ-law."""
    t = np.arange(int(seconds * 8000)) / 8000
    write_rtp_pcap(path, mulaw_encode(0.3 * np.sin(2 * np.pi * 440 * t)))


class Sipp:
    """One SIPp run of bench/sip/sipp_hold.xml in ``workdir`` (which holds load.pcap),
    from :meth:`start` (its SIP port known before, for a capture)."""

    def __init__(self, workdir: Path, target: str, calls: int, rate: float, hold_ms: int):
        self.workdir = workdir
        self.port = launch.free_sip_port()
        media = launch.rtp_block()
        self.log = workdir / f"sipp_{self.port}.log"
        self.stats = workdir / f"sipp_{self.port}.csv"
        cmd = [shutil.which("sipp") or "sipp", target, "-sf", str(SCENARIO), "-s", "bench"]
        cmd += ["-i", "127.0.0.1", "-p", str(self.port), "-mi", "127.0.0.1"]
        cmd += ["-mp", str(media), "-m", str(calls), "-l", str(calls), "-r", f"{rate:g}"]
        cmd += ["-d", str(hold_ms), "-nostdin", "-timeout", f"{hold_ms // 1000 + 120}s"]
        cmd += ["-trace_logs", "-log_file", str(self.log)]
        cmd += ["-trace_stat", "-stf", str(self.stats), "-fd", "1"]
        self.cmd = cmd
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Sipp:
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        return self

    def wait(self, timeout: float) -> dict[str, int]:
        """Wait for the end; how many calls succeeded, failed and were refused."""
        assert self.proc is not None
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        rows = self.stats.read_text().splitlines() if self.stats.exists() else []
        last = dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False)) if rows else {}
        log = self.log.read_text() if self.log.exists() else ""
        if not last and self.proc.returncode not in (0, 1):
            raise RuntimeError(f"SIPp failed (exit {self.proc.returncode}): {err[-1500:]}")
        return {
            "succeeded": int(last.get("SuccessfulCall(C)", 0)),
            "failed": int(last.get("FailedCall(C)", 0)),
            "refused": log.count("REFUSED "),
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def sample_caller(
    uri: str, calls: int, hold: float, record_dir: Path, rtp: int
) -> subprocess.Popen[str]:
    """The pjsua2 caller placing ``calls`` calls at once, recording each, held ``hold`` s,
    its RTP on ports ``rtp`` and up (:data:`SAMPLE_RTP` of them)."""
    cmd = [sys.executable, str(MULTI), uri, "--port", str(launch.free_sip_port())]
    cmd += ["--rtp-port", str(rtp), "--calls", str(calls)]
    cmd += ["--concurrent", str(calls), "--min", f"{hold:g}", "--max", f"{hold:g}"]
    cmd += ["--record-dir", str(record_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def greetings_heard(caller: subprocess.Popen[str], timeout: float) -> list[float]:
    """The score of the prompt in each of the caller's recordings (0: not answered)."""
    out, err = caller.communicate(timeout=timeout)
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    if not lines or "placed" not in lines[-1]:
        raise RuntimeError(f"the pjsua2 caller did not finish:\n{out[-1500:]}\n{err[-1500:]}")
    prompt = loadWAVtoPCM(PROMPT)
    scores = []
    for line in lines[:-1]:
        heard = line["answered"] and line["wav"] and Path(line["wav"]).exists()
        scores.append(find_sound(loadWAVtoPCM(line["wav"]), prompt)[0] if heard else 0.0)
    return scores


def greetings_sent(packets: list[capture.RtpPacket]) -> list[float]:
    """The score of the prompt in each PCMU stream of ``packets`` (by destination port),
    its payloads decoded in sequence order: what the worker sent, before any jitter
    buffer."""
    prompt = loadWAVtoPCM(PROMPT)
    streams: dict[int, list[capture.RtpPacket]] = {}
    for p in packets:
        if p.pt == 0:
            streams.setdefault(p.dport, []).append(p)
    scores = []
    for stream in streams.values():
        if len(stream) * 160 < len(prompt):
            continue  # RTCP's neighbour, or a stream cut short: no greeting to find
        first = stream[0].seq
        stream.sort(key=lambda p: (p.seq - first) & 0xFFFF)  # in order, across a wrap
        scores.append(find_sound(mulaw_decode(b"".join(p.payload for p in stream)), prompt)[0])
    return scores


# -- the curve --------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    calls: int

    @property
    def key(self) -> str:
        return str(self.calls)

    @property
    def label(self) -> str:
        return f"{self.calls} concurrent calls"


@dataclass
class Point:
    calls: int
    answered: int
    cores: float
    machine: float
    """Cores busy on the whole machine meanwhile (everything: the load, the capture, and
    whatever else ran)."""
    """Cores the cluster used over the held period."""
    rss: int
    cadence: Cadence
    greetings: list[float]
    """The prompt's score in each of the sample's recordings."""
    sent: list[float]
    """The same in what the workers sent the sample (from the capture)."""
    stalls: list[int]
    """Per moment with gaps over :data:`GAP_MS`, the streams it held (:func:`stalls`)."""
    sipp: dict[str, int] = field(default_factory=dict)

    def cpu_per_call(self, idle: Usage, idle_cores: float) -> float:
        return 100 * (self.cores - idle_cores) / self.calls

    def rss_per_call(self, idle: Usage) -> float:
        return (self.rss - idle.rss) / self.calls / 1e6

    @property
    def gaps(self) -> int:
        return self.cadence.gaps

    @property
    def heard(self) -> int:
        return sum(s > GREETING_SCORE for s in self.greetings)

    @property
    def whole(self) -> int:
        """Sample calls whose greeting went out whole."""
        return sum(s > GREETING_SCORE for s in self.sent)

    @property
    def clean(self) -> bool:
        p99 = self.cadence.p(99)
        return (
            self.answered >= self.calls
            and self.cadence.streams >= self.calls
            and p99 is not None
            and p99 < TARGET_P99_MS
            and self.gaps == 0
            and self.whole == len(self.sent) == min(SAMPLE, self.calls)
        )


def stalls(streams: list[list[capture.RtpPacket]]) -> list[int]:
    """The gaps over :data:`GAP_MS` in ``streams``, grouped into moments (gaps within
    100 ms of one another): how many streams each moment held. Many streams at once
    point at the machine (a stall of every process), one at a time at a worker."""
    late = sorted(
        (b.time, a.sport)
        for packets in streams
        for a, b in zip(packets, packets[1:], strict=False)
        if 1000 * (b.time - a.time) > GAP_MS
    )
    moments: list[set[int]] = []
    last = -math.inf
    for t, port in late:
        if t - last > 0.1:
            moments.append(set())
        moments[-1].add(port)
        last = t
    return [len(m) for m in moments]


def _answered(server: launch.Server) -> int:
    return len(_ANSWERED.findall(server.log))


def _rtp_streams(packets: list[capture.RtpPacket], t0: float, t1: float) -> list[list]:
    streams: dict[int, list[capture.RtpPacket]] = {}
    for p in packets:
        if t0 <= p.time <= t1 and p.pt < 96:  # audio; not RFC 4733 events
            streams.setdefault(p.sport, []).append(p)
    return list(streams.values())


def _point(
    server: launch.Server,
    size: Size,
    held: float,
    tshark: str,
    workdir: Path,
    pids: list[int],
    tag: str = "",
) -> Point:
    """``size`` calls to ``server`` held; ``pids``: the processes whose CPU and RSS count;
    ``tag`` names its files apart from another point's of the same size."""
    n = size.calls
    sample = min(SAMPLE, n)
    fill = n / RATE
    hold = fill + ANSWER_SLACK + SETTLE + held + 5  # every call still up after the window
    before = _answered(server)
    records = workdir / f"heard-{n}{tag}"
    records.mkdir()
    rtp = launch.rtp_block()
    sent_pcap, pcap = workdir / f"sent-{n}{tag}.pcapng", workdir / f"rtp-{n}{tag}.pcapng"
    sipp = Sipp(workdir, f"127.0.0.1:{server.port}", n - sample, RATE, int(hold * 1000))
    first, last = server.rtp, server.rtp + server.rtp_range - 1
    # From the workers' RTP ports to the callers' (a caller's port in that range would
    # otherwise pass for a worker's).
    bpf = f"udp src portrange {first}-{last} and not udp dst portrange {first}-{last}"
    # What the sample is sent, from the first packet on: the greeting on the wire.
    sample_bpf = f"udp dst portrange {rtp}-{rtp + SAMPLE_RTP - 1}"
    with capture.capture(tshark, sample_bpf, sent_pcap):
        caller = sample_caller(server.uri, sample, hold, records, rtp)
        try:
            if n > sample:
                sipp.start()
            deadline = time.monotonic() + fill + ANSWER_SLACK
            while _answered(server) - before < n and time.monotonic() < deadline:
                if sipp.proc is not None and sipp.proc.poll() is not None:
                    break  # SIPp gave up: its calls failed
                time.sleep(0.2)
            answered = _answered(server) - before
            time.sleep(SETTLE)
            with capture.capture(tshark, bpf, pcap):
                t0, start, busy0 = time.time(), Usage.now(pids), machine_busy()
                time.sleep(held)
                end, t1, busy1 = Usage.now(pids), time.time(), machine_busy()
            greetings = greetings_heard(caller, timeout=hold + 60)
            outcome = sipp.wait(timeout=hold + fill + 60) if n > sample else {}
        finally:
            sipp.stop()
            if caller.poll() is None:
                caller.kill()
                caller.wait()
    if not server.alive():
        raise RuntimeError(f"the cluster died:\n{server.log[-3000:]}")
    packets = capture.rtp_packets(capture.udp_packets(tshark, pcap))
    sent = greetings_sent(capture.rtp_packets(capture.udp_packets(tshark, sent_pcap)))
    pcap.unlink()
    sent_pcap.unlink()
    streams = _rtp_streams(packets, t0, t1)
    return Point(
        n,
        answered,
        end.cores_since(start),
        (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]) * (os.cpu_count() or 1),
        end.rss,
        cadence(streams),
        greetings,
        sent,
        stalls(streams),
        outcome,
    )


def _describe(point: Point, idle: Usage, idle_cores: float, who: str = "cluster") -> str:
    c = point.cadence
    sipp = point.sipp
    text = (
        f"{point.calls} calls: {point.answered} answered"
        + (
            f" (SIPp: {sipp['succeeded']} calls through, {sipp['failed']} failed, "
            f"{sipp['refused']} refused)"
            if sipp
            else ""
        )
        + f"; {who} CPU {100 * point.cores:.0f}% of a core (the whole machine: "
        f"{100 * point.machine:.0f}% of a core busy, of {100 * (os.cpu_count() or 1)}%) "
        f"({fmt(point.cpu_per_call(idle, idle_cores))}% per call above idle), RSS "
        f"{point.rss / 1e6:.0f} MB ({fmt(point.rss_per_call(idle))} MB per call); "
        f"{c.streams} RTP streams, {c.packets:,} packets, |inter-arrival − 20 ms| "
        f"p50 {fmt(c.p(50))} ms, p99 {fmt(c.p(99))} ms, max {fmt(c.max)} ms, "
        f"{c.gaps} gaps over {GAP_MS:.0f} ms; greeting sent whole to {point.whole} of "
        f"{len(point.sent)} sample calls (scores on the wire "
        f"{', '.join(f'{s:.2f}' for s in point.sent) or 'none'}), heard whole in "
        f"{point.heard} of {len(point.greetings)} recordings (scores "
        f"{', '.join(f'{s:.2f}' for s in point.greetings)})"
    )
    if point.stalls:
        text += (
            f"; the gaps fell at {len(point.stalls)} moments, holding "
            f"{', '.join(map(str, point.stalls))} streams each"
        )
    if c.lag_ms:
        text += f"; streams behind a steady pace by up to {max(c.lag_ms):.0f} ms at the end"
    return text + (". **Clean.**" if point.clean else ". **Not clean.**")


def _idle(ctx: Context, pids: list[int]) -> tuple[Usage, float]:
    """The cluster with no call: its usage at the end, and the cores it used meanwhile."""
    before = Usage.now(pids)
    time.sleep(ctx.pick(int(IDLE), int(QUICK_IDLE)))
    after = Usage.now(pids)
    return after, after.cores_since(before)


@dataclass
class Measured:
    """A point with the idle figures its per-call costs are taken above."""

    point: Point
    idle: Usage
    idle_cores: float

    def cpu_per_call(self) -> float:
        return self.point.cpu_per_call(self.idle, self.idle_cores)

    def rss_per_call(self) -> float:
        return self.point.rss_per_call(self.idle)

    def describe(self, who: str = "cluster") -> str:
        return _describe(self.point, self.idle, self.idle_cores, who)


@dataclass
class Baselines:
    """What the curve is set against, measured in the same run before it."""

    lone: Measured | None = None
    """One process alone (no kamailio) holding the sample's calls."""
    normal: Measured | None = None
    """The largest size again on a cluster whose media clocks run at normal priority."""


def clock_policies(pids: list[int]) -> list[str]:
    """Each process's PJSIP media clock thread's scheduling, e.g. "SCHED_RR 99"."""
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_RR: "SCHED_RR", os.SCHED_FIFO: "SCHED_FIFO"}
    found = []
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                if (task / "comm").read_text() != "clock\n":
                    continue
                tid = int(task.name)
                policy, prio = os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority
            except OSError:
                continue  # gone meanwhile
            found.append(f"{names.get(policy, policy)} {prio}")
    return found


def _clocks_note(pids: list[int]) -> str:
    counts = Counter(clock_policies(pids))
    return ", ".join(f"{n} at {policy}" for policy, n in sorted(counts.items())) or "none found"


def _measure(
    ctx: Context,
    server: launch.Server,
    size: Size,
    pids: list[int],
    tshark: str,
    tmp: Path,
    tag: str = "",
) -> Measured:
    """The server's idle cost, then ``size`` calls held."""
    time.sleep(5)  # start-up done
    idle, cores = _idle(ctx, pids)
    held = ctx.pick(int(HELD), int(QUICK_HELD))
    return Measured(_point(server, size, held, tshark, tmp, pids, tag), idle, cores)


def _lone(ctx: Context, section: Section, tshark: str, tmp: Path) -> Measured:
    """The greeting app as one process (no kamailio, no workers) with the sample's calls."""
    args = (GREETING_APP, "--transport", "udp")
    with launch.serving("voip", args, rtp=launch.rtp_block()) as server:
        found = _measure(ctx, server, Size(SAMPLE), [server.pid], tshark, tmp, "-lone")
        section.notes.append(
            f"One process alone (media clock: {_clocks_note([server.pid])}), "
            + found.describe("process")
        )
    return found


def _normal(ctx: Context, section: Section, workers: int, tshark: str, tmp: Path) -> Measured:
    """The largest size on a cluster of the same size whose media clocks keep normal
    priority (``--media-priority normal``)."""
    n = max(QUICK_CURVE if ctx.quick else CURVE)
    with cluster(workers, "--media-priority", "normal") as server:
        pids = descendants(server.pid)
        found = _measure(ctx, server, Size(n), pids, tshark, tmp, "-normal")
        section.notes.append(
            f"With `--media-priority normal` (a cluster of its own, media clocks: "
            f"{_clocks_note(pids)}), " + found.describe()
        )
    return found


def _curve(
    ctx: Context,
    section: Section,
    server: launch.Server,
    tshark: str,
    tmp: Path,
    base: Baselines,
) -> None:
    pids = descendants(server.pid)
    time.sleep(5)  # the workers' and kamailio's start-up done
    idle, first_cores = _idle(ctx, pids)
    held = ctx.pick(int(HELD), int(QUICK_HELD))
    sizes = [Size(n) for n in (QUICK_CURVE if ctx.quick else CURVE)]
    clocks = _clocks_note(pids)
    points: dict[int, Point] = {}
    for size, point in measured(
        ctx, section, sizes, lambda s: _point(server, s, held, tshark, tmp, pids)
    ):
        points[size.calls] = point
    # Idle again, warm: start-up work (imports settling, first GCs) may linger in the
    # first figure; the lower of the two is the cluster's own cost.
    again, last_cores = _idle(ctx, pids)
    idle_cores = min(first_cores, last_cores)
    section.notes.append(
        f"Idle cluster ({len(pids)} processes: workers, kamailio and its children; media "
        f"clocks: {clocks}): {100 * first_cores:.1f}% of a core before the calls, "
        f"{100 * last_cores:.1f}% after them; RSS {idle.rss / 1e6:.0f} MB in all before, "
        f"{again.rss / 1e6:.0f} MB after."
    )
    for point in points.values():
        section.notes.append(_describe(point, idle, idle_cores))
    lone = base.lone
    label = f"one process alone, {SAMPLE} calls"
    for size in sizes:
        p = points.get(size.calls)
        section.rows.append(
            Row(
                f"Cluster CPU per call above idle, {size.calls} calls",
                p.cpu_per_call(idle, idle_cores) if p else None,
                "% of a core",
                label,
                lone.cpu_per_call() if lone else None,
                note="workers + kamailio, all threads; alone: the process, all threads",
            )
        )
        section.rows.append(
            Row(
                f"Cluster RSS per call above idle, {size.calls} calls",
                p.rss_per_call(idle) if p else None,
                "MB",
                label,
                lone.rss_per_call() if lone else None,
            )
        )
        section.rows.append(
            Row(
                f"RTP cadence p99 |inter-arrival − 20 ms|, {size.calls} calls",
                p.cadence.p(99) if p else None,
                "ms",
                label,
                lone.point.cadence.p(99) if lone else None,
                target=f"p99 < {fmt(TARGET_P99_MS)} ms, no gap > {GAP_MS:.0f} ms, greeting whole",
                met=p.clean if p else None,
                note=(
                    f"worst {fmt(p.cadence.max)} ms off, {p.gaps} gaps; greeting sent whole "
                    f"{p.whole}/{len(p.sent)}, heard whole {p.heard}/{len(p.greetings)}"
                    if p
                    else ""
                ),
            )
        )
    top, normal = points.get(sizes[-1].calls), base.normal
    section.rows.append(
        Row(
            f"RTP cadence p99 |inter-arrival − 20 ms|, {sizes[-1].calls} calls, media "
            "clocks at realtime priority (the default)",
            top.cadence.p(99) if top else None,
            "ms",
            "the same calls, `--media-priority normal`",
            normal.point.cadence.p(99) if normal else None,
            note=(
                f"normal: worst {fmt(normal.point.cadence.max)} ms off, {normal.point.gaps} "
                f"gaps, {'clean' if normal.point.clean else 'not clean'}"
                if normal
                else ""
            ),
        )
    )
    clean = [n for n, p in points.items() if p.clean]
    most = max(clean, default=0)
    section.rows.append(
        Row(
            f"Concurrent calls with clean audio, {len(server_workers(server))} workers",
            most,
            "calls",
            "1 process (pjsua2's limit)",
            CALLS_PER_WORKER,
            lower_is_better=False,
            target=f"≥ {TARGET_CALLS}",
            met=most >= TARGET_CALLS if not ctx.quick else None,
            note="the largest size that was clean; clean: "
            + (", ".join(str(n) for n in sorted(clean)) or "none"),
        )
    )


def server_workers(server: launch.Server) -> list[int]:
    """The workers' indexes, from the supervisor's log."""
    return sorted({int(w) for w in re.findall(r"\[?worker (\d+)\]? up", server.log)})


def worker_pid(server: launch.Server, index: int) -> int:
    """The process id of worker ``index``'s latest start."""
    found = re.findall(rf"worker {index} (?:up|restarted) \(pid (\d+)\)", server.log)
    if not found:
        raise RuntimeError(f"worker {index} never logged its pid")
    return int(found[-1])


# -- SIP on the wire: set-up and failover -----------------------------------------------


@dataclass
class SipCall:
    """One call as SIPp's side of the wire saw it."""

    invite: float
    """Capture time of its first INVITE."""
    status: int = 0
    """Its final status (0: none seen)."""
    final: float = 0.0
    """Capture time of the final response."""

    @property
    def setup(self) -> float:
        return self.final - self.invite


def _sip(packet: capture.Packet) -> tuple[str, str, str] | None:
    """A SIP message's first line, Call-ID and CSeq method; None if not SIP."""
    try:
        text = packet.payload.decode("utf-8", "replace")
    except ValueError:
        return None
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    call_id = fields.get("call-id") or fields.get("i")
    cseq = (fields.get("cseq") or "").split()
    if not call_id or len(cseq) != 2:
        return None
    return head[0], call_id, cseq[1]


def sip_calls(packets: list[capture.Packet], port: int) -> dict[str, SipCall]:
    """The calls ``port`` (SIPp's) placed, by Call-ID: its INVITEs and their final answers."""
    calls: dict[str, SipCall] = {}
    for p in packets:
        msg = _sip(p)
        if msg is None or msg[2] != "INVITE":
            continue
        first, call_id, _ = msg
        if p.sport == port and first.startswith("INVITE ") and call_id not in calls:
            calls[call_id] = SipCall(p.time)
        elif p.dport == port and first.startswith("SIP/2.0 ") and call_id in calls:
            status = int(first.split()[1])
            call = calls[call_id]
            if status >= 200 and not call.status:
                call.status, call.final = status, p.time
    return calls


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    direct: bool


SETUP_PATHS = (
    Target("front", "through the front (kamailio)", False),
    Target("direct", "straight to worker 1", True),
)


def _setup(ctx: Context, section: Section, server: launch.Server, tshark: str, tmp: Path) -> None:
    calls = ctx.pick(SETUP_CALLS, QUICK_SETUP_CALLS)
    per_round = calls // SETUP_ROUNDS
    times: dict[str, list[float]] = {p.key: [] for p in SETUP_PATHS}
    failed: dict[str, int] = {p.key: 0 for p in SETUP_PATHS}
    rounds = [p for _ in range(SETUP_ROUNDS // 2) for p in SETUP_PATHS]
    for i, path in enumerate(rounds):
        port = server.port + 1001 if path.direct else server.port
        sipp = Sipp(tmp, f"127.0.0.1:{port}", per_round, SETUP_RATE, SHORT_HOLD_MS)
        pcap = tmp / f"setup-{i}.pcapng"
        try:
            with capture.capture(tshark, f"udp port {sipp.port}", pcap):
                sipp.start().wait(timeout=per_round / SETUP_RATE + 60)
        finally:
            sipp.stop()
        found = sip_calls(capture.udp_packets(tshark, pcap), sipp.port)
        times[path.key] += [1000 * c.setup for c in found.values() if c.status == 200]
        failed[path.key] += per_round - sum(c.status == 200 for c in found.values())
    front, direct = times["front"], times["direct"]
    for path in SETUP_PATHS:
        t = times[path.key]
        section.notes.append(
            f"Set-up {path.label}: {len(t)} calls answered, {failed[path.key]} not; "
            f"INVITE → 200 OK p50 {fmt(percentile(t, 50))} ms, p99 {fmt(percentile(t, 99))} ms, "
            f"max {fmt(max(t, default=float('nan')))} ms."
        )
    for q in (50, 99):
        section.rows.append(
            Row(
                f"Call set-up through the front, INVITE → 200 OK: p{q}",
                percentile(front, q) if front else None,
                "ms",
                "straight to a worker",
                percentile(direct, q) if direct else None,
                note=f"{len(front)} + {len(direct)} calls, SIPp's side of the wire",
            )
        )


def _failover_death(
    ctx: Context, section: Section, server: launch.Server, tshark: str, tmp: Path
) -> None:
    _failover(ctx, section, server, tshark, tmp, victim=1, sig=signal.SIGKILL)


def _failover_hang(
    ctx: Context, section: Section, server: launch.Server, tshark: str, tmp: Path
) -> None:
    time.sleep(RECOVER)  # the worker killed before is back and probed
    try:
        _failover(ctx, section, server, tshark, tmp, victim=2, sig=signal.SIGSTOP)
    finally:
        os.kill(worker_pid(server, 2), signal.SIGCONT)


def _failover(
    ctx: Context,
    section: Section,
    server: launch.Server,
    tshark: str,
    tmp: Path,
    victim: int,
    sig: signal.Signals,
) -> None:
    victim_port = server.port + 1000 + victim
    seconds = ctx.pick(int(FAILOVER_SECONDS), int(QUICK_FAILOVER_SECONDS))
    calls = int(seconds * FAILOVER_RATE)
    sipp = Sipp(tmp, f"127.0.0.1:{server.port}", calls, FAILOVER_RATE, SHORT_HOLD_MS)
    pcap = tmp / "failover.pcapng"
    try:
        with capture.capture(tshark, f"udp port {sipp.port} or udp port {victim_port}", pcap):
            sipp.start()
            time.sleep(KILL_AFTER)
            pid = worker_pid(server, victim)
            killed = time.time()
            os.kill(pid, sig)
            outcome = sipp.wait(timeout=seconds + 60)
    finally:
        sipp.stop()
    packets = capture.udp_packets(tshark, pcap)
    placed = sip_calls(packets, sipp.port)
    # INVITEs the front sent to the victim's port after the kill, and when the port (a
    # restarted worker, by then, perhaps) first answered each call there.
    sent_there: dict[str, float] = {}
    answered_there: dict[str, float] = {}
    for p in packets:
        msg = _sip(p)
        if msg is None or p.time < killed:
            continue
        if p.dport == victim_port and msg[0].startswith("INVITE "):
            sent_there.setdefault(msg[1], p.time)
        elif p.sport == victim_port and msg[1] in sent_there:
            answered_there.setdefault(msg[1], p.time)

    def caught(call_id: str) -> bool:
        """Sent to the victim's port and not answered before the INVITE's first
        retransmission (T1, 500 ms): waiting on the dead worker or its restart."""
        if call_id not in sent_there:
            return False
        return answered_there.get(call_id, math.inf) - sent_there[call_id] > T1

    after = sorted((c.invite, cid, c) for cid, c in placed.items() if c.invite >= killed)
    hit = [(t, c) for t, cid, c in after if caught(cid) or c.status != 200]
    last_hit = hit[-1][0] if hit else killed
    clean = next((c for t, _, c in after if t > last_hit and c.status == 200), None)
    value = clean.final - killed if clean else None
    waits = ", ".join(
        f"{c.setup:.2f}" if c.status == 200 else str(c.status or "no answer") for _, c in hit
    )
    dead = sig == signal.SIGKILL
    what = "killed (SIGKILL)" if dead else "hung (SIGSTOP)"
    section.notes.append(
        f"Failover: {len(placed)} calls placed at {FAILOVER_RATE} a second (SIPp: "
        f"{outcome['succeeded']} through, {outcome['failed']} failed, {outcome['refused']} "
        f"refused); worker {victim} (pid {pid}) {what} {KILL_AFTER:.0f} s in; "
        f"{len(hit)} later calls hit (kept waiting on the dead worker's port, or failed), "
        f"answered after {waits or '-'} s; the last one placed {last_hit - killed:.2f} s "
        f"after the kill; the first clean call after it answered {fmt(value)} s after the kill."
    )
    section.rows.append(
        Row(
            f"Seconds from a worker {'killed (restarted by the supervisor)' if dead else 'hung'}"
            " to the first later call answered without delay",
            value,
            "s",
            "kamailio's probe interval + fr_timer (configured)",
            float(PROBE_S + FR_TIMER_S),
            note=f"{len(hit)} calls hit; calls every {1000 // FAILOVER_RATE} ms",
        )
    )
    waited = [c.setup for _, c in hit if c.status == 200]
    section.rows.append(
        Row(
            f"Longest set-up of a call sent to the {'killed' if dead else 'hung'} worker first",
            max(waited) if waited else None,
            "s",
            "kamailio's fr_timer (configured)",
            float(FR_TIMER_S),
            note=f"{len(hit) - len(waited)} hit calls not answered (refused or lost)",
        )
    )


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    tshark = capture.tshark_path()
    missing = [t for t in ("sipp", "kamailio") if not shutil.which(t, path=_PATH)]
    if tshark is None:
        capture.mark_skipped(section, "Concurrent calls with clean audio", "calls")
        return section
    if missing:
        section.notes.append(f"**Skipped: {', '.join(missing)} not installed.**")
        return section
    workers = ctx.pick(WORKERS, QUICK_WORKERS)
    with capture.capture_dir() as tmp:
        write_pcap(tmp / "load.pcap", max(CURVE) / RATE + ANSWER_SLACK + HELD + 20)
        base = Baselines(
            _part(ctx, section, "lone", lambda: _lone(ctx, section, tshark, tmp)),
            _part(ctx, section, "normal", lambda: _normal(ctx, section, workers, tshark, tmp)),
        )
        with _cluster(ctx, workers) as server:
            _part(ctx, section, "curve", lambda: _curve(ctx, section, server, tshark, tmp, base))
            _part(ctx, section, "setup", lambda: _setup(ctx, section, server, tshark, tmp))
        # Failover on a cluster of its own, of 3 workers: of 25, the dead one would be
        # sent one call in 25, too few to see when kamailio stops sending them.
        with _cluster(ctx, FAILOVER_WORKERS) as server:
            for part in (_failover_death, _failover_hang):
                _part(
                    ctx,
                    section,
                    part.__name__.strip("_"),
                    partial(part, ctx, section, server, tshark, tmp),
                )
    return section


@contextmanager
def _cluster(ctx: Context, workers: int) -> Iterator[launch.Server]:
    ctx.log(f"load: starting a cluster of {workers} workers")
    with cluster(workers) as server:
        yield server
        if not server.alive():
            raise RuntimeError(f"the cluster died:\n{server.log[-3000:]}")


T = TypeVar("T")


def _part(ctx: Context, section: Section, name: str, part: Callable[[], T]) -> T | None:
    """``part()``, or None once its failure is noted: the other parts go on."""
    ctx.log(f"load: {name}")
    try:
        return part()
    except Exception as exc:  # noqa: BLE001 - reported; the other parts go on
        section.notes.append(f"**{name}: failed: {exc}**")
        ctx.log(f"load: {name} failed: {exc}")
        return None


_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
