"""Bridged calls and rooms over SIP on loopback: the delay a bridge adds, and what
bridges and rooms cost."""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import capture
from .common import Context, Row, Section, fmt, measured, percentile, proc_cpu_seconds
from .sip import launch

NAME = "bridge"
TITLE = "Bridged calls and rooms (loopback)"
METHOD = """\
The load generator (`bench/sip/loadgen.py --bursts`, pjsua2) places 4 calls at once to
the app; call *k* carries the header `X-Bench-Index: k` and sends bursts of a 440 Hz tone
from a PJSIP ToneGenerator of its own: 100 ms of tone, then 300 + 50*k* ms of silence,
over and over (a pattern per call, so a stream shows whose bursts it carries). The apps,
one after another, each a fresh process:

- **voip, bridged**: `bench/sip/bridge_app.py --mode bridge`, whose handlers bridge call
  *k* to call *k* xor 1 with `call.bridge` (two bridges: 0 with 1, 2 with 3);
- **voip, idle**: the same app with `--mode idle`: each handler awaits the end of its
  call, the same 4 calls up and doing nothing (the CPU baseline);
- **voip, a room of 4**: `--mode room`: the 4 calls join one `voip.Room` without silence
  gating (`gate=False`), so PJSIP's bridge alone mixes each member's 3 others;
- **voip, a gated room of 4**: `--mode gated-room`: the same room silence-gated (the
  default): each member's received frames are read in Python and run through WebRTC's
  voice activity detector, once per frame;
- **bare pjsua2, bridged** (`bench/sip/answerer.py --bridge`): PJSIP alone connecting the
  same pairs in its conference bridge (the delay floor).

*Delay*: `tshark` captures the app's RTP ports, both ways, for the held period. A burst's
onset is the first packet carrying sound after at least 3 silent ones (PCMU digital
silence). For each onset in the stream call *k* sends to the app, the delay is the time
to the first onset, within 300 ms, in the stream the app sends to call *k* xor 1: from
the packet entering the app to the packet leaving it for the other caller, which spans
the app's jitter buffer, decoding, PJSIP's conference bridge and encoding. On loopback the
capture time is the send time. p50 and p99 over every onset of the 4 directions. Goal:
p99 under 60 ms (G.114 allows 150 ms mouth to ear for the whole path).

*CPU*: the app's user + system CPU (all threads, from `/proc`) over the held period ÷ its
length ÷ 4, as a percentage of one core, bridged (or in a room) against idle, in the same
run. Goal: a bridge at most 10% above the same calls idle. A room's delay is not
measured: each member hears three others' bursts at once."""

CALLS = 4
SECONDS = 60
QUICK_SECONDS = 8
SETTLE = 1.5
SILENT_BEFORE = 3
"""Silent packets before a sounding one for it to count as a burst's onset."""
MAX_DELAY = 0.3
TARGET_P99_MS = 60.0
TARGET_CPU_RATIO = 1.10
AUDIO_PT = (0, 8)

BRIDGE_APP = str(launch.HERE / "bridge_app.py")


@dataclass(frozen=True)
class Setup:
    key: str
    label: str
    kind: str
    program: tuple[str, ...]


SETUPS = (
    Setup("bridged", "voip, 2 bridges of 2 calls", "voip", (BRIDGE_APP, "--mode", "bridge")),
    Setup("idle", "voip, the same 4 calls idle", "voip", (BRIDGE_APP, "--mode", "idle")),
    Setup("room", "voip, a room of 4, not gated", "voip", (BRIDGE_APP, "--mode", "room")),
    Setup("gated", "voip, a gated room of 4", "voip", (BRIDGE_APP, "--mode", "gated-room")),
    Setup("bare", "bare pjsua2, the same bridges", "bare", (str(launch.ANSWERER), "--bridge")),
)


@dataclass
class Result:
    cpu_per_call: float
    """Percent of one core per call over the held period."""
    delays_ms: list[float]
    onsets: int
    """Onsets sent into the app: each should come out once."""
    answered: int

    def p(self, q: float) -> float | None:
        return percentile(self.delays_ms, q) if self.delays_ms else None

    def describe(self, label: str) -> str:
        text = (
            f"{label}: {self.answered} of {CALLS} calls answered; app CPU "
            f"{fmt(self.cpu_per_call)}% of a core per call"
        )
        if self.onsets:
            text += (
                f"; {len(self.delays_ms)} of {self.onsets} bursts came out to the other "
                f"caller, delay p50 {fmt(self.p(50))} ms, p99 {fmt(self.p(99))} ms, max "
                f"{fmt(max(self.delays_ms, default=0.0))} ms"
            )
        return text + "."


