"""Calling out: ``await voip.dial(uri, handler)``, and the ``voip dial`` softphone.

The softphone is itself a handler on an outgoing call: it plays the microphone (or a
WAV) into the call, keeps what it hears (for the speaker, or a WAV), and sends keys
typed (or scripted) as DTMF, so a deployed app can be checked from a script.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any

from ...audio.pcm import FRAME_SAMPLES, PCM
from ...audio.wav import loadWAVtoPCM, savePCMtoWAV
from ...call import Call, RecordController
from ...dtmf import parse_key_script
from ...errors import AudioDeviceError
from ...lifecycle import Handler, check_handler, serve_call
from ...sound import AudioPipe, PipeSink, PipeSource, SoundDevice
from ...terminal import CallTerminal
from .agent import DialResult, SipAgent
from .options import SipOptions, uri_wants_tls

__all__ = ["dial", "DialResult", "SoftphoneOptions", "Softphone", "run_softphone"]

log = logging.getLogger("voip.dial")

_running: SipAgent | None = None
"""The agent of a SIP server running in this process: ``dial`` calls out through it."""


def set_running_agent(agent: SipAgent | None) -> None:
    global _running
    _running = agent


async def dial(
    uri: str,
    handler: Handler,
    *,
    timeout: float = 60.0,
    options: SipOptions | None = None,
) -> DialResult:
    """Call ``uri`` and, once answered, run ``handler(call)`` on the call.

    Inside a SIP server (``--sip``) the call goes out through the server's own endpoint;
    elsewhere a SIP endpoint is started for it (``options``, default: UDP on a free
    port, plus TLS for a ``sips:`` URI or ``;transport=tls``) and stopped afterwards;
    ``options.srtp`` and the ``tls_*`` settings secure the call. Returns a
    :class:`DialResult`: ``state`` is ``answered``, ``busy``, ``no answer`` (also when
    nobody answers within ``timeout`` seconds), ``rejected`` or ``failed``, ``status``
    the SIP code, ``error`` what the handler raised.
    """
    check_handler(handler)
    loop = asyncio.get_running_loop()
    agent = _running if _running is not None and _running.loop is loop else None
    own = agent is None
    if agent is None:
        opts = options or SipOptions(listen="0.0.0.0:0", transports=("udp",))
        if uri_wants_tls(uri) and "tls" not in opts.sip_transports:
            # A client-side TLS transport: no certificate needed to call out.
            opts = dataclasses.replace(opts, transports=(*opts.transports, "tls"))
        agent = SipAgent(opts, loop)
        await agent.start()
    try:
        try:
            call, result = await agent.dial(uri, timeout)
        except TimeoutError:
            return DialResult(408, "no answer", False)
        if call is None:
            log.info("call to %s: %s (%d %s)", uri, result.state, result.status, result.reason)
            return result
        outcome = await serve_call(handler, call)
        return DialResult(200, "OK", True, outcome.error)
    finally:
        if own:
            await agent.stop()


@dataclass
class SoftphoneOptions:
    """What the ``voip dial`` softphone sends and keeps."""

    mic: str | None = None
    speaker: str | None = None
    keys: str = ""
    dtmf_method: str = "rfc4733"
    audio: bool = True
    hangup_after: float | None = None
    interactive: bool | None = None


class Softphone:
    """The handler that makes an outgoing call behave like a phone."""

    def __init__(self, opts: SoftphoneOptions) -> None:
        self.opts = opts
        self.mic: PCM | None = loadWAVtoPCM(opts.mic) if opts.mic else None
        self.presses = parse_key_script(opts.keys)
        self.sent: list[str] = []

    async def __call__(self, call: Call) -> None:
        o = self.opts
        heard_ctl = RecordController()
        heard = call.recordPCM(heard_ctl) if o.speaker else None
        if self.mic is not None:
            call.playPCM(self.mic)
        device, ui = self._open_device(call)
        keys = asyncio.create_task(self._press_keys(call))
        try:
            await asyncio.wait_for(call.ended.wait(), o.hangup_after)
        except TimeoutError:
            log.info("hanging up after %g s", o.hangup_after)
        finally:
            keys.cancel()
            if ui is not None:
                ui.stop()
            if device is not None:
                device.stop()
            if heard is not None and o.speaker:
                heard_ctl.stop()
                savePCMtoWAV(await heard, o.speaker)

    async def _press_keys(self, call: Call) -> None:
        start = asyncio.get_running_loop().time()
        for at, key in self.presses:
            await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
            self._send(call, key)

    def _send(self, call: Call, key: str) -> None:
        self.sent.append(key)
        call.sendDTMF(key, self.opts.dtmf_method)

    def _open_device(self, call: Call) -> tuple[SoundDevice | None, CallTerminal | None]:
        o = self.opts
        device = None
        if o.audio:
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
                    call._play(PipeSource(to_call))
                call._record(PipeSink(to_speaker))
                device.start()
        interactive = o.interactive
        if interactive is None:
            interactive = sys.stdin.isatty() and sys.stderr.isatty()
        ui = None
        if interactive:
            ui = CallTerminal(call, lambda key: self._send(call, key))
            ui.keys = self.sent
            ui.start()
        return device, ui


async def run_softphone(uri: str, sip: SipOptions, opts: SoftphoneOptions) -> int:
    """``voip dial``: call ``uri`` with the softphone; exit status 0 when answered."""
    phone = Softphone(opts)
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
    if result.answered:  # dial() has logged the other outcomes
        log.info("call to %s: %s (%d %s)", uri, result.state, result.status, result.reason)
    return 0 if result.answered and result.error is None else 1


def softphone_main(args: Any) -> int:
    """Entry point for ``voip dial`` (``args`` from :func:`voip.cli.main`)."""
    from ...runner import _configure_logging, _run_loop
    from .options import sip_options_from_args

    _configure_logging(args.log_level)
    if args.listen is None:
        args.listen = "0.0.0.0:0"
    if args.transport is None:
        args.transport = ["udp"]
    sip = sip_options_from_args(args)
    opts = SoftphoneOptions(
        mic=args.mic,
        speaker=args.speaker,
        keys=args.keys,
        dtmf_method=args.dtmf,
        audio=not args.no_audio,
        hangup_after=args.hangup_after,
    )
    return _run_loop(run_softphone(args.uri, sip, opts))
