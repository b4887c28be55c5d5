"""PCM conventions shared by the whole package.

PCM is a 1-D ``numpy.float32`` array of samples in ``[-1, 1]`` at :data:`SAMPLE_RATE` Hz.
Every public function that takes PCM goes through :func:`as_pcm`, so plain lists of
floats work too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError

__all__ = [
    "SAMPLE_RATE",
    "FRAME_SAMPLES",
    "FRAME_SECONDS",
    "PCM",
    "as_pcm",
    "resample",
    "pcm_to_int16",
    "int16_to_pcm",
    "clip_ufunc",
]

SAMPLE_RATE = 8000
"""Samples per second of all PCM the engine handles (narrow-band telephony)."""

FRAME_SAMPLES = 160
"""Samples in one 20 ms frame, the unit of RTP packetisation (RFC 3551)."""

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE

PCM = npt.NDArray[np.float32]

# The clip ufunc itself, for the per-frame paths (``clip_ufunc(x, lo, hi, out=x)``):
# np.clip's Python wrapper costs 3x more on 160 samples. numpy 1.x keeps it in np.core.
try:
    from numpy._core.umath import clip as clip_ufunc  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.umath import clip as clip_ufunc  # type: ignore[no-redef]


def as_pcm(data: Any, name: str = "pcm") -> PCM:
    """Return ``data`` as a 1-D float32 array clipped to ``[-1, 1]``.

    Accepts numpy arrays and any sequence of real numbers. Values outside the range are
    clipped (never wrapped). NaN or infinite values, text and arrays of more than one
    dimension raise :class:`InvalidArgumentError` naming the argument.
    """
    try:
        arr = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{name} must be a sequence of numbers in [-1, 1], got {type(data).__name__}: {exc}"
        ) from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be one-dimensional (mono samples), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InvalidArgumentError(f"{name} contains NaN or infinite samples")
    return np.clip(arr, -1.0, 1.0)


def resample(pcm: npt.ArrayLike, from_rate: int, to_rate: int = SAMPLE_RATE) -> PCM:
    """Resample with a proper anti-aliasing filter (libsoxr, high quality)."""
    import soxr

    arr = np.asarray(pcm, dtype=np.float32)
    if from_rate == to_rate or arr.size == 0:
        return arr.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(arr, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def pcm_to_int16(pcm: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Convert float PCM to 16-bit integers, clipping and rounding."""
    arr = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    return np.round(arr * 32767.0).astype(np.int16)


def int16_to_pcm(data: bytes | npt.ArrayLike) -> PCM:
    """Convert 16-bit little-endian samples (bytes or an int16 array) to float PCM."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(data, dtype="<i2")
    else:
        arr = np.asarray(data, dtype=np.int16)
    return arr.astype(np.float32) / 32768.0
