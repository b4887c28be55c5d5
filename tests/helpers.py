"""Shared test helpers: measuring audio by content and running apps headless.

``find_pcm``, ``find_sound`` and ``dominant_freq`` are the library's
(:mod:`voip.audio.match`), which the test kit uses too; they are imported here for the
tests.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voip.audio.match import dominant_freq as dominant_freq
from voip.audio.match import find_pcm as find_pcm
from voip.audio.match import find_sound as find_sound
from voip.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE

ROOT = Path(__file__).resolve().parent.parent


def goertzel_power(x: np.ndarray, freq: float, rate: int = SAMPLE_RATE) -> float:
    """Normalised power of ``freq`` in ``x`` (a full-scale sine gives about 0.25)."""
    n = np.arange(len(x))
    c = np.exp(-2j * np.pi * freq * n / rate)
    return float(np.abs(np.dot(x, c)) ** 2 / len(x) ** 2)


def tone_spans(
    x: np.ndarray, freq: float, threshold: float = 0.02, bridge: float = 0.0
) -> list[tuple[float, float]]:
    """(start, length) in seconds of each stretch where ``freq`` dominates, per 10 ms;
    stretches apart by ``bridge`` seconds or less count as one."""
    step = 80
    on = []
    for k in range(len(x) // step):
        fr = x[k * step : (k + 1) * step]
        on.append(goertzel_power(fr, freq) > threshold and abs(dominant_freq(fr) - freq) < 40)
    spans, start = [], None
    for k, v in enumerate(on + [False]):
        if v and start is None:
            start = k
        elif not v and start is not None:
            begin, end = start * step / 8000, k * step / 8000
            if spans and begin - sum(spans[-1]) <= bridge + 1e-9:
                begin = spans.pop()[0]
            spans.append((begin, round(end - begin, 6)))
            start = None
    return spans


def frame_freqs(x: np.ndarray, quiet: float = 0.01) -> list[float | None]:
    """Dominant frequency of each 20 ms frame, None where the frame is silent."""
    out: list[float | None] = []
    for k in range(len(x) // FRAME_SAMPLES):
        fr = x[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]
        out.append(dominant_freq(fr) if np.abs(fr).max() > quiet else None)
    return out


def segments(x: np.ndarray, quiet: float = 0.01) -> list[tuple[int, int]]:
    """(start, end) sample ranges where ``x`` is not silent, gaps under 20 ms bridged."""
    loud = np.abs(x) > quiet
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > FRAME_SAMPLES)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def tone(freq: float, seconds: float, amp: float = 0.5, rate: int = SAMPLE_RATE) -> np.ndarray:
    n = np.arange(int(round(seconds * rate)))
    return (amp * np.sin(2 * np.pi * freq * n / rate)).astype(np.float32)


@contextmanager
def popen(args: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A process (``subprocess.Popen(args, **kwargs)``), killed on leaving the block if
    it is still running."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(args, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 30
) -> None:
    """Poll ``ready()`` until it is true; fail if ``proc`` ends or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline and proc.poll() is None, "never ready"
        time.sleep(0.02)


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` as a crash would (no clean-up of any kind) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def run_app(
    script: str | Path,
    *args: str,
    timeout: float = 90,
    env: dict[str, str] | None = None,
    audio: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run an app script from the repository root; headless (``--no-audio``) unless
    ``audio`` is set."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(script), *([] if audio else ["--no-audio"]), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


needs_pyaudio = pytest.mark.skipif(
    importlib.util.find_spec("pyaudio") is None,
    reason="PyAudio is not installed (apt-get install portaudio19-dev, then "
    "pip install -e '.[test]')",
)
"""For tests that open the sound device (runs without ``--no-audio``); CI installs
PyAudio, so there they run."""


ALSA_FILE_DEVICE = """</usr/share/alsa/alsa.conf>
pcm.voipout {{ type file slave.pcm "null" file "{out}" format "raw" }}
pcm.voipin {{ type file slave.pcm "null" file "/dev/null" infile "{inp}" format "raw" }}
pcm.!default {{ type asym playback.pcm "voipout" capture.pcm "voipin" }}
"""


def alsa_file_device(tmp: Path, mic: np.ndarray) -> tuple[dict[str, str], Path]:
    """An ALSA default device whose microphone reads ``mic`` and whose speaker writes a
    raw file: the real PyAudio -> PortAudio -> ALSA path with no sound card.

    Returns the environment to run under and the path of the speaker's raw file.
    """
    inp, out, conf = tmp / "in.raw", tmp / "out.raw", tmp / "asound.conf"
    inp.write_bytes((np.clip(mic, -1, 1) * 32767).astype("<i2").tobytes())
    conf.write_text(ALSA_FILE_DEVICE.format(out=out, inp=inp))
    return {"ALSA_CONFIG_PATH": str(conf)}, out


def read_raw(path: Path) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), "<i2").astype(np.float32) / 32768


def read_pty(fd: int, seconds: float) -> bytes:
    """What a program in a pseudo-terminal prints during ``seconds`` (b"" once it closes)."""
    import select

    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


def tone_runs(
    x: np.ndarray, freqs: Sequence[float], step: int = 80, share: float = 0.35
) -> list[tuple[float, float, float]]:
    """The tones heard in ``x``, in order: (frequency, start s, length s) of each run of
    10 ms steps whose power is mostly at one of ``freqs``.

    Vectorised (one matrix product), so it is cheap on long recordings. Frequencies that
    are multiples of 100 Hz are orthogonal over a 10 ms step: none leaks into another.
    A pure tone puts half its mean square at its frequency, noise or silence none.
    """
    n = len(x) // step
    if n == 0 or not freqs:
        return []
    frames = np.asarray(x[: n * step], dtype=np.float64).reshape(n, step)
    t = np.arange(step)
    basis = np.exp(-2j * np.pi * np.outer(freqs, t) / SAMPLE_RATE)
    power = np.abs(frames @ basis.T) ** 2 / step**2
    mean_square = np.maximum(np.mean(frames**2, axis=1), 1e-12)
    best = power.argmax(axis=1)
    on = (power[np.arange(n), best] / mean_square > share) & (mean_square > 1e-5)
    runs: list[tuple[float, float, float]] = []
    k = 0
    while k < n:
        if not on[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and on[j + 1] and best[j + 1] == best[k]:
            j += 1
        runs.append(
            (float(freqs[best[k]]), k * step / SAMPLE_RATE, (j - k + 1) * step / SAMPLE_RATE)
        )
        k = j + 1
    return runs


def write_app(tmp_path: Path, source: str, name: str = "app.py") -> Path:
    """Write an app script (its source dedented) into ``tmp_path``; returns its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path
