"""The pipes that join a sound card's clock to a call's (the softphone's microphone and
speaker)."""

import numpy as np

from voip.audio.engine import Mixer
from voip.audio.pcm import FRAME_SAMPLES
from voip.sound import AudioPipe, PipeSink, PipeSource


def test_pipe_gives_samples_in_order_then_silence_when_dry():
    pipe = AudioPipe()
    first = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    pipe.push(first)
    pipe.push(np.full(100, 0.25, np.float32))
    out = pipe.pull(FRAME_SAMPLES)
    assert np.array_equal(out[:100], first) and (out[100:] == 0.25).all()
    out = pipe.pull(FRAME_SAMPLES)
    assert (out[:40] == 0.25).all() and not out[40:].any()


def test_pipe_drops_the_oldest_samples_beyond_its_bound():
    pipe = AudioPipe(max_seconds=0.04)  # two frames
    for k in range(5):
        pipe.push(np.full(FRAME_SAMPLES, k / 10, np.float32))
    out = pipe.pull(3 * FRAME_SAMPLES)
    expected = np.repeat(np.float32([0.3, 0.4, 0.0]), FRAME_SAMPLES)
    assert np.array_equal(out, expected)


def test_a_mixer_plays_one_pipe_and_records_into_another():
    to_call, to_speaker = AudioPipe(), AudioPipe()
    mixer = Mixer()
    mixer.play(PipeSource(to_call))
    mixer.record(PipeSink(to_speaker))
    mic = np.sin(np.arange(FRAME_SAMPLES, dtype=np.float32) / 7).astype(np.float32) / 2
    to_call.push(mic)  # the sound card's tick
    sent, finished = mixer.process(np.full(FRAME_SAMPLES, 0.125, np.float32))
    assert np.array_equal(sent, mic) and finished == []
    assert (to_speaker.pull(FRAME_SAMPLES) == 0.125).all()
    assert mixer.playing() == ["microphone"] and mixer.recording() == ["speaker"]
