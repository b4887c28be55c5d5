"""``call.record()``: record until the caller stops talking, and the voice-activity waits.

After an optional beep, the caller's audio is kept until ``silence_timeout`` seconds pass
without speech (once they have spoken), a finish key, ``max_seconds``, or the caller
hanging up, which is the normal end of a voice mail: the hang-up does not cancel the
handler (:mod:`voip.lifecycle`), so it can store what was recorded. Speech is told from
silence per 20 ms frame by :mod:`voip.audio.vad`, on the audio thread, inside the
recording's sink; the loop only writes the file as it grows (so that a crash loses at
most the last :data:`FLUSH_EVERY` seconds) and trims the result.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import checks
from .audio.inband import HOP, InbandDTMFDetector
from .audio.pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE
from .audio.vad import VoiceDetector, default_detector, speech_mask
from .audio.wav import WAVWriter, savePCMtoWAV
from .dtmf import parse_filter
from .errors import CallEndedError, InvalidArgumentError

if TYPE_CHECKING:
    from .call import Call

__all__ = [
    "Recorded",
    "RecordReason",
    "record",
    "wait_for_speech",
    "wait_for_silence",
    "BEEP_HZ",
    "BEEP_SECONDS",
    "FLUSH_EVERY",
]

RecordReason = Literal["silence", "finish_on_key", "max_seconds", "hangup"]

BEEP_HZ = 1000.0
BEEP_SECONDS = 0.25
"""The beep before a recording: 1 kHz for a quarter of a second, as peers use."""
FLUSH_EVERY = 0.5
"""Seconds between writes of a growing recording to its file."""
TRIM_MARGIN = 0.1
"""Seconds of silence kept before and after the speech when trimming."""

_EMPTY = np.zeros(0, dtype=np.float32)
_SETTLE = int(0.3 * SAMPLE_RATE)  # longer than any hangover


@dataclass(frozen=True)
class Recorded:
    """What :meth:`~voip.call.Call.record` recorded."""

    pcm: PCM = field(repr=False)
    """The recording, 8 kHz float PCM (trimmed unless ``trim=False``)."""
    reason: RecordReason
    """Why it ended: ``silence``, ``finish_on_key``, ``max_seconds`` or ``hangup``."""
    key: str = ""
    """The finish key pressed, if that ended it."""
    path: Path | None = None
    """The WAV file it was written to, if one was asked for."""

    @property
    def seconds(self) -> float:
        return len(self.pcm) / SAMPLE_RATE


class SpeechRecorder:
    """A sink (see :class:`~voip.audio.engine.Sink`) that keeps what it hears and ends
    itself on silence after speech, or at its length. Runs on the audio thread; the loop
    takes what is new with :meth:`take_new`."""

    def __init__(
        self, detector: VoiceDetector, max_samples: int, silence_frames: int, min_frames: int
    ) -> None:
        self.detector = detector
        self.max_samples = max_samples
        self.silence_frames = silence_frames
        """Frames without speech that end it (0: silence never does)."""
        self.min_frames = min_frames
        """Frames before which silence does not end it."""
        self.reason: RecordReason | None = None
        self.spoke = False
        self._frames: list[PCM] = []
        self._count = 0
        self._quiet = 0
        self._written = 0
        self._lock = threading.Lock()

    def write(self, samples: PCM) -> bool:
        samples = samples[: self.max_samples - self._count].copy()
        speech = len(samples) == FRAME_SAMPLES and self.detector.is_speech(samples)
        with self._lock:
            self._frames.append(samples)
            self._count += len(samples)
        self.spoke = self.spoke or speech
        self._quiet = 0 if speech else self._quiet + 1
        if self._count >= self.max_samples:
            self.reason = "max_seconds"
        elif (
            self.silence_frames
            and self.spoke
            and len(self._frames) >= self.min_frames
            and self._quiet >= self.silence_frames
        ):
            self.reason = "silence"
        return self.reason is not None

    def take_new(self) -> PCM:
        """The samples heard since the last call (any thread)."""
        with self._lock:
            new, self._written = self._frames[self._written :], len(self._frames)
        return np.concatenate(new) if new else _EMPTY

    def result(self) -> PCM:
        with self._lock:
            return np.concatenate(self._frames) if self._frames else _EMPTY.copy()

    def describe(self) -> str:
        return f"recording until silence ({self._count / SAMPLE_RATE:.1f} s)"


async def record(
    call: Call,
    *,
    max_seconds: float = 60.0,
    silence_timeout: float = 3.0,
    finish_on_key: str = "#",
    beep: bool = True,
    trim: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> Recorded:
    """Record the caller until they stop talking; returns a
    :class:`~voip.record.Recorded` (``.pcm``, ``.seconds``, ``.reason``, ``.key``,
    ``.path``).

    After a beep (1 kHz, 0.25 s; ``beep=False``: none) it records until
    ``silence_timeout`` seconds pass without speech once the caller has spoken (0:
    silence never ends it), a key of ``finish_on_key`` (``""``: none), ``max_seconds``,
    or the caller hanging up. A hang-up is the normal end of a message: the recording
    is kept and the handler goes on (see :mod:`voip.lifecycle`). ``trim`` removes the
    silence before and after the speech (0.1 s kept) and the finish key's tone if it
    leaked into the audio. ``path``: also write it to that WAV file as it is recorded
    (a crash loses at most the last half second), at the end the same as ``.pcm``.
    """
    max_seconds = checks.seconds("max_seconds", max_seconds, low_open=True)
    silence_timeout = checks.seconds("silence_timeout", silence_timeout)
    if not isinstance(finish_on_key, str):
        raise InvalidArgumentError(f"finish_on_key is a string of keys, got {finish_on_key!r}")
    finish = parse_filter(finish_on_key) if finish_on_key else None
    target = None if path is None else Path(path)
    frames = int(round(silence_timeout * SAMPLE_RATE / FRAME_SAMPLES))
    sink = SpeechRecorder(
        default_detector(), int(max_seconds * SAMPLE_RATE), silence_frames=frames, min_frames=frames
    )
    with call.hangup_ends_verb():
        call.flushDTMF()  # keys from before are not the end of this message
        try:
            if beep:
                await call.playTone(BEEP_HZ, BEEP_SECONDS)
            recording = call.record_into(sink)
        except CallEndedError:
            return Recorded(_EMPTY.copy(), "hangup", path=None)
        writer = WAVWriter(target) if target is not None else None
        flushing = asyncio.ensure_future(_flush(sink, writer)) if writer is not None else None
        key = call.getDTMF(1, filter=finish) if finish is not None else None
        try:
            pending: set[asyncio.Future[Any]] = {asyncio.ensure_future(recording)}
            if key is not None:
                pending.add(key)
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pressed = ""
            if key is not None and key.done() and not key.cancelled() and not key.exception():
                pressed = key.result()
                recording.stop()
            pcm = await recording
        finally:
            if key is not None:
                key.cancel()
            if flushing is not None:
                flushing.cancel()
        # Not ended by a key or by the sink itself: by the call's end.
        reason: RecordReason = "finish_on_key" if pressed else sink.reason or "hangup"
        if writer is not None:
            writer.write(sink.take_new())
            writer.close()
        recorded = len(pcm)
        if reason == "finish_on_key":
            pcm = pcm[: _key_tone_start(pcm, pressed)]
        if trim:
            pcm = _trim(pcm)
        if target is not None and len(pcm) != recorded:  # cut: the file must match
            _replace(target, pcm)
        call.log.info("recorded %.1f s (%s)", len(pcm) / SAMPLE_RATE, reason)
        return Recorded(pcm, reason, pressed, target)


async def _flush(sink: SpeechRecorder, writer: WAVWriter) -> None:
    while True:
        await asyncio.sleep(FLUSH_EVERY)
        writer.write(sink.take_new())


def _replace(target: Path, pcm: PCM) -> None:
    """Write ``pcm`` over ``target`` at once (a crash leaves the old file or the new)."""
    partial = target.with_name(target.name + ".part")
    savePCMtoWAV(pcm, partial)
    os.replace(partial, target)


def _trim(pcm: PCM) -> PCM:
    """``pcm`` without its leading and trailing silence, :data:`TRIM_MARGIN` kept."""
    detector = default_detector()
    # A first pass learns the line's noise; the silence after it lets the hangover run
    # out, so that the second pass does not begin in the first one's last word.
    speech_mask(np.concatenate((pcm, np.zeros(_SETTLE, dtype=np.float32))), detector)
    mask = speech_mask(pcm, detector, reset=False)
    speech = np.flatnonzero(mask)
    if speech.size == 0:
        return _EMPTY.copy()
    margin = int(TRIM_MARGIN * SAMPLE_RATE)
    start = max(0, int(speech[0]) * FRAME_SAMPLES - margin)
    end = min(len(pcm), (int(speech[-1]) + 1) * FRAME_SAMPLES + margin)
    return pcm[start:end]


def _key_tone_start(pcm: PCM, key: str, look_back: float = 1.0) -> int:
    """Where the finish key's own tone starts at the end of ``pcm``, if it leaked into
    the audio (a phone sending keys in-band); else ``len(pcm)``."""
    start = max(0, len(pcm) - int(look_back * SAMPLE_RATE))
    detector = InbandDTMFDetector()
    for at in range(start, len(pcm), HOP):
        if key in detector.feed(pcm[at : at + HOP]):
            # Confirmed 28-34 ms into the tone: cut 40 ms before, the tone's start.
            return max(start, at + HOP - int(0.04 * SAMPLE_RATE))
    return len(pcm)


async def wait_for_speech(call: Call, timeout: float) -> bool:
    """True as soon as the caller starts talking; False if they have not within
    ``timeout`` seconds (or the call ended)."""
    return await _wait_for(call, checks.seconds("timeout", timeout), speech=True)


async def wait_for_silence(call: Call, seconds: float) -> bool:
    """True once the caller has been silent for ``seconds`` in a row; False if the
    call ended first."""
    return await _wait_for(call, checks.seconds("seconds", seconds), speech=False)


class _Listener:
    """A sink that ends at the first speech frame, or after ``quiet`` silent frames."""

    def __init__(self, speech: bool, quiet: int) -> None:
        self.detector = default_detector()
        self.speech = speech
        self.quiet = quiet
        self._run = 0
        self.found = False

    def write(self, samples: PCM) -> bool:
        heard = len(samples) == FRAME_SAMPLES and self.detector.is_speech(samples)
        if self.speech:
            self.found = heard
        else:
            self._run = 0 if heard else self._run + 1
            self.found = self._run >= self.quiet
        return self.found

    def result(self) -> bool:
        return self.found

    def describe(self) -> str:
        return "waiting for speech" if self.speech else "waiting for silence"


async def _wait_for(call: Call, seconds: float, *, speech: bool) -> bool:
    listener = _Listener(speech, max(1, int(round(seconds * SAMPLE_RATE / FRAME_SAMPLES))))
    listening = call.record_into(listener)
    if not speech:  # ends by itself, or with the call
        return bool(await listening)
    try:
        return bool(await asyncio.wait_for(listening, seconds))
    except TimeoutError:
        return False
