"""The mixer, with numbers alone: no threads, no clock, no asyncio."""

import numpy as np
import pytest

from voip.audio.engine import (
    CustomRecorder,
    CustomSource,
    Mixer,
    PCMRecorder,
    PCMSource,
    ToneSource,
)
from voip.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE, as_pcm

from .helpers import dominant_freq, goertzel_power


def run(mixer: Mixer, frames: int, received=None):
    """Process ``frames`` frames; return the concatenated output and finished events."""
    outs, events = [], []
    for k in range(frames):
        rx = None if received is None else received[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]
        out, fin = mixer.process(rx)
        outs.append(out)
        events += [(k, f) for f in fin]
    return np.concatenate(outs), events


def test_tone_has_exact_length_and_frequency():
    m = Mixer()
    h = m.play(ToneSource(420, 0.5))
    out, events = run(m, 30)
    nz = np.flatnonzero(np.abs(out) > 1e-6)
    # 0.5 s at 8 kHz is 4000 samples; sin(0) = 0, so the first audible sample is #1.
    assert nz[-1] + 1 == 4000
    assert abs(dominant_freq(out[:4000]) - 420) < 1
    assert np.all(out[4000:] == 0)
    # Its end is reported in the frame that played its last sample, not one later.
    assert [(k, f.handle, f.ok) for k, f in events] == [(24, h, True)]


def test_tone_length_not_a_whole_number_of_frames():
    m = Mixer()
    m.play(ToneSource(1000, 0.0123))  # 98.4 samples -> 98
    out, events = run(m, 2)
    assert np.flatnonzero(np.abs(out) > 1e-6)[-1] < 98
    assert np.abs(out[90:98]).max() > 0.1
    assert events[0][0] == 0


def test_tone_is_phase_continuous_across_frames():
    m = Mixer()
    m.play(ToneSource(697, 1.0))
    out, _ = run(m, 50)
    expected = np.sin(2 * np.pi * 697 * np.arange(8000) / SAMPLE_RATE)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_mixing_sums_and_clips():
    m = Mixer()
    m.play(ToneSource(400, 0.1, volume=0.3))
    m.play(ToneSource(1300, 0.1, volume=0.3))
    out, _ = run(m, 5)
    n = np.arange(800)
    expected = 0.3 * np.sin(2 * np.pi * 400 * n / 8000) + 0.3 * np.sin(2 * np.pi * 1300 * n / 8000)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert goertzel_power(out, 400) > 0.02 and goertzel_power(out, 1300) > 0.02

    m = Mixer()
    m.play(PCMSource(np.full(320, 0.8, dtype=np.float32)))
    m.play(PCMSource(np.full(320, 0.7, dtype=np.float32)))
    m.play(PCMSource(np.full(320, -0.2, dtype=np.float32)))
    out, _ = run(m, 2)
    assert np.all(out == 1.0)  # 1.3 clips at full scale, it does not wrap to negative


def test_pcm_plays_once_then_reports_end():
    pcm = np.linspace(-1, 1, 1000, dtype=np.float32)
    m = Mixer()
    h = m.play(PCMSource(pcm))
    out, events = run(m, 8)
    np.testing.assert_array_equal(out[:1000], pcm)
    assert np.all(out[1000:] == 0)
    assert [(k, f.handle) for k, f in events] == [(6, h)]  # sample 999 is in frame 6


