"""The audio engine: mixes playbacks and feeds recorders, one 20 ms frame at a time.

Pure: no threads, no clock, no asyncio. A backend feeds :meth:`Mixer.process` with each
received frame and sends the frame it returns; everything that finished during that frame
is reported back so that the caller (the bridge) can resolve futures on its own loop.

Sources and sinks work on whole frames with numpy. The only per-sample Python loops are
those that the user's own per-sample callbacks (``playCustom`` / ``recordCustom``) demand.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE, clip_ufunc

__all__ = [
    "Source",
    "Sink",
    "ToneSource",
    "PCMSource",
    "CustomSource",
    "PCMRecorder",
    "CustomRecorder",
    "Finished",
    "Mixer",
]

log = logging.getLogger(__name__)

_EMPTY = np.zeros(0, dtype=np.float32)
_ONE, _MINUS_ONE = np.float32(1.0), np.float32(-1.0)


class Source(Protocol):
    """Something that can be played: yields samples until it is exhausted."""

    def read(self, n: int) -> PCM:
        """Return up to ``n`` samples; fewer than ``n`` means the source has ended."""

    @property
    def finished(self) -> bool:
        """True once the last sample has been read (so its end is reported without
        waiting for one more frame)."""

    def describe(self) -> str:
        """A short human description, for status lines and logs."""

    # A source may also set ``bounded = True`` when its samples never leave [-1, 1]: the
    # mixer then skips clipping when it plays alone.


class Sink(Protocol):
    """Something that consumes received audio."""

    def write(self, samples: PCM) -> bool:
        """Consume ``samples``; return True once the sink wants no more."""

    def result(self) -> Any:
        """What the recording produced (resolved into the caller's awaitable)."""

    def describe(self) -> str:
        """A short human description, for status lines and logs."""


class ToneSource:
    """A sine tone of an exact number of samples, phase-continuous across frames.

    A tone of a whole number of Hz repeats exactly every ``8000 / gcd(8000, freq)``
    samples (at most one second): that period is computed once, one frame longer, so
    that every frame is a single slice of it. Other frequencies are computed per frame.
    """

    bounded = True  # volume <= 1

    def __init__(self, freq: float, seconds: float, volume: float = 1.0) -> None:
        self.freq = float(freq)
        self.total = int(round(seconds * SAMPLE_RATE))
        self.volume = float(volume)
        self._pos = 0
        self._omega = 2.0 * np.pi * self.freq / SAMPLE_RATE
        self._period = 0
        self._table = _EMPTY
        if self.freq.is_integer():
            self._period = SAMPLE_RATE // math.gcd(SAMPLE_RATE, int(self.freq))
            self._table = self._samples(0, self._period + FRAME_SAMPLES)

    def _samples(self, start: int, count: int) -> PCM:
        idx = np.arange(start, start + count, dtype=np.float64)
        return (self.volume * np.sin(self._omega * idx)).astype(np.float32)

    def samples(self) -> PCM:
        """The whole tone at once (its position is left alone)."""
        if self._period:
            return self._periods(self.total)
        return self._samples(0, self.total)

    def second(self) -> PCM | None:
        """One second of the tone, which loops seamlessly (whole periods), or None for a
        frequency that is not a whole number of Hz."""
        return self._periods(SAMPLE_RATE) if self._period else None

    def _periods(self, count: int) -> PCM:
        """``count`` samples from the start, repeating the period's table."""
        return np.resize(self._table[: self._period], count)

    def read(self, n: int) -> PCM:
        count = min(n, self.total - self._pos)
        if count <= 0:
            return _EMPTY
        pos, self._pos = self._pos, self._pos + count
        if self._period and count <= FRAME_SAMPLES:
            start = pos % self._period
            return self._table[start : start + count]
        return self._samples(pos, count)

    @property
    def finished(self) -> bool:
        return self._pos >= self.total

    def describe(self) -> str:
        return f"tone {self.freq:g} Hz"


class PCMSource:
    """A PCM buffer, played once or looped."""

    bounded = True  # callers pass PCM through as_pcm, which clips

    def __init__(self, pcm: PCM, loop: bool = False, label: str = "pcm") -> None:
        self.pcm = pcm
        self.loop = loop and len(pcm) > 0
        self.label = label
        self._pos = 0
        # Looping: the sound followed by its own first frame (repeated if it is shorter),
        # so that every frame, wrapping or not, is one slice.
        self._ring = np.resize(pcm, len(pcm) + FRAME_SAMPLES) if self.loop else pcm

    def samples(self) -> PCM:
        """The whole sound (once round, when looping)."""
        return self.pcm

    def read(self, n: int) -> PCM:
        pos = self._pos
        if self.loop and n <= FRAME_SAMPLES:
            self._pos = (pos + n) % len(self.pcm)
            return self._ring[pos : pos + n]
        if self.loop:  # a larger read than the ring allows
            self._pos = (pos + n) % len(self.pcm)
            return np.resize(np.roll(self.pcm, -pos), n)
        out = self.pcm[pos : pos + n]
        self._pos = pos + len(out)
        return out

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= len(self.pcm)

    def describe(self) -> str:
        return f"{self.label} ({len(self.pcm) / SAMPLE_RATE:.1f} s{', loop' if self.loop else ''})"


class CustomSource:
    """Samples from the user's ``fn(t, delta)``; ``None`` ends the playback.

    ``t`` is the time in seconds since the playback started and ``delta`` the time between
    two samples. Runs on the audio thread: a slow function delays the call's audio.
    """

    def __init__(self, fn: Callable[[float, float], float | None]) -> None:
        self.fn = fn
        self._n = 0
        self.finished = False

    def read(self, n: int) -> PCM:
        out = np.empty(n, dtype=np.float32)
        delta = 1.0 / SAMPLE_RATE
        for i in range(n):
            x = self.fn(self._n / SAMPLE_RATE, delta)
            if x is None:
                self.finished = True
                return out[:i]
            out[i] = x
            self._n += 1
        return out

    def describe(self) -> str:
        return f"custom {getattr(self.fn, '__name__', 'function')}"


class PCMRecorder:
    """Keeps received audio until stopped or until ``maxlen`` samples are held."""

    def __init__(self, maxlen: int | None = None) -> None:
        self.maxlen = maxlen
        self._chunks: list[PCM] = []
        self._count = 0

    def write(self, samples: PCM) -> bool:
        if self.maxlen is not None:
            samples = samples[: self.maxlen - self._count]
        self._chunks.append(samples.copy())
        self._count += len(samples)
        return self.maxlen is not None and self._count >= self.maxlen

    def result(self) -> PCM:
        if not self._chunks:
            return _EMPTY.copy()
        return np.concatenate(self._chunks)

    def describe(self) -> str:
        return f"recording ({self._count / SAMPLE_RATE:.1f} s)"


class CustomRecorder:
    """Feeds each received sample to the user's ``fn(sample)``; ``False`` ends it."""

    def __init__(self, fn: Callable[[float], Any]) -> None:
        self.fn = fn

    def write(self, samples: PCM) -> bool:
        fn = self.fn
        # `is False`, as in the seed: a function returning None keeps recording.
        return any(fn(x) is False for x in samples.tolist())

    def result(self) -> bool:
        return True

    def describe(self) -> str:
        return f"custom recorder {getattr(self.fn, '__name__', 'function')}"


@dataclass(frozen=True)
class Finished:
    """A playback or recording that ended during a frame.

    ``ok`` is False when it ended because its callback raised; ``error`` then holds the
    exception. ``result`` is what the recording produced (None for playbacks).
    """

    handle: int
    ok: bool
    result: Any = None
    error: BaseException | None = None


class Mixer:
    """Sums the active playbacks into outgoing frames and feeds received frames to sinks.

    Not thread-safe by itself: the bridge serialises access.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self.frame_samples = frame_samples
        self._sources: dict[int, Source] = {}
        self._sinks: dict[int, Sink] = {}
        self._ids = itertools.count(1)
        self._last_received: PCM = _EMPTY

    # -- adding and removing -------------------------------------------------------------

    def play(self, source: Source, handle: int | None = None) -> int:
        """Start ``source``; returns its handle (``handle`` if given, unique to the caller)."""
        handle = next(self._ids) if handle is None else handle
        self._sources[handle] = source
        return handle

    def record(self, sink: Sink, handle: int | None = None) -> int:
        """Start ``sink``; returns its handle, as :meth:`play` does."""
        handle = next(self._ids) if handle is None else handle
        self._sinks[handle] = sink
        return handle

    def remove(self, handle: int) -> Any:
        """Stop a playback or recording now. Returns a recording's result so far, else None."""
        self._sources.pop(handle, None)
        sink = self._sinks.pop(handle, None)
        return sink.result() if sink is not None else None

    def remove_all(self) -> list[Finished]:
        """Stop everything (the call ended): recordings keep what they got."""
        done = [Finished(h, True, None) for h in self._sources]
        done += [Finished(h, True, s.result()) for h, s in self._sinks.items()]
        self._sources.clear()
        self._sinks.clear()
        return done

    def playing(self) -> list[str]:
        return [s.describe() for s in self._sources.values()]

    def recording(self) -> list[str]:
        return [s.describe() for s in self._sinks.values()]

    @property
    def level(self) -> float:
        """Peak level of the last received frame, for status displays (computed when
        asked, not every frame)."""
        last = self._last_received
        return float(np.abs(last).max()) if len(last) else 0.0

    @property
    def has_sources(self) -> bool:
        return bool(self._sources)

    @property
    def has_sinks(self) -> bool:
        return bool(self._sinks)

    @property
    def idle(self) -> bool:
        return not self._sources and not self._sinks

    # -- the frame -----------------------------------------------------------------------

    def process(self, received: PCM | None = None) -> tuple[PCM, list[Finished]]:
        """Consume one received frame (None: nothing received) and produce one to send.

        The frame returned may be a view of a playback's own samples: read it, do not
        modify it.
        """
        finished: list[Finished] = []
        if received is not None and len(received):
            self._last_received = received
            if self._sinks:
                self._feed(received, finished)
        n = self.frame_samples
        out: PCM | None = None
        owned = False  # whether `out` is our own array (else a view of a source's)
        unbounded = False  # whether a source may have gone outside [-1, 1]
        for handle, source in list(self._sources.items()):
            try:
                chunk = source.read(n)
            except Exception as exc:  # the user's playCustom function raised
                log.error("playback %s failed", source.describe(), exc_info=exc)
                del self._sources[handle]
                finished.append(Finished(handle, False, None, exc))
                continue
            if len(chunk) < n or source.finished:
                del self._sources[handle]
                finished.append(Finished(handle, True))
            if not len(chunk):
                continue
            unbounded = unbounded or not getattr(source, "bounded", False)
            if out is None and len(chunk) == n:
                out = chunk
            elif out is None:
                out = np.zeros(n, dtype=np.float32)
                out[: len(chunk)] = chunk
                owned = True
            elif len(chunk) == n:
                out = np.add(out, chunk, out=out if owned else None)
                owned = True
            else:
                if not owned:
                    out = out.copy()
                    owned = True
                out[: len(chunk)] += chunk
        if out is None:
            return np.zeros(n, dtype=np.float32), finished
        if owned or unbounded:
            # A sum (or the user's samples) may leave [-1, 1]: clip, never wrap.
            if not owned:
                out = out.copy()
            clip_ufunc(out, _MINUS_ONE, _ONE, out=out)
        return out, finished

    def _feed(self, received: PCM, finished: list[Finished]) -> None:
        for handle, sink in list(self._sinks.items()):
            try:
                done = sink.write(received)
            except Exception as exc:  # the user's recordCustom function raised
                log.error("recording %s failed", sink.describe(), exc_info=exc)
                del self._sinks[handle]
                finished.append(Finished(handle, False, None, exc))
                continue
            if done:
                del self._sinks[handle]
                finished.append(Finished(handle, True, sink.result()))
