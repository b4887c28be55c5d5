"""In-process calls to a handler on virtual time: :func:`app` and :func:`dial`; the
app's own calls out go to the test's callees (:mod:`.callee`).

Each call is a :class:`~voip.call.Call` over a :class:`~voip.bridge.MediaBridge` with no
thread: a timer of the loop exchanges one 20 ms frame every 20 ms of loop time, as the
simulator's clock thread does in real time (what the caller says in, what the app plays
out, to the phone), and with the loop on virtual time (:mod:`.clock`) the frames follow
each other as fast as the CPU allows. While the mixer has nothing to play or record and
the caller nothing to say, every frame would be silence: the timer stops (as the SIP
backend pauses an idle call's port) and the silent frames are added when something
happens or someone reads the audio, so that an hour of waiting costs no more than a
second. The handler runs under :func:`voip.lifecycle.serve_call`, the rules of every
backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import numpy as np

from ..audio.pcm import FRAME_SAMPLES, FRAME_SECONDS, PCM
from ..backends.sim import DEFAULT_CALLER
from ..bridge import MediaBridge
from ..call import Call, CallInfo
from ..dialling import DIALLER, DialResult
from ..errors import CallEndedError, InvalidArgumentError
from ..events import CallEvent
from ..lifecycle import Handler, Outcome, check_handler, serve_call
from ..transfer import Report
from .callee import Callee, uri_key
from .clock import virtual_time
from .phone import Phone
from .timeline import Who, rebase

__all__ = ["app", "dial", "RunningApp"]

log = logging.getLogger("voip.testing")


class _LocalLine:
    """One call between a phone and the handler, in this process (a phone's Line)."""

    def __init__(self, info: CallInfo) -> None:
        self.loop = asyncio.get_running_loop()
        self.bridge = MediaBridge(self.loop)
        self.call = Call(self.bridge, info, self._app_hung_up)
        self.call.transferer = self
        self.start = self.loop.time()
        self._frames = 0
        self._timer: asyncio.TimerHandle | None = None
        self._mic: deque[tuple[PCM, asyncio.Future[None]]] = deque()
        self._mic_at = 0
        self._phone: Phone | None = None
        self._over = False
        self.task: asyncio.Task[Outcome] | None = None

    def connect(self, phone: Phone, handler: Handler) -> None:
        """Answer: the handler starts now, the first frame is exchanged 20 ms later."""
        self._phone = phone
        self.call.listener = self._event
        self.task = self.loop.create_task(serve_call(handler, self.call))
        self.bridge.on_activity = self._wake
        self._timer = self.loop.call_at(self.start + FRAME_SECONDS, self._tick)

    # -- Line ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.call.active

    def now(self) -> float:
        return self.loop.time() - self.start

    def sync(self) -> None:
        """Add the silent frames due by now that an idle call skipped."""
        if self._timer is not None or self._over:
            return
        due = int((self.loop.time() - self.start) / FRAME_SECONDS + 1e-6)
        if due > self._frames:
            assert self._phone is not None
            self._phone._on_audio(np.zeros((due - self._frames) * FRAME_SAMPLES, np.float32))
            self._frames = due

    def send_key(self, key: str) -> None:
        self.call.feed_dtmf(key)

    async def send_audio(self, pcm: PCM) -> None:
        sent = self.loop.create_future()
        self._mic.append((pcm, sent))
        self._wake()
        await sent

    def hang_up(self) -> None:
        self._ended("caller")
        self.call.mark_ended("remote")

    # -- the app transfers the call (voip.transfer.Transferer) ----------------------------

    def refer(self, target: str, replaces: Call | None, report: Report) -> None:
        assert self._phone is not None
        status, reason = self._phone._transfer_asked(target)
        self.loop.call_soon(report, status, reason)
        other = replaces.transferer if replaces is not None else None
        if 200 <= status < 300 and isinstance(other, _LocalLine) and other.active:
            # Attended: the target's call with the app is replaced by ours; it hangs up.
            self.loop.call_soon(other.hang_up)

    def abandon(self) -> None:
        pass

    # -- the frames ----------------------------------------------------------------------

    def _tick(self) -> None:
        assert self._phone is not None
        self._frames += 1
        out = self.bridge.exchange(self._mic_frame())
        self._phone._on_audio(out)
        self._timer = None
        if self.call.active and (self.bridge.active or self._mic):
            self._schedule()

    def _wake(self) -> None:
        """Something may play, record or be said: exchange frames again."""
        if self._timer is None and self.call.active and (self.bridge.active or self._mic):
            self.sync()
            self._schedule()

    def _schedule(self) -> None:
        due = self.start + (self._frames + 1) * FRAME_SECONDS
        self._timer = self.loop.call_at(due, self._tick)

    def _mic_frame(self) -> PCM:
        """The caller's next 20 ms: what :meth:`send_audio` queued, else silence."""
        frame = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        filled = 0
        while filled < FRAME_SAMPLES and self._mic:
            pcm, sent = self._mic[0]
            part = pcm[self._mic_at : self._mic_at + FRAME_SAMPLES - filled]
            frame[filled : filled + len(part)] = part
            filled += len(part)
            self._mic_at += len(part)
            if self._mic_at >= len(pcm):
                self._mic.popleft()
                self._mic_at = 0
                if not sent.done():
                    sent.set_result(None)
        return frame

    # -- the end -------------------------------------------------------------------------

    def _app_hung_up(self) -> None:
        self._ended("app")

    def _ended(self, by: Who) -> None:
        self.sync()
        self._over = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._mic:
            _, sent = self._mic.popleft()
            if not sent.done():
                sent.set_exception(CallEndedError(f"the call ended (the {by} hung up)"))
        assert self._phone is not None
        # Told after the ends of the sounds the hang-up cut off, which mark_ended (just
        # run, or about to run for the app's hang-up) reports through callbacks.
        self.loop.call_soon(self.loop.call_soon, self._phone._on_end, by)

    def _event(self, event: CallEvent) -> None:
        assert self._phone is not None
        self._phone._on_event(rebase(event, self.start))


class RunningApp:
    """A handler taking calls, within :func:`app`: :meth:`dial` it as often as needed;
    the calls it places go to the :meth:`callee` at their URI."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.phones: list[Phone] = []
        """The phones that called it, in order."""
        self._lines: list[_LocalLine] = []
        self._callees: dict[str, Callee] = {}

    async def dial(
        self,
        caller: str = DEFAULT_CALLER,
        *,
        name: str = "",
        headers: Mapping[str, str] | None = None,
        refuses_transfer: bool | int = False,
    ) -> Phone:
        """Call the app from ``caller`` (a number; ``name``: a display name; ``headers``:
        the request's headers, as ``call.headers`` shows them; ``refuses_transfer``:
        True, the phone declines ``call.transfer()`` with 603, or the status its call
        to the target failed with, see :attr:`Phone.refuses_transfer`). The call is
        answered at once and the handler starts; returns the caller's :class:`Phone`."""
        n = len(self.phones) + 1
        uri = f'"{name or caller}" <sip:{caller}@localhost>'
        info = CallInfo(uri, caller, name, dict(headers or {}), call_id=f"kit-{n}")
        _, phone = self._answer(info, self.handler, f"phone {n}" if n > 1 else "phone")
        phone.refuses_transfer = refuses_transfer
        self.phones.append(phone)
        return phone

    def callee(self, uri: str, *, respond: int | None = None, after: float = 0.0) -> Callee:
        """Someone at ``uri`` for the app to call (``call.connect``, ``voip.dial``); see
        :mod:`voip.testing.callee`. Each call rings until the test answers or refuses it
        (``await callee.answer()``, ``callee.refuse(486)``) or the app gives up; with
        ``respond`` (200: answer, or a refusal such as 486 busy, 603 declined) it does
        that on its own after ``after`` seconds of ringing. A URI with no callee is
        answered 404 (``state == "failed"``)."""
        if not isinstance(uri, str) or not uri_key(uri).startswith(("sip:", "sips:")):
            raise InvalidArgumentError(f"a callee's uri is a SIP URI, got {uri!r}")
        callee = Callee(uri, respond, after, self._answer)
        self._callees[uri_key(uri)] = callee
        return callee

    async def _dial(
        self, uri: str, handler: Handler, *, timeout: float, caller_id: str | None
    ) -> DialResult:
        """The app places a call (its :data:`~voip.dialling.DIALLER` within :func:`app`)."""
        if not isinstance(uri, str) or not uri_key(uri).startswith(("sip:", "sips:")):
            raise InvalidArgumentError(f"{uri!r} is not a SIP URI (e.g. sip:sales@pbx.example)")
        callee = self._callees.get(uri_key(uri))
        if callee is None:
            known = ", ".join(c.uri for c in self._callees.values()) or "none"
            log.warning("the app called %s: no callee there (the test made: %s)", uri, known)
            return DialResult(404, "Not Found", False)
        return await callee.ring(handler, timeout, caller_id)

    def _answer(
        self, info: CallInfo, handler: Handler, name: str
    ) -> tuple[asyncio.Task[Outcome], Phone]:
        """A new answered call: ``handler`` on the app's side, a phone on the other."""
        line = _LocalLine(info)
        phone = Phone(line, with_events=True, name=name)
        line.connect(phone, handler)
        self._lines.append(line)
        assert line.task is not None
        return line.task, phone

    async def _finish(self) -> list[BaseException]:
        """Hang up the calls still up, let the handlers finish; what they raised."""
        for line in self._lines:
            if line.active:
                line.hang_up()
        errors = []
        for line in self._lines:
            assert line.task is not None
            await asyncio.wait({line.task})
            if line.task.cancelled():  # a call out, cancelled with the app's call placing it
                continue
            outcome = line.task.result()
            if outcome.error is not None:
                errors.append(outcome.error)
        return errors


@asynccontextmanager
async def app(handler: Handler) -> AsyncIterator[RunningApp]:
    """Run ``handler`` for the calls of the block, on virtual time::

        async with app(handler) as running:
            a = await running.dial("5551234")
            b = await running.dial("5559876")

    Leaving the block hangs up the calls still up, waits for the handlers to finish
    (on virtual time) and raises what a handler raised (several: an ExceptionGroup).
    The app's calls out (``call.connect``, ``voip.dial``) reach :meth:`RunningApp.callee`.
    """
    check_handler(handler)
    with virtual_time(asyncio.get_running_loop()):
        running = RunningApp(handler)
        token = DIALLER.set(running._dial)
        try:
            yield running
        except BaseException as exc:
            for error in await running._finish():
                exc.add_note(f"the handler also raised {error!r}")
            raise
        else:
            errors = await running._finish()
        finally:
            DIALLER.reset(token)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup("the handlers raised", errors)  # type: ignore[type-var]


@asynccontextmanager
async def dial(
    handler: Handler,
    caller: str = DEFAULT_CALLER,
    *,
    name: str = "",
    headers: Mapping[str, str] | None = None,
    refuses_transfer: bool | int = False,
) -> AsyncIterator[Phone]:
    """One call to ``handler`` on virtual time; yields the caller's :class:`Phone`::

        async with dial(handler, caller="5551234") as phone:
            await phone.heard_say("For sales press 1")
            await phone.press("1")

    Leaving the block hangs up if the call is still up, waits for the handler to finish
    and raises what it raised, so a broken handler fails its test. The phone accepts
    ``call.transfer()`` unless ``refuses_transfer``.
    """
    async with app(handler) as running:
        yield await running.dial(
            caller, name=name, headers=headers, refuses_transfer=refuses_transfer
        )
