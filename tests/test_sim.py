"""The simulator as a user runs it: real processes, real files, the real PyAudio stack.

What apps do (the examples, the demo's logic) is tested in-process through the test kit
(tests/test_examples.py); these tests prove the simulator itself: its --speaker
timeline in real time, PyAudio through ALSA, exit statuses, options, the keypad.
"""

import os
import pty
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from voip import loadWAVtoPCM, savePCMtoWAV
from voip.audio.pcm import FRAME_SAMPLES

from .helpers import (
    ROOT,
    alsa_file_device,
    dominant_freq,
    find_pcm,
    frame_freqs,
    needs_pyaudio,
    read_pty,
    read_raw,
    run_app,
    tone,
    write_app,
)

ASSETS = ROOT / "assets"


def runs_of(freqs):
    """[(rounded frequency or None, frames)] for consecutive frames."""
    out = []
    for f in freqs:
        key = None if f is None else int(round(f / 10) * 10)
        if out and out[-1][0] == key:
            out[-1][1] += 1
        else:
            out.append([key, 1])
    return [tuple(r) for r in out]


def test_voip_run_is_python_app(tmp_path):
    out = tmp_path / "out.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "voip.cli", "run", "examples/hello.py", "--no-audio"]
        + ["--speaker", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    tones = [r for r in runs_of(frame_freqs(loadWAVtoPCM(out))) if r[0] is not None]
    assert [f for f, _ in tones] == [420, 560, 650]


APP_ECHO = textwrap.dedent(
    """
    from voip import runVoipClient

    async def handler(call):
        await call.playTone(440, 0.5)
        heard = await call.recordPCM(maxlen=8000)
        await call.playPCM(heard)

    runVoipClient(handler)
    """
)


def test_mic_wav_is_the_callers_voice(tmp_path):
    app = write_app(tmp_path, APP_ECHO)
    mic = tmp_path / "mic.wav"
    savePCMtoWAV(tone(700, 3, 0.4), mic)
    out = tmp_path / "out.wav"
    proc = run_app(app, "--mic", str(mic), "--speaker", str(out))
    assert proc.returncode == 0, proc.stderr
    heard = loadWAVtoPCM(out)
    runs = [r for r in runs_of(frame_freqs(heard)) if r[0] is not None]
    assert runs[0][0] == 440 and abs(runs[0][1] - 25) <= 1
    assert runs[1][0] == 700 and abs(runs[1][1] - 50) <= 1  # the 1 s recording, played back
    # Real time and one continuous timeline: 0.5 s tone + 1 s recording + 1 s playback.
    assert 2.4 < len(heard) / 8000 < 3.2


@needs_pyaudio
def test_pyaudio_through_alsa_file_device(tmp_path):
    """No --no-audio: PyAudio -> PortAudio -> ALSA, whose device is a pair of files.

    ALSA's null device is not paced in real time (it takes frames as fast as the callback
    makes them), so only content and order are checked on the device, and the timeline
    that --speaker writes in the same callback must be what the device got.
    """
    app = write_app(tmp_path, APP_ECHO)
    # Long enough that the fast device never runs out of the caller's voice.
    env, device_out = alsa_file_device(tmp_path, tone(700, 120, 0.4))
    timeline = tmp_path / "out.wav"
    proc = run_app(app, "--speaker", str(timeline), audio=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "sound device" not in proc.stderr
    heard = loadWAVtoPCM(timeline)
    runs = [r for r in runs_of(frame_freqs(heard)) if r[0] is not None]
    # The tone, then the caller's 700 Hz voice, captured through ALSA, played back.
    assert runs == [(440, 25), (700, 50)]
    played = read_raw(device_out)
    assert [r for r in runs_of(frame_freqs(played)) if r[0] is not None] == runs
    assert find_pcm(played, heard[:-FRAME_SAMPLES])[0] > 0.999


@needs_pyaudio
def test_demo_through_alsa_file_device_with_keys(tmp_path):
    env, device_out = alsa_file_device(tmp_path, np.zeros(8000, np.float32))
    timeline = tmp_path / "out.wav"
    proc = run_app(
        "test.py",
        "--keys",
        "1234",
        "--speaker",
        str(timeline),
        "--hangup-after",
        "60",
        audio=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    correct = loadWAVtoPCM(ASSETS / "password_correct.wav")
    incorrect = loadWAVtoPCM(ASSETS / "password_incorrect.wav")
    heard = loadWAVtoPCM(timeline)
    assert find_pcm(heard, correct)[0] > 0.99 > find_pcm(heard, incorrect)[0]
    played = read_raw(device_out)
    tones = [f for f, n in runs_of(frame_freqs(played)) if f is not None and n >= 20]
    assert tones[:3] == [420, 560, 650]  # the device got the tones, then speech
    # The fast null device can make PortAudio pad an under-run with silence now and then,
    # so the prompt is looked for in quarters: most must be there sample for sample.
    quarters = np.array_split(correct, 4)
    assert sum(find_pcm(played, q)[0] > 0.99 for q in quarters) >= 3


@needs_pyaudio
def test_no_sound_card_says_so_in_one_line_and_goes_on(tmp_path):
    conf = tmp_path / "asound.conf"
    conf.write_text("</usr/share/alsa/alsa.conf>\npcm.!default { type hw card 7 }\n")
    out = tmp_path / "out.wav"
    proc = run_app(
        "examples/hello.py", "--speaker", str(out), audio=True, env={"ALSA_CONFIG_PATH": str(conf)}
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "sound device" in ln]
    assert len(lines) == 1 and "running silent" in lines[0]
    assert "ALSA lib" not in proc.stderr
    tones = [r for r in runs_of(frame_freqs(loadWAVtoPCM(out))) if r[0] is not None]
    assert [f for f, _ in tones] == [420, 560, 650]


def test_handler_that_raises_exits_1_with_traceback(tmp_path):
    app = write_app(
        tmp_path,
        textwrap.dedent(
            """
            from voip import runVoipClient

            async def handler(call):
                await call.playTone(440, 0.2)
                {}["missing"]

            runVoipClient(handler)
            """
        ),
    )
    t0 = time.monotonic()
    proc = run_app(app, timeout=30)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'missing'" in proc.stderr
    assert time.monotonic() - t0 < 10


def test_handler_that_ignores_hangup_does_not_hang_the_process(tmp_path):
    app = write_app(
        tmp_path,
        textwrap.dedent(
            """
            import asyncio
            from voip import runVoipClient

            async def handler(call):
                while True:
                    try:
                        await asyncio.sleep(10)
                    except asyncio.CancelledError:
                        pass

            runVoipClient(handler)
            """
        ),
    )
    proc = run_app(app, "--hangup-after", "0.5", timeout=60)
    assert proc.returncode == 0
    assert "ignored cancellation" in proc.stderr


def test_bad_mic_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are my notes, not audio")
    proc = run_app("examples/hello.py", "--mic", str(bad), timeout=30)
    assert proc.returncode == 2
    assert "notes.wav" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_key_script_is_a_clear_error():
    proc = run_app("examples/hello.py", "--keys", "12x4", timeout=30)
    assert proc.returncode == 2
    assert "'x'" in proc.stderr and "Traceback" not in proc.stderr


def test_caller_number_argument_and_env_options(tmp_path):
    app = write_app(
        tmp_path,
        textwrap.dedent(
            """
            from voip import runVoipClient

            async def handler(call):
                print(call.getRemoteUri(), call.caller, call.caller_name, flush=True)

            runVoipClient(handler)
            """
        ),
    )
    proc = run_app(app, "5551234", env={"VOIP_OPTIONS": "--name 'Ann Smith'"}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '"Ann Smith" <sip:5551234@localhost> 5551234 Ann Smith'


def test_ctrl_c_hangs_up_cleanly(tmp_path):
    app = write_app(
        tmp_path,
        textwrap.dedent(
            """
            from voip import runVoipClient

            async def handler(call):
                await call.playTone(440, 30)

            runVoipClient(handler)
            """
        ),
    )
    out = tmp_path / "out.wav"
    proc = subprocess.Popen(
        [sys.executable, str(app), "--no-audio", "--speaker", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "caller hung up" in err
    heard = loadWAVtoPCM(out)
    assert 1.0 < len(heard) / 8000 < 2.5 and abs(dominant_freq(heard[:4000]) - 440) < 2


def test_interactive_keyboard_and_status_line(tmp_path):
    """In a terminal: keys typed without Enter reach getDTMF; the status line shows them."""
    app = write_app(
        tmp_path,
        textwrap.dedent(
            """
            from voip import runVoipClient

            async def handler(call):
                call.playTone(350, 30, volume=0.1)
                keys = await call.getDTMF(n=3)
                print("GOT", keys, flush=True)

            runVoipClient(handler)
            """
        ),
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, str(app), "--no-audio"], stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    seen = read_pty(master, 1.5)
    assert b"playing: tone 350 Hz" in seen
    os.write(master, b"7")
    seen += read_pty(master, 0.5)
    assert b"keys: 7" in seen
    os.write(master, b"*a")
    seen += read_pty(master, 2)
    proc.wait(timeout=10)
    os.close(master)
    assert b"GOT 7*A" in seen
    assert proc.returncode == 0


def test_a_transfer_puts_the_simulated_caller_through_and_ends_the_call(tmp_path):
    """The script that transfers over SIP runs in the simulator: the transfer succeeds
    at once, the call ends (we hung up) and the caller heard nothing after it."""
    app = write_app(
        tmp_path,
        """
        from voip import runVoipClient

        async def handler(call):
            await call.playTone(500, 0.5)
            result = await call.transfer("sip:sales@pbx.example.com")
            print("RESULT", result.ok, result.status, call.ended_by, flush=True)
            if not result:
                await call.playTone(300, 0.5)

        runVoipClient(handler)
        """,
    )
    out = tmp_path / "heard.wav"
    proc = run_app(app, "--speaker", str(out), timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "RESULT True 200 local" in proc.stdout, proc.stdout
    assert "transferred to sip:sales@pbx.example.com" in proc.stderr, proc.stderr
    assert "call ended (we hung up)" in proc.stderr, proc.stderr
    freqs = {round(f) for f in frame_freqs(loadWAVtoPCM(out)) if f is not None}
    assert freqs == {500}, freqs
