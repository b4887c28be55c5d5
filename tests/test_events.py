"""Call.listener: what the app does, told as voip.events events, stamped with loop time."""

import asyncio

import numpy as np
import pytest

from voip import RecordController, events
from voip.bridge import MediaBridge
from voip.call import Call, CallInfo

pytestmark = pytest.mark.timeout(30)


async def run_frames(bridge: MediaBridge, n: int) -> None:
    """``n`` frames exchanged on the loop, each followed by what it resolved."""
    for _ in range(n):
        bridge.exchange(np.zeros(160, np.float32))
        for _ in range(3):  # the bridge posts resolutions; the callbacks chain once more
            await asyncio.sleep(0)


async def test_each_thing_the_app_does_is_one_event_with_the_loop_time():
    bridge = MediaBridge(asyncio.get_running_loop())
    call = Call(bridge, CallInfo("sip:1@h", "1"))
    seen = []
    call.listener = seen.append
    tone = call.playTone(440, 0.1)  # 5 frames
    sound = call.playPCM(np.full(800, 0.1, np.float32), loop=True)
    await run_frames(bridge, 6)
    assert await tone is True
    sound.cancel()
    await asyncio.sleep(0)  # its end is told from the future's callback
    rec = call.recordPCM(RecordController(), maxlen=320)
    call.sendDTMF("12", "info")
    await run_frames(bridge, 3)
    assert len(await rec) == 320
    speech = call.say("Hello there")
    while len(seen) < 8:  # synthesised in a worker thread, then started
        await asyncio.sleep(0.001)
    call.mark_ended("remote")  # before its end
    assert await speech is False
    await run_frames(bridge, 1)

    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "TonePlayed",
        "SoundPlayed",
        "PlaybackEnded",
        "PlaybackEnded",
        "RecordingStarted",
        "DtmfSent",
        "RecordingStopped",
        "Said",
        "HungUp",
        "PlaybackEnded",
    ], kinds
    tone_ev, sound_ev, tone_end, sound_end = seen[:4]
    assert (tone_ev.freq, tone_ev.seconds) == (440, 0.1) and isinstance(tone_ev, events.TonePlayed)
    assert sound_ev == events.SoundPlayed(0.1, True, at=sound_ev.at)
    assert tone_end == events.PlaybackEnded(tone_ev, True, at=tone_end.at)
    assert sound_end == events.PlaybackEnded(sound_ev, False, at=sound_end.at)
    assert isinstance(seen[4], events.RecordingStarted)
    assert seen[5] == events.DtmfSent("12", "info", at=seen[5].at)
    assert seen[6] == events.RecordingStopped(0.04, at=seen[6].at)
    said, hung_up, said_end = seen[7:]
    assert said == events.Said("Hello there", at=said.at)
    assert hung_up == events.HungUp("remote", at=hung_up.at)
    assert said_end == events.PlaybackEnded(said, False, at=said_end.at)
    assert all(e.at > 0 for e in seen)
    assert [e.at for e in seen] == sorted(e.at for e in seen)


async def test_say_is_told_with_its_text_when_it_starts_and_ends():
    bridge = MediaBridge(asyncio.get_running_loop())
    call = Call(bridge, CallInfo("sip:1@h", "1"))
    seen = []
    call.listener = seen.append
    never = call.say("Never played: cancelled while it is being synthesised")
    never.cancel()
    cut = call.say("Cut off after three frames")
    while not seen:  # the speech is being synthesised in a worker thread
        await asyncio.sleep(0.001)
    await run_frames(bridge, 3)
    cut.cancel()
    await asyncio.sleep(0)
    keys = call.sendDTMF("5", "inband")
    assert keys is not None
    while not keys.done():
        await run_frames(bridge, 1)
    await run_frames(bridge, 1)
    said, said_end, dtmf, dtmf_end = seen
    assert said == events.Said("Cut off after three frames", at=said.at)
    assert said_end == events.PlaybackEnded(said, False, at=said_end.at)
    assert dtmf == events.DtmfSent("5", "inband", at=dtmf.at)
    assert dtmf_end == events.PlaybackEnded(dtmf, True, at=dtmf_end.at)


async def test_no_listener_no_events_and_the_call_works_the_same():
    bridge = MediaBridge(asyncio.get_running_loop())
    call = Call(bridge, CallInfo("sip:1@h", "1"))
    tone = call.playTone(440, 0.04)
    await run_frames(bridge, 3)
    assert await tone is True
    call.listener = None
    call.mark_ended("local")
    assert call.ended_by == "local"
