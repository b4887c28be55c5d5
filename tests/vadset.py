"""A fixed set for judging voice activity detectors: espeak-ng speech at 8 kHz through G.711.

Made, not stored: :func:`make_set` synthesises :data:`UTTERANCES` with several espeak-ng
voices, speeds and pitches (:mod:`voip.tts`, 8 kHz), separates them with pauses of 0.6 to
1.4 s of silence and makes one :class:`Condition` per kind of line (:data:`CONDITIONS`):
clean; white and pink noise at 20 and 10 dB SNR; 50 Hz then 60 Hz mains hum with its
harmonics; DTMF key tones in the pauses. Every condition passes through G.711 µ-law and
back, as on a PCMU call. The pauses, noises and keys come from seeded generators (one
per condition, so that a subset of the conditions gets the same noise as the whole set);
espeak-ng gives the same samples for the same texts synthesised in the same order by a
fresh process (in a process that synthesised other text first, an utterance can come out
up to about 1 % longer or shorter, see :mod:`voip.tts`, which moves the scores a little).

Ground truth per 20 ms frame comes from the clean speech: a frame is speech when its
energy is within :data:`TRUTH_DB` of the loudest frame of its utterance (so the weak
ends of words count, breaths and the silence between words do not). Truth carries no
hangover; :func:`score` gives it the hangover the detector aims at before comparing,
so that a detector calling exactly the true frames, with that hangover, scores 1.

Both the tests (``tests/test_vad.py``, a few utterances) and the benchmark
(``bench/vad.py``, all of them) use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voip.audio.pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE
from voip.audio.tones import dtmf_tones
from voip.audio.vad import Hangover, VoiceDetector
from voip.tts import TTStoPCM

from .pcap import mulaw_decode, mulaw_encode

__all__ = [
    "UTTERANCES",
    "CONDITIONS",
    "TRUTH_DB",
    "TRUTH_HANGOVER",
    "Condition",
    "Score",
    "make_set",
    "detect",
    "score",
]

Mask = npt.NDArray[np.bool_]

UTTERANCES: list[tuple[str, list[str]]] = [
    ("Hello, I am calling about my order, number four five six.", ["-v", "en"]),
    ("Could you please tell me when the engineer will arrive?", ["-v", "en-us+f3", "-s", "150"]),
    ("Guten Tag, ich möchte bitte mit dem Kundendienst sprechen.", ["-v", "de", "-s", "140"]),
    ("Bonjour, je voudrais changer l'adresse de livraison.", ["-v", "fr", "-p", "70"]),
    ("Yes. No. Maybe later, thank you very much.", ["-v", "en-gb-scotland", "-s", "200"]),
    ("Buenos días, quiero hablar con un agente, por favor.", ["-v", "es", "-s", "180"]),
    ("My account number is seven two nine, and my name is Smith.", ["-v", "en-us+m3"]),
    ("Il numero della pratica è otto otto tre.", ["-v", "it", "-p", "30", "-s", "220"]),
]
"""Text and espeak-ng options: eight voices, speeds from 140 to 220 words a minute."""

CONDITIONS = ("clean", "white 20 dB", "white 10 dB", "pink 20 dB", "pink 10 dB", "hum", "DTMF")
"""The kinds of line, each a copy of the same speech track."""

TRUTH_DB = 35.0
"""A frame within this many dB of its utterance's loudest frame is speech."""

TRUTH_HANGOVER = 8
"""Frames of hangover (160 ms) the detectors aim at and truth is given by :func:`score`."""

HUM_DB = 10.0
"""Hum this many dB below the speech (RMS over the true speech frames)."""

_DTMF_KEYS = "1#42*0957#83"


@dataclass(frozen=True)
class Condition:
    """One kind of line: its audio and, per whole frame, the truth."""

    name: str
    pcm: PCM
    """The audio after G.711 µ-law, a whole number of frames."""
    speech: Mask
    """True speech frames (no hangover)."""
    tone: Mask
    """Frames holding a DTMF tone (all outside speech); empty but for the DTMF condition."""


@dataclass
class Score:
    """Frame counts of a detector against truth; they add up over conditions."""

    hits: int = 0
    """Speech frames called speech."""
    called: int = 0
    """Frames called speech."""
    speech: int = 0
    """Speech frames (truth, with the hangover)."""
    tones: int = 0
    """Frames holding a DTMF tone."""
    tones_called: int = 0
    """Of those, frames called speech."""

    def __add__(self, other: Score) -> Score:
        return Score(
            self.hits + other.hits,
            self.called + other.called,
            self.speech + other.speech,
            self.tones + other.tones,
            self.tones_called + other.tones_called,
        )

    @property
    def precision(self) -> float:
        return self.hits / self.called if self.called else 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.speech if self.speech else 0.0

    @property
    def tones_as_speech(self) -> float:
        """Share of the DTMF tone frames called speech."""
        return self.tones_called / self.tones if self.tones else 0.0


def _frames(pcm: PCM) -> npt.NDArray[np.float32]:
    return pcm.reshape(-1, FRAME_SAMPLES)


def _whole_frames(pcm: PCM) -> PCM:
    return np.concatenate((pcm, np.zeros(-pcm.size % FRAME_SAMPLES, dtype=np.float32)))


def _frame_energy(pcm: PCM) -> npt.NDArray[np.float64]:
    f = _frames(pcm).astype(np.float64)
    return np.asarray((f * f).mean(axis=1))


