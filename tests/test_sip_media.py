"""Sound on real SIP calls, both ways voip moves it.

By default PJSIP plays plain sounds and records ``recordPCM`` by itself (voip/backends/
pjsip/offload.py), and the call's Python port is paused while the mixer has nothing to do;
``--python-media`` mixes and records everything in Python. What the caller hears and what
the app records must not depend on which; sounds of both kinds must mix; a paused port
must come back; prompts cancelled by the hundred must leave nothing behind.
"""

import json
import signal
import time

import numpy as np
import pytest

from voip import loadWAVtoPCM, savePCMtoWAV
from voip.audio.engine import CustomSource, PCMRecorder, PCMSource, ToneSource
from voip.audio.pcm import SAMPLE_RATE
from voip.backends.pjsip.native import MIN_SAMPLES
from voip.backends.pjsip.offload import WHOLE_TONE_SECONDS, _sound_of

from .helpers import goertzel_power, tone, tone_spans, write_app
from .sip import peer, peer_result, read_stats, serving, stats_app

MODES = {"pjsip": (), "python": ("--python-media",)}
MODE_LINES = {
    "pjsip": "media: PJSIP plays plain sounds and records recordPCM itself",
    "python": "media: every sound is mixed and recorded in Python",
}


def check_mode(log: str, mode: str) -> None:
    """The app ran its sounds the way the test meant, and nothing fell back to Python."""
    assert MODE_LINES[mode] in log
    assert "in Python instead" not in log


def caller_tone(tmp_path, freq: float, seconds: float = 12):
    """A WAV of a steady tone for the caller to play into the call."""
    path = tmp_path / f"caller{freq:g}.wav"
    savePCMtoWAV(tone(freq, seconds, 0.4), path)
    return path


def call_app(tmp_path, source: str, mode: str, *caller_args: str) -> tuple[str, np.ndarray]:
    """Serve ``source`` the ``mode`` way, call it once with the pjsua2 peer and
    ``caller_args``; the app's log and what the caller heard. Checks the mode (and that
    nothing fell back to Python) on the way."""
    heard = tmp_path / "heard.wav"
    with serving(write_app(tmp_path, source), *MODES[mode]) as app:
        assert peer_result(peer(app.uri, "--record", str(heard), *caller_args))["answered"]
    check_mode(app.log, mode)
    return app.log, loadWAVtoPCM(heard)


def present(x: np.ndarray, freq: float, threshold: float = 0.004) -> np.ndarray:
    """Per 10 ms: whether ``freq`` is clearly there (mixed with others or not)."""
    step = 80
    return np.array(
        [goertzel_power(x[k : k + step], freq) > threshold for k in range(0, len(x) - step, step)]
    )


PROMPTS_APP = """
    import numpy as np
    from voip import runVoipClient
    from voip.audio.pcm import SAMPLE_RATE

    def dominant(x):
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return np.argmax(spec) * SAMPLE_RATE / len(x)

    async def handler(call):
        await call.playTone(420, 1.5)                        # long: PJSIP plays it
        t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
        await call.playPCM(0.5 * np.sin(2 * np.pi * 650 * t))  # short: the mixer does
        heard = await call.recordPCM(maxlen=8000)
        call.log.info("RECORDED %d samples, %.0f Hz", len(heard), dominant(heard))
        await call.playPCM(heard)

    runVoipClient(handler)
"""


@pytest.mark.parametrize("mode", MODES)
def test_prompts_and_a_recording_are_the_same_either_way(tmp_path, mode):
    play = ("--play", str(caller_tone(tmp_path, 700)))
    log, x = call_app(tmp_path, PROMPTS_APP, mode, *play, "--duration", "6")
    assert "RECORDED 8000 samples, 700 Hz" in log
    s420, s650 = tone_spans(x, 420), tone_spans(x, 650)
    assert len(s420) == 1 and abs(s420[0][1] - 1.5) <= 0.03, s420
    assert len(s650) == 1 and abs(s650[0][1] - 0.3) <= 0.03, s650
    # The recording played back: one second of the caller's own tone, after the prompts.
    s700 = [s for s in tone_spans(x, 700) if s[0] > s650[0][0]]
    assert len(s700) == 1 and abs(s700[0][1] - 1.0) <= 0.06, s700
    assert s420[0][0] < s650[0][0] < s700[0][0]


MIXED_APP = """
    import asyncio, math
    from voip import runVoipClient

    def custom(freq, seconds):
        def sample(t, delta):
            return 0.3 * math.sin(2 * math.pi * freq * t) if t < seconds else None
        return sample

    async def handler(call):
        long = call.playTone(500, 1.2, volume=0.5)             # played by PJSIP (default)
        await call.playCustom(custom(1200, 0.4))              # played by Python, mixed in
        await long
        await asyncio.sleep(0.5)                              # the Python port pauses
        await call.playCustom(custom(900, 0.3))               # ... and must come back
        got = []
        await call.recordCustom(lambda x: got.append(x) or len(got) < 4000)
        crossings = sum(1 for a, b in zip(got, got[1:]) if a < 0 <= b)
        call.log.info("CUSTOM RECORDED %d samples, %d Hz", len(got), round(crossings * 2))
        await call.playTone(300, 0.3)

    runVoipClient(handler)
"""


