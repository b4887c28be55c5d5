"""Every script in examples/ run headless as a real subprocess, checked on what it did.

Each run scripts the caller (``--keys``, ``--mic``), records what the caller heard
(``--speaker``) and is bounded by ``--hangup-after`` and a subprocess time-out. The checks
are on content: tones found frame by frame, prompts found by cross-correlation with the
asset files, printed keys on stdout.

The simulator runs in real time, so every run is started at once (module fixture, one
thread per subprocess) and each test only waits for its own.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from voip import loadWAVtoPCM, savePCMtoWAV
from voip.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from voip.tts import TTStoPCM

from .helpers import ROOT, find_pcm, goertzel_power, run_app, tone

EXAMPLES = ROOT / "examples"
ASSETS = ROOT / "assets"
RATE = SAMPLE_RATE
FRAME = FRAME_SAMPLES  # 160 samples, 20 ms
KEY_STEP = 0.2  # seconds a scripted key takes
WAIT = 0.5  # seconds a scripted 'w' waits
PROC_TIMEOUT = 90  # seconds; the longest run takes about 15
SLACK = 4  # frames of scheduling slack allowed on absolute positions
MIC_TONE = 700.0  # Hz: the caller's "voice"

TTS_TEXT = "this is a test of speech to text"


def asset(name: str) -> np.ndarray:
    return loadWAVtoPCM(ASSETS / name)


def seconds(n: int) -> float:
    return n / RATE


def waits_until(t: float, now: float = 0.0) -> str:
    """The 'w's that take a key script from ``now`` to at least ``t`` seconds."""
    return "w" * max(0, math.ceil((t - now) / WAIT - 1e-9))


def script_time(prefix: str, now: float = 0.0) -> float:
    """When the script is after ``prefix`` of 'w's, started at ``now``."""
    return now + len(prefix) * WAIT


# -- audio analysis --------------------------------------------------------------------


def frames(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    return x[: n * FRAME].reshape(n, FRAME).astype(np.float64)


def tone_frames(x: np.ndarray, freq: float, purity: float = 0.8) -> np.ndarray:
    """Per 20 ms frame: True where the frame is (nearly) a pure sine at ``freq``.

    A pure sine of amplitude A has mean power A^2/2 and Goertzel power A^2/4, so the
    ratio 2 * goertzel / mean power is 1 for it and small for speech or other tones.
    """
    out = []
    for fr in frames(x):
        power = float(np.mean(fr**2))
        ok = power > 1e-4 and 2 * goertzel_power(fr, freq) / power > purity
        out.append(ok)
    return np.array(out, dtype=bool)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first frame, number of frames) of each run of True in ``mask``."""
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def loud_frames(x: np.ndarray, level: float = 0.01) -> np.ndarray:
    return np.abs(frames(x)).max(axis=1) > level


def find(heard: np.ndarray, ref: np.ndarray, start: int = 0) -> tuple[int, float]:
    """Where ``ref`` best matches ``heard[start:]``: (sample offset into heard, match).

    The match is the normalised cross-correlation (1.0 for an unchanged copy; the speaker
    file's 16-bit rounding costs nothing visible).
    """
    match, k = find_pcm(heard[start:], ref)
    assert k >= 0, f"heard audio after {seconds(start):.2f} s is shorter than the reference"
    return start + k, match


def assert_copy(
    heard: np.ndarray,
    ref: np.ndarray,
    start: int = 0,
    what: str = "",
    within: int | None = None,
) -> int:
    """Assert an exact copy of ``ref`` is heard at or after ``start`` (and, with
    ``within``, starting at most that many samples after it); return its offset.

    Give ``within`` when the same sound is heard several times: equal copies match
    equally well, and any of them could be the best.
    """
    region = heard if within is None else heard[: start + len(ref) + within]
    at, match = find(region, ref, start)
    where = f"after {seconds(start):.2f} s" + (
        "" if within is None else f" (within {seconds(within):.2f} s)"
    )
    assert match > 0.99, f"{what or 'sound'} not heard {where} ({match:.3f})"
    return at


def assert_silent(x: np.ndarray, what: str) -> None:
    peak = float(np.abs(x).max()) if len(x) else 0.0
    assert peak < 0.01, f"expected silence {what}, heard a peak of {peak:.3f}"


