"""Generate the project's audio prompts with its own text to speech.

Run from the repository root::

    python assets/make_assets.py

Every prompt in :data:`PROMPTS` is synthesised with :func:`voip.tts.TTStoPCM`, trimmed of
leading and trailing silence, peak-normalised to :data:`PEAK` and written as a 16-bit
8000 Hz mono WAV file; :data:`JINGLE` is a short tune made with numpy. To add a prompt,
add a line at the end of :data:`PROMPTS` and run the script again. The output is the same
on every run as long as the texts, their order and the espeak-ng version stay the same
(espeak-ng carries a little state from one utterance to the next, so a prompt inserted
earlier in the list changes the later files very slightly).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts assets/ on the path rather than the repository root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from voip.audio.pcm import PCM, SAMPLE_RATE  # noqa: E402
from voip.audio.wav import normalizePCM, savePCMtoWAV  # noqa: E402
from voip.tts import TTStoPCM  # noqa: E402

# Text to speak -> WAV file, relative to the repository root.
PROMPTS: dict[str, str] = {
    "Password correct.": "assets/password_correct.wav",
    "Password incorrect.": "assets/password_incorrect.wav",
    "Please enter your four digit code.": "assets/enter_code.wav",
    "Welcome to the demo phone tree. Enter a four digit code. "
    "Zero zero zero zero for the tones demo, one two three four for the echo test, "
    "or nine nine nine nine to leave a message.": "assets/menu/welcome.wav",
    "Sorry, that code is not valid.": "assets/menu/invalid.wav",
    "Goodbye.": "assets/menu/goodbye.wav",
    "Please speak after the tone. Press any key when you are done.": "assets/record_prompt.wav",
    "Here is what you said.": "assets/playing_back.wav",
    "Sorry, this line is busy. Please call again later.": "assets/busy.wav",
    "Sorry, I did not get that in time.": "assets/timeout.wav",
}

# The jingle, not speech, relative to the repository root.
JINGLE = "assets/my_sound.wav"

# A US English voice, a little slower than espeak's 175 wpm to be clear over a phone line.
TTS_OPTIONS = ["-v", "en-us", "-s", "160"]

# Peak level of every file: loud, with headroom for codecs that overshoot.
PEAK = 0.9

JINGLE_NOTES_HZ = (523.25, 659.25, 783.99)  # C5, E5, G5: a rising major triad
JINGLE_NOTE_SPACING = 0.25  # seconds between note onsets
JINGLE_SECONDS = 1.0
JINGLE_FADE_SECONDS = 0.08

logger = logging.getLogger("make_assets")


def make_jingle() -> PCM:
    """Three rising bell-like notes with a gentle fade in and out, about 1 s long."""
    t = np.arange(int(JINGLE_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    tune = np.zeros_like(t)
    for i, freq in enumerate(JINGLE_NOTES_HZ):
        local = t - i * JINGLE_NOTE_SPACING
        # 10 ms attack, then a bell-like decay that rings on under the next note.
        envelope = np.where(local >= 0, np.minimum(local / 0.01, 1.0) * np.exp(-local / 0.2), 0)
        # A little second harmonic makes it less of a test tone; both are in the phone band.
        tone = np.sin(2 * np.pi * freq * local) + 0.3 * np.sin(4 * np.pi * freq * local)
        tune += envelope * tone
    fade = int(JINGLE_FADE_SECONDS * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)  # raised cosine: no clicks
    tune[:fade] *= ramp
    tune[-fade:] *= ramp[::-1]
    return tune.astype(np.float32)


def write(pcm: PCM, relative_path: str) -> None:
    """Normalise ``pcm`` and save it under the repository root."""
    path = ROOT / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    normalized = normalizePCM(pcm, peak=PEAK)
    savePCMtoWAV(normalized, path)
    logger.info("wrote %s (%.2f s)", relative_path, normalized.size / SAMPLE_RATE)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for text, relative_path in PROMPTS.items():
        write(TTStoPCM(text, TTS_OPTIONS), relative_path)
    write(make_jingle(), JINGLE)


if __name__ == "__main__":
    main()
