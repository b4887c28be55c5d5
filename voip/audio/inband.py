"""In-band DTMF detection: keypad tones found in the received audio, with numpy alone.

Some PBXs and phones send keys as audio (two sine tones, ITU-T Q.23) rather than as
RFC 4733 events or SIP INFO, and PJSIP does not look for them. Feed every received frame
to :class:`InbandDTMFDetector` and it returns each key press once, in the frame in which
the press is confirmed (28 to 34 ms after the tone starts).

Pure: no threads, no clock, no asyncio. It counts samples, so the keys and the sample at
which each is confirmed do not depend on how the audio is cut into frames, and the same
audio always gives the same keys. A 20 ms frame costs about 10 us of silence or noise,
15 us of speech and 35 us while a key sounds (measured on one AMD EPYC server core).

How it works
------------
The audio is cut into blocks of :data:`BLOCK` samples (13.25 ms) that start every
:data:`HOP` samples (2.5 ms). One matrix product gives, for all the blocks of a frame at
once, the DFT at the eight DTMF frequencies (a Goertzel filter bank); a second gives the
energy of each block's two halves. Blocks whose eight bins hold little of the energy
(silence, noise, most speech) stop there. The others are checked in full, again all at
once, and get a verdict: a vote for one key, or nothing. A block votes for the key of its
strongest row and strongest column when:

- **level**: each tone is at least :data:`MIN_TONE_DBFS` (-30 dBm0);
- **twist**: the row tone is at most :data:`NORMAL_TWIST_DB` above the column tone and
  the column tone at most :data:`REVERSE_TWIST_DB` above the row tone;
- **purity**: the two tones carry at least :data:`TONE_TO_TOTAL` of the block's energy,
  which rejects a third strong frequency, two rows or columns at once, speech, music and
  strong noise;
- **frequency**: each tone is within :data:`FREQ_TOLERANCE` of nominal, measured from
  how far its phase advances in :data:`LAG` hops (5 ms) beyond what the nominal
  frequency would give, after the other tone's leakage into its bin has been taken out;
  the powers used by the other checks are corrected for the window's loss at that offset;
- **steadiness**: the two halves of the block differ in energy by at most
  :data:`HALF_RATIO`, so that a block in which a tone starts, stops or breaks is no vote.

A key is confirmed (and reported) at its :data:`HITS_TO_CONFIRM`-th vote; votes need not
be consecutive, but :data:`MISSES_TO_RELEASE` blocks in a row without one start the count
again. A confirmed key stays pressed until that many blocks in a row pass without a vote
for it; only then can the same key be reported again. Votes for another key start that
key's own count, so one stray vote never splits or ends a press.

Block length, hop and vote counts set the timing: a tone of T samples fills about
(T - 74) / 20 + 1 blocks well enough to vote (a block needs 85 % of its samples in the tone
to pass purity and steadiness), and a break of B samples costs about (B + 74) / 20 votes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from .pcm import PCM, SAMPLE_RATE

__all__ = [
    "InbandDTMFDetector",
    "ROW_FREQS",
    "COL_FREQS",
    "BLOCK",
    "HOP",
    "LAG",
    "DBM0_DBFS",
    "MIN_TONE_DBFS",
    "NORMAL_TWIST_DB",
    "REVERSE_TWIST_DB",
    "TONE_TO_TOTAL",
    "FREQ_TOLERANCE",
    "HALF_RATIO",
    "HITS_TO_CONFIRM",
    "MISSES_TO_RELEASE",
]

ROW_FREQS = (697.0, 770.0, 852.0, 941.0)
"""The low group (keypad rows), Hz."""

COL_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
"""The high group (keypad columns), Hz."""

_KEYS = "123A456B789C*0#D"  # row-major: key index = 4 * row + column

BLOCK = 106
"""Samples per analysis block (13.25 ms). Its bin width, 75.5 Hz, puts each row tone at or
near the first zero of its neighbours' bins (they are 73-89 Hz apart), while a 23 ms tone
is still too short to fill enough blocks to be confirmed."""

HOP = 20
"""Samples between block starts (2.5 ms): eight blocks per 20 ms frame. The fine hop makes
the shortest confirmed tone depend little on where it starts relative to the blocks."""

LAG = 2
"""Blocks between the two phase readings that measure a tone's frequency (40 samples,
5 ms): unambiguous up to +/-100 Hz off nominal, which covers 3.5 % of 1633 Hz."""

DBM0_DBFS = -3.14
"""Level of a 0 dBm0 sine relative to a full-scale sine (G.711 A-law; mu-law: -3.17)."""

MIN_TONE_DBFS = -30.0 + DBM0_DBFS
"""Weakest accepted tone, per tone, in dB relative to a full-scale sine (peak 1.0, 0 dBFS):
-30 dBm0 = -33.1 dBFS, a sine of peak amplitude 0.022. In fact tones of -32 dBFS are
accepted and tones of -34 dBFS rejected."""

NORMAL_TWIST_DB = 9.5
"""How much louder the row (low-group) tone may be than the column tone, in dB. "Normal"
twist is this direction, the usual one (lines lose more of the high group), as in
Q.24-style receiver specifications and in spandsp and Asterisk. Q.24 asks for 8 dB; the
limit leaves 1.5 dB for the estimate's scatter, so that 8.5 dB is accepted and 10.5 dB or
more rejected."""

REVERSE_TWIST_DB = 5.5
"""How much louder the column (high-group) tone may be than the row tone, in dB ("reverse"
twist). Q.24 asks for 4 dB: 4.5 dB is accepted, 6 dB or more rejected."""

TONE_TO_TOTAL = 0.85
"""Share of a block's energy (mean square, DC included) that the two tones must carry:
everything else together may be at most -7.5 dB relative to them. White noise 15 dB below
the tones takes 3 %; voiced speech and chords leave 20 % or more outside the two bins."""

FREQ_TOLERANCE = 0.025
"""Largest accepted deviation of each tone from nominal, as a fraction: halfway between
Q.24's must-accept 1.5 % and must-reject 3.5 %. With the scatter of the estimate, 2 % is
accepted and 2.8 % rejected."""

HALF_RATIO = 2.0
"""Largest energy ratio between a block's two halves (3 dB). A block that a tone covers by
less than 75 % fails it, whatever the level, so that votes measure the tone's length."""

