"""What one phone heard, in call time, and how the kit's waiters find things in it.

Pure: no loop, no clock. A :class:`Timeline` holds the audio the caller heard (frame by
frame, from the answer) and, for in-process calls, the app's :mod:`voip.events` with
their times in seconds from the answer. A waiter is a matcher (:class:`SaidMatcher`,
:class:`ToneMatcher`, :class:`SoundMatcher`, :class:`SilenceMatcher`,
:class:`EndMatcher`) asked after every new frame or event whether what it waits for has
been heard since the :class:`Cursor`, the point where the previous waiter matched; a
match moves the cursor past it, so the same prompt heard twice is found twice.
:func:`describe` says what was heard since a cursor, for a waiter's failure.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from .. import events
from ..audio.match import CONTOUR_STEP, dominant_freq, find_contour, find_sound, tone_frames
from ..audio.pcm import FRAME_SAMPLES, FRAME_SECONDS, PCM, SAMPLE_RATE
from ..events import CallEvent, PlaybackEnded

__all__ = [
    "Timeline",
    "Cursor",
    "Match",
    "Matcher",
    "SaidMatcher",
    "ToneMatcher",
    "SoundMatcher",
    "SilenceMatcher",
    "EndMatcher",
    "describe",
    "normalise",
    "rebase",
    "Who",
]

Who = Literal["app", "caller"]
"""Who hung up, from the phone's side."""

QUIET = 0.01
"""A frame whose peak stays below this is silence."""
SPEECH_MATCH = 0.9
"""Loudness-contour correlation that counts as the speech heard (see voip.audio.match)."""
SOUND_MATCH = 0.9
"""Cross-correlation that counts as the sound heard (an exact copy gives 1.0)."""
BRIDGE_SLACK = 3
"""Frames after the end of a bridge still searched for what the other caller said."""
CHECK_EVERY = 25
"""Frames between two searches of the audio for speech or a sound (0.5 s): each
searches from where the last one stopped, so their cost does not grow with the call."""
SILENCE_SHOWN = 25
"""Quiet frames in a row that a description mentions as silence (0.5 s)."""
SHOWN = 30
"""Items a description lists at most."""
TONE_SLACK = 3
"""Frames (60 ms) a tone may be heard short of its length (see :class:`ToneMatcher`)."""


