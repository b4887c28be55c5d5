"""Audio between calls mixed in Python: a speaker's :class:`Tap`, a listener's :class:`Feed`.

Where the backend cannot connect two calls itself (PJSIP's conference bridge does, in C,
for two SIP calls of one process), a call's received frames go to the calls that hear
it this way: the speaker's mixer feeds its :class:`Tap` (a sink) each frame received,
once, whoever listens; the tap hands the frame to one short queue per listener; each
listener's mixer plays its :class:`Feed` (a source), which sums the next frame of each
queue it holds. A member of several pairs (a room) has one tap and one feed.

Speaker and listener may run on different clocks (two threads in the simulator, or two
timers of the test kit's loop due at the same moment, run in either order): a queue is
played from once it holds :data:`PREFILL` frames, so that a frame arriving a little
after the listener's turn is heard in order, not lost; it holds at most
:data:`MAX_QUEUED` frames, and the feed drops the oldest beyond :data:`KEEP_QUEUED` (a
clock running ahead must not build up delay). A queue that runs dry (a clock running
behind) adds nothing for that frame and waits to be refilled, as at the start.

A tap may also gate its speaker (silence gating, for rooms): given a voice activity
detector, it asks it about each frame and hands listeners silence while the speaker is
not talking, so that their line noise and hum reach nobody. ``on_speech(True/False)`` is
told when that changes (backends that mix in C turn the speaker's level down there).

Pure: no threads of its own, no asyncio. The queues are :class:`collections.deque`,
whose appends and pops are atomic, so the speaker's and the listener's audio threads
need no lock; queues are added and removed on the loop by replacing a tuple.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from .pcm import PCM
from .vad import VoiceDetector

__all__ = ["Tap", "Feed", "link", "unlink", "MAX_QUEUED", "KEEP_QUEUED", "PREFILL"]

MAX_QUEUED = 8
"""Frames a listener's queue holds at most (160 ms)."""
KEEP_QUEUED = 2
"""Frames a feed leaves queued after it read one: the most delay a clock that runs
ahead adds (40 ms)."""
PREFILL = 2
"""Frames a queue holds before a feed plays from it (again): 20 ms of slack."""


class _Queue(deque[PCM]):
    """One speaker's frames for one listener."""

    primed = False
    """Whether the feed plays from it (it held :data:`PREFILL` frames since it ran dry)."""


class Tap:
    """A speaker's received audio, handed to each listener's queue (a mixer's sink)."""

    def __init__(
        self,
        detector: VoiceDetector | None = None,
        on_speech: Callable[[bool], None] | None = None,
    ) -> None:
        self.detector = detector
        """Gates the speaker when set: silence goes out while it hears no speech."""
        self.on_speech = on_speech
        self.speaking = detector is None
        """Whether the last frame was let through (always, without a detector)."""
        self.muted = False
        """Hand listeners silence whatever is said (a muted member)."""
        self._queues: tuple[_Queue, ...] = ()

    def write(self, samples: PCM) -> bool:
        frame = samples
        if self.detector is not None:
            speaking = self.detector.is_speech(samples)
            if speaking != self.speaking:
                self.speaking = speaking
                if self.on_speech is not None:
                    self.on_speech(speaking)
            if not speaking:
                frame = np.zeros_like(samples)
        if self.muted:
            frame = np.zeros_like(samples)
        elif frame is samples:
            frame = samples.copy()  # the backend may reuse its buffer
        for queue in self._queues:
            queue.append(frame)
        return False

    def result(self) -> None:
        return None

    def describe(self) -> str:
        gated = ", gated" if self.detector is not None else ""
        return f"heard by {len(self._queues)} call(s){gated}"


class Feed:
    """What a listener hears of the speakers it is linked to: one frame of each, summed
    (a mixer's source, never finished; the mixer clips the sum)."""

    finished = False

    def __init__(self) -> None:
        self._queues: tuple[_Queue, ...] = ()

    def read(self, n: int) -> PCM:
        out = np.zeros(n, dtype=np.float32)
        for queue in self._queues:
            if not queue.primed:
                if len(queue) < PREFILL:
                    continue
                queue.primed = True
            while len(queue) > KEEP_QUEUED + 1:
                queue.popleft()
            try:
                frame = queue.popleft()
            except IndexError:  # ran dry: nothing now, and refill before playing again
                queue.primed = False
                continue
            k = min(n, len(frame))
            out[:k] += frame[:k]
        return out

    def describe(self) -> str:
        return f"hearing {len(self._queues)} call(s)"


def link(tap: Tap, feed: Feed) -> None:
    """From now on ``feed`` hears ``tap`` (on the loop)."""
    queue = _Queue(maxlen=MAX_QUEUED)
    tap._queues = (*tap._queues, queue)
    feed._queues = (*feed._queues, queue)


def unlink(tap: Tap, feed: Feed) -> None:
    """``feed`` no longer hears ``tap`` (on the loop); a pair never linked is left alone."""
    shared = [q for q in tap._queues if any(q is f for f in feed._queues)]
    tap._queues = tuple(q for q in tap._queues if not any(q is s for s in shared))
    feed._queues = tuple(q for q in feed._queues if not any(q is s for s in shared))
