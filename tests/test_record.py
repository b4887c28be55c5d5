"""call.record() until silence, and the voice-activity waits, over a real bridge and clock.

The caller's side is a Line (tests/test_call.py): a clock thread sending espeak-ng speech
through G.711, with silence, noise or key tones around it, and keeping what the app
plays (the beep).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from voip import InvalidArgumentError, loadWAVtoPCM, savePCMtoWAV
from voip.audio.tones import dtmf_tones
from voip.lifecycle import serve_call
from voip.record import BEEP_SECONDS, Recorded
from voip.tts import TTStoPCM

from .helpers import ROOT, find_pcm, goertzel_power, popen, sigkill, tone_spans, wait_until
from .pcap import mulaw_decode, mulaw_encode
from .test_call import Line

SPEECH = {
    voice: mulaw_decode(mulaw_encode(TTStoPCM("Please call me back about my order.", opts)))
    for voice, opts in {
        "en": ["-v", "en"],
        "en-us+f3": ["-v", "en-us+f3", "-s", "150"],
        "de": ["-v", "de", "-p", "70"],
    }.items()
}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), dtype=np.float32)


def noise(pcm: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """``pcm`` with white noise ``snr_db`` below its speech's level, all the way through."""
    loud = pcm[np.abs(pcm) > 0.01]
    level = float(np.sqrt(np.mean(loud**2))) / 10 ** (snr_db / 20)
    rng = np.random.default_rng(seed)
    return (pcm + rng.normal(0, level, len(pcm))).astype(np.float32)


def speaking(voice: str, after: float, then: float) -> tuple[np.ndarray, float]:
    """The caller's audio: ``after`` s of silence, the sentence, ``then`` s of silence;
    and how long the sentence lasts."""
    speech = SPEECH[voice]
    return np.concatenate([silence(after), speech, silence(then)]), len(speech) / 8000


@pytest.mark.parametrize("voice", sorted(SPEECH))
@pytest.mark.parametrize("snr", [None, 20.0])
async def test_ends_on_silence_after_speech(voice, snr):
    audio, spoken = speaking(voice, after=0.6, then=6)
    if snr is not None:
        audio = noise(audio, snr)
    with Line(audio) as line:
        got = await line.call.record(silence_timeout=1.0)
    assert got.reason == "silence" and got.key == ""
    # Trimmed to the speech with ~0.1 s each side (word ends under noise may be lost).
    assert spoken - 0.3 < got.seconds < spoken + 0.45, (got.seconds, spoken)
    # It ended within silence_timeout + 0.3 s of the speech's end (the caller's audio
    # runs from the answer; the line's clock stops a frame or two after the end).
    speech_end = np.flatnonzero(np.abs(SPEECH[voice]) > 0.01)[-1] / 8000 + 0.6
    elapsed = len(line.audio) / 8000
    assert speech_end + 1.0 <= elapsed <= speech_end + 1.0 + 0.3 + 0.1, (elapsed, speech_end)
    (start, length), *_ = tone_spans(line.audio, 1000)
    assert start < 0.05 and abs(length - BEEP_SECONDS) < 0.03


async def test_silence_before_any_speech_does_not_end_it():
    audio, _spoken = speaking("en", after=2.0, then=3)
    with Line(audio) as line:
        got = await line.call.record(silence_timeout=1.0, beep=False)
    assert got.reason == "silence" and got.seconds > 1.5  # waited for the caller's speech


async def test_ends_on_the_finish_key_and_drops_its_tone():
    audio, spoken = speaking("en", after=0.3, then=0.2)
    key_tone = dtmf_tones("#", on=0.12, off=0.0)
    audio = np.concatenate([audio, key_tone, silence(3)])
    key_at = BEEP_SECONDS + len(audio[: -len(key_tone) - 24000]) / 8000 + 0.06
    with Line(audio) as line:
        asyncio.get_running_loop().call_later(key_at, line.call.feed_dtmf, "#")
        got = await line.call.record(silence_timeout=5)
    assert (got.reason, got.key) == ("finish_on_key", "#")
    tail = got.pcm[-800:]
    assert goertzel_power(tail, 941) < 0.001 and goertzel_power(tail, 1477) < 0.001
    assert spoken - 0.3 < got.seconds < spoken + 0.45


