"""DTMF latency over SIP on loopback: RFC 4733 end-of-event packet to ``getDTMF`` returning."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from . import capture
from .common import Context, Row, Section, fmt, median, percentile
from .sip import launch

NAME = "dtmf"
TITLE = "DTMF latency over SIP (loopback, RFC 4733)"
METHOD = """\
One call on 127.0.0.1 from a pjsua2 caller (`bench/sip/dtmf.py call`, its own process)
that sends digits one at a time with `sendDtmf` (RFC 4733, PJSIP's default 160 ms event),
250 ms apart. `tshark` captures the caller's outgoing RTP on the loopback interface; the
RFC 4733 packets (4-byte payload, dynamic payload type) are decoded from the captured
bytes, grouped into events by RTP timestamp, and each digit's time is the capture time of
its **first end-of-event packet** (RFC 4733 sends it three times). The answerer prints
the wall-clock time (`time.time()`) at which it has the key: **voip**, the app `bench/sip/
dtmf.py app` (`runVoipClient`, started with `--sip` as `voip serve` would), whose handler
loops `key = await call.getDTMF()` and prints at once; the **baseline**, bare pjsua2
(`bench/sip/answerer.py --print-keys`, the same endpoint settings as voip's, polling
`libHandleEvents(1)` so that its own loop adds at most about 1 ms) printing from PJSIP's
own `onDtmfDigit` callback, no asyncio. Latency = answerer's time − capture time; both clocks
are this machine's CLOCK_REALTIME, so no clock is guessed. A key printed *before* its
end-of-event packet gives a negative latency (PJSIP reports a digit when its first event
packet arrives, not its last): the capture's first packet of each event is therefore
reported too, as a second reference."""

DIGITS = 200
QUICK_DIGITS = 40
GAP = 0.25
TARGET_MS = 25.0
EVENT_NAMES = "0123456789*#ABCD"


def _serving(kind: str):
    """The voip app of bench/sip/dtmf.py, or the bare answerer printing its keys (polling
    every 1 ms, so that its own loop adds at most about 1 ms)."""
    bare = (str(launch.ANSWERER), "--print-keys", "--poll-ms", "1")
    return launch.serving(kind, voip=(str(launch.HERE / "dtmf.py"), "app"), bare=bare)


def _events(tshark: str, pcap: Path) -> list[dict]:
    """RFC 4733 events in the capture, in order: key, first packet, first end packet."""
    events: dict[tuple[int, int], dict] = {}
    for p in capture.rtp_packets(capture.udp_packets(tshark, pcap)):
        if len(p.payload) != 4 or p.pt < 96:
            continue  # not a 4-byte telephone-event payload (dynamic payload type)
        ev = events.setdefault(
            (p.ssrc, p.timestamp),
            {"key": EVENT_NAMES[p.payload[0] % 16], "first": p.time, "end": None},
        )
        if p.payload[1] & 0x80 and ev["end"] is None:
            ev["end"] = p.time
    return sorted(events.values(), key=lambda e: e["first"])


def _keys(log: str, tag: str = "KEY") -> list[tuple[str, float]]:
    keys = []
    for line in log.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == tag:
            keys.append((parts[1], float(parts[2])))
    return keys


def _session(kind: str, tshark: str, digits: int, ctx: Context) -> dict:
    """One call of ``digits`` digits to a fresh answerer; latencies in ms."""
    port, rtp = launch.free_sip_port(), launch.rtp_block()
    bpf = f"udp src portrange {rtp}-{rtp + launch.RTP_RANGE - 1}"
    with capture.capture_dir() as tmp:
        pcap = tmp / "rtp.pcapng"
        with _serving(kind) as server, capture.capture(tshark, bpf, pcap):
            proc = subprocess.run(
                [sys.executable, str(launch.HERE / "dtmf.py"), "call", server.uri]
                + ["--port", str(port), "--rtp-port", str(rtp)]
                + ["--rtp-range", str(launch.RTP_RANGE)]
                + ["--digits", str(digits), "--gap", str(GAP)],
                capture_output=True,
                text=True,
                timeout=60 + digits * GAP * 2,
            )
            time.sleep(0.2)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"the caller failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                f"\n{proc.stderr[-2000:]}"
            )
        caller = json.loads(lines[-1])
        if not caller["answered"]:
            raise RuntimeError(f"the {kind} answerer did not answer: {caller}\n{server.log}")
        events = _events(tshark, pcap)
    keys = _keys(server.log)
    sent = [k for k, _ in caller["sent"]]
    got = "".join(k for k, _ in keys)
    result = {
        "sent": len(sent),
        "events": len(events),
        "keys": len(keys),
        "end_ms": [],
        "first_ms": [],
        "no_end": 0,
        "mismatch": 0,
    }
    for ev, (key, t) in zip(events, keys, strict=False):
        if ev["key"] != key:
            result["mismatch"] += 1
            continue
        result["first_ms"].append(1000 * (t - ev["first"]))
        if ev["end"] is None:
            result["no_end"] += 1
        else:
            result["end_ms"].append(1000 * (t - ev["end"]))
    if "".join(sent) != got:
        ctx.log(f"dtmf: {kind}: sent {len(sent)} digits, the answerer got {len(got)}")
    # The bare answerer's onDtmfEvent with PJMEDIA_STREAM_DTMF_IS_END (flag 2): when PJSIP
    # itself sees the end of the event, for comparison with a design that waits for it.
    ends = [
        (ln.split()[1], float(ln.split()[2]))
        for ln in server.log.splitlines()
        if ln.startswith("EVENT ") and int(ln.split()[3]) & 2
    ]
    result["end_cb_ms"] = [
        1000 * (t - ev["end"])
        for ev, (key, t) in zip(events, ends, strict=False)
        if ev["end"] is not None and ev["key"] == key
    ]
    return result


def _summary(kind: str, r: dict) -> str:
    e, f = r["end_ms"], r["first_ms"]
    text = (
        f"{kind}: {r['sent']} digits sent, {r['events']} RFC 4733 events captured, "
        f"{r['keys']} keys reported by the answerer"
    )
    if r["mismatch"] or r["no_end"]:
        text += f" ({r['mismatch']} out of order, {r['no_end']} with no end packet captured)"
    if e:
        text += (
            f"; from the first end-of-event packet: median {fmt(median(e))} ms, "
            f"min {fmt(min(e))} ms, max {fmt(max(e))} ms"
        )
    if f:
        text += (
            f"; from the event's first packet: p50 {fmt(percentile(f, 50))} ms, "
            f"p99 {fmt(percentile(f, 99))} ms"
        )
    if r.get("end_cb_ms"):
        c = r["end_cb_ms"]
        text += (
            f"; PJSIP's own end-of-event callback (`onDtmfEvent` with the end flag) came "
            f"{fmt(percentile(c, 50))} ms (p50), {fmt(percentile(c, 99))} ms (p99) after the "
            "first end-of-event packet"
        )
    return text + "."


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    tshark = capture.tshark_path()
    if tshark is None:
        capture.mark_skipped(section, "DTMF latency, end-of-event → getDTMF, p99", "ms")
        return section
    digits = ctx.pick(DIGITS, QUICK_DIGITS)
    results = {}
    for kind in ("voip", "bare"):
        ctx.log(f"dtmf: {kind}, {digits} digits {GAP * 1000:.0f} ms apart")
        results[kind] = _session(kind, tshark, digits, ctx)
        section.notes.append(_summary(kind, results[kind]))

    def figure(kind: str, key: str, p: float) -> float | None:
        v = results[kind][key]
        return percentile(v, p) if v else None

    for p, label in ((50, "p50"), (99, "p99")):
        value = figure("voip", "end_ms", p)
        row = Row(
            f"DTMF latency, RFC 4733 end-of-event packet → getDTMF returns, {label}",
            value,
            "ms",
            "bare pjsua2 onDtmfDigit",
            figure("bare", "end_ms", p),
        )
        if p == 99:
            row.target = f"p99 under {fmt(TARGET_MS)} ms"
            row.met = None if value is None else value < TARGET_MS
            row.note = f"{len(results['voip']['end_ms'])} digits"
        if value is not None and value < 0:
            row.note = (row.note + "; " if row.note else "") + "negative: key before end packet"
        section.rows.append(row)
    for p, label in ((50, "p50"), (99, "p99")):
        section.rows.append(
            Row(
                f"DTMF latency, first RFC 4733 packet of the event → getDTMF returns, {label}",
                figure("voip", "first_ms", p),
                "ms",
                "bare pjsua2 onDtmfDigit",
                figure("bare", "first_ms", p),
            )
        )
    return section