def onsets(packets: Sequence[capture.RtpPacket]) -> list[float]:
    """The times of the bursts' first packets (see the method)."""
    out, silent = [], SILENT_BEFORE
    for p in packets:
        if p.silent:
            silent += 1
            continue
        if silent >= SILENT_BEFORE:
            out.append(p.time)
        silent = 0
    return out


def delays(sent: Sequence[float], heard: Sequence[float]) -> list[float]:
    """For each onset sent, seconds to the first onset heard after it (within MAX_DELAY)."""
    out = []
    for t in sent:
        i = bisect.bisect_left(heard, t)
        if i < len(heard) and heard[i] - t <= MAX_DELAY:
            out.append(heard[i] - t)
    return out


def _session(setup: Setup, seconds: float, tshark: str) -> Result:
    with (
        capture.capture_dir() as tmp,
        launch.load_generator("--calls", str(CALLS), "--bursts") as gen,
    ):
        with launch.serving(setup.kind, voip=setup.program, bare=setup.program) as server:
            pcap = tmp / "rtp.pcapng"
            bpf = "udp portrange {}-{}".format(*server.rtp_ports)
            with capture.capture(tshark, bpf, pcap):
                gen.call(server.uri)
                time.sleep(SETTLE)
                t0, cpu0, mono0 = time.time(), proc_cpu_seconds(server.pid), time.monotonic()
                time.sleep(seconds)
                cpu1, mono1 = proc_cpu_seconds(server.pid), time.monotonic()
                t1 = time.time()
                calls = gen.hangup()["calls"]
            if not server.alive():
                raise RuntimeError(f"the {setup.key} app died:\n{server.log[-3000:]}")
        packets = capture.rtp_packets(capture.udp_packets(tshark, pcap))
    ports = [int(c["remote_rtp"].rsplit(":", 1)[1]) for c in calls]  # the app's, per call
    into: dict[int, list[capture.RtpPacket]] = {}
    out_of: dict[int, list[capture.RtpPacket]] = {}
    for p in packets:
        if t0 <= p.time <= t1 and p.pt in AUDIO_PT:
            if p.dport in ports:
                into.setdefault(p.dport, []).append(p)
            elif p.sport in ports:
                out_of.setdefault(p.sport, []).append(p)
    measured: list[float] = []
    sent_onsets = 0
    for k, port in enumerate(ports):
        if setup.key != "bridged" and setup.key != "bare":
            break
        sent = onsets(into.get(port, []))
        heard = onsets(out_of.get(ports[k ^ 1], []))
        sent_onsets += len(sent)
        measured += [1000 * d for d in delays(sent, heard)]
    return Result(
        cpu_per_call=100 * (cpu1 - cpu0) / (mono1 - mono0) / CALLS,
        delays_ms=measured,
        onsets=sent_onsets,
        answered=sum(c["answered"] for c in calls),
    )


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    tshark = capture.tshark_path()
    if tshark is None:
        capture.mark_skipped(section, "Delay a bridge adds", "ms")
        return section
    seconds = ctx.pick(SECONDS, QUICK_SECONDS)
    results: dict[str, Result] = {}
    ctx.log(f"bridge: {CALLS} calls held {seconds} s by each app")
    for setup, result in measured(ctx, section, SETUPS, lambda s: _session(s, seconds, tshark)):
        results[setup.key] = result
        section.notes.append(result.describe(setup.label))
    voip, bare, idle = results.get("bridged"), results.get("bare"), results.get("idle")
    for q in (50, 99):
        row = Row(
            f"Delay a bridge adds (RTP in from one caller to RTP out to the other): p{q}",
            voip.p(q) if voip else None,
            "ms",
            "bare pjsua2 bridging the same calls",
            bare.p(q) if bare else None,
        )
        if q == 99:
            row.target = f"p99 < {fmt(TARGET_P99_MS)} ms"
            value = row.value
            row.met = None if value is None else value < TARGET_P99_MS
            if voip:
                row.note = f"{len(voip.delays_ms)} of {voip.onsets} bursts"
        section.rows.append(row)
    row = Row(
        "App CPU per call, 2 bridges of 2 calls",
        voip.cpu_per_call if voip else None,
        "% of a core",
        "the same 4 calls idle",
        idle.cpu_per_call if idle else None,
        target=f"≤ {TARGET_CPU_RATIO:.2f}× the idle calls'",
        note="whole process, all threads",
    )
    if voip and idle:
        row.met = voip.cpu_per_call <= TARGET_CPU_RATIO * idle.cpu_per_call
    section.rows.append(row)
    for key, measure in (
        ("room", "App CPU per call, a room of 4, not gated"),
        ("gated", "App CPU per call, a room of 4, silence-gated"),
    ):
        room = results.get(key)
        section.rows.append(
            Row(
                measure,
                room.cpu_per_call if room else None,
                "% of a core",
                "the same 4 calls idle",
                idle.cpu_per_call if idle else None,
                note="whole process, all threads",
            )
        )
    return section