def normalise(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: how texts are compared."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass(frozen=True)
class Cursor:
    """Where the next waiter starts looking: a sample of the audio and an event."""

    sample: int = 0
    event: int = 0


@dataclass(frozen=True)
class Match:
    """What a matcher found: where the next waiter looks from, and what it returns."""

    cursor: Cursor
    value: Any


class Timeline:
    """The caller's audio and the app's events (None: not known, over SIP), in call time."""

    def __init__(self, with_events: bool) -> None:
        self._buffer = np.zeros(SAMPLE_RATE * 8, dtype=np.float32)
        self.samples = 0
        """Samples heard so far."""
        self.events: list[CallEvent] | None = [] if with_events else None
        self._times: list[float] = []
        self.ended_by: Who | None = None
        """Who hung up, once the call is over."""

    @property
    def audio(self) -> PCM:
        """Everything heard (a view: valid until more is added)."""
        return self._buffer[: self.samples]

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def add_audio(self, samples: PCM) -> None:
        end = self.samples + len(samples)
        if end > len(self._buffer):
            grown = np.zeros(max(end, 2 * len(self._buffer)), dtype=np.float32)
            grown[: self.samples] = self.audio
            self._buffer = grown
        self._buffer[self.samples : end] = samples
        self.samples = end

    def add_event(self, event: CallEvent) -> None:
        assert self.events is not None
        self.events.append(event)
        self._times.append(event.at)

    def end(self, by: Who) -> None:
        self.ended_by = by

    def cursor_at(self, sample: int) -> Cursor:
        """The cursor at ``sample``: events from then on are still to be read."""
        return Cursor(sample, bisect.bisect_left(self._times, sample / SAMPLE_RATE))

    def cursor_after(self, index: int) -> Cursor:
        """The cursor just after event ``index``."""
        assert self.events is not None
        return Cursor(_sample(self.events[index].at), index + 1)


class Matcher:
    """Something a waiter waits for. :meth:`check` runs after each new frame or event."""

    what: str
    """The waiter's call, for messages, e.g. ``heard_tone(440, 0.5)``."""

    def check(self, timeline: Timeline, cursor: Cursor) -> Match | None:
        raise NotImplementedError

    def wake_at(self, timeline: Timeline) -> float | None:
        """The call time at which it would match if nothing changes, if known (a
        silence: its line may hand over silent frames only when asked)."""
        return None


class _Search(Matcher):
    """Looks for a reference in the audio every :data:`CHECK_EVERY` frames, each time
    from a little before where it last stopped; :meth:`found` scores a stretch."""

    def __init__(self) -> None:
        self._searched = 0
        """The audio up to here has been searched."""

    def reference_length(self) -> int:
        raise NotImplementedError

    def found(self, audio: PCM) -> tuple[float, int, int]:
        """(score, start, end) of the best match in ``audio``; a score of 1 is certain,
        a start of -1 means no room for one."""
        raise NotImplementedError

    threshold = SOUND_MATCH

    def search(self, timeline: Timeline, start: int, end: int) -> tuple[int, int] | None:
        """Where a match starts and ends within ``timeline.audio[start:end]``, if any."""
        stretch = timeline.audio[start:end]
        score, first, last = self.found(stretch)
        if first < 0 or score < self.threshold:
            return None
        if float(np.abs(stretch[first:last]).max(initial=0.0)) < QUIET:  # a shape in noise
            return None
        return start + first, start + last

    def search_audio(
        self, timeline: Timeline, cursor: Cursor, force: bool
    ) -> tuple[int, int] | None:
        """Search what came since the last search, if enough came (or ``force``)."""
        new = timeline.samples - self._searched
        if not force and new < CHECK_EVERY * FRAME_SAMPLES:
            return None
        start = max(cursor.sample, self._searched - self.reference_length() - FRAME_SAMPLES)
        self._searched = timeline.samples
        return self.search(timeline, start, timeline.samples)


class SaidMatcher(_Search):
    """A prompt whose text contains ``text``, played to its end or cut off.

    With events, a :class:`~voip.events.Said` prompt's end, or a sound the app played
    or the other caller of a bridge said whose audio holds ``text`` spoken (by its
    loudness contour, against ``speak(text)``); without (SIP), the audio alone, searched
    the same way.
    """

    threshold = SPEECH_MATCH

    def __init__(self, text: str, speak: Callable[[str], PCM]) -> None:
        super().__init__()
        self.text = text
        self.needle = normalise(text)
        self.what = f"heard_say({text!r})"
        self._speak = speak
        self._reference: PCM | None = None
        self._next = 0

    def reference(self) -> PCM:
        if self._reference is None:
            self._reference = self._speak(self.text)
        return self._reference

    def reference_length(self) -> int:
        return len(self.reference())

    def found(self, audio: PCM) -> tuple[float, int, int]:
        reference = self.reference()
        score, at = find_contour(audio, reference, CONTOUR_STEP)
        return score, at, at + len(reference)

    def check(self, timeline: Timeline, cursor: Cursor) -> Match | None:
        told = timeline.events
        if told is None:
            found = self.search_audio(timeline, cursor, timeline.ended_by is not None)
            return None if found is None else Match(timeline.cursor_at(found[1]), self.text)
        for i in range(max(cursor.event, self._next), len(told)):
            ended = told[i]
            if isinstance(ended, events.Unbridged):  # what the other caller said, heard
                began = _bridged_at(told, i)
                start = max(cursor.sample, 0 if began is None else _sample(began))
                # what was said up to the end, heard up to a few frames later (the
                # bridge's own lag, in the kit two frames)
                end = _sample(ended.at) + BRIDGE_SLACK * FRAME_SAMPLES
                found = self.search(timeline, start, end)
                if found is not None:
                    return Match(timeline.cursor_at(found[1]), self.text)
            if not isinstance(ended, PlaybackEnded):
                continue
            what = ended.what
            if isinstance(what, events.Said) and self.needle in normalise(what.text):
                return Match(timeline.cursor_after(i), what.text)
            if isinstance(what, events.SoundPlayed) and what.at >= cursor.sample / SAMPLE_RATE:
                if self.search(timeline, _sample(what.at), _sample(ended.at)) is not None:
                    return Match(timeline.cursor_after(i), self.text)
        self._next = len(told)
        bridged = _bridged_at(told, len(told))
        if bridged is not None:  # bridged now: the other caller's speech is searched as heard
            found = self.search_audio(timeline, cursor, timeline.ended_by is not None)
            if found is not None and found[0] >= _sample(bridged):
                return Match(timeline.cursor_at(found[1]), self.text)
        return None


def _bridged_at(told: list[events.CallEvent], before: int) -> float | None:
    """When the bridge open at event ``before`` began (None: none was open)."""
    for event in reversed(told[:before]):
        if isinstance(event, events.Unbridged):
            return None
        if isinstance(event, events.Bridged):
            return event.at
    return None


class SoundMatcher(_Search):
    """A sound heard unchanged (as played by ``playPCM``), from its first sample to its
    last: searched when a sound the app played ends and every 0.5 s of call time."""

    def __init__(self, pcm: PCM) -> None:
        super().__init__()
        self.pcm = pcm
        self.what = f"heard_sound(<{len(pcm) / SAMPLE_RATE:.2f} s of PCM>)"
        self._told = 0

    def reference_length(self) -> int:
        return len(self.pcm)

    def found(self, audio: PCM) -> tuple[float, int, int]:
        return find_sound(audio, self.pcm)

    def check(self, timeline: Timeline, cursor: Cursor) -> Match | None:
        told = timeline.events or []
        played_out = any(isinstance(e, PlaybackEnded) for e in told[self._told :])
        self._told = len(told)
        found = self.search_audio(timeline, cursor, played_out or timeline.ended_by is not None)
        if found is None:
            return None
        return Match(timeline.cursor_at(found[1]), found[0] / SAMPLE_RATE)


class _Frames(Matcher):
    """Reads the audio a frame at a time from the cursor for a run of frames that pass
    :meth:`passes`: ``full`` of them match, and so do ``need`` (fewer) once the run ends
    (a sound that starts or ends inside a frame leaves that frame impure)."""

    def __init__(self, need: int, full: int) -> None:
        self.need = need
        self.full = full
        self._at = -1
        self._run = 0

    def passes(self, frames: PCM) -> np.ndarray:
        raise NotImplementedError

    def check(self, timeline: Timeline, cursor: Cursor) -> Match | None:
        if self._at < cursor.sample:  # from the first whole frame after the cursor
            self._at, self._run = -(-cursor.sample // FRAME_SAMPLES) * FRAME_SAMPLES, 0
        count = (timeline.samples - self._at) // FRAME_SAMPLES
        if count <= 0:
            return None
        ok = self.passes(timeline.audio[self._at : self._at + count * FRAME_SAMPLES])
        for k, good in enumerate(ok.tolist()):
            end = self._at + k * FRAME_SAMPLES  # the end of the run so far
            if good:
                self._run += 1
                end += FRAME_SAMPLES
            if self._run >= self.full or (not good and self._run >= self.need):
                start = end - self._run * FRAME_SAMPLES
                return Match(timeline.cursor_at(end), start / SAMPLE_RATE)
            if not good:
                self._run = 0
        self._at += count * FRAME_SAMPLES
        return None

    def wake_at(self, timeline: Timeline) -> float | None:
        if self._run >= self.need:  # the next frame decides
            return (max(self._at, timeline.samples) + FRAME_SAMPLES) / SAMPLE_RATE
        return None


class ToneMatcher(_Frames):
    """``freq`` (within about 10 Hz) heard without a break for ``seconds``, or for up
    to :data:`TONE_SLACK` frames less once it stops: a tone that starts or ends inside
    a frame leaves it impure, and a SIP call's jitter buffer moves frames a little."""

    def __init__(self, freq: float, seconds: float) -> None:
        full = max(1, math.ceil(seconds / FRAME_SECONDS - 1e-9))
        super().__init__(max(1, full - TONE_SLACK), full)
        self.freq = freq
        self.what = f"heard_tone({freq:g}, {seconds:g})"

    def passes(self, frames: PCM) -> np.ndarray:
        return tone_frames(frames, self.freq)


class SilenceMatcher(_Frames):
    """``seconds`` of silence (frames whose peak stays under :data:`QUIET`)."""

    def __init__(self, seconds: float) -> None:
        full = max(1, math.ceil(seconds / FRAME_SECONDS - 1e-9))
        super().__init__(full, full)
        self.what = f"heard_silence({seconds:g})"

    def passes(self, frames: PCM) -> np.ndarray:
        return _quiet(frames)

    def wake_at(self, timeline: Timeline) -> float | None:
        at = max(self._at, timeline.samples) + (self.full - self._run) * FRAME_SAMPLES
        return at / SAMPLE_RATE


class EndMatcher(Matcher):
    """The end of the call; its value is who hung up."""

    what = "hung_up()"

    def check(self, timeline: Timeline, cursor: Cursor) -> Match | None:
        if timeline.ended_by is None:
            return None
        return Match(timeline.cursor_at(timeline.samples), timeline.ended_by)


# -- what was heard, in words ------------------------------------------------------------


def describe(timeline: Timeline, cursor: Cursor) -> str:
    """What was heard since ``cursor``, in order, for a waiter's failure message: from the
    events when known (said text, tones, sounds, keys, recordings, the hang-up), else
    from the audio (tones, sounds); silences from the audio either way."""
    since = cursor.sample / SAMPLE_RATE
    audio = timeline.audio[cursor.sample :]
    if timeline.events is not None:
        items = _from_events(timeline.events[cursor.event :], timeline.seconds)
    else:
        items = _from_audio(audio, since)
        if timeline.ended_by is not None:
            at = timeline.seconds
            items.append((at, f"hung up by the {timeline.ended_by} at {_s(at)} s"))
    quiet = _runs(_quiet(audio))
    for start, length in quiet:
        if length >= SILENCE_SHOWN:
            at = since + start * FRAME_SECONDS
            items.append((at, f"silence {_s(length * FRAME_SECONDS)} s at {_s(at)} s"))
    items.sort(key=lambda item: item[0])
    words = [text for _, text in items[:SHOWN]]
    if len(items) > SHOWN:
        words.append(f"and {len(items) - SHOWN} more")
    return ", ".join(words) if words else "nothing"


_DESCRIBED: dict[type, Callable[[Any, str], str]] = {
    events.RecordingStarted: lambda e, at: f"recording started at {at} s",
    events.RecordingStopped: lambda e, at: (
        f"recording stopped at {at} s" + ("" if e.seconds is None else f" ({_s(e.seconds)} s)")
    ),
    events.Queued: lambda e, at: f"queued in {e.queue!r} at position {e.position} at {at} s",
    events.LeftQueue: lambda e, at: f"left queue {e.queue!r} ({e.reason}) at {at} s",
    events.Bridged: lambda e, at: f"bridged to {e.other} at {at} s",
    events.Unbridged: lambda e, at: f"unbridged ({e.reason}) at {at} s",
    events.JoinedRoom: lambda e, at: f"joined room {e.room!r} ({e.members} in it) at {at} s",
    events.LeftRoom: lambda e, at: f"left room {e.room!r} ({e.reason}) at {at} s",
    events.HungUp: lambda e, at: (
        f"hung up by the {'app' if e.by == 'local' else 'caller'} at {at} s"
    ),
}
"""How each event that is not a sound reads in a waiter's message (``at``: its time)."""


def _from_events(told: Sequence[CallEvent], now: float) -> list[tuple[float, str]]:
    ends = {e.what: e for e in told if isinstance(e, PlaybackEnded)}
    items: list[tuple[float, str]] = []
    for event in told:
        if isinstance(event, (events.Said, events.TonePlayed, events.SoundPlayed, events.DtmfSent)):
            items.append((event.at, _played(event, ends.get(event), now)))
        elif (describe := _DESCRIBED.get(type(event))) is not None:  # not PlaybackEnded
            items.append((event.at, describe(event, _s(event.at))))
    return items


def _played(event: events.Played, ended: PlaybackEnded | None, now: float) -> str:
    end = now if ended is None else ended.at
    state = " (playing)" if ended is None else "" if ended.completed else " (cut off)"
    at = f"at {_s(event.at)}"
    if isinstance(event, events.Said):
        return f"said {event.text!r} {at}-{_s(end)} s{state}"
    if isinstance(event, events.DtmfSent):
        return f"keys {event.keys!r} sent ({event.method}) {at} s"
    if isinstance(event, events.TonePlayed):
        length = event.seconds if ended is not None and ended.completed else end - event.at
        return f"tone {event.freq:g} Hz {_s(length)} s {at} s{state}"
    loop = "looped " if event.loop else ""
    return f"{loop}sound {_s(end - event.at)} s {at} s{state}"


def _from_audio(audio: PCM, since: float) -> list[tuple[float, str]]:
    """The tones and other sounds in ``audio``: a run of frames that are each a pure
    tone at one frequency is a tone; other sound is one item until a silence of 0.5 s."""
    n = len(audio) // FRAME_SAMPLES
    frames = audio[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).astype(np.float64)
    loud = ~_quiet(audio)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME_SAMPLES), n=1024, axis=1))
    freqs = spectrum.argmax(axis=1) * SAMPLE_RATE / 1024
    # the frame's power at its strongest frequency, against its mean power (tone_frames)
    basis = np.exp(-2j * np.pi * np.outer(freqs, np.arange(FRAME_SAMPLES)) / SAMPLE_RATE)
    at_freq = np.abs(np.sum(frames * basis, axis=1)) ** 2 / FRAME_SAMPLES**2
    power = np.maximum(np.mean(frames**2, axis=1), 1e-12)
    pure = loud & (freqs >= 50) & (2 * at_freq > 0.8 * power)
    items: list[tuple[float, str]] = []
    sound: list[int] = []  # first and last frame of the sound being gathered

    def flush() -> None:
        # (a frame or two between tones, or at their ends, is where one becomes another)
        if sound and sound[1] - sound[0] + 1 > 2:
            at = since + sound[0] * FRAME_SECONDS
            length = (sound[1] - sound[0] + 1) * FRAME_SECONDS
            items.append((at, f"sound {_s(length)} s at {_s(at)} s"))
        sound.clear()

    k = 0
    while k < n:
        j = k + 1
        if pure[k]:
            while j < n and pure[j] and abs(freqs[j] - freqs[k]) < 20:
                j += 1
        if pure[k] and j - k >= 3:
            flush()
            at, length = since + k * FRAME_SECONDS, (j - k) * FRAME_SECONDS
            freq = dominant_freq(audio[k * FRAME_SAMPLES : j * FRAME_SAMPLES])
            items.append((at, f"tone {freq:.0f} Hz {_s(length)} s at {_s(at)} s"))
        elif loud[k]:
            if sound and k - sound[1] > SILENCE_SHOWN:
                flush()
            sound[:] = [sound[0] if sound else k, j - 1]
        k = j
    flush()
    return items


def _quiet(audio: PCM) -> np.ndarray:
    n = len(audio) // FRAME_SAMPLES
    frames = audio[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
    quiet: np.ndarray = np.abs(frames).max(axis=1, initial=0.0) < QUIET
    return quiet


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first index, length) of each run of True in ``mask``."""
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _sample(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def _s(seconds: float) -> str:
    return f"{seconds:.2f}"


def rebase(event: CallEvent, start: float) -> CallEvent:
    """``event`` with its times (and its start's, for an end) counted from ``start``."""
    if isinstance(event, PlaybackEnded):
        return replace(
            event, what=replace(event.what, at=event.what.at - start), at=event.at - start
        )
    return replace(event, at=event.at - start)
