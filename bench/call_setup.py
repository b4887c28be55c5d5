"""Call set-up over SIP on loopback: a voip app against a bare pjsua2 answerer."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from typing import Any

from . import capture
from .common import Context, Row, Section, fmt, median, percentile, proc_cpu_seconds
from .sip import launch

NAME = "sip"
TITLE = "Call set-up over SIP (loopback)"
METHOD = """\
A pjsua2 caller written for the benchmark (`bench/sip/caller.py`, its own process) places
short calls over UDP on 127.0.0.1 and hangs up (BYE) once a call is answered (at once,
or after a set time). It takes both timestamps itself: *INVITE sent* when PJSIP reports
the call CALLING (it does so as the INVITE leaves, inside `makeCall`) and *200 OK
received* when PJSIP reports it CONNECTING/CONFIRMED while handling the 200. The
answerers: **voip**, the app `bench/sip/greeter.py` (`runVoipClient`, started with
`--sip` as `voip serve` would, logging at INFO; its handler plays a 5 s tone from its
first line, and is cancelled by the hang-up), and the **baseline**,
`bench/sip/answerer.py --greet`, bare pjsua2 that answers 200 at once in
`onIncomingCall` and, as soon as PJSIP reports the call's media active (when it sends
the 200), connects a ToneGenerator playing 440 Hz to it: PJSIP alone, with no Python
media port, no asyncio and no voip, and the same media settings and codecs as voip's
endpoint. (voip starts the handler on the caller's ACK instead, so that the first frames
are not sent before the caller listens.)

*Set-up latency*: calls one at a time, one every 252.3 ms (paced from the start time; not
a multiple of 10 ms, so that INVITEs meet the answerer's 20 ms media clock at every
phase), each held 0.2 s after the 200 OK so that the greeting starts, after 5 warm-up calls;
p50 and p99 of INVITE sent to 200 OK received. *First RTP packet of the greeting*: in the
same calls, `tshark` captures the INVITEs to the answerer and the answerer's outgoing RTP
on the loopback interface; for each call, the time from its INVITE (the first with its
Call-ID) to the first RTP packet of a new stream (an SSRC not seen before that INVITE)
whose payload is not digital silence (PCMU bytes other than 0xFF and 0x7F), both taken
from the capture's clock. Until the greeting starts, both answerers send silence packets.

