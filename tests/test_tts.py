"""Tests for :mod:`voip.tts`: real synthesis with libespeak-ng, checked on the audio itself."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from voip import tts
from voip.audio.pcm import SAMPLE_RATE
from voip.errors import InvalidArgumentError, TTSError
from voip.tts import TTStoPCM, TTStoPCMAsync

SENTENCE = "Thank you for calling, please hold while we connect you now."  # 11 words


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))


def seconds(pcm: np.ndarray) -> float:
    return pcm.size / SAMPLE_RATE


def estimate_f0(pcm: np.ndarray) -> float:
    """Median fundamental frequency (Hz) of the voiced 40 ms frames, by autocorrelation."""
    frame, hop = 320, 80
    frames = np.lib.stride_tricks.sliding_window_view(pcm.astype(np.float64), frame)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = np.sum(frames**2, axis=1)
    loud = frames[energy > 0.2 * energy.max()]
    # Autocorrelation through the power spectrum, zero-padded so it does not wrap around.
    spectrum = np.fft.rfft(loud, n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    ac /= ac[:, :1]
    low, high = SAMPLE_RATE // 400, SAMPLE_RATE // 50  # lags for 400 Hz down to 50 Hz
    lags = low + np.argmax(ac[:, low:high], axis=1)
    voiced = ac[np.arange(len(ac)), lags] > 0.5
    assert voiced.sum() >= 10, "too few voiced frames to estimate the pitch"
    return float(np.median(SAMPLE_RATE / lags[voiced]))


def envelope(pcm: np.ndarray) -> np.ndarray:
    """RMS of each 20 ms frame."""
    frames = pcm[: pcm.size // 160 * 160].reshape(-1, 160)
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


def sounds_alike(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` are the same utterance made with the same settings.

    libespeak-ng carries a little state from one utterance to the next (the phase of its
    pitch flutter), so the same text synthesised twice can differ by a few milliseconds
    here and there. So: lengths within 3%, and loudness contours that match once each
    20 ms frame may shift by up to 60 ms. Measured: repeats differ by at most 1.4% in
    length and 0.14 in contour; the thread test's jobs differ by 6% or more in length.
    """
    if abs(a.size - b.size) > 0.03 * max(a.size, b.size):
        return False
    n = min(a.size, b.size)
    env_a, env_b = envelope(a[:n]), envelope(b[:n])
    shifts = 3
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(env_b, shifts, mode="edge"), 2 * shifts + 1
    )
    distance = np.min(np.abs(windows - env_a[:, None]), axis=1)
    return float(np.mean(distance)) < 0.3 * float(np.mean(env_a))


def forget_cache() -> None:
    """Empty the module's result cache so the next calls really synthesise."""
    with tts._cache_lock:
        tts._cache.clear()


def test_speech_is_loud_mono_float32_at_8khz() -> None:
    pcm = TTStoPCM(SENTENCE)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert np.abs(pcm).max() <= 1.0
    assert rms(pcm) > 0.05
    # 11 words at the default 175 words per minute is about 3.8 s; at the library's
    # 22050 Hz the same samples would read as nearly three times longer.
    assert 2.5 < seconds(pcm) < 5.5


def test_longer_text_gives_proportionally_longer_audio() -> None:
    once = TTStoPCM(SENTENCE)
    three_times = TTStoPCM(" ".join([SENTENCE] * 3))
    assert 2.5 < seconds(three_times) / seconds(once) < 3.6


def test_speed_option() -> None:
    slow = TTStoPCM(SENTENCE, ["-s", "80"])
    fast = TTStoPCM(SENTENCE, ["-s", "300"])
    assert seconds(slow) > 2.0 * seconds(fast)


def test_amplitude_option() -> None:
    quiet = TTStoPCM(SENTENCE, ["-a", "20"])
    loud = TTStoPCM(SENTENCE, ["-a", "150"])
    assert rms(quiet) < 0.3 * rms(loud)
    assert rms(quiet) > 0.005  # quieter, not silent


def test_pitch_option_moves_the_fundamental_frequency() -> None:
    text = "Hello, how are you doing today? I am very well, and you are welcome."
    low = estimate_f0(TTStoPCM(text, ["-p", "10"]))
    high = estimate_f0(TTStoPCM(text, ["-p", "90"]))
    assert 50 < low < 150 and 80 < high < 400
    assert high > 1.3 * low


def test_word_gap_option() -> None:
    text = "one two three four five six seven"
    plain = TTStoPCM(text, ["-g", "0"])
    gapped = TTStoPCM(text, ["-g", "50"])
    # Six gaps of 500 ms each: at least a few seconds longer.
    assert seconds(gapped) > seconds(plain) + 2.0


def test_voice_option() -> None:
    text = "Guten Tag, wie geht es Ihnen heute?"
    english = TTStoPCM(text, ["-v", "en-us"])
    german = TTStoPCM(text, ["-v", "de"])
    assert rms(english) > 0.05 and rms(german) > 0.05
    assert not sounds_alike(english, german)


def test_defaults_apply_when_an_option_is_not_given() -> None:
    # The library keeps settings between calls: one call's options must not leak into the next.
    default = TTStoPCM(SENTENCE)
    TTStoPCM("Something else entirely.", ["-s", "80", "-p", "5", "-a", "30", "-g", "20"])
    forget_cache()
    again = TTStoPCM(SENTENCE)
    assert sounds_alike(again, default)
    assert abs(rms(again) / rms(default) - 1) < 0.1
    assert abs(estimate_f0(again) / estimate_f0(default) - 1) < 0.1