def test_pjsip_and_python_sounds_mix_and_a_paused_port_comes_back(tmp_path):
    play = ("--play", str(caller_tone(tmp_path, 700)))
    log, x = call_app(tmp_path, MIXED_APP, "pjsip", *play, "--duration", "6")
    # recordCustom heard the caller's 700 Hz (zero crossings in 0.5 s: about 350).
    assert "CUSTOM RECORDED 4000 samples, 70" in log, log
    on500, on1200, on900 = present(x, 500), present(x, 1200), present(x, 900)
    start = int(np.argmax(on500))
    # 1.2 s of 500 Hz with 1200 Hz over its first 0.4 s: both at once, each from its engine.
    assert abs(on500[start:].argmin() / 100 - 1.2) <= 0.04
    both = on500 & on1200
    assert 0.34 <= both.sum() / 100 <= 0.44, both.sum()
    assert not on1200[start + 50 :].any()
    # 900 Hz for 0.3 s at least 0.5 s after the 500 Hz tone: the paused port played again.
    late900 = np.flatnonzero(on900[start + 120 :])
    assert late900.size and 0.26 <= late900.size / 100 <= 0.34, late900
    assert late900[0] >= 45
    assert abs(tone_spans(x, 300)[-1][1] - 0.3) <= 0.03


BARGE_IN_APP = """
    from voip import runVoipClient

    async def handler(call):
        prompt = call.playTone(500, 10)
        key = await call.getDTMF(on_first=lambda k: prompt.cancel())
        call.log.info("KEY %s, prompt cancelled: %s", key, prompt.cancelled())
        await call.playTone(800, 0.3)

    runVoipClient(handler)
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_key_cuts_a_long_prompt_at_once(tmp_path, mode):
    keys = ("--dtmf", "5", "--dtmf-at", "1.0")
    log, x = call_app(tmp_path, BARGE_IN_APP, mode, *keys, "--duration", "4")
    assert "KEY 5, prompt cancelled: True" in log
    s500, s800 = tone_spans(x, 500), tone_spans(x, 800)
    assert len(s500) == 1 and 0.9 <= s500[0][1] <= 1.2, s500  # the key came at 1.0 s
    assert len(s800) == 1 and 0 <= s800[0][0] - sum(s500[0]) <= 0.15, (s500, s800)


HANGUP_APP = """
    import numpy as np
    from voip import RecordController, runVoipClient

    async def handler(call):
        recording = call.recordPCM(RecordController())   # never stopped by the app
        try:
            await call.ended.wait()
        finally:
            pcm = await recording
            freq = np.argmax(np.abs(np.fft.rfft(pcm[:8000]))) * 8000 / 8000
            print(f"RECORDED {len(pcm) / 8000:.2f} s, {freq:.0f} Hz", flush=True)

    runVoipClient(handler)
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_recording_keeps_what_was_said_when_the_caller_hangs_up(tmp_path, mode):
    app_path = write_app(tmp_path, HANGUP_APP)
    with serving(app_path, *MODES[mode]) as app:
        caller = peer(app.uri, "--play", str(caller_tone(tmp_path, 700)), "--duration", "2")
        assert peer_result(caller)["answered"]
        deadline = time.monotonic() + 5
        while "RECORDED" not in app.log and time.monotonic() < deadline:
            time.sleep(0.05)
    check_mode(app.log, mode)
    line = next(ln for ln in app.log.splitlines() if "RECORDED" in ln)
    seconds = float(line.split()[1])
    assert 1.8 <= seconds <= 2.2 and line.endswith("700 Hz"), line


CHURN_APP = stats_app(
    """
    import asyncio, random
    import numpy as np
    from voip import runVoipClient
    from voip.audio.pcm import SAMPLE_RATE

    sound = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)

    async def handler(call):
        for i in range(200):
            playback = call.playPCM(sound, loop=i % 2 == 0)
            recording = call.recordPCM(maxlen=800) if i % 10 == 0 else None
            await asyncio.sleep(random.uniform(0, 0.01))
            playback.cancel()
            if recording is not None:
                recording.stop()
                await recording
        await asyncio.sleep(0.3)
        await call.playTone(700, 0.4)

    runVoipClient(handler)
    """
)


def test_hundreds_of_prompts_cancelled_at_once_leave_nothing_behind(tmp_path):
    app_path = write_app(tmp_path, CHURN_APP)
    with serving(app_path) as app:
        for n in (1, 2):  # the first call also starts what lives on (e.g. PJSIP's threads)
            heard = tmp_path / f"heard{n}.wav"
            caller = peer(app.uri, "--record", str(heard), "--duration", "8")
            assert peer_result(caller)["answered"]
            spans = tone_spans(loadWAVtoPCM(heard), 700)
            assert len(spans) == 1 and abs(spans[0][1] - 0.4) <= 0.03, spans
            time.sleep(3)  # the pools of the last ports are released 2 s after them
            app.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 5
            while len(read_stats(app.log)) < n and time.monotonic() < deadline:
                time.sleep(0.05)
    first, second = read_stats(app.log)[:2]
    for what in ("fds", "threads", "calls", "sip_calls", "ports", "tasks"):
        assert second[what] == first[what], json.dumps([first, second])
    assert second["rss_kb"] - first["rss_kb"] < 2000, json.dumps([first, second])
    assert second["objects"] - first["objects"] < 200, json.dumps([first, second])
    check_mode(app.log, "pjsip")
    assert "Traceback" not in app.log


