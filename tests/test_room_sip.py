"""voip.Room over SIP: pjsua2 callers joined in PJSIP's conference bridge, one process.

Each caller plays its own sound and records what it hears: each must hear every other
member and never itself; a member muted with ``room.mute`` is absent from the others'
audio until ``room.unmute``; a member sending only line noise must be absent from the
others' audio (silence gating); a fourth member joins and a fifth caller is refused by
the server itself (486: one process holds 4 calls) while the four go on.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from voip import TTStoPCM, loadWAVtoPCM, savePCMtoWAV

from .helpers import goertzel_power, tone, write_app
from .sip import peer, peer_result, serving
from .test_room import SPEECH, line_noise, rms

pytestmark = pytest.mark.timeout(180)

ROOM_APP = """
    import asyncio, os
    from voip import Room, RoomFullError, runVoipClient

    room = Room("sip", gate={gate})
    recording = None

    async def mute_a_while(call, start, length):
        await asyncio.sleep(start)
        room.mute(call)
        call.log.info("muted")
        await asyncio.sleep(length)
        room.unmute(call)
        call.log.info("unmuted")

    async def handler(call):
        global recording
        if recording is None and os.environ.get("ROOM_WAV"):
            recording = room.record(os.environ["ROOM_WAV"])
        if not room.members and os.environ.get("ROOM_MUTE"):  # "start,length": the first
            start, length = map(float, os.environ["ROOM_MUTE"].split(","))
            asyncio.ensure_future(mute_a_while(call, start, length))
        try:
            why = await room.join(call, beep=False)
        except RoomFullError as exc:
            call.log.info("refused: %s", exc)
            return
        call.log.info("left the room: %s (%d still in it)", why, len(room.members))
        if recording is not None and not room.members:
            recording.stop()
            call.log.info("recorded %.1f s", len(await recording) / 8000)

    runVoipClient(handler)