def test_loop_playback_wraps_seamlessly_until_removed():
    pcm = np.arange(1, 71, dtype=np.float32) / 100  # 70 samples: not a frame divisor
    m = Mixer()
    h = m.play(PCMSource(pcm, loop=True))
    out, events = run(m, 10)
    assert events == []
    np.testing.assert_array_equal(out, np.tile(pcm, 1600 // 70 + 1)[:1600])
    m.remove(h)
    out, _ = run(m, 1)
    assert np.all(out == 0)


def test_remove_mid_playback_silences_from_next_frame():
    m = Mixer()
    h = m.play(ToneSource(500, 10))
    out1, _ = m.process()
    assert np.abs(out1).max() > 0.9
    assert m.remove(h) is None
    out2, events = m.process()
    assert np.all(out2 == 0) and events == []
    assert m.idle


def test_custom_source_gets_time_and_delta_and_stops_on_none():
    seen = []

    def fn(t, delta):
        seen.append((t, delta))
        return None if len(seen) > 250 else 0.5

    m = Mixer()
    h = m.play(CustomSource(fn))
    out, events = run(m, 3)
    assert seen[0] == (0.0, 1 / 8000) and seen[160][0] == pytest.approx(160 / 8000)
    assert np.all(out[:250] == 0.5) and np.all(out[250:] == 0)
    assert [(k, f.handle, f.ok) for k, f in events] == [(1, h, True)]


def test_custom_source_that_raises_ends_only_itself(caplog):
    def broken(t, delta):
        raise ValueError("boom")

    m = Mixer()
    bad = m.play(CustomSource(broken))
    m.play(ToneSource(800, 1))
    out, events = run(m, 2)
    assert events[0][1].handle == bad and not events[0][1].ok
    assert isinstance(events[0][1].error, ValueError)
    assert abs(dominant_freq(out) - 800) < 2  # the other playback goes on
    assert "boom" in caplog.text


def test_recorder_gets_exactly_what_was_received():
    rx = np.random.default_rng(1).uniform(-1, 1, 1600).astype(np.float32)
    m = Mixer()
    h = m.record(PCMRecorder())
    run(m, 10, rx)
    np.testing.assert_array_equal(m.remove(h), rx)


def test_recorder_maxlen_is_exact_mid_frame():
    rx = np.random.default_rng(2).uniform(-1, 1, 1600).astype(np.float32)
    m = Mixer()
    h = m.record(PCMRecorder(maxlen=1000))
    _, events = run(m, 10, rx)
    assert [(k, f.handle) for k, f in events] == [(6, h)]
    np.testing.assert_array_equal(events[0][1].result, rx[:1000])


def test_recorder_does_not_keep_references_to_received_buffers():
    buf = np.ones(FRAME_SAMPLES, dtype=np.float32)
    m = Mixer()
    h = m.record(PCMRecorder())
    m.process(buf)
    buf[:] = 0  # a backend reusing its buffer must not change the recording
    assert np.all(m.remove(h) == 1)


def test_custom_recorder_sample_by_sample_until_false():
    got = []

    def fn(x):
        got.append(x)
        return len(got) < 200

    rx = np.arange(480, dtype=np.float32) / 1000
    m = Mixer()
    h = m.record(CustomRecorder(fn))
    _, events = run(m, 3, rx)
    assert len(got) == 200 and got == pytest.approx(rx[:200].tolist())
    assert [(k, f.handle) for k, f in events] == [(1, h)]


def test_three_playbacks_and_a_recorder():
    rx = np.random.default_rng(3).uniform(-0.5, 0.5, 8000).astype(np.float32)
    m = Mixer()
    m.play(ToneSource(440, 1, 0.2))
    m.play(PCMSource(np.full(8000, 0.1, dtype=np.float32)))
    m.play(PCMSource(np.full(100, -0.1, dtype=np.float32), loop=True))
    h = m.record(PCMRecorder())
    out, events = run(m, 50, rx)
    expected = 0.2 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) + 0.1 - 0.1
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(m.remove(h), rx)
    assert len(events) == 2  # the tone and the one-shot PCM ended; the loop goes on


def test_remove_all_keeps_recordings():
    m = Mixer()
    p = m.play(ToneSource(300, 5))
    r = m.record(PCMRecorder())
    m.process(np.full(FRAME_SAMPLES, 0.25, dtype=np.float32))
    done = {f.handle: f for f in m.remove_all()}
    assert done[p].result is None
    assert len(done[r].result) == FRAME_SAMPLES and np.all(done[r].result == 0.25)
    assert m.idle


def test_received_level_is_tracked():
    m = Mixer()
    m.process(np.full(FRAME_SAMPLES, -0.6, dtype=np.float32))
    assert m.level == pytest.approx(0.6)


def test_as_pcm_clips_accepts_lists_and_rejects_nonsense():
    np.testing.assert_array_equal(as_pcm([0.5, 2, -3]), np.array([0.5, 1, -1], np.float32))
    assert as_pcm(np.zeros((5, 1))).shape == (5,)
    for bad in (np.zeros((2, 2)), ["a", "b"], [float("nan")], "hello"):
        with pytest.raises(ValueError):
            as_pcm(bad)


def test_a_lone_custom_source_is_clipped_too():
    m = Mixer()
    m.play(CustomSource(lambda t, d: 3.0 if t < 0.01 else -3.0))
    out, _ = run(m, 1)
    assert out.max() == 1.0 and out.min() == -1.0


def test_mixing_never_modifies_the_sounds_played():
    pcm = np.full(FRAME_SAMPLES * 2, 0.7, dtype=np.float32)
    m = Mixer()
    m.play(PCMSource(pcm))
    m.play(PCMSource(pcm))
    run(m, 2)
    assert np.all(pcm == 0.7)


def test_tone_longer_than_its_block_stays_exact():
    m = Mixer()
    m.play(ToneSource(697, 2.5))
    out, _ = run(m, 130)
    expected = np.sin(2 * np.pi * 697 * np.arange(20000) / SAMPLE_RATE)
    np.testing.assert_allclose(out[:20000], expected, atol=1e-5)
    assert np.all(out[20000:] == 0)


def test_loop_of_a_sound_shorter_than_a_frame():
    pcm = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    m = Mixer()
    m.play(PCMSource(pcm, loop=True))
    out, _ = run(m, 3)
    np.testing.assert_array_equal(out, np.tile(pcm, 160)[:480])


@pytest.mark.parametrize("freq", [440.0, 437.5, 1000 / 3])
def test_a_whole_tone_at_once_is_the_tone_read_frame_by_frame(freq):
    tone = ToneSource(freq, 1.234, volume=0.8)
    whole = tone.samples()  # first: it must leave the tone where it was, at its start
    frames = np.concatenate([tone.read(FRAME_SAMPLES) for _ in range(70)])
    assert len(whole) == len(frames) == 9872
    np.testing.assert_allclose(whole, frames, atol=1e-6)