LONG_TONE_APP = """
    import asyncio
    from voip import runVoipClient
    from voip.backends.pjsip import offload

    offload.WHOLE_TONE_SECONDS = 1.0  # so that a tone of seconds loops as an hour's would

    async def handler(call):
        tone = call.playTone(500, 2.5, volume=0.5)
        await asyncio.sleep(1.5)  # past the first loop's seam
        call.log.info("MIXER BUSY %s", call._bridge.active)  # PJSIP plays it, not the mixer
        await tone
        await call.playTone(800, 0.6, volume=0.5)

    runVoipClient(handler)
"""


def test_a_tone_too_long_to_make_whole_loops_in_pjsip_and_ends_on_time(tmp_path):
    log, x = call_app(tmp_path, LONG_TONE_APP, "pjsip", "--duration", "4.5")
    assert "MIXER BUSY False" in log
    (s500,), (s800,) = tone_spans(x, 500), tone_spans(x, 800)
    assert abs(s500[1] - 2.5) <= 0.04, s500  # stopped by time, within a frame or two
    assert 0 <= s800[0] - (s500[0] + s500[1]) <= 0.04, (s500, s800)
    assert abs(s800[1] - 0.6) <= 0.03, s800
    # Whole periods looped: no click at the seams, one second apart.
    tone500 = x[int(s500[0] * 8000) + 80 : int((s500[0] + s500[1]) * 8000) - 80]
    assert np.max(np.abs(np.diff(tone500))) < 1.2 * 2 * np.pi * 500 / 8000 * 0.5


BACK_TO_BACK_APP = """
    from voip import runVoipClient

    async def handler(call):
        for i in range(8):
            await call.playTone(700 if i % 2 else 600, 0.3)
        await call.playTone(500, 1.2)
        await call.playTone(600, 0.3)

    runVoipClient(handler)
"""


def quiet_runs(x: np.ndarray, quiet: float = 0.02) -> list[float]:
    """Lengths in seconds of the silences (over 1.5 ms) between the first and last sound."""
    loud = np.flatnonzero(np.abs(x) > quiet)
    steps = np.diff(loud)
    return [round((n - 1) / 8000, 4) for n in steps[steps > 12]]


@pytest.mark.parametrize("mode", MODES)
def test_short_sounds_follow_each_other_without_a_break(tmp_path, mode):
    _log, x = call_app(tmp_path, BACK_TO_BACK_APP, mode, "--duration", "5")
    gaps = quiet_runs(x)
    # Eight short tones then a long one, back to back. After the long one, played by
    # PJSIP by default, one frame of silence: PJSIP reports its end a frame late.
    assert len(gaps) == (1 if mode == "pjsip" else 0), gaps
    assert all(abs(gap - 0.02) <= 0.002 for gap in gaps), gaps
    assert abs(tone_spans(x, 500)[0][1] - 1.2) <= 0.03


def test_what_pjsip_plays_itself_and_what_stays_in_python():
    pcm = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert len(_sound_of(PCMSource(pcm))[0]) == SAMPLE_RATE
    assert _sound_of(PCMSource(pcm[:-1])) is None  # short: back to back in the mixer
    samples, loop, lasts = _sound_of(PCMSource(pcm[:MIN_SAMPLES], loop=True))
    assert len(samples) == MIN_SAMPLES and loop and lasts is None  # looped for ever
    assert _sound_of(PCMSource(pcm[: MIN_SAMPLES - 1], loop=True)) is None  # PJSIP refuses
    assert len(_sound_of(ToneSource(440, 1.5))[0]) == 12000
    assert _sound_of(ToneSource(440, 0.5)) is None
    # A longer tone is not made whole: it loops a second of whole periods, stopped when
    # its time is up; one of a frequency with no whole number of Hz stays in the mixer.
    samples, loop, lasts = _sound_of(ToneSource(440, WHOLE_TONE_SECONDS + 1))
    assert loop and lasts == WHOLE_TONE_SECONDS + 1 and len(samples) == SAMPLE_RATE
    assert abs(samples[0] - samples[-1]) > 0.05 and samples[0] == 0  # seamless: 0 follows
    assert _sound_of(ToneSource(440.5, WHOLE_TONE_SECONDS + 1)) is None
    assert _sound_of(ToneSource(440, 1.5))[1:] == (False, None)
    assert _sound_of(CustomSource(lambda t, d: 0.0)) is None
    assert _sound_of(PCMRecorder(100)) is None  # a recording is not a sound to play
