"""Media under load over SIP on loopback: CPU, memory and RTP cadence of 4 held calls."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import capture
from .common import (
    Context,
    Row,
    Section,
    fmt,
    measured,
    percentile,
    proc_cpu_seconds,
    proc_memory_bytes,
)
from .sip import launch

NAME = "media"
TITLE = "Media under load: 4 calls playing and recording (loopback)"
METHOD = """\
A load generator, `bench/sip/loadgen.py` (pjsua2, its own process), places 4 calls at
once to the app over UDP on 127.0.0.1 (4 is what one pjsua2 2.15 process holds), sends a
440 Hz tone on each from PJSIP's own ToneGenerator (C, no Python per frame) and holds them
until told to hang up. Each app plays a speech prompt (`assets/menu/welcome.wav`, 11.3 s)
in a loop on every call and records every call until it ends, then prints how much it
recorded and its peak (checked: every call recorded the whole held period and heard the
tone). The apps, one after another, each a fresh process started as `voip serve` would:

- **voip**: `bench/sip/media_app.py`, whose handler is `call.playPCM(prompt, loop=True)`
  plus `call.recordPCM(controller)`, then `await call.ended.wait()`. As by default,
  PJSIP plays the prompt and records the call itself (its WAV player and writer ports,
  in C), and the call's Python port is paused, having nothing to do;
- **voip, all in Python**: the same app with `--python-media`: voip's numpy mixer plays
  and records every frame through the call's Python port on PJSIP's clock thread (the
  design before the player and recorder moved into PJSIP);
- **voip with the per-sample engine**: the same app with `--engine seed --python-media`,
  which puts `bench/seed_engine.py` (the seed's design: per sample, a Python loop over
  the playbacks and recorders) in place of voip's numpy mixer, through an adapter in the
  bench script (`bench/sip/seed_mixer.py`); the PJSIP port, bridge and byte conversion
  stay voip's;
- **pyVoIP 1.6.8** (from PyPI): `bench/sip/pyvoip_app.py`, whose call callback answers,
  queues the same prompt (converted once to the 8-bit unsigned samples `write_audio`
  takes) a second ahead of playback and appends `read_audio()` to a recording until the
  call ends. pyVoIP only works through a PBX: its "server" is the load generator itself,
  and its start-up registration is switched off (there is no registrar). The load
  generator does not re-INVITE to lock the codec (PJSIP's habit when an answer lists
  several codecs, as pyVoIP's does): on a re-INVITE pyVoIP 1.6.8 starts a second sender
  for the call and sends every packet twice as often;
- **voip, one handler blocking**: the voip app again, where the handler of the call
  marked by the load generator (`X-Bench-Block` header) also runs `time.sleep(0.2)` every
  second, stopping the event loop 20% of the time;
- **bare pjsua2** (`bench/sip/answerer.py --greet`), the floor: PJSIP alone answering and
  playing a ToneGenerator, no Python in the media path, recording nothing.

*CPU and memory*: after start-up the app's CPU is read over 2 s with no call (the idle
figure), and its memory: its RSS (`VmRSS`) plus the in-memory files (memfd) it holds
open, where PJSIP's recordings go and which `VmRSS` does not count. The calls are
placed; 1 s after all 4 are answered with media flowing, the held period starts, and
lasts 60 s (fewer with `--quick`). CPU per call = the app process's user + system CPU
over the held period (from `/proc`, all threads) ÷ its length ÷ 4, as a percentage of
one core; the idle cost is included, as it is in production. Memory per call = (memory
at the end of the held period − idle memory) ÷ 4, so it includes 60 s of recording.
Target: voip's CPU per call under a third of pyVoIP's.

*Cadence*: `tshark` captures the app's outgoing RTP on the loopback interface (its RTP
ports only) for the whole run; for each RTP stream (one per call, told apart by the
app's RTP port, which the load generator reads from the SDP answer) the inter-arrival time
of consecutive audio packets within the held period is compared with the 20 ms ptime:
p50, p99 and max of |inter-arrival − 20 ms| over the 4 streams, and the count of
inter-arrivals over 40 ms (a packet late by a whole frame); the notes also give how far
each stream's last packet is behind a steady 20 ms pace from its first (a sender slower
than real time falls behind). On loopback the capture time is the send time, so this is
the app's own pacing; it is wall-clock timing, so other load on the machine shows in it.
Target for voip: p99 under 2 ms and no gap over 40 ms, pyVoIP's figures being the
baseline; with one handler blocking, the other 3 calls' figures must meet the same target
(and stay as they were without it).