def assert_tone_run(
    heard: np.ndarray, freq: float, frames_long: int, near: int | None = None
) -> tuple[int, int]:
    """Exactly one run of ``freq`` frames, ``frames_long`` +-1 frames long, returned.

    ``near``: the frame where it should start, +-SLACK frames.
    """
    found = runs(tone_frames(heard, freq))
    assert len(found) == 1, f"expected one {freq:g} Hz tone, found runs {found}"
    start, length = found[0]
    assert abs(length - frames_long) <= 1, f"{freq:g} Hz lasted {length} frames"
    if near is not None:
        assert abs(start - near) <= SLACK, f"{freq:g} Hz started at frame {start}, not {near}"
    return start, length


# -- running the examples --------------------------------------------------------------


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    speaker: Path

    @property
    def heard(self) -> np.ndarray:
        return loadWAVtoPCM(self.speaker)

    def check_ok(self) -> None:
        assert self.proc.returncode == 0, self.proc.stderr
        assert "Traceback" not in self.proc.stderr, self.proc.stderr


def run_example(
    tmp: Path,
    name: str,
    script: str,
    keys: str = "",
    mic: np.ndarray | None = None,
    hangup_after: float = 20,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Run:
    speaker = tmp / f"{name}.out.wav"
    args = ["--speaker", str(speaker), "--hangup-after", str(hangup_after)]
    if keys:
        args += ["--keys", keys]
    if mic is not None:
        mic_path = tmp / f"{name}.mic.wav"
        savePCMtoWAV(mic, mic_path)
        args += ["--mic", str(mic_path)]
    if cwd is None:
        proc = run_app(EXAMPLES / script, *args, timeout=PROC_TIMEOUT, env=env)
    else:  # from another directory: the script must find its assets by itself
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / script), "--no-audio", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PROC_TIMEOUT,
        )
    return Run(proc, speaker)


def speaking(silence_before: float, talk: float, total: float | None = None) -> np.ndarray:
    """A mic recording: silence, then the caller 'speaks' a 700 Hz tone for ``talk`` s."""
    pcm = np.concatenate(
        [np.zeros(round(silence_before * RATE), np.float32), tone(MIC_TONE, talk, amp=0.5)]
    )
    if total is not None:
        pcm = np.concatenate([pcm, np.zeros(max(0, round(total * RATE) - len(pcm)), np.float32)])
    return pcm


class Plan:
    """Timings that several runs and their checks share, from the asset lengths."""

    def __init__(self) -> None:
        self.record_prompt = asset("record_prompt.wav")
        self.playing_back = asset("playing_back.wav")
        self.my_sound = asset("my_sound.wav")
        self.welcome = asset("menu/welcome.wav")
        self.invalid = asset("menu/invalid.wav")
        self.goodbye = asset("menu/goodbye.wav")
        self.timeout = asset("timeout.wav")

        # record_playback: prompt, 0.25 s beep, then the caller talks 0.5 s after the beep
        # for 1 s, and presses 1 at least 0.5 s after that.
        self.rec_start = seconds(len(self.record_prompt)) + 0.25
        self.rec_waits = waits_until(self.rec_start + 2.0)
        self.rec_key = script_time(self.rec_waits)

        # cancel_playback: the key comes during the second time round the loop.
        self.loop_waits = waits_until(1.5 * seconds(len(self.my_sound)))
        self.loop_key = script_time(self.loop_waits)

        # menu 9999: the code is complete at 1.6 s, then the record prompt (during which
        # a # is pressed at 1.8 s, too early to count) and the beep; the caller talks as
        # above, then presses 1 (ignored) and #.
        self.vm_rec_start = 1.6 + self.rec_start
        self.vm_waits = waits_until(self.vm_rec_start + 2.0, now=2.0)
        self.vm_hash = script_time(self.vm_waits, now=2.0) + KEY_STEP


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan()


