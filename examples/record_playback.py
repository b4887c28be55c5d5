#!/usr/bin/env python3
"""Recording audio: record the caller until they press a key, then play it back.

A ``RecordController`` decides when ``recordPCM`` stops: here, at the first key. The app
says "record your message after the beep" (assets/record_prompt.wav), beeps, records,
then says "playing back" (assets/playing_back.wav) and plays the recording.

Headless (the caller's voice comes from a WAV; press a key once they are done):

    python examples/record_playback.py --no-audio --mic voice.wav --keys wwwwwwwwwwww1 \\
        --speaker out.wav --hangup-after 30
"""

from pathlib import Path

from voip import RecordController, loadWAVtoPCM, runVoipClient

ASSETS = Path(__file__).resolve().parent.parent / "assets"

record_prompt = loadWAVtoPCM(ASSETS / "record_prompt.wav")
playing_back = loadWAVtoPCM(ASSETS / "playing_back.wav")


async def handler(call):
    await call.playPCM(record_prompt)
    await call.playTone(1000, 0.25)
    # keys pressed during the prompt are not the end of a recording not yet made
    call.flushDTMF()
    # the RecordController lets us control when the recording should stop
    controller = RecordController()
    # start recording
    recorder = call.recordPCM(controller)
    # wait for a keypress
    key = await call.getDTMF()
    # stop recording
    controller.stop()
    # get the recording
    recording = await recorder
    call.log.info("recorded %.1f s, ended with key %s", len(recording) / 8000, key)
    # play it back
    await call.playPCM(playing_back)
    await call.playPCM(recording)


if __name__ == "__main__":
    runVoipClient(handler)
