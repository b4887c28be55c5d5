"""Where frames come from and go to on this machine: a sound card or a clock.

Both drivers call one function, ``tick(received) -> to_send``, once per 20 ms frame on a
thread of their own.

* :class:`SoundDevice`: PyAudio full duplex at 8 kHz; PortAudio's callback thread paces it.
* :class:`FrameClock`: no sound card: a thread paced from an absolute start time
  (``start + n * 20 ms``), so timing never drifts; it sleeps between frames.

In the simulator the driver is the call's own clock: its ``tick`` is the bridge's
``exchange`` wrapped with the simulator's file I/O. The softphone (``voip dial``) has two
clocks, the sound card's and PJSIP's, which drift apart: an :class:`AudioPipe` each way
joins them, locked, since each side runs on its own thread. The device's ``tick``
pushes the microphone into one and pulls the speaker's frame from the other; the call
plays the first (:class:`PipeSource`; not when a WAV stands in for the microphone) and
records into the second (:class:`PipeSink`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from .audio.pcm import FRAME_SAMPLES, FRAME_SECONDS, PCM, SAMPLE_RATE, int16_to_pcm, pcm_to_int16
from .errors import AudioDeviceError
from .quiet import quiet_fds

__all__ = ["Tick", "FrameClock", "SoundDevice", "AudioPipe", "PipeSource", "PipeSink"]

log = logging.getLogger(__name__)

Tick = Callable[[PCM | None], PCM]

MAX_LAG_FRAMES = 50
"""Frames the clock may fall behind (e.g. a suspended laptop) before it starts afresh."""


class FrameClock:
    """Calls ``tick(None)`` every 20 ms from a thread, until :meth:`stop`."""

    def __init__(self, tick: Tick) -> None:
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voip-frame-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while True:
            delay = start + n * FRAME_SECONDS - time.monotonic()
            if delay < -MAX_LAG_FRAMES * FRAME_SECONDS:
                log.warning("audio clock fell %.1f s behind; resynchronising", -delay)
                start, n, delay = time.monotonic(), 0, 0.0
            if self._stop.wait(max(delay, 0.0)):
                return
            try:
                self._tick(None)
            except Exception:
                log.exception("audio frame failed")
            n += 1


class SoundDevice:
    """The default microphone and speaker through PyAudio, at 8 kHz mono.

    Opens full duplex, or output only when there is no microphone. Raises
    :class:`AudioDeviceError` with the reason when neither can be opened.
    """

    def __init__(self, tick: Tick) -> None:
        self._tick = tick
        self._pa = None
        self._stream = None
        self.has_input = False

    def open(self) -> None:
        """Open the device (not started yet); raises :class:`AudioDeviceError`."""
        try:
            import pyaudio
        except ImportError:
            raise AudioDeviceError(
                "PyAudio is not installed (pip install 'voip[sim]', after "
                "apt-get install portaudio19-dev)"
            ) from None
        with quiet_fds(2):
            pa = pyaudio.PyAudio()
            error: Exception | None = None
            for want_input in (True, False):
                try:
                    self._stream = pa.open(
                        format=pyaudio.paInt16,
                        channels=1,
                        rate=SAMPLE_RATE,
                        input=want_input,
                        output=True,
                        frames_per_buffer=FRAME_SAMPLES,
                        stream_callback=self._callback,
                        start=False,
                    )
                except (OSError, ValueError) as exc:
                    error = exc
                    continue
                self.has_input = want_input
                break
        if self._stream is None:
            pa.terminate()
            reason = error.args[-1] if error is not None and error.args else error
            raise AudioDeviceError(f"no sound device could be opened: {reason}")
        self._pa = pa
        if not self.has_input:
            log.warning("no microphone: the caller is silent")

    def start(self) -> None:
        assert self._stream is not None, "open() first"
        self._stream.start_stream()

    def _callback(self, in_data: bytes | None, frame_count: int, _time: object, _status: int):  # type: ignore[no-untyped-def]
        import pyaudio

        mic = int16_to_pcm(in_data) if in_data else None
        try:
            out = self._tick(mic)
        except Exception:
            log.exception("audio frame failed")
            return (bytes(2 * frame_count), pyaudio.paContinue)
        return (pcm_to_int16(out).tobytes(), pyaudio.paContinue)

    def stop(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.stop_stream()
            self._stream.close()
            self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None


class AudioPipe:
    """A bounded, thread-safe FIFO of samples between two clocks (a sound card and a
    call's media clock). The reader gets silence when it runs dry; when more than
    ``max_seconds`` is queued the oldest samples are dropped, so latency stays bounded.
    """

    def __init__(self, max_seconds: float = 0.2) -> None:
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self._chunks: deque[PCM] = deque()
        self._size = 0
        self._lock = threading.Lock()

    def push(self, samples: PCM) -> None:
        with self._lock:
            self._chunks.append(np.array(samples, dtype=np.float32))
            self._size += len(samples)
            while self._size > self.max_samples and self._chunks:
                self._size -= len(self._chunks.popleft())

    def pull(self, n: int) -> PCM:
        out = np.zeros(n, dtype=np.float32)
        got = 0
        with self._lock:
            while got < n and self._chunks:
                chunk = self._chunks[0]
                take = min(n - got, len(chunk))
                out[got : got + take] = chunk[:take]
                got += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
                self._size -= take
        return out


class PipeSource:
    """Plays what is pushed into an :class:`AudioPipe` (e.g. a microphone), until removed."""

    finished = False
    bounded = True  # audio from a sound card

    def __init__(self, pipe: AudioPipe, label: str = "microphone") -> None:
        self.pipe = pipe
        self.label = label

    def read(self, n: int) -> PCM:
        return self.pipe.pull(n)

    def describe(self) -> str:
        return self.label


class PipeSink:
    """Pushes received audio into an :class:`AudioPipe` (e.g. for a speaker)."""

    def __init__(self, pipe: AudioPipe) -> None:
        self.pipe = pipe

    def write(self, samples: PCM) -> bool:
        self.pipe.push(samples)
        return False

    def result(self) -> bool:
        return True

    def describe(self) -> str:
        return "speaker"
