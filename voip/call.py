"""What a handler sees: the :class:`Call` object, backend-agnostic.

The handler's methods check their arguments and hand the work to the call's
:class:`~voip.bridge.MediaBridge` (audio) and :class:`~voip.dtmf.DTMFCollector` (keys),
resolving ``getDTMF``'s future as keys arrive. Backends report to the call with
:meth:`Call.feed_dtmf` and :meth:`Call.mark_ended`, which, when the caller hung up,
cancels the handler's task, then stops the call's audio and fails a waiting ``getDTMF``.
Everything here runs on the event loop's thread: backends' other threads reach it through
the bridge (``bridge.post``). A watcher (the test kit) sets :attr:`Call.listener` to hear
of what the app does (:mod:`voip.events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from . import bridging as _bridging
from . import connecting as _connecting
from . import gather as _gather
from . import record as _record
from . import transfer as _transfer
from .audio.engine import (
    CustomRecorder,
    CustomSource,
    PCMRecorder,
    PCMSource,
    Sink,
    Source,
    ToneSource,
)
from .audio.pcm import SAMPLE_RATE, as_pcm
from .audio.tones import dtmf_tones
from .bridge import MediaBridge
from .callstate import EndedBy
from .checks import number, whole
from .dtmf import DTMFCollector, normalize_key
from .errors import CallEndedError, InvalidArgumentError
from .events import (
    CallEvent,
    DtmfSent,
    HungUp,
    Listener,
    PlaybackEnded,
    Played,
    RecordingStarted,
    RecordingStopped,
    Said,
    played,
)
from .linking import Links, Place

__all__ = ["Call", "CallInfo", "CallLog", "Playback", "Recording", "RecordController"]

log = logging.getLogger(__name__)

_Event = TypeVar("_Event", bound=CallEvent)

MAX_SECONDS = 24 * 3600
"""Longest tone accepted: longer is almost surely a unit mistake (ms for s)."""


@dataclass(frozen=True)
class CallInfo:
    """Who is calling, as the backend learnt it."""

    remote_uri: str
    """The caller's URI as in the From header, e.g. ``"Alice" <sip:5551234@host>``."""
    number: str = ""
    """The caller's number (the user part of the URI)."""
    name: str = ""
    """The caller's display name, or empty."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers of the request that started the call (empty in the simulator)."""
    call_id: str = ""
    """A short id used to prefix log lines."""
    source: str = ""
    """Where the request that started the call came from, ``host:port`` (SIP only)."""


class RecordController:
    """Stops the recordings it was passed to: ``controller.stop()``.

    A recording started with a controller that is already stopped ends at once, empty.
    """

    def __init__(self) -> None:
        self.stopped = False
        self._callbacks: list[Callable[[], None]] = []

    def stop(self) -> None:
        """End every recording using this controller; each resolves with what it holds."""
        self.stopped = True
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb()

    def _attach(self, cb: Callable[[], None]) -> None:
        if self.stopped:
            cb()
        else:
            self._callbacks.append(cb)


