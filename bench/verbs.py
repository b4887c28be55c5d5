"""The phone-tree verbs: gather's cost over getDTMF, and how soon record notices silence."""

from __future__ import annotations

import asyncio
import math
import textwrap
import time
from collections.abc import Callable

import numpy as np

from tests.vadset import CONDITIONS, UTTERANCES, make_set
from voip.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from voip.audio.vad import VoiceDetector, default_detector
from voip.bridge import MediaBridge
from voip.call import Call, CallInfo
from voip.record import SpeechRecorder

from .common import Context, Row, Section, fmt, percentile
from .vad import EnergyGate

NAME = "verbs"
TITLE = "Phone-tree verbs: gather and record"
SILENCE_TIMEOUT = 1.0
_METHOD = f"""\
**Key to result.** In one process, a `Call` on its `MediaBridge` (no audio needed: keys
do not wait for frames) awaits one key, then a key is fed as a backend feeds it
(`call.feed_dtmf` on the loop) and the time until the awaiting coroutine has its result
is taken with `time.perf_counter`; the same for `call.gather(num_digits=1)` (no prompt)
and, as the baseline, `call.getDTMF()`, alternating, many times. The issue's target:
gather adds no more than one 20 ms frame.

**Silence to end.** `record()`'s sink (`voip.record.SpeechRecorder`, `silence_timeout =
{SILENCE_TIMEOUT:g} s`) is fed the 20 ms frames of each utterance of the VAD benchmark's
fixed set (`tests/vadset.py`: {len(UTTERANCES)} voices through G.711, in every condition:
{", ".join(CONDITIONS)}), each preceded by its pause and followed by 4 s of the same
line's background (the pause before it, repeated; in the DTMF condition, with its keys),
exactly as the mixer feeds it on the audio thread. The delay is the time from the last
frame of true speech to the frame at which the sink ends, minus `silence_timeout`: what
the detector's hangover and misses add. The target: end-of-speech within
`silence_timeout` + 0.3 s. The baseline: the same sink with the energy gate of the VAD
benchmark."""
METHOD = "\n\n".join(textwrap.fill(p, 88) for p in _METHOD.split("\n\n"))


async def _key_latency(trials: int) -> tuple[list[float], list[float]]:
    """Seconds from a key's arrival to the result, for gather and for getDTMF."""
    call = Call(MediaBridge(asyncio.get_running_loop()), CallInfo("bench"))
    gathered: list[float] = []
    plain: list[float] = []
    for n in range(2 * trials):
        use_gather = n % 2 == 0
        waiting = asyncio.ensure_future(
            call.gather(num_digits=1, timeout=60) if use_gather else call.getDTMF()
        )
        for _ in range(5):  # let it start waiting
            await asyncio.sleep(0)
        start = time.perf_counter()
        call.feed_dtmf("5")
        await waiting
        (gathered if use_gather else plain).append(time.perf_counter() - start)
    return gathered, plain


def _end_delays(make: Callable[[], VoiceDetector], utterances: int) -> dict[str, float]:
    """For each utterance and condition: seconds past ``silence_timeout`` at which the
    sink ended after the speech (inf: it never did)."""
    delays = {}
    frames_needed = round(SILENCE_TIMEOUT * SAMPLE_RATE / FRAME_SAMPLES)
    for utterance in UTTERANCES[:utterances]:
        for condition in make_set([utterance]):
            first = int(np.flatnonzero(condition.speech)[0])
            last = int(np.flatnonzero(condition.speech)[-1])
            background = condition.pcm[: first * FRAME_SAMPLES]
            tail = np.tile(background, math.ceil(4 * SAMPLE_RATE / background.size))
            line = np.concatenate((condition.pcm, tail))
            sink = SpeechRecorder(make(), line.size, frames_needed, frames_needed)
            ended = None
            for k in range(line.size // FRAME_SAMPLES):
                if sink.write(line[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]):
                    ended = k
                    break
            label = f"{utterance[0][:24]}… in {condition.name}"
            delays[label] = (
                math.inf
                if ended is None or sink.reason != "silence"
                else (ended - last) * FRAME_SAMPLES / SAMPLE_RATE - SILENCE_TIMEOUT
            )
    return delays


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    trials = ctx.pick(2000, 200)
    ctx.log(f"verbs: {trials} keys each for gather and getDTMF")
    gathered, plain = asyncio.run(_key_latency(trials))
    extra = [1000 * (g - p) for g, p in zip(sorted(gathered), sorted(plain), strict=True)]
    for pct in (50, 99):
        g, p = percentile(gathered, pct) * 1e6, percentile(plain, pct) * 1e6
        section.rows.append(
            Row(
                f"Key arrival → result, p{pct}: gather(num_digits=1)",
                g,
                "µs",
                "getDTMF()",
                p,
                target="≤ getDTMF + 20 ms" if pct == 99 else "",
                met=(g - p) / 1000 <= 20 if pct == 99 else None,
            )
        )
    section.notes.append(
        f"{trials} keys each; gather's extra time over getDTMF at equal ranks: median "
        f"{fmt(percentile(extra, 50) * 1000)} µs, largest {fmt(max(extra) * 1000)} µs."
    )
    utterances = ctx.pick(len(UTTERANCES), 2)
    ctx.log(f"verbs: record's end of speech, {utterances} utterances x {len(CONDITIONS)}")
    ours = _end_delays(default_detector, utterances)
    gate = _end_delays(EnergyGate, utterances)
    ended = [d for d in ours.values() if d < math.inf]
    gate_ended = [d for d in gate.values() if d < math.inf]
    for pct in (50, 100):
        label = "p50" if pct == 50 else "worst"
        value, base = percentile(ended, pct), percentile(gate_ended, pct)
        section.rows.append(
            Row(
                f"record: end of speech → end of recording − silence_timeout, {label}",
                value,
                "s",
                "energy gate in the same sink",
                base,
                target="≤ 0.3 s" if pct == 100 else "",
                met=value <= 0.3 and len(ended) == len(ours) if pct == 100 else None,
                note=f"of the {len(ended)} of {len(ours)} recordings that ended on silence",
            )
        )
    never = [label for label, delay in ours.items() if delay == math.inf]
    section.notes.append(
        "record's delays past silence_timeout, s (voip's detector, sorted): "
        + ", ".join(f"{d:.2f}" for d in sorted(ended))
        + (
            f". **Never ended on silence** ({len(never)}; the detector keeps calling the"
            f" line's noise speech in short bursts): {'; '.join(never)}."
            if never
            else "."
        )
        + f" The energy gate: {len(gate) - len(gate_ended)} of {len(gate)} never ended."
    )
    return section
