"""Signals made of tones: DTMF key tones (for sending keys in-band), hold music and
ringback."""

from __future__ import annotations

import numpy as np

from .pcm import PCM, SAMPLE_RATE

__all__ = ["DTMF_FREQS", "dtmf_tones", "HOLD_NOTES", "hold_music", "RINGBACK", "ringback_tone"]

_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_LAYOUT = ("123A", "456B", "789C", "*0#D")

DTMF_FREQS: dict[str, tuple[float, float]] = {
    key: (_ROWS[r], _COLS[c]) for r, row in enumerate(_LAYOUT) for c, key in enumerate(row)
}
"""Each key's (low, high) frequency in Hz."""


def dtmf_tones(keys: str, on: float = 0.1, off: float = 0.1, level: float = 0.25) -> PCM:
    """The keys as dual tones, ``on`` seconds each with ``off`` seconds of silence after.

    ``level`` is each tone's peak (0.25 is about -12 dBFS per tone, a typical phone's).
    Keys must be valid DTMF keys (see :data:`DTMF_FREQS`).
    """
    n_on, n_off = int(round(on * SAMPLE_RATE)), int(round(off * SAMPLE_RATE))
    t = np.arange(n_on) / SAMPLE_RATE
    gap = np.zeros(n_off, dtype=np.float32)
    parts = []
    for key in keys:
        low, high = DTMF_FREQS[key]
        tone = level * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
        parts += [tone.astype(np.float32), gap]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


HOLD_NOTES: tuple[float, ...] = (400.0, 500.0, 600.0, 800.0, 600.0, 500.0)
"""The notes of :func:`hold_music`, in Hz: a major triad (4:5:6) up to the octave and
down again. Multiples of 100 Hz, so that a test can tell each note apart in 10 ms."""


def hold_music(note: float = 0.4, level: float = 0.3) -> PCM:
    """A gentle arpeggio to loop while a caller waits (:class:`voip.Queue`): the
    :data:`HOLD_NOTES`, ``note`` seconds each with 30 ms raised-cosine fades (no clicks),
    peaking at ``level``. It loops seamlessly: it starts and ends at silence."""
    n = int(round(note * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    fade = int(0.03 * SAMPLE_RATE)
    envelope = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    envelope[:fade], envelope[n - fade :] = ramp, ramp[::-1]
    notes = [level * envelope * np.sin(2 * np.pi * freq * t) for freq in HOLD_NOTES]
    return np.concatenate(notes).astype(np.float32)


RINGBACK: dict[str, tuple[tuple[float, ...], float, float]] = {
    "us": ((440.0, 480.0), 2.0, 4.0),
    "eu": ((425.0,), 1.0, 4.0),
}
"""Ringback cadences: frequencies in Hz, seconds on, seconds off. ``us``: North America
(ANSI T1.401: 440 + 480 Hz, 2 s on, 4 s off); ``eu``: the ETSI / CEPT tone most of
Europe uses (425 Hz, 1 s on, 4 s off)."""


def ringback_tone(style: str = "us", level: float = 0.1) -> PCM:
    """One cycle of the ring tone a caller hears while the far end rings (the tone,
    then the silence), to play looped. ``level``: each frequency's peak (0.1 is about
    -20 dBFS, quieter than speech, as ring tones are)."""
    freqs, on, off = RINGBACK[style]
    t = np.arange(int(round(on * SAMPLE_RATE))) / SAMPLE_RATE
    ring = sum(level * np.sin(2 * np.pi * f * t) for f in freqs)
    silence = np.zeros(int(round(off * SAMPLE_RATE)), dtype=np.float32)
    return np.concatenate([np.asarray(ring, dtype=np.float32), silence])