async def test_the_file_holds_the_result_even_untrimmed(tmp_path):
    """The finish key's tone is cut from the file too, trim or no trim."""
    audio, _spoken = speaking("en", after=0.3, then=0.2)
    key_tone = dtmf_tones("#", on=0.12, off=0.0)
    audio = np.concatenate([audio, key_tone, silence(3)])
    key_at = BEEP_SECONDS + len(audio[: -len(key_tone) - 24000]) / 8000 + 0.06
    with Line(audio) as line:
        asyncio.get_running_loop().call_later(key_at, line.call.feed_dtmf, "#")
        got = await line.call.record(trim=False, path=tmp_path / "m.wav", silence_timeout=5)
    assert got.reason == "finish_on_key"
    np.testing.assert_allclose(loadWAVtoPCM(got.path), got.pcm, atol=1 / 32768)
    assert goertzel_power(got.pcm[-800:], 1477) < 0.001


async def test_max_seconds_and_no_trim():
    audio = np.tile(SPEECH["en"], 3)
    with Line(audio) as line:
        got = await line.call.record(max_seconds=1.5, trim=False, beep=False)
    assert got.reason == "max_seconds" and got.seconds == 1.5


async def test_a_hang_up_keeps_the_message_and_the_handler_stores_it(tmp_path):
    """The normal end of a voice mail: the handler is not cancelled, and saves."""
    audio, spoken = speaking("en-us+f3", after=0.3, then=10)
    stored: list[Recorded] = []

    async def handler(call):
        message = await call.record(silence_timeout=5, path=tmp_path / "message.wav")
        stored.append(message)
        assert not call.active  # and still running

    with Line(audio) as line:
        hang_up_at = BEEP_SECONDS + 0.3 + spoken + 0.5
        asyncio.get_running_loop().call_later(hang_up_at, line.call.mark_ended, "remote")
        outcome = await serve_call(handler, line.call)
    assert outcome.error is None and outcome.ended_by == "remote"
    (message,) = stored
    assert message.reason == "hangup" and spoken - 0.3 < message.seconds < spoken + 0.45
    on_disk = loadWAVtoPCM(message.path)
    assert len(on_disk) == len(message.pcm)  # the file holds the trimmed message


async def test_a_hang_up_mid_word_still_trims_the_silence_before():
    """Cut off while speaking: the message starts 0.1 s before the speech all the same."""
    audio, _spoken = speaking("en", after=1.5, then=0)
    with Line(audio) as line:
        asyncio.get_running_loop().call_later(2.5, line.call.mark_ended, "remote")
        got = await line.call.record(silence_timeout=3)
    assert got.reason == "hangup"
    assert 0.9 < got.seconds < 1.25  # 1.5 s to 2.5 s of speech, and the margin before it


async def test_wait_for_speech_and_silence():
    audio, spoken = speaking("de", after=1.0, then=3)
    with Line(audio) as line:
        loop = asyncio.get_running_loop()
        assert await line.call.wait_for_speech(0.5) is False  # silent for 1 s
        assert await line.call.wait_for_speech(2.0) is True
        started = loop.time()
        assert await line.call.wait_for_silence(1.0) is True
        waited = loop.time() - started
    assert spoken < waited < spoken + 1.6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_seconds": 0}, "max_seconds is a number of seconds above 0"),
        ({"silence_timeout": -1}, "silence_timeout is a number of seconds"),
        ({"finish_on_key": "x"}, "not a DTMF key"),
    ],
)
async def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with Line() as line:
        with pytest.raises(InvalidArgumentError, match=message):
            await line.call.record(**kwargs)


RECORDER_APP = """
import sys
from voip import runVoipClient

async def handler(call):
    await call.record(silence_timeout=0, max_seconds=60, path=sys.argv.pop(1))

runVoipClient(handler)
"""


def test_a_process_killed_mid_record_leaves_a_playable_wav(tmp_path):
    """SIGKILL while recording: the WAV holds all but at most the last second."""
    app = tmp_path / "recorder.py"
    app.write_text(textwrap.dedent(RECORDER_APP))
    wav, mic = tmp_path / "message.wav", tmp_path / "mic.wav"
    voice = np.tile(SPEECH["en"], 4)
    savePCMtoWAV(voice, mic)
    with popen(
        [sys.executable, str(app), str(wav), "--no-audio", "--mic", str(mic)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    ) as proc:
        # Killed as soon as 3 s are in the file: the app has recorded 3 to 3.5 s by then.
        wait_until(proc, lambda: wav.exists() and wav.stat().st_size >= 44 + 2 * 8000 * 3)
        sigkill(proc)
    kept = loadWAVtoPCM(wav)  # a valid WAV: its header was kept up to date
    assert 3.0 <= len(kept) / 8000 <= 3.6
    # What it holds is the caller's voice, as sent (after the beep).
    score, offset = find_pcm(voice, kept[:8000])
    assert score > 0.99 and abs(offset / 8000 - BEEP_SECONDS) < 0.05
