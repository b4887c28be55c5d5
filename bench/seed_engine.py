"""The baseline for the engine benchmark: a straightforward per-sample pure-Python engine.

For comparison only, never used by ``voip``. It follows the seed's design: every playback
task has ``getSample()`` (None once it has ended), the engine loops over the tasks for each
of a frame's 160 samples, sums and clamps; recorders get received samples one at a time and
append them to lists; a tone computes ``math.sin`` per sample; PCM is a list of floats.

It is driven exactly like :class:`voip.audio.engine.Mixer`: ``process(received)`` once per
20 ms frame returns the frame to send and what finished during it.
"""

from __future__ import annotations

import math

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160


class SeedTone:
    """A sine tone of ``seconds``, one ``math.sin`` per sample."""

    def __init__(self, freq: float, seconds: float, volume: float = 1.0) -> None:
        self.freq = freq
        self.volume = volume
        self.total = int(round(seconds * SAMPLE_RATE))
        self.n = 0

    def getSample(self) -> float | None:
        if self.n >= self.total:
            return None
        x = self.volume * math.sin(2 * math.pi * self.freq * self.n / SAMPLE_RATE)
        self.n += 1
        return x


class SeedPCM:
    """A list of floats, played once or looped."""

    def __init__(self, pcm: list[float], loop: bool = False) -> None:
        self.pcm = pcm
        self.loop = loop
        self.n = 0

    def getSample(self) -> float | None:
        if self.n >= len(self.pcm):
            if not self.loop or not self.pcm:
                return None
            self.n = 0
        x = self.pcm[self.n]
        self.n += 1
        return x


class SeedRecorder:
    """Appends every received sample to a list, until ``maxlen`` samples."""

    def __init__(self, maxlen: int | None = None) -> None:
        self.maxlen = maxlen
        self.samples: list[float] = []

    def putSample(self, x: float) -> bool:
        """Keep ``x``; False once the recording is full."""
        self.samples.append(x)
        return self.maxlen is None or len(self.samples) < self.maxlen


class SeedEngine:
    """Mixes playback tasks sample by sample and feeds recorders sample by sample."""

    def __init__(self) -> None:
        self.playbacks: list[SeedTone | SeedPCM] = []
        self.recorders: list[SeedRecorder] = []

    def play(self, task: SeedTone | SeedPCM) -> None:
        self.playbacks.append(task)

    def record(self, recorder: SeedRecorder) -> None:
        self.recorders.append(recorder)

    def process(self, received: list[float] | None = None) -> tuple[list[float], list[object]]:
        finished: list[object] = []
        if received is not None:
            for x in received:
                for rec in list(self.recorders):
                    if not rec.putSample(x):
                        self.recorders.remove(rec)
                        finished.append(rec)
        out = []
        for _ in range(FRAME_SAMPLES):
            total = 0.0
            for task in list(self.playbacks):
                s = task.getSample()
                if s is None:
                    self.playbacks.remove(task)
                    finished.append(task)
                    continue
                total += s
            out.append(max(-1.0, min(1.0, total)))
        return out, finished
