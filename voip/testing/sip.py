"""The same :class:`~voip.testing.phone.Phone` over real SIP, in real time: :func:`dial_sip`.

The phone is voip's own outgoing call (:func:`voip.dial`) in this process: a handler
that hands the phone every frame it receives (a sink in the call's mixer, so that PJSIP
delivers each 20 ms frame), plays what the phone speaks and sends its keys. What the
app did is not known over SIP (no events); the audio waiters work on what was heard.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..audio.pcm import PCM
from ..call import Call
from ..caller import DtmfMethod
from ..errors import VoipError
from ..outgoing import dial
from .clock import is_virtual
from .phone import Phone
from .timeline import Who

__all__ = ["dial_sip"]


class _HeardSink:
    """A recording that never ends: each frame received goes to the phone, on the loop.

    Runs on PJSIP's clock thread (a :class:`~voip.audio.engine.Sink`), so it only hands
    over copies with ``call_soon_threadsafe``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, phone: Phone) -> None:
        self.loop = loop
        self.phone = phone

    def write(self, samples: PCM) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.phone._on_audio, samples.copy())
        except RuntimeError:  # the loop has closed: the test is over
            return True
        return False

    def result(self) -> None:
        return None

    def describe(self) -> str:
        return "test phone's ear"


class _SipLine:
    """A phone's Line over an outgoing SIP call; :meth:`handler` runs on the call."""

    def __init__(self, dtmf: DtmfMethod) -> None:
        self.dtmf = dtmf
        self.loop = asyncio.get_running_loop()
        self.call: Call | None = None
        self.answered: asyncio.Future[None] = self.loop.create_future()
        self.phone: Phone | None = None
        self._speaking = asyncio.Lock()

    async def handler(self, call: Call) -> None:
        assert self.phone is not None
        self.call = call
        call.record_into(_HeardSink(self.loop, self.phone))
        self.answered.set_result(None)
        try:
            await call.ended.wait()
        finally:  # the app hanging up cancels this handler, as any caller's
            self.phone._on_end(_who(call))

    @property
    def active(self) -> bool:
        return self.call is not None and self.call.active

    def now(self) -> float:
        assert self.phone is not None
        return self.phone._timeline.seconds

    def sync(self) -> None:
        """Nothing to do: PJSIP hands over every frame as it comes."""

    def send_key(self, key: str) -> None:
        assert self.call is not None
        self.call.sendDTMF(key, self.dtmf)

    async def send_audio(self, pcm: PCM) -> None:
        assert self.call is not None
        async with self._speaking:  # one after the other, as in-process
            await self.call.playPCM(pcm)

    def hang_up(self) -> None:
        assert self.call is not None
        self.call.hangup()


def _who(call: Call) -> Who:
    """The softphone's ``local`` is the caller's hang-up, ``remote`` the app's."""
    return "caller" if call.ended_by == "local" else "app"


@asynccontextmanager
async def dial_sip(
    uri: str,
    *,
    dtmf: DtmfMethod = "rfc4733",
    answer_timeout: float = 30.0,
    **settings: Any,
) -> AsyncIterator[Phone]:
    """Call a deployed app at ``uri`` over SIP, in real time; yields the caller's
    :class:`Phone` once it answers (its waiters' time-outs are in real seconds).

    ``settings`` are the softphone's SIP settings (:class:`SipOptions` fields, e.g.
    ``listen="127.0.0.1:5072"``, ``rtp_ports=(21000, 21099)``, ``srtp="mandatory"``);
    ``dtmf`` how keys are sent. Raises :class:`~voip.errors.VoipError` when the call is
    not answered. Leaving the block hangs up if the call is still up.
    Needs ``pip install 'voip[sip]'``.
    """
    if is_virtual(asyncio.get_running_loop()):
        raise VoipError("dial_sip calls in real time: use it outside app() and dial()")
    from ..backends.pjsip.options import SipOptions
    from ..settings import resolve

    options = dataclasses.replace(resolve(SipOptions, "dialler", environ={}), **settings)
    line = _SipLine(dtmf)
    phone = line.phone = Phone(line, with_events=False)
    calling = asyncio.create_task(dial(uri, line.handler, timeout=answer_timeout, options=options))
    either: set[asyncio.Future[Any]] = {calling, line.answered}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not line.answered.done():
        result = calling.result()
        raise VoipError(f"call to {uri}: {result.state} ({result.status} {result.reason})")
    try:
        yield phone
    finally:
        if line.active:
            line.hang_up()
        result = await calling
    if result.error is not None:
        raise result.error