class _Handle:
    """Common base of :class:`Playback` and :class:`Recording`: awaitable and cancellable."""

    def __init__(self, bridge: MediaBridge, handle: int, fut: asyncio.Future[Any]) -> None:
        self._bridge = bridge
        self._handle = handle
        self._fut = fut

    def __await__(self) -> Generator[Any, None, Any]:
        return self._fut.__await__()

    def done(self) -> bool:
        """True once it has ended, whatever the reason."""
        return self._fut.done()

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(self)`` on the loop when it ends."""
        self._fut.add_done_callback(lambda _f: fn(self))


class Playback(_Handle):
    """A sound being played. ``await`` it for the end; ``cancel()`` stops it at once.

    Awaiting gives True when the sound played to its end and False when it was cancelled
    or the call ended first. Overlapping playbacks are mixed.
    """

    def cancel(self) -> bool:
        """Stop playing now (from the next 20 ms frame). Returns False if already over."""
        if self._fut.done():
            return False
        if self._handle:
            self._bridge.stop(self._handle, False)
        else:  # not started yet (speech being synthesised): it never will be
            self._fut.set_result(False)
        return True

    def cancelled(self) -> bool:
        """True if it was stopped before its end."""
        return self._fut.done() and not self._fut.cancelled() and self._fut.result() is False


class Recording(_Handle):
    """Audio being recorded. ``await`` it for the PCM; ``stop()`` ends it now."""

    def stop(self) -> None:
        """End the recording; awaiting it then gives what was recorded so far."""
        if not self._fut.done():
            self._bridge.stop(self._handle)

    cancel = stop


class Call:
    """One phone call, as a handler sees it.

    Created by a backend; the handler receives it as its only argument.
    """

    def __init__(
        self,
        bridge: MediaBridge,
        info: CallInfo,
        hangup: Callable[[], None] = lambda: None,
        send_dtmf: Callable[[str, str], None] | None = None,
    ) -> None:
        self._bridge = bridge
        self.info = info
        self.dtmf = DTMFCollector()
        self._hangup_backend = hangup
        self._send_dtmf = send_dtmf
        self.ended = asyncio.Event()
        """Set when the call is over, whoever hung up: ``await call.ended.wait()``."""
        self.ended_by: EndedBy | Literal[""] = ""
        """Who ended the call: ``"local"`` (:meth:`hangup`), ``"remote"`` (the caller), or
        empty while it goes on."""
        self.log = CallLog(log, info.call_id)
        self.handler_task: asyncio.Task[Any] | None = None
        """The task running the handler; the caller hanging up cancels it (unless it is
        in a verb the hang-up ends instead: :meth:`hangup_ends_verb`)."""
        self.handler_goes_on = False
        """True when the caller hung up during such a verb: the handler was not cancelled."""
        self._verbs = 0
        self.listener: Listener | None = None
        """Called on the loop with each :mod:`voip.events` event (what the app played,
        recorded, sent, and the end of the call); None: no events are made."""
        self.links = Links(bridge)
        """Which calls this one hears and is heard by (:mod:`voip.linking`)."""
        self.place: Place | None = None
        """The bridge, room or queue the call is in, if any (one at a time)."""
        self._end_callbacks: list[Callable[[], None]] = []
        self.transferer: _transfer.Transferer | None = None
        """How the backend carries out :meth:`transfer` (None: it cannot)."""
        self.transferring = False
        """True while :meth:`transfer` waits for its outcome (one transfer at a time)."""

    # -- who is calling ------------------------------------------------------------------

    def getRemoteUri(self) -> str:
        """The caller's URI as given in the From header (the seed's API)."""
        return self.info.remote_uri

    @property
    def caller(self) -> str:
        """The caller's number (the user part of their URI), e.g. ``"5551234"``."""
        return self.info.number

    @property
    def caller_name(self) -> str:
        """The caller's display name, or an empty string."""
        return self.info.name

    @property
    def headers(self) -> Mapping[str, str]:
        """Headers of the request that started the call (empty in the simulator)."""
        return self.info.headers

    @property
    def active(self) -> bool:
        """True until the call ends."""
        return not self.ended.is_set()

    @property
    def bridged_to(self) -> Call | None:
        """The call this one is bridged to (:meth:`bridge`), or None."""
        place = self.place
        return place.other(self) if isinstance(place, _bridging.Bridge) else None

    # -- playing -------------------------------------------------------------------------

    def playTone(self, freq: float, seconds: float, volume: float = 1.0) -> Playback:
        """Play a sine tone of ``freq`` Hz for exactly ``seconds`` (to the sample).

        ``freq`` must be in (0, 4000) Hz (the telephone band ends at half of 8000 Hz);
        ``seconds`` in [0, 86400]; ``volume`` in [0, 1].
        """
        return self.play_source(
            ToneSource(
                number("freq", freq, 0, SAMPLE_RATE / 2, low_open=True, high_open=True),
                number("seconds", seconds, 0, MAX_SECONDS),
                number("volume", volume, 0, 1),
            )
        )

    def playPCM(self, pcm: Any, loop: bool = False) -> Playback:
        """Play 8 kHz PCM (a numpy array or list of floats in [-1, 1]; outside is clipped).

        With ``loop=True`` it repeats until cancelled.
        """
        return self.play_source(PCMSource(as_pcm(pcm), loop))

    def playCustom(self, fn: Callable[[float, float], float | None]) -> Playback:
        """Play samples from ``fn(t, delta)``: ``t`` seconds since start, ``delta`` the
        sample period; return a sample in [-1, 1], or None to stop.

        ``fn`` runs on the audio thread once per sample: keep it quick, and do not touch
        asyncio objects from it (hand the handler what it awaits with
        ``loop.call_soon_threadsafe``).
        """
        _check_callable("playCustom", fn)
        return self.play_source(CustomSource(fn))

    def say(self, text: str, opts: Iterable[str] = ()) -> Playback:
        """Speak ``text`` with text to speech (see :func:`voip.tts.TTStoPCM` for ``opts``).

        Returns a :class:`Playback` at once, like the other play methods: the speech is
        synthesised off the event loop (cached prompts at once) and plays as soon as it is
        ready; ``cancel()`` before then means it never plays. Bad text or options raise
        here; a failed synthesis raises from awaiting the playback.
        """
        from .tts import speech_future

        self._check_active()
        pcm = speech_future(text, list(opts))
        label = f"speech {text[:24]!r}"
        return self._play_when_ready(
            pcm, lambda samples: PCMSource(samples, label=label), Said(text)
        )

    def _play_when_ready(
        self,
        pending: asyncio.Future[Any],
        source: Callable[[Any], Source],
        event: Played | None = None,
    ) -> Playback:
        """A :class:`Playback` of ``source(result)`` once ``pending`` has its result
        (``event``: what the listener is told it is)."""
        outer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        playback = Playback(self._bridge, 0, outer)

        def start(done: asyncio.Future[Any]) -> None:
            if outer.done():  # cancelled while pending
                return
            error = None if done.cancelled() else done.exception()
            if error is not None:
                outer.set_exception(error)
                return
            if done.cancelled() or not self.active:
                outer.set_result(False)
                return
            inner = self.play_source(source(done.result()), event)
            playback._handle = inner._handle
            inner.add_done_callback(lambda _p: _chain(inner._fut, outer))

        def abandoned(fut: asyncio.Future[Any]) -> None:
            # The awaiting task was cancelled: the sound stops too, as for any playback.
            if fut.cancelled():
                if playback._handle:
                    self._bridge.stop(playback._handle, False)
                pending.cancel()

        pending.add_done_callback(start)
        outer.add_done_callback(abandoned)
        return playback

    def play_source(self, source: Source, event: Played | None = None) -> Playback:
        """Play a :class:`~voip.audio.engine.Source` (for backends and extensions: a
        handler plays with :meth:`playPCM`, :meth:`playTone` and the like). ``event``
        tells the :attr:`listener` what it is (by default, from the source)."""
        self._check_active()
        handle, fut = self._bridge.play(source)
        if self.listener is not None:
            started = self._emit(event or played(source))
            fut.add_done_callback(lambda f: self._emit(PlaybackEnded(started, _value(f) is True)))
        return Playback(self._bridge, handle, fut)

    # -- recording -----------------------------------------------------------------------

    def recordPCM(
        self, controller: RecordController | None = None, maxlen: int | None = None
    ) -> Recording:
        """Record what the caller says; ``await`` the result for the PCM.

        It stops when ``controller.stop()`` is called, after ``maxlen`` samples (8000 per
        second), or when the call ends; each way it resolves with what was recorded.
        One of ``controller`` and ``maxlen`` is required, or the recording could never end.
        """
        if controller is None and maxlen is None:
            raise InvalidArgumentError(
                "recordPCM needs a way to stop: pass a RecordController (and call its "
                "stop()) or maxlen=<number of samples>, e.g. maxlen=8000 * 10 for 10 s"
            )
        if maxlen is not None:
            maxlen = whole("maxlen", maxlen, of="samples")
        if controller is not None and not isinstance(controller, RecordController):
            raise InvalidArgumentError(
                f"controller must be a voip.RecordController, got {type(controller).__name__}"
            )
        rec = self.record_into(PCMRecorder(None if maxlen is None else int(maxlen)))
        if controller is not None:
            controller._attach(rec.stop)
        return rec

    def recordCustom(self, fn: Callable[[float], Any]) -> Recording:
        """Call ``fn(sample)`` for each received sample until it returns False.

        ``fn`` runs on the audio thread (see :meth:`playCustom`). Awaiting gives True.
        """
        _check_callable("recordCustom", fn)
        return self.record_into(CustomRecorder(fn))

    def record_into(self, sink: Sink) -> Recording:
        """Feed what the caller sends into a :class:`~voip.audio.engine.Sink` (for
        backends and extensions: a handler records with :meth:`recordPCM`)."""
        self._check_active()
        handle, fut = self._bridge.record(sink)
        if self.listener is not None:
            self._emit(RecordingStarted())
            fut.add_done_callback(lambda f: self._emit(RecordingStopped(_length(_value(f)))))
        return Recording(self._bridge, handle, fut)

    # -- verbs, each in a module of its own ------------------------------------------------

    bridge = _bridging.bridge
    unbridge = _bridging.unbridge
    connect = _connecting.connect
    gather = _gather.gather
    record = _record.record
    wait_for_speech = _record.wait_for_speech
    wait_for_silence = _record.wait_for_silence
    transfer = _transfer.transfer

    # -- keys ----------------------------------------------------------------------------

    def getDTMF(
        self,
        n: int = 1,
        filter: str | Iterable[str] | None = None,
        on_first: Callable[[str], object] | None = None,
    ) -> asyncio.Future[str]:
        """Wait for ``n`` keys and return them as a string, e.g. ``"1234"``.

        ``filter`` lists the keys accepted (others are ignored), e.g. ``"0123456789"``.
        ``on_first(key)`` is called as soon as the first accepted key arrives (to stop a
        prompt: barge-in). Keys pressed earlier, while nothing was waiting, are served
        first (type-ahead); :meth:`flushDTMF` discards them. Wrap in ``asyncio.wait_for``
        for a time-out: keys collected before it are put back for the next call.
        Raises :class:`CallEndedError` if the call ends while waiting.
        """
        self._check_active()
        stale = self.dtmf.pending
        if stale is not None and stale.future is not None and stale.future.cancelled():
            self.dtmf.abandon(stale)  # cancelled just now: its callback has yet to run
        req, done = self.dtmf.request(n, filter, _guard(on_first, self.log))
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if done is not None:
            fut.set_result(done)
            return fut
        req.future = fut
        fut.add_done_callback(lambda f: self.dtmf.abandon(req) if f.cancelled() else None)
        return fut

    def sendDTMF(self, digits: str, method: str = "rfc4733") -> Playback | None:
        """Send keys to the other end, e.g. ``"123#"``.

        ``method`` is ``"rfc4733"`` (telephone events, the default), ``"info"`` (SIP INFO)
        or ``"inband"`` (tones mixed into the audio; returns their :class:`Playback`).
        In the simulator, events and INFO are only logged. Raises
        :class:`InvalidArgumentError` for a key that is not a DTMF key or a bad method.
        """
        if not isinstance(digits, str):
            raise InvalidArgumentError(f"digits must be a string such as '123#', got {digits!r}")
        if method not in ("rfc4733", "info", "inband"):
            raise InvalidArgumentError(f"method {method!r}: use 'rfc4733', 'info' or 'inband'")
        keys = "".join(normalize_key(k) for k in digits)
        self._check_active()
        if not keys:
            return None
        self.log.info("sending keys %s (%s)", keys, method)
        if method == "inband":
            return self.play_source(
                PCMSource(dtmf_tones(keys), label=f"keys {keys}"), DtmfSent(keys, method)
            )
        if self.listener is not None:
            self._emit(DtmfSent(keys, method))
        if self._send_dtmf is not None:
            self._send_dtmf(keys, method)
        return None

    def flushDTMF(self) -> str:
        """Discard keys typed ahead; returns them."""
        return self.dtmf.flush()

    def feed_dtmf(self, key: str) -> None:
        """Backends: a key arrived (call on the loop, e.g. through ``bridge.post``)."""
        if not self.active:
            return
        self.log.info("key %s", key)
        completed = self.dtmf.push(key)
        if completed is None:
            return
        req, keys = completed
        if req.future is not None and not req.future.done():
            req.future.set_result(keys)

    # -- ending --------------------------------------------------------------------------

    def hangup(self) -> None:
        """End the call now. The handler keeps running; audio and key methods then raise
        :class:`CallEndedError`."""
        if self.active:
            self.log.info("hanging up")
            self._hangup_backend()
            self.mark_ended("local")

    @contextlib.contextmanager
    def hangup_ends_verb(self) -> Iterator[None]:
        """For verbs such as :meth:`gather` and :meth:`record`, run by the handler: inside,
        the caller hanging up ends the verb (it returns normally, with what it holds)
        instead of cancelling the handler, which goes on, e.g. to store a message."""
        counted = self.handler_task is not None and asyncio.current_task() is self.handler_task
        self._verbs += counted
        try:
            yield
        finally:
            self._verbs -= counted

    def mark_ended(self, by: EndedBy = "remote") -> None:
        """Backends: the call is over (``by`` the caller unless said otherwise). Stops audio
        (recordings keep what they hold), fails a waiting ``getDTMF`` with
        :class:`CallEndedError` and, when the caller hung up, cancels the handler (unless
        it is in a verb that the hang-up ends: :meth:`hangup_ends_verb`)."""
        if self.ended.is_set():
            return
        self.ended_by = by
        self.ended.set()
        if self.listener is not None:
            self._emit(HungUp(by))
        if by == "remote" and self.handler_task is not None:
            if self._verbs:
                self.handler_goes_on = True
            else:
                # Before failing the futures below, so the handler sees a cancellation.
                self.handler_task.cancel()
        self._bridge.close()
        req = self.dtmf.pending
        if req is not None:
            self.dtmf.abandon(req)
            if req.future is not None and not req.future.done():
                req.future.set_exception(CallEndedError("the call ended while waiting for keys"))
        callbacks, self._end_callbacks = self._end_callbacks, []
        for fn in callbacks:
            try:
                fn()
            except Exception:  # one bridge's or room's bug must not stop the others'
                self.log.exception("error after the call ended")
        self.links.leave_all()

    def on_end(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` on the loop once the call has ended (for bridges, rooms and
        queues); returns a function that cancels it."""
        self._end_callbacks.append(fn)

        def forget() -> None:
            if fn in self._end_callbacks:
                self._end_callbacks.remove(fn)

        return forget

    def _check_active(self) -> None:
        if not self.active:
            raise CallEndedError("the call has ended")

    def _emit(self, event: _Event) -> _Event:
        """Stamp ``event`` with the loop's time, hand it to the listener, return it."""
        if self.listener is None:  # gone since the sound started
            return event
        stamped = dataclasses.replace(event, at=self._bridge.loop.time())
        self.listener(stamped)
        return stamped

    def status(self) -> tuple[list[str], list[str], float]:
        """What is playing, what is recording, and the last received peak level."""
        playing, recording = self._bridge.describe()
        return playing, recording, self._bridge.mixer.level


def _value(fut: asyncio.Future[Any]) -> Any:
    """What a finished future holds, or None if it was cancelled or failed."""
    return None if fut.cancelled() or fut.exception() is not None else fut.result()


def _length(result: Any) -> float | None:
    """Seconds of audio in a recording's result (None for ``recordCustom``'s True)."""
    return len(result) / SAMPLE_RATE if isinstance(result, np.ndarray) else None


def _chain(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    """Give ``target`` what ``source`` ended with (unless it is done already)."""
    if target.done():
        return
    error = None if source.cancelled() else source.exception()
    if source.cancelled():
        target.cancel()
    elif error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def _check_callable(what: str, fn: Any) -> None:
    if not callable(fn):
        raise InvalidArgumentError(f"{what} takes a function, got {type(fn).__name__}")


class CallLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every log line with the call's id, so concurrent calls can be told apart."""

    def __init__(self, logger: logging.Logger, call_id: str) -> None:
        super().__init__(logger, {"call_id": call_id})
        self.prefix = f"[{call_id}] " if call_id else ""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.prefix}{msg}", kwargs


def _guard(fn: Callable[[str], object] | None, logger: CallLog) -> Callable[[str], object] | None:
    """Wrap the user's on_first so that its exception is logged, not lost in a callback."""
    if fn is None:
        return None

    def guarded(key: str) -> None:
        try:
            fn(key)
        except Exception:
            logger.exception("on_first callback raised")

    return guarded
