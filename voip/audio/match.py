"""Finding sounds in audio: a known sound, speech, a tone, the strongest frequency.

Pure numpy, on 8 kHz PCM. The test kit's waiters (:mod:`voip.testing`) hear a call
with these, and the repository's tests measure audio with them:

* :func:`find_pcm`: a sound played unchanged (normalised cross-correlation, 1.0 for an
  exact copy; G.711 on a SIP call keeps it above 0.99); :func:`find_sound` the same,
  piece by piece, for a sound a jitter buffer may have stretched.
* :func:`find_contour`: speech, by its loudness contour. espeak-ng's output for a text
  differs from one synthesis to the next by a little pitch flutter and length, and a
  phrase inside a longer sentence is spoken a little differently, so samples do not
  match; the contour does (measured: 0.93-0.98 for a phrase within a sentence, 1.0 for
  the same synthesis, 0.44-0.84 for other phrases).
* :func:`tone_frames`: the 20 ms frames that are (nearly) a pure sine at one frequency.
"""

from __future__ import annotations

import numpy as np

from .pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE

__all__ = [
    "find_pcm",
    "find_sound",
    "find_contour",
    "contour",
    "tone_frames",
    "dominant_freq",
    "CONTOUR_STEP",
    "PIECE",
]

CONTOUR_STEP = 80
"""Samples per point of a loudness contour (10 ms)."""
PIECE = 2000
"""Samples per piece of a sound that :func:`find_sound` looks for (0.25 s)."""


def find_pcm(haystack: PCM, needle: PCM) -> tuple[float, int]:
    """Best normalised cross-correlation of ``needle`` inside ``haystack`` and its offset.

    1.0 means the needle's samples are there as they are (a prompt played unchanged);
    (0.0, -1) when the haystack is shorter than the needle.
    """
    n = len(needle)
    if len(haystack) < n or n == 0:
        return 0.0, -1
    size = 1 << int(np.ceil(np.log2(len(haystack) + n)))
    corr = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    corr = corr[: len(haystack) - n + 1]
    # Energy of every n-sample window, in O(len) (np.convolve with ones(n) is O(len * n),
    # seconds for a prompt inside a whole call).
    csum = np.concatenate(([0.0], np.cumsum(haystack.astype(np.float64) ** 2)))
    energy = csum[n:] - csum[: len(haystack) - n + 1]
    ncc = corr / (np.sqrt(np.maximum(energy, 1e-12)) * np.linalg.norm(needle))
    k = int(np.argmax(ncc))
    return float(ncc[k]), k


def find_sound(
    haystack: PCM, needle: PCM, slack: int = 2 * FRAME_SAMPLES
) -> tuple[float, int, int]:
    """Where ``needle`` was heard in ``haystack``, piece by piece: a score, and where
    the sound starts and ends; (0.0, -1, -1) when it cannot fit.

    A SIP call's jitter buffer may add or drop a frame in the middle of a sound (seen on
    a busy machine: a 1 s prompt heard with 20 ms of filler in it, 0.56 whole, the
    quarters around the filler above 0.99), so the sound is cut in pieces of
    :data:`PIECE` samples, found one after the other, each within ``slack`` samples of
    where the previous one ends. The score is the normalised cross-correlation of the
    worst piece, but for one piece in the middle of a sound of four pieces or more (the
    piece a frame was put in matches only in part). A piece of digital silence inside
    the sound (a pause in speech) is passed over: its correlation with anything is
    undefined.
    """
    pieces = np.array_split(needle, max(1, len(needle) // PIECE))
    first, start = find_pcm(haystack, pieces[0])
    if start < 0:
        return 0.0, -1, -1
    scores, end = [first], start + len(pieces[0])
    for piece in pieces[1:]:
        if not np.any(piece):  # a pause of digital silence: no score, nothing to place it by
            end += len(piece)
            continue
        low = max(0, end - slack)
        score, at = find_pcm(haystack[low : end + len(piece) + slack], piece)
        if at < 0:
            return 0.0, -1, -1
        scores.append(score)
        end = low + at + len(piece)
    middle = sorted(scores[1:-1])[1:] if len(scores) >= 4 else scores[1:-1]
    return min([scores[0], scores[-1], *middle]), start, end


def contour(x: PCM, step: int = CONTOUR_STEP) -> np.ndarray:
    """Loudness (RMS) of each ``step`` samples of ``x``."""
    n = len(x) // step
    frames = np.asarray(x[: n * step], dtype=np.float64).reshape(n, step)
    loudness: np.ndarray = np.sqrt(np.mean(frames**2, axis=1))
    return loudness


def find_contour(haystack: PCM, needle: PCM, step: int = CONTOUR_STEP) -> tuple[float, int]:
    """Where the loudness contour of ``needle`` best matches ``haystack``'s: the Pearson
    correlation there and its offset in samples; (0.0, -1) when it cannot fit."""
    h, r = contour(haystack, step), contour(needle, step)
    m = len(r)
    if m < 2 or len(h) < m:
        return 0.0, -1
    r = r - r.mean()
    # Pearson's r of every window at once: sum((h - mean) * r) is sum(h * r), as r sums
    # to 0; the windows' spread comes from running sums.
    numerator = np.correlate(h, r, mode="valid")
    s1 = np.concatenate(([0.0], np.cumsum(h)))
    s2 = np.concatenate(([0.0], np.cumsum(h**2)))
    sums, squares = s1[m:] - s1[:-m], s2[m:] - s2[:-m]
    spread = np.sqrt(np.maximum(squares - sums**2 / m, 0.0))
    corr = numerator / np.maximum(spread * np.linalg.norm(r), 1e-12)
    k = int(np.argmax(corr))
    return float(corr[k]), k * step


def tone_frames(x: PCM, freq: float, purity: float = 0.8) -> np.ndarray:
    """Per 20 ms frame of ``x``: True where it is (nearly) a pure sine at ``freq``.

    A sine of amplitude A has mean power A²/2 and power A²/4 at its frequency, so twice
    the one over the other is 1 for it and small for speech, noise or another tone
    (over 160 samples, a tone 20 Hz away gives 0.57, 10 Hz away 0.88).
    """
    n = len(x) // FRAME_SAMPLES
    frames = np.asarray(x[: n * FRAME_SAMPLES], dtype=np.float64).reshape(n, FRAME_SAMPLES)
    basis = np.exp(-2j * np.pi * freq * np.arange(FRAME_SAMPLES) / SAMPLE_RATE)
    at_freq = np.abs(frames @ basis) ** 2 / FRAME_SAMPLES**2
    power = np.mean(frames**2, axis=1)
    result: np.ndarray = (power > 1e-4) & (2 * at_freq > purity * np.maximum(power, 1e-12))
    return result


def dominant_freq(x: PCM, rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency in ``x``, with sub-bin accuracy from zero padding."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=max(len(x), 1 << 16)))
    return float(np.argmax(spec) * rate / (2 * (len(spec) - 1)))
