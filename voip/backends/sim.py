"""The simulator: one call that starts at once, on this machine.

Interactive: the microphone is the caller's voice, the speaker the phone's earpiece, the
keyboard the keypad, Ctrl-C hangs up. Scripted (tests, CI), by a
:class:`~voip.caller.CallerScript`: ``--mic in.wav`` is the caller's voice,
``--speaker out.wav`` records what the caller hears (one continuous timeline from the
answer), ``--keys "ww1234"`` presses keys. Either way it runs in real time, paced by the
sound card or, without one, by :class:`~voip.sound.FrameClock`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from ..audio.pcm import FRAME_SAMPLES, FRAME_SECONDS, PCM
from ..audio.wav import WAVWriter
from ..bridge import MediaBridge
from ..call import Call, CallInfo
from ..caller import CallerScript
from ..dialling import DIALLER
from ..errors import AudioDeviceError
from ..lifecycle import Handler, serve_call
from ..outgoing import SessionDialler
from ..sound import FrameClock, SoundDevice
from ..terminal import CallTerminal
from ..transfer import Report
from .base import Backend

__all__ = ["SimOptions", "SimBackend", "DEFAULT_CALLER"]

log = logging.getLogger(__name__)

DEFAULT_CALLER = "5556667777"

_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)


@dataclass
class SimOptions:
    """How the simulated call is made."""

    caller: str = DEFAULT_CALLER
    """The caller's number."""
    name: str = ""
    """The caller's display name."""
    script: CallerScript = field(default_factory=CallerScript)
    """What the caller says, hears and presses."""


class _Timeline:
    """Per-frame work of the simulated caller, run on the audio thread."""

    def __init__(self, script: CallerScript, call: Call, bridge: MediaBridge) -> None:
        self.call = call
        self.bridge = bridge
        self.mic = script.mic_pcm()
        self.presses = script.presses()
        self.hangup_after = script.hangup_after
        self.speaker = WAVWriter(script.speaker) if script.speaker else None
        # PortAudio may run one last callback while the stream is being stopped.
        self._speaker_lock = threading.Lock()
        self.frames = 0

    def tick(self, device_in: PCM | None) -> PCM:
        n = self.frames
        self.frames += 1
        now = n * FRAME_SECONDS
        while self.presses and self.presses[0][0] <= now:
            self.bridge.post(self.call.feed_dtmf, self.presses.pop(0)[1])
        if self.hangup_after is not None and now >= self.hangup_after:
            self.hangup_after = None
            self.bridge.post(self.call.mark_ended, "remote")
        if self.mic is not None:
            received = self._mic_frame(n)
        else:  # no microphone: the caller is silent, and recordings still advance
            received = device_in if device_in is not None else _SILENCE
        out = self.bridge.exchange(received)
        with self._speaker_lock:
            if self.speaker is not None:
                self.speaker.write(out)
        return out

    def _mic_frame(self, n: int) -> PCM:
        assert self.mic is not None
        frame = self.mic[n * FRAME_SAMPLES : (n + 1) * FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:  # the WAV has ended: the caller is silent
            frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
        return frame

    def close(self) -> None:
        with self._speaker_lock:
            if self.speaker is not None:
                self.speaker.close()
                self.speaker = None


class _SimTransferer:
    """The simulated caller accepts every transfer and reaches the target at once."""

    def refer(self, target: str, replaces: Call | None, report: Report) -> None:
        log.info("simulator: the caller is put through to %s", target)
        asyncio.get_running_loop().call_soon(report, 200, "OK")

    def abandon(self) -> None:
        pass


class SimBackend(Backend):
    """Runs the handler on one simulated call."""

    def __init__(self, opts: SimOptions) -> None:
        self.opts = opts

    async def run(self, handler: Handler) -> int:
        opts = self.opts
        loop = asyncio.get_running_loop()
        bridge = MediaBridge(loop)
        number = opts.caller
        uri = f'"{opts.name or number}" <sip:{number}@localhost>'
        call = Call(bridge, CallInfo(uri, number, opts.name, call_id="sim"))
        call.transferer = _SimTransferer()
        timeline = _Timeline(opts.script, call, bridge)
        driver = self._open_driver(timeline)
        interactive = opts.script.interactive
        if interactive is None:
            interactive = sys.stdin.isatty() and sys.stderr.isatty()
        ui = CallTerminal(call, call.feed_dtmf) if interactive else None
        loop.add_signal_handler(signal.SIGINT, call.mark_ended, "remote")
        log.info("call from %s answered (simulator)", uri)
        dialler = SessionDialler()
        DIALLER.set(dialler)  # the handler's calls out (call.connect) are real
        try:
            driver.start()
            if ui is not None:
                ui.start()
            outcome = await serve_call(handler, call)
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            if ui is not None:
                ui.stop()
            driver.stop()
            timeline.close()
            await dialler.close()
        log.info("call ended (%s hung up)", "we" if outcome.ended_by == "local" else "caller")
        return 1 if outcome.error is not None else 0

    def _open_driver(self, timeline: _Timeline) -> FrameClock | SoundDevice:
        if self.opts.script.audio:
            device = SoundDevice(timeline.tick)
            try:
                device.open()
                return device
            except AudioDeviceError as exc:
                log.warning("%s; running silent (--speaker out.wav records the call)", exc)
        return FrameClock(timeline.tick)
