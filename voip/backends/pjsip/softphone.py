"""The ``voip dial`` softphone: a handler that makes an outgoing call behave like a phone.

It plays the microphone (or the script's WAV) into the call, keeps what it hears (for
the speaker, or a WAV), and sends keys typed (or scripted) as DTMF, so a deployed app
can be checked from a script. What it does is a :class:`~voip.caller.CallerScript`, the
same as the simulator's caller.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ...audio.pcm import FRAME_SAMPLES, PCM
from ...audio.wav import savePCMtoWAV
from ...call import Call, RecordController
from ...caller import CallerScript
from ...errors import AudioDeviceError
from ...runtime import configure_logging, run_loop
from ...settings import resolve
from ...sound import AudioPipe, PipeSink, PipeSource, SoundDevice
from ...terminal import CallTerminal
from .dial import dial
from .options import SipOptions, sip_options_from_args

__all__ = ["Softphone", "run_softphone", "softphone_main"]

log = logging.getLogger("voip.dial")


class Softphone:
    """The handler that makes an outgoing call behave like a phone."""

    def __init__(self, script: CallerScript) -> None:
        self.script = script
        self.mic = script.mic_pcm()
        self.presses = script.presses()
        self.sent: list[str] = []

    async def __call__(self, call: Call) -> None:
        s = self.script
        heard_ctl = RecordController()
        heard = call.recordPCM(heard_ctl) if s.speaker else None
        if self.mic is not None:
            call.playPCM(self.mic)
        device, ui = self._open_device(call)
        keys = asyncio.create_task(self._press_keys(call))
        try:
            await asyncio.wait_for(call.ended.wait(), s.hangup_after)
        except TimeoutError:
            log.info("hanging up after %g s", s.hangup_after)
        finally:
            keys.cancel()
            if ui is not None:
                ui.stop()
            if device is not None:
                device.stop()
            if heard is not None and s.speaker:
                heard_ctl.stop()
                savePCMtoWAV(await heard, s.speaker)

    async def _press_keys(self, call: Call) -> None:
        start = asyncio.get_running_loop().time()
        for at, key in self.presses:
            await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
            self._send(call, key)

    def _send(self, call: Call, key: str) -> None:
        self.sent.append(key)
        call.sendDTMF(key, self.script.dtmf)

    def _open_device(self, call: Call) -> tuple[SoundDevice | None, CallTerminal | None]:
        s = self.script
        device = None
        if s.audio:
            to_call, to_speaker = AudioPipe(), AudioPipe()

            def tick(mic: PCM | None) -> PCM:
                if mic is not None:
                    to_call.push(mic)
                return to_speaker.pull(FRAME_SAMPLES)

            device = SoundDevice(tick)
            try:
                device.open()
            except AudioDeviceError as exc:
                log.warning("%s; no sound (--speaker out.wav records the call)", exc)
                device = None
            else:
                if self.mic is None:
                    call.play_source(PipeSource(to_call))
                call.record_into(PipeSink(to_speaker))
                device.start()
        interactive = s.interactive
        if interactive is None:
            interactive = sys.stdin.isatty() and sys.stderr.isatty()
        ui = None
        if interactive:
            ui = CallTerminal(call, lambda key: self._send(call, key))
            ui.keys = self.sent
            ui.start()
        return device, ui


async def run_softphone(uri: str, sip: SipOptions, script: CallerScript) -> int:
    """``voip dial``: call ``uri`` with the softphone; exit status 0 when answered."""
    phone = Softphone(script)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        result = await dial(uri, phone, options=sip)
    except asyncio.CancelledError:
        log.info("cancelled")
        return 1
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    # Logged already: the answer and the end by the agent, other outcomes by dial().
    return 0 if result.answered and result.error is None else 1


def softphone_main(args: argparse.Namespace) -> int:
    """Entry point for ``voip dial`` (``args`` from :func:`voip.cli.main`'s dial
    parser). Raises :class:`~voip.errors.VoipError` for bad settings or files."""
    configure_logging(args.log_level)
    sip = sip_options_from_args(args, role="dialler")
    script = resolve(CallerScript, "dialler", args)
    return run_loop(run_softphone(args.uri, sip, script))