def _silence(seconds: float) -> PCM:
    return np.zeros(round(seconds * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_SAMPLES, np.float32)


def _speech_track(
    utterances: Sequence[tuple[str, list[str]]], rng: np.random.Generator
) -> tuple[PCM, Mask, list[tuple[int, int]]]:
    """Pause, utterance, pause, ...: the samples, the truth and each pause's frame range."""
    parts: list[PCM] = []
    truth: list[Mask] = []
    pauses: list[tuple[int, int]] = []
    at = 0
    for text, opts in [*utterances, ("", [])]:
        pause = _silence(rng.uniform(0.6, 1.4))
        parts.append(pause)
        truth.append(np.zeros(pause.size // FRAME_SAMPLES, dtype=np.bool_))
        pauses.append((at, at + truth[-1].size))
        at += truth[-1].size
        if text:
            speech = _whole_frames(TTStoPCM(text, opts))
            energy = _frame_energy(speech)
            parts.append(speech)
            truth.append(energy > energy.max() * 10.0 ** (-TRUTH_DB / 10.0))
            at += truth[-1].size
    return np.concatenate(parts), np.concatenate(truth), pauses


def _noise(kind: str, n: int, rms: float, rng: np.random.Generator) -> PCM:
    """White or pink (power falling 3 dB an octave) noise of the given RMS."""
    x = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        spectrum[0] = 0.0
        spectrum[1:] /= np.sqrt(f[1:])
        x = np.fft.irfft(spectrum, n)
    return (x * (rms / np.sqrt(np.mean(x * x)))).astype(np.float32)


def _hum(n: int, rms: float) -> PCM:
    """50 Hz mains hum for the first half, 60 Hz for the second, harmonics up to 1 kHz."""
    t = np.arange(n) / SAMPLE_RATE
    x = np.zeros(n)
    for base, part in ((50, slice(0, n // 2)), (60, slice(n // 2, n))):
        for k in range(1, 1000 // base + 1):
            x[part] += np.sin(2 * np.pi * base * k * t[part] + k) / k
    return (x * (rms / np.sqrt(np.mean(x * x)))).astype(np.float32)


def _with_keys(
    pcm: PCM, pauses: list[tuple[int, int]], rng: np.random.Generator
) -> tuple[PCM, Mask]:
    """DTMF keys in every pause, clear of the truth's hangover on both sides."""
    out = pcm.copy()
    tone = np.zeros(pcm.size // FRAME_SAMPLES, dtype=np.bool_)
    keys = iter(_DTMF_KEYS * len(pauses))
    for first, end in pauses:
        at = (first + TRUTH_HANGOVER + 2) * FRAME_SAMPLES
        last = (end - 4) * FRAME_SAMPLES  # a key ends 80 ms before the next utterance
        for _ in range(int(rng.integers(1, 4))):
            on = rng.uniform(0.05, 0.25)
            key = dtmf_tones(next(keys), on=on, off=0.0)
            if at + key.size > last:
                break
            out[at : at + key.size] += key
            tone[at // FRAME_SAMPLES : -(-(at + key.size) // FRAME_SAMPLES)] = True
            at += key.size + round(rng.uniform(0.06, 0.15) * SAMPLE_RATE)
    return out, tone


def _g711(pcm: PCM) -> PCM:
    return mulaw_decode(mulaw_encode(pcm))


def make_set(
    utterances: Sequence[tuple[str, list[str]]] = UTTERANCES,
    conditions: Sequence[str] = CONDITIONS,
    seed: int = 1,
) -> list[Condition]:
    """The set: one :class:`Condition` per name in ``conditions``, all of the same speech."""
    unknown = [name for name in conditions if name not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; choose from {CONDITIONS}")
    clean, truth, pauses = _speech_track(utterances, np.random.default_rng(seed))
    speech_rms = float(np.sqrt(_frame_energy(clean)[truth].mean()))
    no_tone = np.zeros(truth.size, dtype=np.bool_)
    out = []
    for name in conditions:
        # Each condition its own generator: a subset gets the same noise as the whole set.
        rng = np.random.default_rng((seed, CONDITIONS.index(name)))
        tone = no_tone
        if name == "clean":
            line = clean
        elif name.startswith(("white ", "pink ")):
            kind, snr, _ = name.split()
            level = speech_rms * 10.0 ** (-float(snr) / 20.0)
            line = clean + _noise(kind, clean.size, level, rng)
        elif name == "hum":
            line = clean + _hum(clean.size, speech_rms * 10.0 ** (-HUM_DB / 20.0))
        else:  # DTMF
            line, tone = _with_keys(clean, pauses, rng)
        out.append(Condition(name, _g711(line), truth, tone))
    return out


def detect(detector: VoiceDetector, condition: Condition) -> Mask:
    """The detector's call for every frame of ``condition``, from a fresh state."""
    detector.reset()
    return np.array([detector.is_speech(f) for f in _frames(condition.pcm)], dtype=np.bool_)


def score(called: Mask, condition: Condition, hangover: int = TRUTH_HANGOVER) -> Score:
    """How ``called`` (one bool per frame) compares with the truth given ``hangover``."""
    hold = Hangover(hangover)
    truth = np.array([hold(bool(s)) for s in condition.speech], dtype=np.bool_)
    return Score(
        hits=int((called & truth).sum()),
        called=int(called.sum()),
        speech=int(truth.sum()),
        tones=int(condition.tone.sum()),
        tones_called=int((called & condition.tone).sum()),
    )