To profile the app under this load: `python -m bench.media_load --hold 60` places the
calls and holds them while it prints the app's process id, for `py-spy record --pid`,
`perf record -t <clock thread>` or per-thread CPU from `/proc/<pid>/task/*/stat`."""

HISTORY = """\
History: the first full run put voip at 1.20% of a core per call, pyVoIP at 1.33% and bare
pjsua2 at 0.40%. Per-thread CPU (`/proc/<pid>/task/*/stat`) placed voip's extra cost in
PJSIP's conference clock thread, which runs the media ports' Python callbacks (3.2-3.9% of
a core, against 0.5% in the bare answerer), and two causes turned up. (1) pjsua2's SWIG
callbacks enter Python with `PyGILState_Ensure`/`Release` from a thread Python did not
create, so every callback created and destroyed a Python thread state (a
`threading.local` value never survived to the next frame; callbacks that return at once
cost the clock thread 1.3-1.6% of a core that way, 0.8% without). (2) On that thread,
woken every 20 ms, each Python and numpy operation cost 5-10× its warm-loop time (timed
in place with `time.thread_time_ns`: 60 µs to produce a frame and 36 µs to take one in,
against about 8 and 5 µs in a loop), so every operation on the path counts; building the
outgoing frame as `pj.ByteVector(bytes)` (filled element by element) after an int16
conversion took 14 µs even warm. Now (`voip/backends/pjsip/frames.py`) the clock thread
keeps its thread state, numpy writes outgoing frames straight into a per-port
ByteVector's storage (2.4 µs warm) and reads received frames from the vector's storage
into float samples in one operation (taking a frame in: 20 µs in place). After: 0.854%
per call, pyVoIP 1.43% and bare pjsua2 0.39% in the same run. The target stays out of
reach while PJSIP carries the media: PJSIP alone costs 0.39-0.40% per call, nearly a
third of pyVoIP's already, and two Python callbacks per call every 20 ms do not fit in
what is left. Getting there would take keeping Python out of the per-frame path (e.g.
PJSIP's own player and recorder ports, in C, for `playPCM` and `recordPCM`), a different
design of the audio path.

That is what came next. Per-thread CPU of the voip app under this load (4 calls, 10 s
windows) before: the SIP thread 1.0% of a core (it woke every 10 ms to look for work
handed over by other threads, calls or none), the media thread 0.7-0.8%, the clock
thread 3.2-3.5% (bare pjsua2: 1.3% for its polling main thread, 0.7% and 0.8%). Three
changes: (1) work handed to the SIP thread now wakes it through a socket registered in
PJSIP's own poll (`voip/backends/pjsip/wakeup.py`), so it sleeps until there is
something to do: 0.0%; (2) sounds of a second or more (and looped ones) are played, and
`recordPCM` recorded, by PJSIP's own WAV player and writer ports, in C, on in-memory
files (`native.py`, `offload.py`); (3) a call's Python port is paused in PJSIP's conference bridge
while the call's mixer has nothing to do (`conference.py`), so PJSIP calls no Python
for it: clock thread 0.8%, as bare pjsua2's. The app then costs about what bare pjsua2
does, recording included (0.33-0.36% per call in two full runs; bare pjsua2 0.35-0.55%).
pyVoIP's own figure moves from run to run (1.13% to 2.09% per call in the runs of that
day), and the ratio with it: 3.4× and 3.7× in two full runs, 4.5× in a smoke run. The
"all in Python" row is the design before (2) and (3), with (1). The memory figure now
counts the in-memory files too; the recordings there are 16-bit, where the mixer keeps
float32 samples, hence half the memory."""

CALLS = 4
SECONDS = 60
QUICK_SECONDS = 8
SETTLE = 1.0
"""Seconds after start-up, and after the calls are up, before anything is measured."""
IDLE_SECONDS = 2.0
PTIME_MS = 20.0
GAP_MS = 40.0
TARGET_P99_MS = 2.0
TARGET_CPU_FRACTION = 1 / 3
AUDIO_PT = (0, 8)
"""PCMU and PCMA: the audio packets (not RFC 4733 events, none expected anyway)."""

_RECORDED = re.compile(r"RECORDED \S+ ([\d.]+) ([\d.]+)")

MEDIA_APP = str(launch.HERE / "media_app.py")
PYVOIP_APP = str(launch.HERE / "pyvoip_app.py")


@dataclass(frozen=True)
class Setup:
    """One app under the load."""

    key: str
    label: str
    kind: str
    """``"voip"`` (voip's options) or ``"pyvoip"`` (the bare answerer's), for launch."""
    app: tuple[str, ...]
    block: bool = False
    """Whether one call's handler blocks the event loop."""
    peer: bool = False
    """Whether the app must be told the caller's address (pyVoIP)."""
    records: bool = True