*Sustained calls per second*: for each offered rate in turn (a fresh answerer process for
each), the caller keeps up to 4 calls in flight (pjsua2's limit per process) for a few
seconds; a rate is sustained if every call is answered with 200, the calls actually
completed reach 95% of the offered rate, and the answerer is still running afterwards.
The figure is the highest rate sustained; at the highest rate both sustained, the
answerer's CPU time (user + system, all threads, from `/proc`) while the caller ran,
divided by the calls, is reported too. The offered rates stop at 50 calls/s: above
about 60 short calls a second a pjsua2 2.15 process (the caller included) aborts on an
assertion (`ioqueue_select.c: !pj_list_empty(&ioqueue->free_list)`: every call opens two
sockets and a closed socket's slot is only reused 500 ms later, out of 64)."""

CRASH_NOTE = """\
An answerer died: a regression. This benchmark first found voip's app dying about once in a
few hundred short calls (`AttributeError: 'FramePort' object has no attribute 'bridge'`,
then SIGSEGV): pjsua2 2.15 takes a destroyed `AudioMediaPort` off the conference bridge
asynchronously (pjproject #3928, fixed after 2.15.1 by PR #4200), so the clock thread
could call a freed port. voip now never destroys a port while the clock runs
(`PortPool` in `voip/backends/pjsip/calls.py`); see the log excerpt above."""

LATENCY_PERIOD = 0.2523
"""Seconds from one set-up latency call to the next: not a multiple of 10 ms, so that the
INVITEs fall at every phase of the answerer's 20 ms media clock (a multiple of 10 ms would
hit the same one or two phases, and bias the greeting figures)."""
GREETING_HOLD = 0.2
"""Seconds the set-up latency calls are held after the 200 OK, so that the greeting is sent."""
BARE = (str(launch.ANSWERER), "--greet")
RAMP = (10, 20, 30, 40, 50)
QUICK_RAMP = (20, 40)
SUSTAINED = 0.95
WARM_UP = 5  # the caller's default
MAX_SESSIONS = 4


class _Runs:
    """Caller sessions against fresh answerers, counting the answerers that died."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = 0
        """Calls placed (warm-up calls included)."""
        self.deaths: list[str] = []
        self.failure = ""
        """Why the caller failed, the last time it did."""

    def session(self, *caller_args: str, tshark: str | None = None) -> dict[str, Any] | None:
        """One answerer process, one caller run; None if the caller failed.

        With ``tshark`` the INVITEs to the answerer and its RTP are captured, and the
        result also has ``greeting_ms`` (one per call but the warm-up calls) and
        ``greeting_missed`` (calls whose greeting was not seen).
        """
        with launch.serving(self.kind, bare=BARE) as server, capture.capture_dir() as tmp:
            pcap = tmp / "setup.pcapng"
            first, last = server.rtp_ports
            bpf = f"udp dst port {server.port} or udp src portrange {first}-{last}"
            listening = capture.capture(tshark, bpf, pcap) if tshark else contextlib.nullcontext()
            with listening:
                cpu = proc_cpu_seconds(server.pid)
                try:
                    result: dict[str, Any] | None = launch.call(
                        server.uri, "--stop-on-failure", *caller_args
                    )
                except RuntimeError as exc:
                    result = None
                    self.failure = str(exc).splitlines()[0]
                alive = server.alive()
                if alive:
                    cpu = proc_cpu_seconds(server.pid) - cpu
            if result is not None and tshark:
                packets = capture.udp_packets(tshark, pcap)
                result["greeting_ms"], result["greeting_missed"] = _greetings(packets, server)
        if result is not None:
            self.calls += result["calls"] + WARM_UP
            # The answerer's CPU while the caller ran, warm-up calls included.
            result["cpu_ms_per_call"] = 1000 * cpu / (result["calls"] + WARM_UP) if alive else None
        if not alive:
            code = server.proc.returncode
            name = {-11: "SIGSEGV", -6: "SIGABRT"}.get(code or 0, f"exit {code}")
            crash = next(
                (ln for ln in server.log.splitlines() if "Error" in ln or "Assertion" in ln), ""
            )
            self.deaths.append(name + (f" after `{crash.strip()}`" if crash else ""))
        return result

    def summary(self) -> str:
        if not self.deaths:
            return f"{self.kind}: no answerer died ({self.calls} calls)."
        return (
            f"**{self.kind}: the answerer died {len(self.deaths)} "
            f"time{'s' if len(self.deaths) > 1 else ''} in {self.calls} calls** "
            f"({'; '.join(f'{n} × {why}' for why, n in Counter(self.deaths).items())}); "
            "each time a fresh one took over."
        )


def _call_id(sip: bytes) -> bytes:
    for line in sip.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i"):
            return value.strip()
    return b""


def _greetings(packets: list[capture.Packet], server: launch.Server) -> tuple[list[float], int]:
    """Per call (warm-up calls left out): ms from its INVITE to the first non-silent RTP
    packet of a new stream from the answerer, before the next INVITE; and how many calls
    had none."""
    invites: list[float] = []
    seen: set[bytes] = set()
    for p in packets:
        if p.dport == server.port and p.payload.startswith(b"INVITE "):
            call_id = _call_id(p.payload)
            if call_id not in seen:  # not a retransmission
                seen.add(call_id)
                invites.append(p.time)
    first, last = server.rtp_ports
    rtp = capture.rtp_packets([p for p in packets if first <= p.sport <= last])
    old: set[int] = set()  # streams that began before the current INVITE
    delays, missed, i = [], 0, 0
    for n, start in enumerate(invites):
        end = invites[n + 1] if n + 1 < len(invites) else float("inf")
        while i < len(rtp) and rtp[i].time < start:
            old.add(rtp[i].ssrc)
            i += 1
        greeting = next(
            (
                r
                for r in itertools.islice(rtp, i, None)
                if r.time >= end or (r.ssrc not in old and not r.silent)
            ),
            None,
        )
        if n < WARM_UP:
            continue
        if greeting is None or greeting.time >= end:
            missed += 1
        else:
            delays.append(1000 * (greeting.time - start))
    return delays, missed


def _greeting_note(kind: str, times: list[float], missed: int) -> str:
    text = f"INVITE to the greeting's first RTP packet, {kind}: {len(times)} calls timed"
    if times:
        text += (
            f"; median {fmt(median(times))} ms, min {fmt(min(times))} ms, max {fmt(max(times))} ms"
        )
    if missed:
        return f"{text}; **{missed} calls' greeting was not seen while the call lasted**."
    return text + "."


def _latency(runs: _Runs, calls: int, tshark: str | None) -> tuple[list[float], list[float], int]:
    """Set-up times (ms) of ``calls`` sequential calls, over as many sessions as needed;
    with ``tshark``, INVITE to greeting times too, and the count of greetings not seen."""
    setup: list[float] = []
    greeting: list[float] = []
    missed = 0
    for _ in range(MAX_SESSIONS):
        if len(setup) >= calls:
            break
        r = runs.session(
            "--calls",
            str(calls - len(setup)),
            "--rate",
            str(1 / LATENCY_PERIOD),
            "--concurrency",
            "1",
            "--hold",
            str(GREETING_HOLD),
            tshark=tshark,
        )
        if r:
            setup += r["setup_ms"]
            greeting += r.get("greeting_ms", [])
            missed += r.get("greeting_missed", 0)
    return setup, greeting, missed


def _ramp(
    runs: _Runs, rates: tuple[int, ...], seconds: float, cpu: dict[int, float]
) -> tuple[float, list[str]]:
    """The highest rate sustained and one line per step. A step whose answerer died is
    tried once more with a fresh one (the crash is rare and random, see the notes)."""
    best = 0.0
    lines = []
    for rate in rates:
        ok = False
        for _attempt in range(2):
            deaths = len(runs.deaths)
            r = runs.session("--seconds", str(seconds), "--rate", str(rate), "--concurrency", "4")
            died = len(runs.deaths) > deaths
            if r is None:
                line = f"{rate}/s offered: {runs.failure}"
            else:
                done = r["answered"] / r["elapsed"]
                ok = not died and r["answered"] == r["calls"] and done >= SUSTAINED * rate
                statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
                line = (
                    f"{rate}/s offered: {r['answered']} of {r['calls']} answered ({statuses}), "
                    f"{fmt(done)} calls/s completed, set-up p99 "
                    f"{fmt(percentile(r['setup_ms'], 99))} ms"
                )
                line += (
                    f", answerer CPU {fmt(r['cpu_ms_per_call'])} ms per call"
                    if r["cpu_ms_per_call"] is not None
                    else ""
                )
                if ok:
                    cpu[rate] = r["cpu_ms_per_call"]
            if died:
                line += f", the answerer died ({runs.deaths[-1].split(' ')[0]})"
            lines.append(f"{runs.kind}, {line}" + ("" if ok else " **(not sustained)**"))
            if ok or not died:
                break
        if not ok:
            break
        best = float(rate)
    return best, lines


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    calls = ctx.pick(200, 40)
    runs = {kind: _Runs(kind) for kind in ("voip", "bare")}
    tshark = capture.tshark_path()
    setup: dict[str, list[float]] = {}
    greeting: dict[str, list[float]] = {}
    greeting_notes = []
    for kind in runs:
        ctx.log(f"sip: set-up latency, {kind}, {calls} calls")
        setup[kind], greeting[kind], missed = _latency(runs[kind], calls, tshark)
        if tshark is not None:
            greeting_notes.append(_greeting_note(kind, greeting[kind], missed))

    def figure(kind: str, p: float) -> float | None:
        return percentile(setup[kind], p) if setup[kind] else None

    for p, label in ((50, "p50"), (99, "p99")):
        section.rows.append(
            Row(
                f"Call set-up, INVITE sent → 200 OK received, {label}",
                figure("voip", p),
                "ms",
                "bare pjsua2 answerer",
                figure("bare", p),
            )
        )
    for p, label in ((50, "p50"), (99, "p99")):
        g_voip, g_bare = greeting["voip"], greeting["bare"]
        section.rows.append(
            Row(
                f"Call set-up, INVITE sent → first RTP packet of the greeting, {label}",
                percentile(g_voip, p) if g_voip else None,
                "ms",
                "bare pjsua2 answerer playing a ToneGenerator",
                percentile(g_bare, p) if g_bare else None,
                note="" if tshark else "tshark is not installed: not measured",
            )
        )
    for kind, times in setup.items():
        if times:
            section.notes.append(
                f"Set-up latency, {kind}: {len(times)} calls timed; median "
                f"{fmt(median(times))} ms, max {fmt(max(times))} ms."
            )
        else:
            section.notes.append(f"**Set-up latency, {kind}: no call could be timed.**")
    section.notes += greeting_notes

    rates = QUICK_RAMP if ctx.quick else RAMP
    seconds = ctx.pick(5, 2)
    sustained = {}
    cpu: dict[str, dict[int, float]] = {kind: {} for kind in runs}
    for kind in runs:
        ctx.log(f"sip: sustained calls per second, {kind}, offered {rates}")
        sustained[kind], lines = _ramp(runs[kind], rates, seconds, cpu[kind])
        steps = "\n".join(f"- {x}" for x in lines)
        section.notes.append(f"Calls per second, {kind}, each step:\n\n{steps}")
    row = Row(
        "Sustained short calls per second, one process",
        sustained["voip"] or None,
        "calls/s",
        "bare pjsua2 answerer",
        sustained["bare"] or None,
        lower_is_better=False,
    )
    top = rates[-1]
    if sustained["bare"] >= top:
        row.note = f"the baseline reached the highest rate offered ({top}/s)"
    if not sustained["voip"]:
        row.note = "not even the lowest rate offered was sustained"
    section.rows.append(row)
    both = sorted(set(cpu["voip"]) & set(cpu["bare"]))
    if both:
        rate = both[-1]
        section.rows.append(
            Row(
                f"Answerer CPU per short call, at {rate} calls/s",
                cpu["voip"][rate],
                "ms",
                "bare pjsua2 answerer",
                cpu["bare"][rate],
                note="whole process, idle media clock included",
            )
        )
    crashes = runs["voip"].deaths
    row = Row(
        "Answerer processes that died (SIP runs above)",
        float(len(crashes)),
        "",
        "bare pjsua2 answerer",
        float(len(runs["bare"].deaths)),
        note=f"in {runs['voip'].calls} calls (bare: {runs['bare'].calls})",
    )
    section.rows.append(row)
    section.notes += [runs[k].summary() for k in runs]
    if crashes:
        section.notes.append(CRASH_NOTE)
    return section
