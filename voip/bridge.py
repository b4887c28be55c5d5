"""The one hand-over between audio/SIP threads and the asyncio loop.

Backends run their media and signalling on threads of their own (PortAudio's callback
thread, the simulator's pacing thread; PJSIP's conference clock, SIP, media and event
threads). Those threads call only these:

* :meth:`MediaBridge.exchange` once per 20 ms frame (the audio clock's thread): received
  samples in, samples to send out. It runs the :class:`~voip.audio.engine.Mixer` under a
  lock held for the duration of one frame's mixing, and never touches an asyncio object.
* :meth:`MediaBridge.post` for events (a DTMF digit, a hang-up): it only schedules the
  callback on the loop with ``loop.call_soon_threadsafe``.
* :meth:`MediaBridge.offload_ended` and :meth:`MediaBridge.offload_failed` (the
  backend's own player and recorder reporting), which hand themselves to the loop the
  same way.

They also read :attr:`MediaBridge.wants_audio` and :attr:`MediaBridge.active`, without
the lock (a stale answer costs a frame).

Everything else (starting a playback, resolving its future) happens on the loop thread.
When a playback or recording ends inside a frame, ``exchange`` hands the list of finished
items to the loop the same way, and they are resolved there.

A backend may play and record some sounds itself instead of through the mixer (the SIP
backend hands plain sounds and recordings to PJSIP's own ports, in C, so that no Python
runs for them every 20 ms): it sets :attr:`MediaBridge.offload` (a
:class:`MediaOffload`), which reports back through :meth:`MediaBridge.offload_ended` and
:meth:`MediaBridge.offload_failed`, from any thread. Handlers see no difference. A
backend that only needs ``exchange`` while the mixer has work sets
:attr:`MediaBridge.on_activity`, called on the loop whenever that may have changed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeGuard

import numpy as np

from .audio.engine import Finished, Mixer, Sink, Source
from .audio.pcm import PCM

__all__ = ["MediaBridge", "MediaOffload", "NativeLink"]

log = logging.getLogger(__name__)


class MediaOffload(Protocol):
    """A backend's own way to play and record some sounds, outside the mixer.

    Called on the loop. The backend reports each item's end with
    :meth:`MediaBridge.offload_ended` (also after :meth:`stop`: a recording's result
    then holds what was recorded), or, if it could not start it after all,
    :meth:`MediaBridge.offload_failed` (the mixer then plays or records it). It must
    report every item it accepted, or its future never resolves (reports after the
    first are ignored).
    """

    def start(self, handle: int, item: Source | Sink) -> bool:
        """Take a playback (a source) or a recording (a sink); False leaves it to the
        mixer. Must not read from ``item`` (the mixer may get it back)."""

    def stop(self, handle: int) -> None:
        """End an item now."""

    def describe(self, handle: int) -> str:
        """A short human description of an item, for status displays."""


class NativeLink(Protocol):
    """A backend's own way to let one call hear another, outside the mixer (SIP: PJSIP's
    conference bridge, in C). Called on the loop; see :mod:`voip.linking`."""

    def reaches(self, other: NativeLink) -> bool:
        """Whether this call's audio can go to ``other`` this way (both on one stack)."""

    def transmit(self, to: NativeLink, on: bool) -> None:
        """Start (``on``) or stop sending this call's received audio to ``to``'s caller."""

    def set_open(self, open_: bool) -> None:
        """Whether the calls this one transmits to hear it now (False: gated or muted).
        Any thread, the audio clock's included."""


