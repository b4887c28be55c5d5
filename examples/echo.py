#!/usr/bin/env python3
"""An echo test: everything the caller says is played straight back, until a key.

Shows the per-sample methods: ``recordCustom(fn)`` calls ``fn(sample)`` for every
received sample, ``playCustom(fn)`` calls ``fn(t, delta)`` for every sample to send.
They run on the audio thread, not in the event loop, so they talk to each other through
a thread-safe ``queue.Queue`` (to wake the handler, use ``loop.call_soon_threadsafe``).

Headless (the caller's voice comes from a WAV; the echo lands in out.wav):

    python examples/echo.py --no-audio --mic voice.wav --keys wwwwww1 \\
        --speaker out.wav --hangup-after 20
"""

import queue

from voip import runVoipClient


async def handler(call):
    sampleQueue = queue.Queue(maxsize=8000 * 2)
    stop = False

    def sampleInput(sample):
        # sample is the incoming audio sample
        if stop:
            # returning False stops the recording
            return False
        if not sampleQueue.full():
            # put the recieved sample into the queue
            sampleQueue.put(sample)
        # returning true continues the recording so this
        # method will be called for the next incoming sample
        return True

    def sampleOutput(t, delta):
        # t is the time in seconds since playback started
        # delta is the time in seconds between subsequent calls
        if stop:
            # returning None stops the playback
            return None
        if sampleQueue.qsize() < 160:
            # return 0 if there aren't enough samples in the queue
            return 0
        # this pops the sample off the queue and returns it for playback
        return sampleQueue.get()

    # recordCustom takes a function that gets
    # called for each incoming audio sample
    call.recordCustom(sampleInput)
    # playCustom takes a function that gets called
    # every time a sample needs to be played
    call.playCustom(sampleOutput)
    # wait for a keypress
    await call.getDTMF()
    # stop both: the functions see it on their next sample
    stop = True


if __name__ == "__main__":
    runVoipClient(handler)