@pytest.fixture(scope="module")
def results(
    plan: Plan, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Run]]]:
    """Start every run at once; each test waits for its own."""
    tmp = tmp_path_factory.mktemp("examples")
    other_dir = tmp_path_factory.mktemp("elsewhere")
    p = plan
    jobs: dict[str, dict[str, object]] = {
        "hello": dict(script="hello.py"),
        "custom_sound": dict(script="custom_sound.py", cwd=other_dir),
        "keypad": dict(script="keypad.py", keys="w5"),
        "keypad_four": dict(script="keypad_four.py", keys="w1#2*3A4"),
        "timeout_keys": dict(script="timeout.py", keys="w1234", env={"TIMEOUT_SECONDS": "60"}),
        "timeout_none": dict(script="timeout.py", keys="", env={"TIMEOUT_SECONDS": "1"}),
        "record_playback": dict(
            script="record_playback.py",
            keys=p.rec_waits + "1",
            mic=speaking(p.rec_start + 0.5, 1.0),
            hangup_after=60,
        ),
        "echo": dict(script="echo.py", keys="wwwwww1", mic=speaking(1.0, 1.0, total=4.0)),
        "cancel_one": dict(script="cancel_playback.py", keys=p.loop_waits + "1"),
        "cancel_other": dict(script="cancel_playback.py", keys=p.loop_waits + "2"),
        "tts": dict(script="tts.py", hangup_after=60),
        "menu_0000": dict(script="menu.py", keys="ww0000"),
        "menu_retry": dict(script="menu.py", keys="ww11110000"),
        "menu_three_bad": dict(script="menu.py", keys="ww111122223333", hangup_after=40),
        "menu_echo": dict(script="menu.py", keys="ww1234wwwwww5", mic=speaking(2.0, 1.0)),
        "menu_voicemail": dict(
            script="menu.py",
            keys="ww9999#" + p.vm_waits + "1#",
            mic=speaking(p.vm_rec_start + 0.5, 1.0),
            hangup_after=60,
        ),
        "menu_timeout": dict(script="menu.py", env={"TIMEOUT_SECONDS": "1"}),
    }
    pool = ThreadPoolExecutor(max_workers=len(jobs))
    futures = {name: pool.submit(run_example, tmp, name, **job) for name, job in jobs.items()}
    yield futures
    pool.shutdown(wait=True)


def get(results: dict[str, Future[Run]], name: str) -> Run:
    run = results[name].result(timeout=PROC_TIMEOUT + 30)
    run.check_ok()
    return run


# -- the tests -------------------------------------------------------------------------


def assert_three_tones(heard: np.ndarray, start_near: int | None = None) -> None:
    """420, 560 and 650 Hz, 0.5 s (25 frames) each, one after the other."""
    starts = [assert_tone_run(heard, f, 25)[0] for f in (420, 560, 650)]
    if start_near is not None:
        assert abs(starts[0] - start_near) <= SLACK, f"tones started at frame {starts[0]}"
    assert 24 <= starts[1] - starts[0] <= 26 and 24 <= starts[2] - starts[1] <= 26, starts


def test_hello_plays_three_tones(results):
    heard = get(results, "hello").heard
    assert_three_tones(heard, start_near=0)
    # nothing else: the three tones are all there is
    loud = loud_frames(heard)
    assert 74 <= loud.sum() <= 76, f"{loud.sum()} loud frames"


def test_custom_sound_plays_the_asset_from_any_directory(results, plan):
    heard = get(results, "custom_sound").heard
    at = assert_copy(heard, plan.my_sound, what="my_sound.wav")
    assert at <= SLACK * FRAME
    assert_silent(heard[:at], "before the sound")
    assert_silent(heard[at + len(plan.my_sound) :], "after the sound")


def test_keypad_prints_the_key(results):
    run = get(results, "keypad")
    assert run.proc.stdout == "5\n"
    assert_tone_run(run.heard, 1000, 12, near=0)  # the 0.25 s beep (12.5 frames)


def test_keypad_four_skips_filtered_keys(results):
    run = get(results, "keypad_four")
    assert run.proc.stdout == "1234\n"  # '#', '*' and 'A' were not in the filter
    assert_tone_run(run.heard, 1000, 12, near=0)
    # the call ended once the fourth digit came (at 0.5 + 6 * 0.2 s)
    assert abs(seconds(len(run.heard)) - 1.7) < 0.15


def test_timeout_prints_the_keys(results):
    run = get(results, "timeout_keys")
    assert run.proc.stdout == "1234\n"
    assert abs(seconds(len(run.heard)) - (0.5 + 3 * KEY_STEP)) < 0.15


def test_timeout_message_when_no_keys(results):
    run = get(results, "timeout_none")
    assert run.proc.stdout == "not enough keys pressed in the alloted time\n"
    # beep (0.25 s) then the 1 s time-out
    assert abs(seconds(len(run.heard)) - 1.25) < 0.15


def test_record_playback_plays_the_recording_back(results, plan):
    heard = get(results, "record_playback").heard
    assert_copy(heard, plan.record_prompt, what="record_prompt.wav")
    beep = assert_tone_run(heard, 1000, 12, near=round(seconds(len(plan.record_prompt)) * 50))
    back = assert_copy(heard, plan.playing_back, beep[0] * FRAME, "playing_back.wav")
    assert abs(back - plan.rec_key * RATE) <= SLACK * FRAME, "playback did not follow the key"
    # The caller's 1 s of 'voice' comes back after "playing back", 0.5 s into the
    # recording, and only there (nobody heard it while it was being recorded).
    end_prompt = (back + len(plan.playing_back)) // FRAME
    assert_tone_run(heard, MIC_TONE, 50, near=end_prompt + 25)
    # the whole recording was played: from the beep's end to the key
    rec_len = plan.rec_key - plan.rec_start
    assert abs(seconds(len(heard)) - (seconds(back + len(plan.playing_back)) + rec_len)) < 0.15