SETUPS = (
    Setup("voip", "voip", "voip", (MEDIA_APP,)),
    Setup("python", "voip, all in Python (--python-media)", "voip", (MEDIA_APP, "--python-media")),
    Setup(
        "seed",
        "voip with the per-sample engine",
        "voip",
        (MEDIA_APP, "--engine", "seed", "--python-media"),
    ),
    Setup("pyvoip", "pyVoIP 1.6.8", "pyvoip", (PYVOIP_APP,), peer=True),
    Setup("blocking", "voip, one handler blocking its loop", "voip", (MEDIA_APP,), block=True),
    Setup("bare", "bare pjsua2 (floor)", "bare", (str(launch.ANSWERER), "--greet"), records=False),
)


@dataclass
class Cadence:
    """Inter-arrival deviations from the ptime over some RTP streams."""

    streams: int = 0
    packets: int = 0
    audible: int = 0
    """Packets whose payload is not digital silence."""
    deviations_ms: list[float] = field(default_factory=list)
    gaps: int = 0
    """Inter-arrival times over :data:`GAP_MS`."""
    lag_ms: list[float] = field(default_factory=list)
    """Per stream: how far its last packet came after where a steady 20 ms pace from its
    first packet puts it (positive: the sender falls behind real time)."""

    def p(self, q: float) -> float | None:
        return percentile(self.deviations_ms, q) if self.deviations_ms else None

    @property
    def max(self) -> float | None:
        return max(self.deviations_ms) if self.deviations_ms else None

    def describe(self) -> str:
        if not self.deviations_ms:
            return f"{self.streams} RTP streams, no audio packets captured"
        return (
            f"{self.streams} RTP streams, {self.packets:,} packets "
            f"({100 * self.audible / self.packets:.0f}% carrying sound); |inter-arrival − "
            f"20 ms| p50 {fmt(self.p(50))} ms, p99 {fmt(self.p(99))} ms, max "
            f"{fmt(self.max)} ms; {self.gaps} gaps over {GAP_MS:.0f} ms; behind a steady "
            f"pace by {', '.join(f'{x:+.0f}' for x in self.lag_ms)} ms at the end"
        )


def cadence(streams: list[list[capture.RtpPacket]]) -> Cadence:
    """The cadence of each stream's consecutive packets, pooled."""
    c = Cadence(streams=len(streams))
    for packets in streams:
        c.packets += len(packets)
        c.audible += sum(not p.silent for p in packets)
        for a, b in zip(packets, packets[1:], strict=False):
            gap = 1000 * (b.time - a.time)
            c.deviations_ms.append(abs(gap - PTIME_MS))
            c.gaps += gap > GAP_MS
        if packets:
            span = 1000 * (packets[-1].time - packets[0].time)
            c.lag_ms.append(span - PTIME_MS * (len(packets) - 1))
    return c


@dataclass
class Result:
    """What one app did under the load."""

    held: float
    """Length of the held period, seconds."""
    cpu: float
    """The app's CPU seconds over the held period."""
    idle_cpu: float
    """The app's CPU, fraction of a core, with no call."""
    mem_idle: int
    mem_up: int
    """Memory (RSS and in-memory files) once the calls were up (start of the held period)."""
    mem_end: int
    answered: int
    recorded: list[tuple[float, float]]
    """Per call: seconds recorded and the recording's peak."""
    all: Cadence
    others: Cadence | None = None
    """With a blocking handler: the other calls' streams."""
    blocked: Cadence | None = None

    @property
    def cpu_per_call(self) -> float:
        """Percent of one core per call."""
        return 100 * self.cpu / self.held / CALLS

    @property
    def mem_per_call(self) -> float:
        """MB per call."""
        return (self.mem_end - self.mem_idle) / CALLS / 1e6

    def describe(self, label: str, records: bool = True) -> str:
        mb = 1e6
        recorded = ", ".join(f"{s:.1f} s (peak {p:.2f})" for s, p in self.recorded) or "nothing"
        if len(self.recorded) < self.answered or any(p < 0.05 for _, p in self.recorded):
            recorded += " **(a call recorded nothing, or silence)**"
        if not records:
            recorded = "nothing (it does not record)"
        text = (
            f"{label}: {self.answered} of {CALLS} calls answered, held {self.held:.1f} s. "
            f"App CPU {100 * self.cpu / self.held:.1f}% of a core, {fmt(self.cpu_per_call)}% "
            f"per call (idle before the calls: {100 * self.idle_cpu:.2f}%); memory "
            f"{self.mem_idle / mb:.1f} MB idle, {self.mem_up / mb:.1f} MB with the calls up, "
            f"{self.mem_end / mb:.1f} MB at the end, {fmt(self.mem_per_call)} MB per call. "
            f"Recorded per call: {recorded}. Cadence: {self.all.describe()}."
        )
        if self.others is not None and self.blocked is not None:
            text += (
                f" The 3 calls whose handler did not block: {self.others.describe()}. "
                f"The blocking call itself: {self.blocked.describe()}."
            )
        return text


