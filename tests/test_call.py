"""The Call API over a real bridge driven by a real 20 ms clock thread."""

import asyncio
import threading

import numpy as np
import pytest

from voip import CallEndedError, InvalidArgumentError, RecordController
from voip.audio.pcm import FRAME_SAMPLES
from voip.bridge import MediaBridge
from voip.call import Call, CallInfo
from voip.lifecycle import check_handler, serve_call
from voip.sound import FrameClock

from .helpers import dominant_freq, segments, tone


class Line:
    """A call whose far end is a clock thread: it sends ``caller_audio`` and keeps what
    the call plays, frame by frame, as a phone would."""

    def __init__(self, caller_audio: np.ndarray | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.bridge = MediaBridge(self.loop)
        self.hangups = 0
        self.call = Call(
            self.bridge, CallInfo('"Bo" <sip:42@h>', "42", "Bo", call_id="t"), self._hangup
        )
        self.caller_audio = caller_audio
        self.heard: list[np.ndarray] = []
        self.threads: set[str] = set()
        self.n = 0
        self.clock = FrameClock(self._tick)

    def _hangup(self) -> None:
        self.hangups += 1

    def _tick(self, _none):
        self.threads.add(threading.current_thread().name)
        rx = None
        if self.caller_audio is not None:
            rx = self.caller_audio[self.n * FRAME_SAMPLES : (self.n + 1) * FRAME_SAMPLES]
            if len(rx) < FRAME_SAMPLES:
                rx = np.pad(rx, (0, FRAME_SAMPLES - len(rx)))
        self.n += 1
        self.heard.append(self.bridge.exchange(rx))

    def __enter__(self):
        self.clock.start()
        return self

    def __exit__(self, *exc):
        self.clock.stop()

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, np.float32)


async def test_tones_in_sequence_exact_and_gapless():
    with Line() as line:
        assert await line.call.playTone(420, 0.5) is True
        assert await line.call.playTone(650, 0.25) is True
        await asyncio.sleep(0.1)
    segs = segments(line.audio, quiet=1e-4)
    start, end = segs[0][0], segs[-1][1]
    # sin(0) = 0: the first sample is silent, so the sound spans 6000 samples less one.
    assert end - start == 6000 - 1
    assert abs(dominant_freq(line.audio[start : start + 3999]) - 420) < 1
    assert abs(dominant_freq(line.audio[start + 4000 : end]) - 650) < 1
    assert line.threads == {"voip-frame-clock"}


async def test_overlapping_playbacks_mix():
    with Line() as line:
        a = line.call.playTone(500, 0.3, volume=0.4)
        b = line.call.playTone(1200, 0.3, volume=0.4)
        assert await asyncio.gather(a, b) == [True, True]
    start = segments(line.audio, 1e-4)[0][0]
    chunk = line.audio[start : start + 2000]
    spec = np.abs(np.fft.rfft(chunk))
    freqs = np.fft.rfftfreq(len(chunk), 1 / 8000)
    top2 = sorted(freqs[np.argsort(spec)[-2:]])
    assert top2 == pytest.approx([500, 1200], abs=5)


async def test_cancel_stops_playback_and_await_gives_false():
    with Line() as line:
        p = line.call.playPCM(tone(300, 10).tolist())  # a plain list works too
        await asyncio.sleep(0.3)
        assert p.cancel() is True
        assert await p is False and p.cancelled()
        assert p.cancel() is False
        await asyncio.sleep(0.2)
    segs = segments(line.audio, 1e-3)
    assert len(segs) == 1
    assert 0.2 < (segs[0][1] - segs[0][0]) / 8000 < 0.45


