"""voip.audio.links: a speaker's tap, a listener's feed, and the queues between them."""

from __future__ import annotations

import numpy as np

from voip.audio.links import KEEP_QUEUED, MAX_QUEUED, PREFILL, Feed, Tap, link, unlink
from voip.audio.pcm import FRAME_SAMPLES


def frame(value: float) -> np.ndarray:
    return np.full(FRAME_SAMPLES, value, dtype=np.float32)


def heard(feed: Feed) -> float:
    """The value of the frame the feed plays next (each test frame is constant)."""
    return round(float(feed.read(FRAME_SAMPLES)[0]), 3)


def test_a_feed_plays_once_the_queue_holds_its_prefill_then_in_order():
    tap, feed = Tap(), Feed()
    link(tap, feed)
    tap.write(frame(0.1))
    assert heard(feed) == 0.0  # one frame: not yet
    tap.write(frame(0.2))
    assert PREFILL == 2
    assert [heard(feed)] == [0.1]
    tap.write(frame(0.3))
    assert [heard(feed), heard(feed)] == [0.2, 0.3]
    assert heard(feed) == 0.0  # ran dry: silence, and it waits to be refilled
    tap.write(frame(0.4))
    assert heard(feed) == 0.0
    tap.write(frame(0.5))
    assert heard(feed) == 0.4


def test_a_speaker_running_ahead_builds_no_delay():
    tap, feed = Tap(), Feed()
    link(tap, feed)
    for k in range(1, 20):
        tap.write(frame(k / 100))
    # The queue kept the last MAX_QUEUED; the feed skips to leave KEEP_QUEUED behind.
    assert heard(feed) == round((19 - KEEP_QUEUED) / 100, 3)
    assert MAX_QUEUED > KEEP_QUEUED


def test_a_listener_hears_the_sum_of_its_speakers_and_each_speaker_feeds_every_listener():
    a, b = Tap(), Tap()
    x, y = Feed(), Feed()
    for tap in (a, b):
        link(tap, x)
    link(a, y)
    for _ in range(PREFILL):
        a.write(frame(0.1))
        b.write(frame(0.25))
    assert heard(x) == 0.35
    assert heard(y) == 0.1
    unlink(b, x)
    assert heard(x) == 0.1
    unlink(b, y)  # never linked: nothing happens
    assert heard(y) == 0.1


def test_a_muted_tap_hands_out_silence_and_copies_what_it_hands_out():
    tap, feed = Tap(), Feed()
    link(tap, feed)
    buffer = frame(0.5)
    tap.write(buffer)
    buffer[:] = 0.9  # the backend reuses its buffer for the next frame
    tap.muted = True
    tap.write(buffer)
    assert [heard(feed), heard(feed)] == [0.5, 0.0]