def test_echo_plays_the_caller_back(results):
    heard = get(results, "echo").heard
    mic = speaking(1.0, 1.0)
    start, _ = assert_tone_run(heard, MIC_TONE, 50, near=51)
    at = assert_copy(heard, mic[RATE:], start=RATE - FRAME, what="the caller's voice")
    assert 0 <= at - RATE <= 2 * FRAME, f"echo delayed by {at - RATE} samples"
    assert_silent(heard[:RATE], "before the caller spoke")
    assert_silent(heard[at + RATE :], "after the echo")
    assert abs(seconds(len(heard)) - 3.0) < 0.15, "the key should end the echo"


@pytest.mark.parametrize(
    "name, freq, other", [("cancel_one", 880, 440), ("cancel_other", 440, 880)]
)
def test_cancel_playback_stops_the_loop_at_the_key(results, plan, name, freq, other):
    heard = get(results, name).heard
    key = round(plan.loop_key * RATE)
    # Before the key: the sound, over and over (the key comes in its second round).
    looped = np.tile(plan.my_sound, 3)[: key - SLACK * FRAME]
    at = assert_copy(heard[: key + 2 * len(plan.my_sound)], looped, what="the looping sound")
    assert at <= SLACK * FRAME
    # After it: the branch's tone, and nothing of the sound any more. (Searched from the
    # key on only: the jingle itself may well hold a 440 or 880 Hz note.)
    tail = heard[key // FRAME * FRAME :]
    start, _ = assert_tone_run(tail, freq, 25, near=1)
    # the tone alone, sample for sample: the loop is not mixed under it
    assert assert_copy(tail, tone(freq, 0.5, amp=1.0), what=f"{freq} Hz alone") == start * FRAME
    assert not tone_frames(tail, other).any()
    after = loud_frames(tail[start * FRAME :])
    assert after[:25].all() and not after[26:].any(), "something else played after the tone"
    # the sound stopped within a frame of the key: nothing but the tone after that
    assert not loud_frames(tail[2 * FRAME : start * FRAME]).any(), "the sound went on"


def envelope(x: np.ndarray) -> np.ndarray:
    """Loudness (RMS) of each 20 ms frame."""
    return np.sqrt(np.mean(frames(x) ** 2, axis=1))


def find_envelope(heard: np.ndarray, ref: np.ndarray, start_frame: int) -> tuple[int, float]:
    """The frame from ``start_frame`` on where the loudness contour of ``ref`` best matches
    ``heard`` (Pearson correlation), and that correlation."""
    h, r = envelope(heard), envelope(ref)
    best = (-1, -1.0)
    for k in range(start_frame, len(h) - len(r) + 1):
        c = float(np.corrcoef(h[k : k + len(r)], r)[0, 1])
        if c > best[1]:
            best = (k, c)
    return best


def test_tts_speaks(results):
    heard = get(results, "tts").heard
    # espeak-ng's output varies by a few samples and in phase from one synthesis to the
    # next (its pitch flutter runs on across utterances), so the speech is compared by
    # its loudness contour: 0.999 for the same text and voice, 0.86 for another voice.
    parts = [
        TTStoPCM(TTS_TEXT),
        TTStoPCM(TTS_TEXT, opts=["-v", "en-us"]),
        TTStoPCM("goodbye", ["-v", "en-us", "-s", "140"]),
    ]
    at = 0
    offsets = []
    for i, part in enumerate(parts):
        found, match = find_envelope(heard, part, at)
        offsets.append(found)
        assert match > 0.97, f"speech part {i + 1} not heard after frame {at} ({match:.3f})"
        # (synthesis runs between the phrases: a short gap is fine)
        assert found - at <= 25, f"gap before speech part {i + 1}"
        spoken = heard[found * FRAME : found * FRAME + len(part)]
        assert float(np.sqrt(np.mean(spoken.astype(np.float64) ** 2))) > 0.03, "too quiet"
        at = found + len(part) // FRAME
    assert abs(len(heard) // FRAME - at) <= SLACK, "more than the three phrases was heard"
    # the second phrase really is in the en-us voice, not the default one again
    second = heard[offsets[1] * FRAME : offsets[2] * FRAME]
    assert find_envelope(second, parts[0][: len(second)], 0)[1] < 0.95


def assert_barged_in(heard: np.ndarray, welcome: np.ndarray, key: float) -> None:
    """The welcome prompt played from the start and stopped at the first key."""
    part = welcome[: round((key - 0.1) * RATE)]
    assert len(welcome) > (key + 0.5) * RATE, "welcome.wav is too short to test barge-in"
    assert assert_copy(heard, part, what="welcome.wav") <= SLACK * FRAME
    # the prompt's continuation is not heard
    cut = round(key * RATE) + 2 * FRAME
    _, match = find(heard, welcome[cut : cut + RATE // 2], cut - 2 * FRAME)
    assert match < 0.9, "the welcome prompt went on after the first key"


def test_menu_code_0000_plays_the_tones(results, plan):
    heard = get(results, "menu_0000").heard
    assert_barged_in(heard, plan.welcome, 1.0)
    assert_three_tones(heard, start_near=round(1.6 * 50))  # after the 4th key, at 1.6 s
    assert_silent(heard[round(1.05 * RATE) : round(1.55 * RATE)], "while the code was typed")


def test_menu_bad_code_says_invalid_then_asks_again(results, plan):
    heard = get(results, "menu_retry").heard
    assert_barged_in(heard, plan.welcome, 1.0)
    inv = assert_copy(heard, plan.invalid, round(1.0 * RATE), "menu/invalid.wav")
    assert abs(inv - 1.6 * RATE) <= SLACK * FRAME
    # 0000 was typed ahead: the second welcome is cut at once and the tones follow
    assert_three_tones(heard, start_near=(inv + len(plan.invalid)) // FRAME)


def test_menu_three_bad_codes_say_goodbye(results, plan):
    heard = get(results, "menu_three_bad").heard
    assert_barged_in(heard, plan.welcome, 1.0)
    at = round(1.6 * RATE) - SLACK * FRAME
    for i in range(3):
        # the next attempt's welcome is cut at once by the keys typed ahead
        at = assert_copy(heard, plan.invalid, at, f"invalid.wav #{i + 1}", 2 * SLACK * FRAME)
        at += len(plan.invalid)
    bye = assert_copy(heard, plan.goodbye, at, "menu/goodbye.wav")
    assert bye - at <= SLACK * FRAME
    assert abs(len(heard) - (bye + len(plan.goodbye))) <= SLACK * FRAME, "call went on"


def test_menu_code_1234_is_the_echo_test(results):
    heard = get(results, "menu_echo").heard
    # the caller speaks from 2.0 s to 3.0 s and hears it back at once
    assert_tone_run(heard, MIC_TONE, 50, near=101)
    # key 5 (at 1.8 + 6 * 0.5 s) ends the echo test and the call
    assert abs(seconds(len(heard)) - 4.8) < 0.15


def test_menu_code_9999_records_a_voicemail(results, plan):
    heard = get(results, "menu_voicemail").heard
    prompt = assert_copy(heard, plan.record_prompt, round(1.5 * RATE), "record_prompt.wav")
    assert abs(prompt - 1.6 * RATE) <= SLACK * FRAME
    assert_tone_run(heard, 1000, 12, near=(prompt + len(plan.record_prompt)) // FRAME)
    back = assert_copy(heard, plan.playing_back, prompt, "playing_back.wav")
    # '#' ends the message, not the '1' before it
    assert abs(back - plan.vm_hash * RATE) <= SLACK * FRAME
    end_prompt = back + len(plan.playing_back)
    assert_tone_run(heard, MIC_TONE, 50, near=end_prompt // FRAME + 25)
    bye = assert_copy(heard, plan.goodbye, end_prompt, "menu/goodbye.wav")
    message = plan.vm_hash - plan.vm_rec_start
    assert abs(seconds(bye - end_prompt) - message) < 0.15, "message length"
    assert abs(len(heard) - (bye + len(plan.goodbye))) <= SLACK * FRAME


def test_menu_time_out(results, plan):
    heard = get(results, "menu_timeout").heard
    assert_copy(heard[:RATE], plan.welcome[: RATE - SLACK * FRAME], what="welcome.wav")
    slow = assert_copy(heard, plan.timeout, round(0.9 * RATE), "timeout.wav")
    assert abs(slow - RATE) <= SLACK * FRAME
    bye = assert_copy(heard, plan.goodbye, slow + len(plan.timeout), "menu/goodbye.wav")
    assert abs(len(heard) - (bye + len(plan.goodbye))) <= SLACK * FRAME