async def test_loop_playback_until_cancelled():
    beep = tone(900, 0.1)
    with Line() as line:
        p = line.call.playPCM(beep, loop=True)
        await asyncio.sleep(0.5)
        p.cancel()
        await asyncio.sleep(0.1)
    start, end = segments(line.audio, 1e-3)[0]
    assert (end - start) / 8000 > 0.35  # several loops, no gap between them
    played = line.audio[start - 1 : end]  # beep[0] is sin(0) = 0
    n = len(played) // len(beep) * len(beep)
    np.testing.assert_allclose(played[:n], np.tile(beep, n // len(beep)), atol=1e-6)


async def test_wait_for_on_a_playback_stops_it():
    with Line() as line:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(line.call.playTone(440, 5), 0.2)
        await asyncio.sleep(0.15)
    start, end = segments(line.audio, 1e-3)[0]
    assert (end - start) / 8000 < 0.4


async def test_record_with_controller_gets_what_caller_said():
    voice = np.random.default_rng(7).uniform(-0.3, 0.3, 16000).astype(np.float32)
    with Line(voice) as line:
        ctl = RecordController()
        rec = line.call.recordPCM(ctl)
        await asyncio.sleep(0.5)
        ctl.stop()
        got = await rec
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert 0.4 < len(got) / 8000 < 0.7
    # Sample for sample the caller's audio, from the frame where the recording started.
    k = int(np.flatnonzero(voice == got[0])[0])
    assert k % FRAME_SAMPLES == 0
    np.testing.assert_array_equal(got, voice[k : k + len(got)])


async def test_record_maxlen_is_exact():
    with Line(tone(700, 3, 0.3)) as line:
        got = await line.call.recordPCM(maxlen=8000 // 2 + 7)
    assert len(got) == 4007


async def test_record_needs_a_way_to_stop():
    with Line() as line:
        with pytest.raises(InvalidArgumentError, match="RecordController"):
            line.call.recordPCM()
        for bad in (0, -5, 2.5, "100"):
            with pytest.raises(InvalidArgumentError, match="maxlen"):
                line.call.recordPCM(maxlen=bad)


async def test_stopped_controller_gives_empty_recording():
    with Line() as line:
        ctl = RecordController()
        ctl.stop()
        assert len(await line.call.recordPCM(ctl)) == 0


async def test_record_custom_until_false():
    samples = []
    with Line(tone(1000, 1, 0.5)) as line:
        rec = line.call.recordCustom(lambda x: samples.append(x) or len(samples) < 800)
        assert await rec is True
    assert len(samples) == 800


async def test_record_custom_wakes_the_handler_through_call_soon_threadsafe():
    """The README's pattern: the function runs on the audio thread and hands the event to
    the loop, where the handler awaits it."""
    loop = asyncio.get_running_loop()
    loud = asyncio.Event()
    heard = []

    def listen(sample):
        if abs(sample) > 0.5:
            heard.append((threading.current_thread().name, sample))
            loop.call_soon_threadsafe(loud.set)
            return False
        return True

    with Line(np.concatenate([np.zeros(2400, np.float32), tone(440, 1, 0.9)])) as line:
        rec = line.call.recordCustom(listen)
        await asyncio.wait_for(loud.wait(), 10)
        assert await rec is True
    [(thread, sample)] = heard
    assert thread == "voip-frame-clock" and abs(sample) > 0.5


async def test_play_custom_runs_until_none():
    with Line() as line:
        await line.call.playCustom(lambda t, d: None if t >= 0.25 else 0.5)
    start, end = segments(line.audio, 1e-3)[0]
    assert end - start == 2000


async def test_play_custom_that_raises_fails_its_awaitable_only():
    def broken(t, d):
        raise ZeroDivisionError("bad sample")

    with Line() as line:
        other = line.call.playTone(440, 0.2)
        with pytest.raises(ZeroDivisionError):
            await line.call.playCustom(broken)
        assert await other is True


@pytest.mark.parametrize(
    "args, word",
    [
        ((-5, 1), "freq"),
        ((0, 1), "freq"),
        ((5000, 1), "freq"),
        ((440, -1), "seconds"),
        ((440, 1e9), "seconds"),
        ((440, float("nan")), "seconds"),
        (("440", 1), "freq"),
    ],
)
async def test_absurd_tones_rejected(args, word):
    with Line() as line:
        with pytest.raises(InvalidArgumentError, match=word):
            line.call.playTone(*args)


async def test_out_of_range_pcm_is_clipped_not_wrapped():
    with Line() as line:
        await line.call.playPCM([1.7] * 400 + [-3.0] * 400)
    a = line.audio
    assert a.max() == 1.0 and a.min() == -1.0
    assert np.count_nonzero(a == 1.0) == 400 and np.count_nonzero(a == -1.0) == 400


async def test_say_speaks_without_blocking():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    with Line() as line:
        t = asyncio.create_task(ticker())
        assert await line.call.say("Hello from the test suite") is True
        t.cancel()
    start, end = segments(line.audio, 0.02)[0][0], segments(line.audio, 0.02)[-1][1]
    assert 0.8 < (end - start) / 8000 < 4
    assert ticks > 20


async def test_say_returns_a_playback_that_can_be_cancelled_at_once():
    """say() is a play method like the others: cancelled before its speech is even
    synthesised, it never plays; cancelled while playing, it stops."""
    from voip import Playback, TTSError

    with Line() as line:
        never = line.call.say("This sentence is cancelled before it is synthesised")
        assert isinstance(never, Playback)
        assert never.cancel() is True and await never is False and never.cancelled()
        cut = line.call.say("This one is cut off after a quarter of a second, mid sentence")
        await asyncio.sleep(0.25)
        assert cut.cancel() is True
        assert await cut is False
        await asyncio.sleep(0.1)
        with pytest.raises(TTSError, match="unknown TTS option"):
            line.call.say("bad options fail at once", ["--loud"])
    spoken = segments(line.audio, 0.02)
    assert spoken, "the second prompt played until it was cancelled"
    length = (spoken[-1][1] - spoken[0][0]) / 8000
    assert 0.05 < length < 0.5  # cut after ~0.25 s; the whole sentence lasts ~4 s


async def test_caller_identity():
    with Line() as line:
        assert line.call.getRemoteUri() == '"Bo" <sip:42@h>'
        assert (line.call.caller, line.call.caller_name) == ("42", "Bo")
        assert line.call.headers == {}


async def test_hangup_from_handler_ends_audio_but_not_handler():
    after = []

    async def handler(call):
        call.playTone(440, 10)
        rec = call.recordPCM(maxlen=8000 * 10)
        await asyncio.sleep(0.3)
        call.hangup()
        after.append(len(await rec))  # the recording keeps what it got
        with pytest.raises(CallEndedError):
            call.playTone(440, 1)
        after.append("done")

    with Line(tone(300, 5, 0.2)) as line:
        outcome = await serve_call(handler, line.call)
    assert outcome.error is None and outcome.ended_by == "local"
    assert after[1] == "done" and 0.2 * 8000 < after[0] < 0.5 * 8000
    assert line.hangups == 1 and line.call.ended.is_set()


async def test_remote_hangup_cancels_handler_promptly():
    state = {}

    async def handler(call):
        try:
            await call.getDTMF(n=10)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    with Line() as line:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, line.bridge.post, line.call.mark_ended, "remote")
        t0 = loop.time()
        outcome = await serve_call(handler, line.call)
        assert loop.time() - t0 < 0.5
    assert state == {"cancelled": True}
    assert outcome.ended_by == "remote" and outcome.error is None
    assert line.hangups == 0  # nothing to hang up: the caller did


async def test_handler_exception_is_logged_and_ends_the_call(caplog):
    async def handler(call):
        await call.playTone(440, 0.1)
        raise KeyError("the handler's bug")

    with Line() as line:
        outcome = await serve_call(handler, line.call)
    assert isinstance(outcome.error, KeyError)
    assert "handler raised" in caplog.text and "the handler's bug" in caplog.text
    assert "Traceback" in caplog.text
    assert line.hangups == 1 and not line.call.active


def test_sync_handler_rejected_clearly():
    def handler(call):
        pass

    with pytest.raises(InvalidArgumentError, match="async def"):
        check_handler(handler)


async def test_one_at_a_time_second_caller_hears_busy():
    from voip import one_at_a_time

    entered = []

    @one_at_a_time
    async def handler(call):
        entered.append(call.caller)
        await call.playTone(440, 1.0)

    with Line() as first, Line() as second:
        first_run = asyncio.create_task(serve_call(handler, first.call))
        await asyncio.sleep(0.1)
        await serve_call(handler, second.call)
        await first_run
    assert entered == ["42"]  # only the first caller got in
    assert abs(dominant_freq(first.audio) - 440) < 2
    speech = segments(second.audio, 0.02)
    assert speech and (speech[-1][1] - speech[0][0]) / 8000 > 1.5  # the busy prompt
    assert abs(dominant_freq(second.audio) - 440) > 20


class ThreadOffload:
    """A backend's own player and recorder (voip.bridge.MediaOffload) that works on a
    thread of its own, as PJSIP's does: it takes everything, hands a recording's samples
    back a moment after it was stopped, and with ``refuse`` fails to start anything (the
    mixer must then play and record it)."""

    def __init__(self, bridge: MediaBridge, refuse: bool = False) -> None:
        self.bridge = bridge
        self.refuse = refuse
        self.items: dict[int, object] = {}
        self.stopped: list[int] = []

    def start(self, handle, item):
        self.items[handle] = item
        later = self.bridge.offload_failed if self.refuse else (lambda h: None)
        threading.Timer(0.01, later, (handle,)).start()
        return True

    def stop(self, handle):
        self.stopped.append(handle)
        item = self.items.pop(handle)
        result = np.full(800, 0.25, dtype=np.float32) if hasattr(item, "write") else None
        threading.Timer(0.05, self.bridge.offload_ended, (handle, result)).start()

    def describe(self, handle):
        return f"offloaded {handle}"


async def test_an_offloaded_recording_resolves_with_what_the_backend_recorded():
    line = Line()
    offload = line.bridge.offload = ThreadOffload(line.bridge)
    with line:
        rec = line.call.recordPCM(maxlen=80000)
        tone_playing = line.call.playTone(440, 5)
        assert line.call.status()[:2] == ([f"offloaded {2}"], [f"offloaded {1}"])
        rec.stop()
        rec.stop()  # twice, and the call ending meanwhile, change nothing
        line.call.mark_ended("remote")
        pcm = await asyncio.wait_for(rec, 2)
        assert await tone_playing is False
    assert len(pcm) == 800 and float(pcm[0]) == 0.25
    assert offload.stopped == [1, 2]


async def test_what_the_offload_cannot_start_plays_in_the_mixer_instead():
    line = Line(tone(700, 1.0, 0.5))
    line.bridge.offload = ThreadOffload(line.bridge, refuse=True)
    with line:
        played = await asyncio.wait_for(line.call.playTone(600, 0.2), 2)
        heard = await asyncio.wait_for(line.call.recordPCM(maxlen=1600), 2)
    assert played is True
    assert dominant_freq(np.concatenate(line.heard)) == pytest.approx(600, abs=5)
    assert len(heard) == 1600 and dominant_freq(heard) == pytest.approx(700, abs=5)
