"""voip's mixer interface over the per-sample engine of bench/seed_engine.py (bench only).

The media benchmark plugs this in instead of :class:`voip.audio.engine.Mixer` to measure
a call with the seed's per-sample engine and everything else voip's own: the same PJSIP
port, bridge and byte conversion. It converts what the :class:`~voip.call.Call` hands over
(voip sources and recorders) into the seed's tasks, and the seed's lists of floats back
into the float32 frames the bridge expects.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from bench.seed_engine import SeedEngine, SeedPCM, SeedRecorder, SeedTone
from voip.audio.engine import Finished, PCMRecorder, PCMSource, ToneSource
from voip.audio.pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE

SeedTask = SeedTone | SeedPCM


class SeedMixer:
    """Drop-in for :class:`voip.audio.engine.Mixer`, mixing sample by sample in Python."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self.frame_samples = frame_samples
        self.engine = SeedEngine()
        self._ids = itertools.count(1)
        self._handles: dict[int, SeedTask | SeedRecorder] = {}

    def play(self, source: Any, handle: int | None = None) -> int:
        if isinstance(source, PCMSource):
            task: SeedTask = SeedPCM(source.pcm.tolist(), source.loop)
        elif isinstance(source, ToneSource):
            task = SeedTone(source.freq, source.total / SAMPLE_RATE, source.volume)
        else:
            raise TypeError(f"the seed engine cannot play {source.describe()}")
        self.engine.play(task)
        return self._add(task, handle)

    def record(self, sink: Any, handle: int | None = None) -> int:
        if not isinstance(sink, PCMRecorder):
            raise TypeError(f"the seed engine cannot record into {sink.describe()}")
        recorder = SeedRecorder(sink.maxlen)
        self.engine.record(recorder)
        return self._add(recorder, handle)

    def remove(self, handle: int) -> Any:
        item = self._handles.pop(handle, None)
        if isinstance(item, SeedRecorder):
            self.engine.recorders.remove(item)
            return _pcm(item.samples)
        if item is not None:
            self.engine.playbacks.remove(item)
        return None

    def remove_all(self) -> list[Finished]:
        done = [
            Finished(h, True, _pcm(x.samples) if isinstance(x, SeedRecorder) else None)
            for h, x in self._handles.items()
        ]
        self._handles.clear()
        self.engine.playbacks.clear()
        self.engine.recorders.clear()
        return done

    def playing(self) -> list[str]:
        return [type(t).__name__ for t in self.engine.playbacks]

    def recording(self) -> list[str]:
        return [type(r).__name__ for r in self.engine.recorders]

    @property
    def level(self) -> float:
        return 0.0

    @property
    def has_sources(self) -> bool:
        return bool(self.engine.playbacks)

    @property
    def has_sinks(self) -> bool:
        return bool(self.engine.recorders)

    @property
    def idle(self) -> bool:
        return not self._handles

    def process(self, received: PCM | None = None) -> tuple[PCM, list[Finished]]:
        # The seed received samples as Python floats and mixed into a list of floats.
        out, ended = self.engine.process(received.tolist() if received is not None else None)
        finished = []
        for item in ended:
            handle = next(h for h, x in self._handles.items() if x is item)
            del self._handles[handle]
            result = _pcm(item.samples) if isinstance(item, SeedRecorder) else None
            finished.append(Finished(handle, True, result))
        return np.asarray(out, dtype=np.float32), finished

    def _add(self, item: SeedTask | SeedRecorder, handle: int | None) -> int:
        handle = next(self._ids) if handle is None else handle
        self._handles[handle] = item
        return handle


def _pcm(samples: list[float]) -> PCM:
    return np.asarray(samples, dtype=np.float32)
