"""The one hand-over between audio/SIP threads and the asyncio loop.

Backends run their media on threads of their own (PortAudio's callback thread, PJSIP's
conference clock, the simulator's pacing thread). Those threads call exactly two things:

* :meth:`MediaBridge.exchange` once per 20 ms frame: received samples in, samples to send
  out. It runs the :class:`~voip.audio.engine.Mixer` under a lock held for the duration of
  one frame's mixing, and never touches an asyncio object.
* :meth:`MediaBridge.post` for events (a DTMF digit, a hang-up): it only schedules the
  callback on the loop with ``loop.call_soon_threadsafe``.

Everything else (starting a playback, resolving its future) happens on the loop thread.
When a playback or recording ends inside a frame, ``exchange`` hands the list of finished
items to the loop the same way, and they are resolved there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .audio.engine import Finished, Mixer, Sink, Source
from .audio.pcm import PCM

__all__ = ["MediaBridge"]

log = logging.getLogger(__name__)


class MediaBridge:
    """Owns one call's mixer and the futures of its playbacks and recordings."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mixer: Mixer | None = None) -> None:
        self.loop = loop
        self.mixer = mixer or Mixer()
        self._lock = threading.Lock()
        self._futures: dict[int, asyncio.Future[Any]] = {}
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

    # -- loop thread ---------------------------------------------------------------------

    def play(self, source: Source) -> tuple[int, asyncio.Future[Any]]:
        """Start ``source``; the future resolves True when it played to its end."""
        return self._add(self.mixer.play, source)

    def record(self, sink: Sink) -> tuple[int, asyncio.Future[Any]]:
        """Start ``sink``; the future resolves to its result when it ends."""
        return self._add(self.mixer.record, sink)

    def stop(self, handle: int, value: Any = None) -> None:
        """End a playback or recording now.

        A recording's future gets what it holds so far; a playback's gets ``value``.
        """
        with self._lock:
            partial = self.mixer.remove(handle)
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
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> tuple[list[str], list[str]]:
        """What is playing and what is recording, for status displays."""
        with self._lock:
            return self.mixer.playing(), self.mixer.recording()

    def _add(self, add: Callable[[Any], int], item: Any) -> tuple[int, asyncio.Future[Any]]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        with self._lock:
            handle = add(item)
        self._futures[handle] = fut
        fut.add_done_callback(lambda f: self._on_done(handle, f))
        return handle, fut

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