def _recorded(log: str) -> list[tuple[float, float]]:
    """The apps' ``RECORDED <call> <seconds> <peak>`` lines."""
    return [(float(s), float(p)) for s, p in _RECORDED.findall(log)]


@contextmanager
def _app(setup: Setup) -> Iterator[tuple[launch.LoadGen, launch.Server]]:
    """The load generator and the app, both started; no call placed yet."""
    block = ("--block-one",) if setup.block else ()
    with launch.load_generator("--calls", str(CALLS), *block) as gen:
        peer = ("--peer", f"127.0.0.1:{gen.port}") if setup.peer else ()
        with launch.serving(setup.kind, voip=setup.app, bare=(*setup.app, *peer)) as server:
            yield gen, server


def _session(setup: Setup, seconds: float, tshark: str) -> Result:
    """Start the app and the load, measure, and take everything down again."""
    with capture.capture_dir() as tmp, _app(setup) as (gen, server):
        pcap = tmp / "rtp.pcapng"
        pid = server.pid
        time.sleep(SETTLE)
        cpu0, mono0 = proc_cpu_seconds(pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle_cpu = (proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - mono0)
        mem_idle = proc_memory_bytes(pid)
        bpf = "udp src portrange {}-{}".format(*server.rtp_ports)
        with capture.capture(tshark, bpf, pcap):
            gen.call(server.uri)
            time.sleep(SETTLE)
            mem_up = proc_memory_bytes(pid)
            t0, cpu0, mono0 = time.time(), proc_cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            cpu1, mono1, t1 = proc_cpu_seconds(pid), time.monotonic(), time.time()
            mem_end = proc_memory_bytes(pid)
            calls = gen.hangup()["calls"]
            time.sleep(0.5)  # the handlers' last lines
        if not server.alive():
            raise RuntimeError(f"the {setup.key} app died:\n{server.log[-3000:]}")
        server.stop()  # now, so that its log is complete
        packets = capture.rtp_packets(capture.udp_packets(tshark, pcap))
    by_port: dict[int, list[capture.RtpPacket]] = {}
    for p in packets:
        if t0 <= p.time <= t1 and p.pt in AUDIO_PT:
            by_port.setdefault(p.sport, []).append(p)
    blocked_ports = {int(c["remote_rtp"].rsplit(":", 1)[1]) for c in calls if c["block"]}
    result = Result(
        held=mono1 - mono0,
        cpu=cpu1 - cpu0,
        idle_cpu=idle_cpu,
        mem_idle=mem_idle,
        mem_up=mem_up,
        mem_end=mem_end,
        answered=sum(c["answered"] for c in calls),
        recorded=_recorded(server.log),
        all=cadence(list(by_port.values())),
    )
    if setup.block:
        result.others = cadence([s for port, s in by_port.items() if port not in blocked_ports])
        result.blocked = cadence([s for port, s in by_port.items() if port in blocked_ports])
    return result


def _cadence_rows(section: Section, results: dict[str, Result]) -> None:
    voip, base = results.get("voip"), results.get("pyvoip")
    v, b = (voip.all if voip else None), (base.all if base else None)
    label = "pyVoIP 1.6.8, same load"

    def get(c: Cadence | None, what: str) -> float | None:
        if c is None or not c.deviations_ms:
            return None
        return {"p50": c.p(50), "p99": c.p(99), "max": c.max, "gaps": float(c.gaps)}[what]

    for what, words in (("p50", "p50"), ("p99", "p99"), ("max", "max")):
        row = Row(
            f"RTP cadence, 4 calls: {words} of |inter-arrival − 20 ms|",
            get(v, what),
            "ms",
            label,
            get(b, what),
        )
        if what == "p99":
            row.target = f"p99 < {fmt(TARGET_P99_MS)} ms, no gap > {GAP_MS:.0f} ms"
            value, gaps = get(v, "p99"), get(v, "gaps")
            row.met = None if value is None else value < TARGET_P99_MS and gaps == 0
            row.note = f"{v.packets:,} packets" if v else ""
        section.rows.append(row)
    section.rows.append(
        Row(
            f"RTP cadence, 4 calls: gaps over {GAP_MS:.0f} ms",
            get(v, "gaps"),
            "",
            label,
            get(b, "gaps"),
        )
    )
    blocking = results.get("blocking")
    others = blocking.others if blocking else None
    for what in ("p99", "max"):
        row = Row(
            f"RTP cadence of the 3 other calls while one handler blocks the loop 200 ms a "
            f"second: {what} of |inter-arrival − 20 ms|",
            get(others, what),
            "ms",
            "voip, no handler blocking (above)",
            get(v, what),
        )
        if what == "p99":
            row.target = f"p99 < {fmt(TARGET_P99_MS)} ms, no gap > {GAP_MS:.0f} ms"
            value, gaps = get(others, "p99"), get(others, "gaps")
            row.met = None if value is None else value < TARGET_P99_MS and gaps == 0
            row.note = f"{others.gaps} gaps over {GAP_MS:.0f} ms" if others else ""
        section.rows.append(row)


def _resource_rows(section: Section, results: dict[str, Result], seconds: float) -> None:
    voip = results.get("voip")
    for key, label in (
        ("pyvoip", "pyVoIP 1.6.8, same load"),
        ("python", "voip mixing and recording in Python (--python-media)"),
        ("seed", "voip with the per-sample engine"),
        ("bare", "bare pjsua2 playing a tone, recording nothing"),
    ):
        base = results.get(key)
        row = Row(
            "App CPU per call, 4 calls playing a prompt and recording",
            voip.cpu_per_call if voip else None,
            "% of a core",
            label,
            base.cpu_per_call if base else None,
            note="whole process, all threads, idle cost included",
        )
        if key == "pyvoip":
            row.target = "< 1/3 of pyVoIP's"
            if voip and base:
                row.met = voip.cpu_per_call < TARGET_CPU_FRACTION * base.cpu_per_call
        section.rows.append(row)
    for key, label in (
        ("pyvoip", "pyVoIP 1.6.8, same load"),
        ("python", "voip mixing and recording in Python (--python-media)"),
        ("seed", "voip with the per-sample engine"),
    ):
        base = results.get(key)
        note = ""
        if voip:
            note = f"voip: {voip.mem_idle / 1e6:.0f} MB idle, {voip.mem_end / 1e6:.0f} MB loaded"
        if base:
            note += (
                f"; baseline: {base.mem_idle / 1e6:.0f} MB idle, {base.mem_end / 1e6:.0f} MB loaded"
            )
        section.rows.append(
            Row(
                f"App memory per call (RSS + in-memory files), after {seconds:g} s of recording",
                voip.mem_per_call if voip else None,
                "MB",
                label,
                base.mem_per_call if base else None,
                note=note,
            )
        )


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    tshark = capture.tshark_path()
    if tshark is None:
        capture.mark_skipped(section, "App CPU per call, 4 calls", "% of a core")
        return section
    seconds = ctx.pick(SECONDS, QUICK_SECONDS)
    results: dict[str, Result] = {}
    ctx.log(f"media: {CALLS} calls held {seconds} s by each app")
    for setup, result in measured(ctx, section, SETUPS, lambda s: _session(s, seconds, tshark)):
        results[setup.key] = result
        section.notes.append(result.describe(setup.label, setup.records))
    _resource_rows(section, results, seconds)
    _cadence_rows(section, results)
    section.notes.append(HISTORY)
    return section


def main() -> int:
    """Hold the calls to one app for profiling; prints the app's process id."""
    p = argparse.ArgumentParser(prog="python -m bench.media_load", description=main.__doc__)
    p.add_argument("--app", choices=[s.key for s in SETUPS], default="voip")
    p.add_argument("--hold", type=float, default=60, help="seconds to hold the calls")
    args = p.parse_args()
    setup = next(s for s in SETUPS if s.key == args.app)
    with _app(setup) as (gen, server):
        gen.call(server.uri)
        print(f"{setup.label}: pid {server.pid}, {CALLS} calls up for {args.hold:g} s", flush=True)
        time.sleep(args.hold)
        gen.hangup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
