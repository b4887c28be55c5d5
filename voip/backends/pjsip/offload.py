"""A call's sounds and recordings handed to PJSIP's own player and writer (:mod:`.native`).

:class:`NativeMedia` is a call's :class:`~voip.bridge.MediaOffload`: it takes from the
call's bridge the sounds of ``playPCM``, ``playTone`` and ``say`` and the recordings of
``recordPCM``, and has PJSIP play and record them in C. Everything else stays with the
mixer: ``playCustom``, ``recordCustom``, sounds shorter than :data:`MIN_SECONDS` unless
looped, and tones longer than :data:`WHOLE_TONE_SECONDS` of a frequency that is not a
whole number of Hz. A longer tone of whole Hz (hold tones of an hour) is not made whole:
PJSIP loops one second of it, which holds whole periods, and it is stopped when its
time is up, within a frame or two rather than to the sample. PJSIP reports the end of a sound
one frame late, so a sound played after one of PJSIP's follows it 20 ms later than after
one of the mixer's: that matters between short sounds (beeps, words put together), not
after a prompt. Sounds played at once are summed by PJSIP's bridge, which lowers the
level of a sum that would overflow instead of clipping it.

A recording's file is complete once PJSIP has destroyed the writer, a tick or two after
it was stopped: :class:`NativeMedia` looks every :data:`COLLECT_EVERY` seconds until it
is (at most :data:`COLLECT_WITHIN`), then resolves the recording.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...audio.engine import PCMRecorder, PCMSource, Sink, Source, ToneSource
from ...audio.pcm import PCM, SAMPLE_RATE
from ...bridge import MediaBridge
from .native import MIN_SAMPLES, NativePlayer, NativePort, NativePorts, NativeRecorder
from .stack import SipError, SipStack

__all__ = ["NativeMedia", "MIN_SECONDS", "WHOLE_TONE_SECONDS"]

log = logging.getLogger("voip.sip")

MIN_SECONDS = 1.0
"""Sounds played once that are shorter play in Python, back to back with the next."""
WHOLE_TONE_SECONDS = 60.0
"""Tones up to this long are made whole and played as a file; longer ones loop a second
of the tone (a file of an hour's tone would take 230 MB to make)."""
COLLECT_EVERY = 0.02
COLLECT_WITHIN = 2.0


class NativeMedia:
    """One call's :class:`~voip.bridge.MediaOffload`: plain sounds and recordings in PJSIP.

    :meth:`start`, :meth:`stop` and :meth:`describe` run on the loop and hand the work to
    the SIP thread; :attr:`slot`, :meth:`media_moved` and :meth:`end` are the SIP
    thread's. Every item taken is reported to the bridge: ended (played out, stopped, or
    the call over) or failed (PJSIP refused it: the mixer then plays it).
    """

    def __init__(self, ports: NativePorts, stack: SipStack, bridge: MediaBridge) -> None:
        self.ports = ports
        self.stack = stack
        self.bridge = bridge
        self.slot = -1
        """The call's conference slot while its audio flows, else -1 (SIP thread)."""
        self._live: dict[int, NativePort] = {}
        """Ports playing or recording, by the bridge's handle. PJSIP's event thread
        takes players that ended out of it, hence the lock."""
        self._lock = threading.Lock()
        self._items: dict[int, tuple[Callable[[], str], Any]] = {}
        """Loop side, by handle: how to describe an item, and its result if it ends
        without one (False for a playback, no samples for a recording)."""

    # -- the loop (MediaOffload) -----------------------------------------------------------

    def start(self, handle: int, item: Source | Sink) -> bool:
        job: Callable[[], None]
        if isinstance(item, PCMRecorder):
            recorder = NativeRecorder(handle, lambda: self._size_reached(handle), item.maxlen)
            job = lambda: self._record(recorder)  # noqa: E731
            self._items[handle] = (recorder.describe, np.zeros(0, dtype=np.float32))
        else:
            sound = _sound_of(item)
            if sound is None:
                return False
            samples, loop, lasts = sound
            player = NativePlayer(handle, lambda: self._played(handle))
            job = lambda: self._play(player, samples, loop)  # noqa: E731
            self._items[handle] = (item.describe, False)
            if lasts is not None:  # a looped tone: it ends when its time is up
                self.bridge.loop.call_later(lasts, self._played, handle)
        self._submit(handle, job)
        return True

    def stop(self, handle: int) -> None:
        self._submit(handle, lambda: self._stop(handle))

    def describe(self, handle: int) -> str:
        item = self._items.get(handle)
        return item[0]() if item is not None else "sound"

    def _submit(self, handle: int, job: Callable[[], None]) -> None:
        def done(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            if exc is None:
                return
            if not isinstance(exc, SipError):  # else: the endpoint has stopped
                log.error("native media failed", exc_info=exc)
            self._report(handle)  # nothing plays or records it any more

        self.stack.submit(job).add_done_callback(done)

    def _reported(self, handle: int, result: Any) -> None:
        item = self._items.pop(handle, None)
        if result is None:
            result = item[1] if item is not None else False
        self.bridge.offload_ended(handle, result)

    def _report(self, handle: int, result: Any = None) -> None:
        """Any thread: ``handle`` ended with ``result`` (None: with nothing)."""
        self.bridge.post(self._reported, handle, result)

    # -- the SIP thread --------------------------------------------------------------------

    def media_moved(self, slot: int) -> None:
        """The call's audio is (again) in conference ``slot``: connect what plays and
        records to it."""
        self.slot = slot
        with self._lock:
            live = list(self._live.values())
        for port in live:
            self.ports.reconnect(port, slot)

    def end(self) -> None:
        """The call is over: stop everything, reporting recordings with what they hold."""
        self.slot = -1
        with self._lock:
            handles = list(self._live)
        for handle in handles:
            self._stop(handle)

    def _play(self, player: NativePlayer, samples: PCM, loop: bool) -> None:
        if self._begin(player):
            try:
                self.ports.play(player, samples, loop, self.slot)
            except OSError as exc:
                self._refused(player, exc)

    def _record(self, recorder: NativeRecorder) -> None:
        if self._begin(recorder):
            try:
                self.ports.record(recorder, self.slot)
            except OSError as exc:
                self._refused(recorder, exc)

    def _begin(self, port: NativePort) -> bool:
        if self.slot < 0 or not self.ports.available:
            # No audio stream (yet, or any more): the mixer's business, as it would be.
            self._fail(port.handle)
            return False
        with self._lock:
            self._live[port.handle] = port
        return True

    def _refused(self, port: NativePort, exc: OSError) -> None:
        log.warning("%s: this one plays or records in Python instead", exc)
        with self._lock:
            self._live.pop(port.handle, None)
        self._fail(port.handle)

    def _fail(self, handle: int) -> None:
        self.bridge.post(self._items.pop, handle, None)
        self.bridge.offload_failed(handle)

    def _stop(self, handle: int) -> None:
        with self._lock:
            port = self._live.pop(handle, None)
        if port is None:  # ended by itself already, or never started
            return
        self.ports.stop(port)
        if isinstance(port, NativeRecorder):
            self.bridge.post(self._collect, port, time.monotonic() + COLLECT_WITHIN)
        else:
            self._report(handle)

    # -- PJSIP's event thread ----------------------------------------------------------------

    def _played(self, handle: int) -> None:
        """A player reached its end: resolve it now, take it off the bridge soon (also
        the loop's, for a looped tone whose time is up)."""
        with self._lock:
            port = self._live.pop(handle, None)
        if port is None:
            return
        self._report(handle, True)
        self.stack.submit(self.ports.stop, port)

    def _size_reached(self, handle: int) -> None:
        """A recording holds its ``maxlen``: stop it and collect what it holds."""
        self.stack.submit(self._stop, handle)

    # -- the loop, after a recording was stopped --------------------------------------------

    def _collect(self, recorder: NativeRecorder, deadline: float) -> None:
        if not recorder.closed() and time.monotonic() < deadline:
            self.bridge.loop.call_later(COLLECT_EVERY, self._collect, recorder, deadline)
            return
        if not recorder.closed():
            log.warning("a recording's file was not closed in time: it may lack its end")
        self._reported(recorder.handle, recorder.read())


def _sound_of(item: Source | Sink) -> tuple[PCM, bool, float | None] | None:
    """What PJSIP is to play for ``item``: the samples, whether to loop them, and for how
    many seconds if looped but not forever; None: the mixer plays it."""
    if isinstance(item, ToneSource):
        if item.total > WHOLE_TONE_SECONDS * SAMPLE_RATE:
            second = item.second()
            return None if second is None else (second, True, item.total / SAMPLE_RATE)
        samples = item.samples()
    elif isinstance(item, PCMSource):
        samples = item.samples()
        if item.loop:
            return (samples, True, None) if len(samples) >= MIN_SAMPLES else None
    else:
        return None
    return (samples, False, None) if len(samples) >= MIN_SECONDS * SAMPLE_RATE else None
