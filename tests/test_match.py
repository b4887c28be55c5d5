"""voip.audio.match: a sound, speech and a tone found in audio, by content."""

import numpy as np

from voip.audio.match import dominant_freq, find_contour, find_pcm, find_sound, tone_frames
from voip.tts import TTStoPCM

from .helpers import tone


def test_find_pcm_finds_an_exact_copy_and_where():
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, 4000).astype(np.float32)
    haystack = np.concatenate([np.zeros(1234, np.float32), noise, np.zeros(500, np.float32)])
    score, at = find_pcm(haystack, noise)
    assert score > 0.999 and at == 1234
    assert find_pcm(noise[:10], noise) == (0.0, -1)


def test_find_contour_finds_a_phrase_spoken_inside_a_sentence():
    gap = np.zeros(4000, np.float32)
    sentence = TTStoPCM("For sales press 1, for support press 2")
    heard = np.concatenate([gap, TTStoPCM("Welcome to Acme"), gap, sentence, gap])
    start = len(heard) - len(gap) - len(sentence)
    match, at = find_contour(heard, TTStoPCM("For sales press 1"))
    assert match > 0.95 and abs(at - start) < 800
    assert find_contour(heard, TTStoPCM("Welcome to Acme"))[0] > 0.999
    assert find_contour(heard, TTStoPCM("Connecting you to sales"))[0] < 0.6
    assert find_contour(gap, sentence) == (0.0, -1)


def test_tone_frames_tell_a_tone_from_its_neighbours_and_from_speech():
    x = np.concatenate([tone(420, 0.5), tone(440, 0.5), TTStoPCM("hello")])
    at_420 = tone_frames(x, 420)
    assert at_420[:25].all() and not at_420[25:].any()
    assert tone_frames(x, 440)[25:50].all() and not tone_frames(x, 440)[:25].any()
    assert abs(dominant_freq(x[:4000]) - 420) < 1


def test_find_sound_finds_a_sound_a_jitter_buffer_stretched():
    sound = np.random.default_rng(2).uniform(-0.5, 0.5, 8000).astype(np.float32)
    filler = np.zeros(160, np.float32)  # a frame of concealment, mid-sound
    heard = np.concatenate([np.zeros(999, np.float32), sound[:5000], filler, sound[5000:]])
    assert find_pcm(heard, sound)[0] < 0.9  # whole, it no longer matches
    score, start, end = find_sound(heard, sound)
    assert score > 0.999 and (start, end) == (999, 999 + 8160)
    assert find_sound(heard, sound[::-1])[0] < 0.2


def test_find_sound_wants_the_whole_sound():
    sound = np.random.default_rng(3).uniform(-0.5, 0.5, 8000).astype(np.float32)
    heard = np.concatenate([np.zeros(500, np.float32), sound])
    assert find_sound(heard, sound)[0] > 0.999
    assert find_sound(heard[:-300], sound)[0] < 0.5  # its last 40 ms not heard yet


def test_find_sound_passes_over_a_pause_of_digital_silence_inside_the_sound():
    rng = np.random.default_rng(4)
    words = [rng.uniform(-0.5, 0.5, 6000).astype(np.float32) for _ in range(2)]
    sound = np.concatenate([words[0], np.zeros(4000, np.float32), words[1]])
    heard = np.concatenate([np.zeros(700, np.float32), sound, words[0]])
    score, start, end = find_sound(heard, sound)
    assert score > 0.999 and (start, end) == (700, 700 + len(sound))