HITS_TO_CONFIRM = 8
"""Votes that confirm a key. Every tone of 33.1 ms (265 samples) or more fills at least 8
whole blocks. In 15 dB of noise, with any twist and frequency offset that Q.24 accepts,
tones of 35 ms or more are always confirmed, 31 ms 9 times in 10, 29 ms 4 times in 10,
27 ms rarely and 25 ms or less never (Q.24: confirm 40 ms, reject under 23 ms; 23 ms is
rejected)."""

MISSES_TO_RELEASE = 14
"""Blocks in a row without a vote (35 ms of block starts) that end a press. In practice
breaks of up to 20 ms inside a tone never split a press (Q.24: 10 ms) and pauses of 28 ms
or more always separate two presses of the same key (Q.24: 40 ms); in between, the longer
the pause, the likelier two keys."""


def _tables() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.complex128]]:
    """The analysis matrix and the per-key constants, computed once at import."""
    freqs = np.array(ROW_FREQS + COL_FREQS)
    n = np.arange(BLOCK)
    # Columns: (cos, -sin) interleaved for the 8 frequencies, so that the product viewed as
    # complex is the DFT, scaled so that |X|^2 is the mean-square power (A^2 / 2) of a tone
    # at that frequency.
    omega = 2.0 * np.pi * freqs / SAMPLE_RATE
    m = np.zeros((BLOCK, 16))
    m[:, 0::2] = np.cos(np.outer(n, omega)) * (np.sqrt(2.0) / BLOCK)
    m[:, 1::2] = -np.sin(np.outer(n, omega)) * (np.sqrt(2.0) / BLOCK)

    rows = np.repeat(np.arange(4), 4)  # key index = 4 * row + column
    cols = np.tile(np.arange(4), 4) + 4
    pair_f = np.stack((freqs[rows], freqs[cols]), axis=1)
    # Leakage of a unit tone at the column frequency into the row bin (the column bin sees
    # the conjugate): the rectangular window's response at their distance.
    w = np.exp(1j * np.outer(omega[cols] - omega[rows], n)).mean(axis=1)
    k = np.zeros((16, 6), dtype=np.complex128)
    k[:, 0], k[:, 1] = w, w.conj()
    # The phase a nominal tone advances over LAG hops, to be taken off.
    k[:, 2:4] = np.exp(-2j * np.pi * pair_f * (LAG * HOP) / SAMPLE_RATE)
    # The extra advance of a tone FREQ_TOLERANCE off nominal: the largest accepted.
    k[:, 4:6] = 2.0 * np.pi * FREQ_TOLERANCE * pair_f * (LAG * HOP) / SAMPLE_RATE
    return m, k


_M, _KEYCONST = _tables()
_SEL = np.stack((np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4) + 4), axis=1)
_ROW_COL = np.array([4, 1])  # (best row, best column) -> key index
_SINC = BLOCK / (2.0 * LAG * HOP)  # extra phase advance -> pi * (offset in bins)

