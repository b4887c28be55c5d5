"""Text to speech: in-process libespeak-ng (voip.tts) against the espeak-ng program."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np

from voip import tts
from voip.audio.pcm import SAMPLE_RATE, as_pcm, resample

from .common import Context, Row, Section, fmt, median, percentile

NAME = "tts"
TITLE = "Text to speech"
METHOD = """\
Each repeat synthesises a 10-word sentence not seen before in the process (so
`voip.tts.TTStoPCM` cannot answer from its cache), alternately in process and with the
espeak-ng program, the same sentence both ways, so background load hits both alike. The
program is run the seed's way, `espeak-ng --stdout TEXT` (the Debian package's binary,
default voice and speed as `TTStoPCM`'s), and its WAV output is turned into the same
8 kHz float PCM with the same resampler, so both figures cover text in to telephone-band
PCM out. The figures are wall-clock medians (`time.perf_counter`); the first in-process
call, which also loads the library, is reported apart and left out. A cached repeat is
`TTStoPCM` of a sentence already synthesised (it returns a copy of the cached PCM),
median of many calls; the seed had no cache, so its baseline is the program again.
Targets: in process at least 3× faster than the program; a cached repeat under 1 ms."""

# Two halves of five words each: every pairing is a distinct 10-word sentence.
OPENERS = [
    "Thank you for calling today",
    "Please hold the line now",
    "Your order has been shipped",
    "We are sorry for waiting",
    "Our office opens at nine",
    "The payment was received safely",
    "Press one to hear again",
]
CLOSERS = [
    "and have a good day.",
    "while we find an agent.",
    "to the address you gave.",
    "as every line is busy.",
    "on weekdays except public holidays.",
    "so your account is settled.",
    "or stay on the line.",
]
SENTENCES = [f"{a} {b}" for a in OPENERS for b in CLOSERS]
WARM_UP = "This sentence loads the library and is not timed with the others."
PROGRAM_TARGET = 3.0
CACHED_TARGET_MS = 1.0

assert all(len(s.split()) == 10 for s in SENTENCES)


def _wav_pcm(data: bytes) -> tuple[np.ndarray, int]:
    """Samples and rate of espeak-ng's streamed WAV (its sizes say 'unknown', 0x7fffffff)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not write a WAV")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"fmt ":
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
        elif kind == b"data":
            body = data[pos + 8 :]
            return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2"), rate
        pos += 8 + size
    raise ValueError("no data chunk in espeak-ng's WAV")


def program_tts(program: str, text: str) -> np.ndarray:
    """The seed's way: fork espeak-ng, read its stdout; then the same conversion as voip."""
    out = subprocess.run([program, "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = _wav_pcm(out)
    return as_pcm(resample(samples.astype(np.float32) / 32768.0, rate, SAMPLE_RATE))


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    repeats = min(len(SENTENCES), ctx.pick(len(SENTENCES), 8))
    cached_calls = ctx.pick(5000, 500)
    program = shutil.which("espeak-ng")
    if program is None:
        section.notes.append(
            "**The espeak-ng program is absent** (`apt-get install espeak-ng`), so there is "
            "no baseline for the in-process figures in this run."
        )

    start = time.perf_counter()
    tts.TTStoPCM(WARM_UP)
    first = time.perf_counter() - start

    ours: list[float] = []
    theirs: list[float] = []
    lengths: list[float] = []
    for text in SENTENCES[:repeats]:
        ctx.log(f"tts: {text!r}")
        start = time.perf_counter()
        pcm = tts.TTStoPCM(text)
        ours.append(time.perf_counter() - start)
        lengths.append(len(pcm) / SAMPLE_RATE)
        if program is not None:
            start = time.perf_counter()
            program_tts(program, text)
            theirs.append(time.perf_counter() - start)

    text = SENTENCES[0]
    tts.TTStoPCM(text)  # cached since the loop above; make sure
    hits = []
    for _ in range(cached_calls):
        start = time.perf_counter()
        tts.TTStoPCM(text)
        hits.append(time.perf_counter() - start)

    ms = 1000.0
    program_ms = median(theirs) * ms if theirs else None
    label = "`espeak-ng --stdout` program" if program else "espeak-ng program (absent)"
    fresh = Row(
        "TTS, 10-word sentence, not cached: wall time",
        median(ours) * ms,
        "ms",
        label,
        program_ms,
        target=f"≥ {PROGRAM_TARGET:g}× faster than the program",
    )
    fresh.met = None if fresh.ratio is None else fresh.ratio >= PROGRAM_TARGET
    if program is None:
        fresh.note = "no baseline: espeak-ng absent"
    cached_us = median(hits) * 1e6
    cached = Row(
        "TTS, 10-word sentence, cached repeat: wall time",
        cached_us,
        "µs",
        label + " (the seed had no cache)",
        program_ms * 1000 if program_ms is not None else None,
        target=f"< {CACHED_TARGET_MS:g} ms",
        met=cached_us < CACHED_TARGET_MS * 1000,
    )
    section.rows += [fresh, cached]
    section.notes.append(
        f"{repeats} sentences, {fmt(median(lengths))} s of speech each (median). In process, "
        f"fastest {fmt(min(ours) * ms)} ms, slowest {fmt(max(ours) * ms)} ms; "
        + (
            f"program fastest {fmt(min(theirs) * ms)} ms, slowest {fmt(max(theirs) * ms)} ms. "
            if theirs
            else ""
        )
        + f"The first in-process call (loading libespeak-ng) took {fmt(first * ms)} ms. "
        f"Cached repeat over {cached_calls} calls: p99 {fmt(percentile(hits, 99) * 1e6)} µs."
    )
    return section