"""


def windows(x: np.ndarray, seconds: float = 0.1) -> np.ndarray:
    """RMS of each ``seconds`` of ``x``."""
    n = int(seconds * 8000)
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    return np.sqrt(np.mean(frames**2, axis=1))


def present(x: np.ndarray, freq: float) -> np.ndarray:
    """Per 100 ms of ``x``, whether ``freq`` is heard (a 0.3 tone through G.711 and
    PJSIP's bridge has a power of about 0.02; the tones here are multiples of 10 Hz, so
    none leaks into another over 100 ms)."""
    return np.array(
        [goertzel_power(x[k : k + 800], freq) > 0.005 for k in range(0, len(x) - 799, 800)]
    )


def gaps(on: np.ndarray, at_least: float = 0.3) -> list[tuple[float, float]]:
    """(start, length) in seconds of each stretch of ``at_least`` seconds where ``on`` is
    false (shorter ones are a busy machine's dropouts, not a mute)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([1], on.astype(int), [1]))))
    runs = [(a / 10, (b - a) / 10) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return [run for run in runs if run[1] >= at_least - 1e-9]


def test_three_callers_each_hear_exactly_the_other_two_and_a_muted_one_is_not_heard(tmp_path):
    """The first member is muted 2.5 s after it joins (all three are in the room by
    then) and unmuted 1.5 s later: the other two hear its 600 Hz stop for those 1.5 s
    and come back, and go on hearing each other all along; the muted member hears
    both others all along; nobody ever hears itself."""
    app_path = write_app(tmp_path, ROOM_APP.format(gate=False))
    freqs = (600, 900, 1300)
    heard = [tmp_path / f"heard{k}.wav" for k in range(3)]
    with serving(app_path, env={"ROOM_MUTE": "2.5,1.5"}) as app:
        procs = []
        for k, freq in enumerate(freqs):
            savePCMtoWAV(tone(freq, 10.0, 0.3), tmp_path / f"say{k}.wav")
            play = ("--play", str(tmp_path / f"say{k}.wav"), "--record", str(heard[k]))
            procs.append(peer(app.uri, *play, "--duration", str(6.5 - 0.5 * k)))
            time.sleep(0.5)
        results = [peer_result(p) for p in procs]
    assert all(r["answered"] for r in results)
    muting = [ln.endswith("unmuted") for ln in app.log.splitlines() if ln.endswith("muted")]
    assert muting == [False, True], app.log  # muted, then unmuted
    everyone = max(r["media_at"] for r in results)  # the last one's audio began
    for k in range(3):
        # All three in the room: from 0.3 s after the last one's audio began (a busy
        # machine may set the last one up late) to 1 s before the end.
        start = int((everyone + 0.3 - results[k]["media_at"]) * 8000)
        pcm = loadWAVtoPCM(heard[k])[start:-8000]
        others = [f for j, f in enumerate(freqs) if j != k]
        for f in others:
            on = present(pcm, f)
            if f != 600:  # never muted: heard all along
                assert not gaps(on) and on.mean() > 0.95, (k, f, gaps(on, 0.1))
                continue
            # the muted member: one gap of 1.5 s, heard before and after it
            (gap,) = gaps(on)
            assert gap[0] > 0 and sum(gap) < len(on) / 10, (k, gaps(on))
            assert gap[1] == pytest.approx(1.5, abs=0.2), (k, gap)
            # inside the mute: its first and last 100 ms may hold the moment it began
            quiet = pcm[int((gap[0] + 0.1) * 8000) : int((sum(gap) - 0.1) * 8000)]
            assert goertzel_power(quiet, 600) < 1e-3 * goertzel_power(pcm, 600), k
        loud = freqs[2] if k != 2 else freqs[1]  # a member never muted
        assert goertzel_power(pcm, freqs[k]) < 1e-3 * goertzel_power(pcm, loud), k
    assert app.log.count("left the room: hung up") == 3


def test_a_noisy_silent_member_is_gated_out_and_a_speaking_one_heard(tmp_path):
    app_path = write_app(tmp_path, ROOM_APP.format(gate=True))
    speech = TTStoPCM(SPEECH)
    savePCMtoWAV(np.concatenate([np.zeros(24000, np.float32), speech]), tmp_path / "talk.wav")
    savePCMtoWAV(line_noise(14.0), tmp_path / "noise.wav")
    listener_wav, room_wav = tmp_path / "listener.wav", tmp_path / "room.wav"
    with serving(app_path, env={"ROOM_WAV": str(room_wav)}) as app:
        noisy = peer(app.uri, "--play", str(tmp_path / "noise.wav"), "--duration", "12")
        time.sleep(0.5)
        listener = peer(app.uri, "--record", str(listener_wav), "--duration", "10")
        time.sleep(0.5)
        talker = peer(app.uri, "--play", str(tmp_path / "talk.wav"), "--duration", "9")
        results = [peer_result(p) for p in (noisy, listener, talker)]
    assert all(r["answered"] for r in results)
    heard = loadWAVtoPCM(listener_wav)
    levels = windows(heard)
    # The talker joins about 0.5 s into the listener's call and is silent for 3 s: from
    # 1 s to 3 s the room holds only the noisy line (0.012 RMS, with hum).
    noise_only = heard[8000:24000]
    loud = levels > 0.02  # speech
    print(f"noise-only RMS {rms(noise_only):.6f}, speech windows {loud.sum()}")
    assert rms(noise_only) < 5e-4
    assert goertzel_power(noise_only, 50) < 1e-8
    assert loud.sum() >= 20  # 2 s of the 4 s sentence at least (its pauses aside)
    assert np.flatnonzero(loud)[0] >= 30  # nothing loud before the talker speaks
    # The room's recording (from the noisy member's join): the speech, not the noise.
    room = loadWAVtoPCM(room_wav)
    print(f"room recording {len(room) / 8000:.1f} s, noise-only RMS {rms(room[16000:32000]):.6f}")
    assert rms(room[16000:32000]) < 5e-4
    assert (windows(room) > 0.02).sum() >= 20


def test_a_fourth_joins_and_a_fifth_caller_is_refused_cleanly(tmp_path):
    app_path = write_app(tmp_path, ROOM_APP.format(gate=False))
    freqs = (600, 900, 1300, 1700)
    first = tmp_path / "first.wav"
    with serving(app_path) as app:
        procs = []
        for k, freq in enumerate(freqs):
            savePCMtoWAV(tone(freq, 12.0, 0.3), tmp_path / f"say{k}.wav")
            args = ["--play", str(tmp_path / f"say{k}.wav"), "--duration", str(8.0 - 0.5 * k)]
            if k == 0:
                args += ["--record", str(first)]
            procs.append(peer(app.uri, *args))
            time.sleep(0.5)
        fifth = peer_result(peer(app.uri, "--duration", "2"))
        time.sleep(0.2)
        results = [peer_result(p) for p in procs]
    assert all(r["answered"] for r in results)
    assert not fifth["answered"] and fifth["status"] == 486
    assert "4 calls up, the most this process takes" in app.log
    # The first member heard the three others to the end, the fifth's attempt included.
    pcm = loadWAVtoPCM(first)[16000:-8000]
    levels = {f: goertzel_power(pcm, f) for f in freqs}
    assert all(levels[f] > 0.01 for f in freqs[1:]), levels
    assert levels[600] < 1e-3 * levels[900], levels
    assert windows(pcm, 0.2).min() > 0.1  # never a gap: three tones summed all along
    assert app.log.count("left the room: hung up") == 4