_MIN_POWER = 10.0 ** (MIN_TONE_DBFS / 10.0) / 2.0  # mean-square power of that sine
_GATE = 0.4
"""The first look passes blocks in which the eight bins together hold at least 0.4 times
the share the two tones need (TONE_TO_TOTAL) of the block's energy. A pair 2.5 % off
nominal, where the window loses up to 4.7 dB of the column tone, with the largest twist
and 15 dB of noise still holds 0.39 of it. Silence, noise and most speech stop there."""

# Squared DFT parts -> the 8 tone powers (rows, then columns) and their sum.
_POWERS = np.zeros((16, 9))
_POWERS[np.arange(16), np.arange(16) // 2] = 1.0
_POWERS[:, 8] = 1.0
# Squared samples -> first half minus second half, then the block's mean square times 1,
# the gate's share, TONE_TO_TOTAL, and the steadiness limit: |h0 - h1| <= that * (h0 + h1).
_HALVES = np.outer(
    np.ones(BLOCK) / BLOCK,
    [1.0, 1.0, _GATE * TONE_TO_TOTAL, TONE_TO_TOTAL, (HALF_RATIO - 1.0) / (HALF_RATIO + 1.0)],
)
_HALVES[BLOCK // 2 :, 0] *= -1.0
# (row, column) power -> row, column, room for normal twist, room for reverse twist, and
# the sum (for purity, once TONE_TO_TOTAL * mean square is taken off): all >= _FLOOR.
_CHECKS = np.array(
    [
        [1.0, 0.0, -1.0, 10.0 ** (REVERSE_TWIST_DB / 10.0), 1.0],
        [0.0, 1.0, 10.0 ** (NORMAL_TWIST_DB / 10.0), -1.0, 1.0],
    ]
)
_FLOOR = np.array([_MIN_POWER, _MIN_POWER, 0.0, 0.0, 0.0])

_MAX_BLOCKS = 64  # index tables cover feeds of up to about 1.4 k samples
_ARANGE = np.arange(_MAX_BLOCKS)
_IDX = _ARANGE[:, None] * HOP + np.arange(BLOCK)
_NOW_OLD = np.stack((_ARANGE + LAG, _ARANGE))[:, :, None]  # rows of now / LAG blocks ago
_EMPTY = np.zeros(0)


class InbandDTMFDetector:
    """Finds DTMF key presses in a stream of received PCM (8000 Hz, float in [-1, 1]).

    :meth:`feed` takes any number of samples at a time and returns the keys (from
    ``"0123456789*#ABCD"``) whose press was confirmed within them, each physical press
    once. How the stream is cut does not matter: feeding 160, 37 or 1000 samples at a
    time gives the same keys, each confirmed at the same sample.

    Accepted, and reported once (figures from ITU-T Q.24 as commonly summarised; "in
    fact" gives what the tests measure):

    - one row tone (697, 770, 852, 941 Hz) plus one column tone (1209, 1336, 1477,
      1633 Hz), each within 1.5 % of nominal (in fact 2 %);
    - each tone at -30 dBm0 (-33.1 dBFS, a sine of peak 0.022; in fact -32 dBFS) or
      louder, up to full scale;
    - the row tone up to 8 dB louder than the column tone (normal twist; in fact 8.5 dB)
      or the column tone up to 4 dB louder than the row tone (reverse twist; in fact
      4.5 dB);
    - lasting 40 ms or more (in fact 35 ms), at any phase and starting anywhere in a frame;
    - with white noise 15 dB below the pair, or any other sound (a third tone, speech)
      10 dB or more below it;
    - with breaks (drop-outs) of up to 10 ms (in fact 20 ms), which do not split the
      press; a long press is one key.

    Rejected (no key):

    - tones of 23 ms or less (in fact 25 ms or less; 26 and 27 ms rarely pass);
    - either tone 3.5 % or more off nominal (in fact 2.8 %), or a frequency that is not
      a DTMF frequency;
    - twist of 10.5 dB normal or 6 dB reverse and more;
    - a single tone, two rows or two columns at once, and a DTMF pair with a third tone
      (or other sound) less than 7.5 dB below it: speech and music give no keys;
    - tones weaker than -30 dBm0 per tone (in fact -34 dBFS and below).

    The same key is reported again when its tone pauses for 40 ms (in fact 28 ms) or more;
    another key is reported as soon as it is confirmed, with or without a pause.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget all audio and any press in progress (for a new call or stream)."""
        self._tail: npt.NDArray[np.float64] = _EMPTY
        self._hist = np.zeros((LAG, 8), dtype=np.complex128)  # last LAG blocks' DFTs
        self._active = -1  # key index pressed now (reported), -1: none
        self._idle = 0  # blocks since the last vote for it
        self._cand = -1  # key index being counted towards confirmation, -1: none
        self._hits = 0  # votes for it
        self._misses = 0  # blocks since the last vote for any key

    def feed(self, frame: PCM | npt.ArrayLike) -> list[str]:
        """Analyse ``frame`` (any number of samples); return the keys confirmed in it.

        ``frame`` is PCM or any 1-D sequence of finite numbers; values outside [-1, 1]
        are not clipped (nothing here needs it). Samples after the last whole block are
        kept for the next call. Raises :class:`InvalidArgumentError` if ``frame`` is not
        a 1-D sequence of numbers.
        """
        x = np.asarray(frame)
        if x.ndim != 1 or x.dtype.kind not in "fiu":
            raise InvalidArgumentError(
                f"frame must be a 1-D sequence of samples, got {type(frame).__name__} "
                f"with shape {x.shape} and dtype {x.dtype}"
            )
        buf = np.concatenate((self._tail, x))
        nb = (buf.size - BLOCK) // HOP + 1
        if nb <= 0:
            self._tail = buf
            return []
        self._tail = buf[nb * HOP :]
        if nb <= _MAX_BLOCKS:
            blocks = buf[_IDX[:nb]]
        else:
            blocks = buf[np.arange(nb)[:, None] * HOP + np.arange(BLOCK)]

        z = blocks @ _M  # (nb, 16): cos/sin pairs for the 8 frequencies
        power = (z * z) @ _POWERS  # (nb, 9): power at each frequency, and their sum
        half = (blocks * blocks) @ _HALVES  # (nb, 5), see _HALVES
        maybe = power[:, 8] > half[:, 2]
        dft = z.view(np.complex128)  # (nb, 8)
        if not maybe.any():
            self._hist = np.concatenate((self._hist, dft))[-LAG:] if nb < LAG else dft[-LAG:]
            self._idle += nb
            self._misses += nb
            if self._idle >= MISSES_TO_RELEASE:
                self._active = -1
            if self._misses >= MISSES_TO_RELEASE:
                self._cand = -1
            return []

        every = np.concatenate((self._hist, dft))  # (LAG + nb, 8)
        self._hist = every[-LAG:]
        key = power[:, :8].reshape(nb, 2, 4).argmax(axis=2) @ _ROW_COL
        kc = _KEYCONST[key]
        now_old = _NOW_OLD[:, :nb] if nb <= _MAX_BLOCKS else _now_old(nb)
        s = every[now_old, _SEL[key]]  # (2, nb, 2): [now, LAG blocks ago] x [row, col]
        # Take each tone's leakage out of the other's bin (to first order: |w| < 0.09).
        b = s - kc[:, 0:2] * s[..., ::-1]
        q = b[0] * b[1].conj() * kc[:, 2:4]
        advance = np.abs(np.arctan2(q.imag, q.real))  # (nb, 2) phase advance off nominal
        limit = kc[:, 4:6].real
        # Undo the window's loss for an off-frequency tone (power / sinc^2); a tone beyond
        # the tolerance gets no power at all, so that it fails the level check.
        y = np.minimum(advance, limit) * _SINC + 1e-9
        gain = (y / np.sin(y)) * (advance <= limit)
        tone = np.abs(b[0] * gain) ** 2  # (nb, 2) row and column power
        checks = tone @ _CHECKS
        checks[:, 4] -= half[:, 3]
        ok = (checks >= _FLOOR).all(axis=1) & (np.abs(half[:, 0]) <= half[:, 4])
        return self._decide(np.where(ok, key, -1).tolist())

    def _decide(self, votes: list[int]) -> list[str]:
        """Run the press state machine over one verdict per block (-1: no vote)."""
        out: list[str] = []
        for v in votes:
            if v >= 0:
                self._misses = 0
                if v == self._active:
                    self._idle = 0
                    self._cand, self._hits = v, HITS_TO_CONFIRM
                    continue
                if v != self._cand:
                    self._cand, self._hits = v, 0
                self._hits += 1
                if self._hits >= HITS_TO_CONFIRM:
                    self._active, self._idle = v, 0
                    out.append(_KEYS[v])
                    continue
            else:
                self._misses += 1
                if self._misses >= MISSES_TO_RELEASE:
                    self._cand = -1
            self._idle += 1
            if self._idle >= MISSES_TO_RELEASE:
                self._active = -1
        return out


def _now_old(nb: int) -> npt.NDArray[np.intp]:
    ar = np.arange(nb)
    return np.stack((ar + LAG, ar))[:, :, None]