def test_compact_and_separate_option_forms_are_equal() -> None:
    compact = TTStoPCM(SENTENCE, ["-s150", "-vde"])
    separate = TTStoPCM(SENTENCE, ["-s", "150", "-v", "de"])
    assert np.array_equal(compact, separate)
    assert not np.array_equal(compact, TTStoPCM(SENTENCE, ["-v", "de"]))  # 150 is not 175


def test_cache_serves_repeats_and_returns_private_copies() -> None:
    text = "This sentence is only used by the cache test."
    first = TTStoPCM(text)
    TTStoPCM("Something else in between, which changes espeak-ng's internal state.")
    again = TTStoPCM(text)
    # libespeak-ng never renders the same text twice to the sample after other text
    # (it keeps state between utterances): bit-identical means it came from the cache.
    # (How fast a cached repeat is, is measured in bench/, not asserted here.)
    assert np.array_equal(again, first)
    reference = first.copy()
    first[:] = 0.5
    again[:] = 0.5
    assert np.array_equal(TTStoPCM(text), reference)


def test_threads_get_the_serial_results() -> None:
    voices = ["en", "en-us", "de", "fr"]
    jobs = [
        (
            f"Caller number {i} is now being connected.",
            ["-v", voices[i % 4], "-s", str(100 + 30 * i)],
        )
        for i in range(8)
    ]
    forget_cache()
    serial = [TTStoPCM(text, opts) for text, opts in jobs]
    forget_cache()

    results: list[np.ndarray | None] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(index: int) -> None:
        barrier.wait()
        results[index] = TTStoPCM(*jobs[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Not bit-identical to the serial run (see sounds_alike), but each thread must get its
    # own utterance with its own settings, not a mixture or another thread's.
    for i, got in enumerate(results):
        assert got is not None
        assert [sounds_alike(got, expected) for expected in serial] == [j == i for j in range(8)]
    # Once made, a prompt is cached: every caller then gets exactly the same samples.
    for (text, opts), got in zip(jobs, results, strict=True):
        assert np.array_equal(TTStoPCM(text, opts), got)


async def test_async_matches_sync_and_keeps_the_loop_running() -> None:
    text = " ".join(
        f"This is sentence number {i} of a rather long announcement." for i in range(20)
    )
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    start = time.perf_counter()
    pcm = await TTStoPCMAsync(text)
    end = time.perf_counter()
    task.cancel()

    during = [start] + [t for t in ticks if start < t < end] + [end]
    assert end - start > 0.03, "synthesis too quick to tell whether the loop was blocked"
    assert len(during) >= 4
    assert max(np.diff(during)) < 0.5 * (end - start)

    assert np.array_equal(pcm, TTStoPCM(text))
    forget_cache()
    fresh = TTStoPCM(text)
    # A minute of speech drifts too much for sounds_alike's frame-by-frame comparison.
    assert abs(fresh.size / pcm.size - 1) < 0.01 and abs(rms(fresh) / rms(pcm) - 1) < 0.05
    # A cached prompt comes back as an equal, independent copy.
    cached = await TTStoPCMAsync(text)
    assert np.array_equal(cached, fresh) and cached is not fresh


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        (["-x", "1"], "unknown TTS option '-x'"),
        (["--speed", "150"], "unknown TTS option"),
        (["-s"], "needs a value"),
        (["-s", "fast"], "whole number, got 'fast'"),
        (["-a", "2.5"], "whole number"),
        (["-p", "150"], "between 0 and 99, got 150"),
        (["-s", "20"], "between 80 and 450"),
        (["-g", "-1"], "between 0 and 500"),
    ],
)
def test_bad_options_raise_tts_error_listing_the_options(opts: list[str], expected: str) -> None:
    with pytest.raises(TTSError) as info:
        TTStoPCM("hello", opts)
    message = str(info.value)
    assert expected in message
    assert "-v VOICE" in message and "-s WPM" in message and "-g GAP" in message


def test_unknown_voice_says_which_voices_exist() -> None:
    with pytest.raises(TTSError) as info:
        TTStoPCM("hello", ["-v", "no-such-voice"])
    message = str(info.value)
    assert "unknown TTS voice 'no-such-voice'" in message
    assert " en-us " in message and " de " in message


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_gives_empty_audio(text: str) -> None:
    pcm = TTStoPCM(text)
    assert pcm.dtype == np.float32 and pcm.shape == (0,)


@pytest.mark.parametrize("text", [None, b"hello", 42, ["hello"]])
def test_non_str_text_is_rejected(text: object) -> None:
    with pytest.raises(InvalidArgumentError, match="text must be a str"):
        TTStoPCM(text)  # type: ignore[arg-type]


def test_text_with_nul_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="NUL"):
        TTStoPCM("hello\0world")


def test_opts_must_be_a_sequence_of_str() -> None:
    with pytest.raises(InvalidArgumentError, match="sequence of strings"):
        TTStoPCM("hello", "-s 150")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="only strings"):
        TTStoPCM("hello", ["-s", 150])  # type: ignore[list-item]