class MediaBridge:
    """Owns one call's mixer and the futures of its playbacks and recordings."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mixer: Mixer | None = None) -> None:
        self.loop = loop
        self.mixer = mixer or Mixer()
        self.offload: MediaOffload | None = None
        """The backend's own player and recorder, if it has one (see the module)."""
        self.link: NativeLink | None = None
        """The backend's own way to connect this call's audio to other calls, if any."""
        self.on_activity: Callable[[], None] | None = None
        """Called on the loop when :attr:`active` may have changed."""
        self._lock = threading.Lock()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._offloaded: dict[int, Source | Sink] = {}
        """Items the offload has, by handle (loop thread only)."""
        self._collecting: set[int] = set()
        """Offloaded recordings stopped, whose result the offload has yet to give."""
        self._ids = itertools.count(1)
        self._closed = False

    # -- audio threads -------------------------------------------------------------------

    def exchange(self, received: PCM | None) -> PCM:
        """Run one frame: feed ``received`` to the recorders, return the mixed playbacks.

        Safe to call from any thread. Returns silence once the bridge is closed.
        """
        with self._lock:
            if self._closed:
                return np.zeros(self.mixer.frame_samples, dtype=np.float32)
            out, finished = self.mixer.process(received)
        if finished:
            self.post(self._resolve, finished)
        return out

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the loop; safe from any thread, ignored once it closed."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has been closed: the call is over
            log.debug("loop closed, dropped %r", fn)

    def offload_ended(self, handle: int, result: Any = None) -> None:
        """The offload's item ended (any thread); ``result``: a recording's result."""
        if self._on_loop():
            self._offload_done(handle, result)
        else:
            self.post(self._offload_done, handle, result)

    def offload_failed(self, handle: int) -> None:
        """The offload could not start the item after all (any thread): the mixer takes it."""
        self.post(self._take_back, handle)

    # -- loop thread ---------------------------------------------------------------------

    def play(self, source: Source) -> tuple[int, asyncio.Future[Any]]:
        """Start ``source``; the future resolves True when it played to its end."""
        return self._add(source, is_sink=False)

    def record(self, sink: Sink) -> tuple[int, asyncio.Future[Any]]:
        """Start ``sink``; the future resolves to its result when it ends."""
        return self._add(sink, is_sink=True)

    def stop(self, handle: int, value: Any = None) -> None:
        """End a playback or recording now.

        A recording's future gets what it holds so far (from an offloaded recording, as
        soon as the backend has it); a playback's gets ``value``.
        """
        if handle in self._collecting:
            return
        item = self._offloaded.pop(handle, None)
        if item is not None:
            assert self.offload is not None
            self.offload.stop(handle)
            if _is_sink(item):
                self._collecting.add(handle)
                return  # resolved by offload_ended, with the recording
            partial = None
        else:
            with self._lock:
                partial = self.mixer.remove(handle)
            self._activity()
        fut = self._futures.pop(handle, None)
        if fut is not None and not fut.done():
            fut.set_result(partial if partial is not None else value)

    def close(self) -> None:
        """The call is over: stop everything. Recordings resolve with what they hold.

        From another thread it is handed to the loop, like every future resolution.
        """
        if not self._on_loop():
            self.post(self.close)
            return
        with self._lock:
            self._closed = True
            finished = self.mixer.remove_all()
        for item in finished:
            fut = self._futures.pop(item.handle, None)
            if fut is not None and not fut.done():
                fut.set_result(item.result if item.result is not None else False)
        for handle in list(self._offloaded):
            self.stop(handle, False)
        self._activity()

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    @property
    def wants_audio(self) -> bool:
        """True while a recording needs received audio (backends may skip reading it
        otherwise). Read without the lock: a stale answer costs one frame at most."""
        return self.mixer.has_sinks

    @property
    def active(self) -> bool:
        """True while the mixer has a playback or a recording: :meth:`exchange` has work.
        Without, it returns silence and records nothing (backends may skip calling it)."""
        return self.mixer.has_sources or self.mixer.has_sinks

    def describe(self) -> tuple[list[str], list[str]]:
        """What is playing and what is recording, for status displays."""
        with self._lock:
            playing, recording = self.mixer.playing(), self.mixer.recording()
        if self.offload is not None:
            for handle, item in self._offloaded.items():
                text = self.offload.describe(handle)
                (recording if _is_sink(item) else playing).append(text)
        return playing, recording

    def _add(self, item: Any, is_sink: bool) -> tuple[int, asyncio.Future[Any]]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        handle = next(self._ids)
        self._futures[handle] = fut
        if self.offload is not None and self.offload.start(handle, item):
            self._offloaded[handle] = item
        else:
            self._to_mixer(handle, item, is_sink)
        fut.add_done_callback(lambda f: self._on_done(handle, f))
        return handle, fut

    def _to_mixer(self, handle: int, item: Any, is_sink: bool) -> None:
        with self._lock:
            (self.mixer.record if is_sink else self.mixer.play)(item, handle)
        self._activity()

    def _activity(self) -> None:
        if self.on_activity is not None:
            self.on_activity()

    def _offload_done(self, handle: int, result: Any) -> None:
        self._offloaded.pop(handle, None)
        self._collecting.discard(handle)
        fut = self._futures.pop(handle, None)
        if fut is not None and not fut.done():
            fut.set_result(True if result is None else result)

    def _take_back(self, handle: int) -> None:
        item = self._offloaded.pop(handle, None)
        if item is None:  # stopped meanwhile
            return
        if self._closed:
            self._offload_done(handle, item.result() if _is_sink(item) else False)
            return
        log.debug("playing %s in Python", item.describe())
        self._to_mixer(handle, item, _is_sink(item))

    def _on_done(self, handle: int, fut: asyncio.Future[Any]) -> None:
        # A cancelled future (the awaiting task was cancelled) stops the audio too.
        if fut.cancelled():
            self.stop(handle)

    def _resolve(self, finished: list[Finished]) -> None:
        for item in finished:
            fut = self._futures.pop(item.handle, None)
            if fut is None or fut.done():
                continue
            if item.error is not None:
                fut.set_exception(item.error)
            else:
                fut.set_result(True if item.result is None else item.result)
        self._activity()


def _is_sink(item: Source | Sink) -> TypeGuard[Sink]:
    return hasattr(item, "write")
