"""Plain playbacks and recordings done by PJSIP itself, with no Python in the 20 ms path.

Entering Python from PJSIP's conference clock costs more than everything PJSIP does for a
call (bench/media_load.py: a call's port callbacks cost about twice PJSIP's own media
work). Most of what a handler plays is a plain sound (``playPCM``, ``playTone``,
``say``) and most of what it records is plain PCM (``recordPCM``): PJSIP's own WAV
player and WAV writer ports do those in C, in the conference bridge, next to the call.
:class:`NativeMedia` is a call's :class:`~voip.bridge.MediaOffload`: it takes those from
the call's bridge; everything else (``playCustom``, ``recordCustom``, tones longer than
:data:`MAX_TONE_SECONDS`) stays with the mixer, and so do sounds shorter than
:data:`MIN_SECONDS` unless looped. PJSIP reports the end of a sound one frame late (its
player notices the end when asked for the next frame, which it leaves silent): a sound
played after one of PJSIP's follows it 20 ms later than after one of the mixer's, which
matters between short sounds (beeps, words put together) and not after a prompt. Sounds
played at once are summed by PJSIP's bridge, which lowers the level of a sum that would
overflow instead of clipping it.

The pjsua2 wheel keeps only the C functions something in it uses: the memory player and
capture ports are not there, the WAV ones are. So the "file" is a memfd, an in-memory
file the kernel gives us (``/proc/self/fd/N`` is its name for PJSIP): a playback is its
samples written once as a WAV file there; a recording is a WAV writer filling one.

* A :class:`NativePlayer` is a WAV player port connected to the call's conference slot;
  PJSIP reports its end (``eof_cb2``, delivered on its event thread) and we hand it to
  the loop.
* A :class:`NativeRecorder` is a WAV writer the call's slot is connected to. Its samples
  reach the file through C stdio's buffer, so the recording is read once the writer is
  closed; the writer marks that by filling in the RIFF length (zero until then). A
  ``maxlen`` is PJSIP's size callback on the writer.

PJSIP 2.15 removes a port from the bridge at the clock's next tick and counts references
to it, so a port is destroyed right after its removal; the pool we lent for it is
released only seconds later (our destroy may not be the last reference), and never
while the clock is stopped. Everything calling PJSIP here runs on the SIP thread, except
:meth:`NativeRecorder.closed` / :meth:`NativeRecorder.read`, which only read the file.
A recording's file is complete once PJSIP has destroyed the writer, a tick or two after
it was stopped: :class:`NativeMedia` looks every :data:`COLLECT_EVERY` seconds until it
is (at most :data:`COLLECT_WITHIN`), then resolves the recording.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...audio.engine import PCMRecorder, PCMSource, Sink, Source, ToneSource
from ...audio.pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE, pcm_to_int16
from ...bridge import MediaBridge
from .clib import pjsip_library
from .stack import SipError, SipStack

__all__ = ["NativeMedia", "NativePorts", "NativePlayer", "NativeRecorder"]

log = logging.getLogger("voip.sip")

_PJ_SUCCESS = 0
_FILE_NO_LOOP = 1  # PJMEDIA_FILE_NO_LOOP
_PTIME_MS = FRAME_SAMPLES * 1000 // SAMPLE_RATE
_HEADER = 44  # a plain PCM WAV header, as PJSIP writes it
_PLAYER_BUFFER = 32000  # bytes PJSIP reads from the file at a time (2 s at 8 kHz)
_WRITER_BUFFER = 2 * FRAME_SAMPLES * 5  # bytes the writer gathers before a write
_POOL_GRACE = 2.0  # seconds between a port's removal and the release of its pool
_EVENT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)

MIN_SAMPLES = FRAME_SAMPLES
"""PJSIP's WAV player refuses anything shorter than a frame: those play in Python."""
MIN_SECONDS = 1.0
"""Sounds played once that are shorter play in Python, back to back with the next."""
MAX_TONE_SECONDS = 60.0
"""Longer tones play in Python (PJSIP plays a file: a tone is made and written whole,
on the loop)."""
COLLECT_EVERY = 0.02
COLLECT_WITHIN = 2.0


def wav_bytes(samples: np.ndarray) -> bytes:
    """16-bit mono 8 kHz ``samples`` as a WAV file."""
    data = samples.astype("<i2", copy=False).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16)
        + fmt + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip


class _Port:
    """A port of ours in the conference bridge: its pool, port and slot."""

    def __init__(self, handle: int, on_end: Callable[[], None]) -> None:
        self.handle = handle
        self.on_end = on_end
        """Called on PJSIP's event thread when PJSIP reports the end (EOF, size reached)."""
        self.ident = 0
        """Our id for PJSIP's callbacks about this port (0: none expected)."""
        self.pool: int = 0
        self.port = ctypes.c_void_p()
        self.slot = -1


class NativePlayer(_Port):
    """A WAV player port playing samples into a call."""


class NativeRecorder(_Port):
    """A WAV writer port recording a call, into a memfd."""

    def __init__(self, handle: int, on_end: Callable[[], None], maxlen: int | None) -> None:
        super().__init__(handle, on_end)
        self.maxlen = maxlen
        self.fd = -1
        self.started = time.monotonic()

    def closed(self) -> bool:
        """Whether PJSIP closed the file: everything recorded is in it (any thread)."""
        return self.fd < 0 or os.pread(self.fd, 4, 4) not in (b"", b"\0\0\0\0")

    def read(self) -> PCM:
        """The samples in the file as float PCM (up to ``maxlen``); closes the file."""
        if self.fd < 0:
            return np.zeros(0, dtype=np.float32)
        try:
            size = os.fstat(self.fd).st_size - _HEADER
            if self.maxlen is not None:
                size = min(size, 2 * self.maxlen)
            data = os.pread(self.fd, max(size, 0) // 2 * 2, _HEADER)
        finally:
            os.close(self.fd)
            self.fd = -1
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)

    def describe(self) -> str:
        return f"recording ({time.monotonic() - self.started:.1f} s)"


class NativePorts:
    """Creates and removes our PJSIP ports; one per endpoint (see the module docstring)."""

    def __init__(self) -> None:
        self._lib: Any = None
        self._ids = itertools.count(1)
        self._live: dict[int, _Port] = {}
        """Ports PJSIP may still call back about, by the id given to PJSIP."""
        self._lock = threading.Lock()  # _live is read on PJSIP's event thread
        self._graveyard: list[tuple[float, _Port]] = []
        self._clock_running = True
        # One C entry point for every port: the port's id comes back as user data.
        self._on_event = _EVENT(self._event)

    @property
    def available(self) -> bool:
        return self._lib is not None

    def load(self) -> bool:
        """Find PJSIP's functions (SIP thread, endpoint started); False, with one
        warning, when this build or system lacks something (everything then plays in
        Python, as before)."""
        try:
            if not hasattr(os, "memfd_create"):
                raise OSError("no memfd_create on this system")
            self._lib = pjsip_library()
        except (OSError, AttributeError, ImportError) as exc:
            log.warning("PJSIP cannot play and record by itself here (%s): using Python", exc)
            self._lib = None
        return self.available

    # -- SIP thread ----------------------------------------------------------------------

    def play(self, player: NativePlayer, samples: np.ndarray, loop: bool, sink: int) -> None:
        """Start playing 16-bit ``samples`` (at least :data:`MIN_SAMPLES`) into conference
        slot ``sink``. Raises OSError if PJSIP refuses."""
        lib = self._lib
        self._bury()
        fd = os.memfd_create("voip-play", os.MFD_CLOEXEC)
        try:
            os.write(fd, wav_bytes(samples))
            self._new_pool(player)
            self._check(
                "create a WAV player",
                lib.pjmedia_wav_player_port_create(
                    player.pool,
                    f"/proc/self/fd/{fd}".encode(),
                    _PTIME_MS,
                    0 if loop else _FILE_NO_LOOP,
                    _PLAYER_BUFFER,
                    ctypes.byref(player.port),
                ),
                player,
            )
        finally:
            os.close(fd)  # the player opened the file itself
        if not loop:
            status = lib.pjmedia_wav_player_set_eof_cb2(player.port, *self._callback(player))
            self._check("watch a player's end", status, player)
        self._add(player, source=None, sink=sink)

    def record(self, recorder: NativeRecorder, source: int) -> None:
        """Start recording conference slot ``source``. Raises OSError if PJSIP refuses."""
        lib = self._lib
        self._bury()
        recorder.fd = os.memfd_create("voip-record", os.MFD_CLOEXEC)
        self._new_pool(recorder)
        self._check(
            "create a WAV writer",
            lib.pjmedia_wav_writer_port_create(
                recorder.pool,
                f"/proc/self/fd/{recorder.fd}".encode(),
                SAMPLE_RATE,
                1,
                FRAME_SAMPLES,
                16,
                0,
                _WRITER_BUFFER,
                ctypes.byref(recorder.port),
            ),
            recorder,
        )
        if recorder.maxlen is not None:
            ident, callback = self._callback(recorder)
            status = lib.pjmedia_wav_writer_port_set_cb2(
                recorder.port, 2 * recorder.maxlen, ident, callback
            )
            self._check("watch a writer's size", status, recorder)
        self._add(recorder, source=source, sink=None)

    def reconnect(self, port: _Port, call_slot: int) -> None:
        """Connect a live ``port`` to a call's new conference slot (after a re-INVITE
        replaced the call's audio stream)."""
        if port.slot < 0:
            return
        if isinstance(port, NativeRecorder):
            self._lib.pjsua_conf_connect(call_slot, port.slot)
        else:
            self._lib.pjsua_conf_connect(port.slot, call_slot)

    def stop(self, port: _Port) -> None:
        """Take ``port`` off the bridge and destroy it (its sound stops at the next tick;
        a recorder's file is complete once :meth:`NativeRecorder.closed`)."""
        self._forget(port)
        if port.slot >= 0:
            self._lib.pjsua_conf_remove_port(port.slot)
            port.slot = -1
        if port.port:
            self._lib.pjmedia_port_destroy(port.port)
            port.port = ctypes.c_void_p()
        if port.pool:
            self._graveyard.append((time.monotonic() + _POOL_GRACE, port))
        self._bury()

    def close(self) -> None:
        """The clock has stopped (endpoint shutting down): forget everything. Pools not
        yet released are left to PJSIP's own clean-up (a port may still use one)."""
        self._clock_running = False
        with self._lock:
            self._live.clear()
        self._graveyard.clear()

    # -- internals -----------------------------------------------------------------------

    def _new_pool(self, port: _Port) -> None:
        port.pool = self._lib.pjsua_pool_create(b"voip-media", 512, 512) or 0
        if not port.pool:
            raise OSError("PJSIP is out of memory (pool)")

    def _callback(self, port: _Port) -> tuple[int, Any]:
        """User data and callback for PJSIP to report the port's end."""
        port.ident = next(self._ids)
        with self._lock:
            self._live[port.ident] = port
        return port.ident, ctypes.cast(self._on_event, ctypes.c_void_p)

    def _add(self, port: _Port, source: int | None, sink: int | None) -> None:
        slot = ctypes.c_int(-1)
        self._check(
            "add a port to the conference bridge",
            self._lib.pjsua_conf_add_port(port.pool, port.port, ctypes.byref(slot)),
            port,
        )
        port.slot = slot.value
        a, b = (port.slot, sink) if source is None else (source, port.slot)
        self._check("connect a port", self._lib.pjsua_conf_connect(a, b), port)

    def _check(self, what: str, status: int, port: _Port) -> None:
        if status != _PJ_SUCCESS:
            self.stop(port)
            if isinstance(port, NativeRecorder) and port.fd >= 0:
                os.close(port.fd)
                port.fd = -1
            raise OSError(f"PJSIP could not {what} (status {status})")

    def _forget(self, port: _Port) -> None:
        with self._lock:
            self._live.pop(port.ident, None)

    def _bury(self) -> None:
        """Release the pools whose ports were removed long enough ago."""
        if not self._graveyard or not self._clock_running:
            return
        now = time.monotonic()
        keep = []
        for due, port in self._graveyard:
            if due <= now:
                self._lib.pj_pool_release(port.pool)
                port.pool = 0
            else:
                keep.append((due, port))
        self._graveyard = keep

    def _event(self, _port: int | None, ident: int | None) -> None:
        # PJSIP's event thread: a player reached its end, or a writer its size.
        with self._lock:
            port = self._live.pop(ident or 0, None)
        if port is None:
            return
        try:
            port.on_end()
        except Exception:  # noqa: BLE001 - never let an exception into PJSIP's thread
            log.exception("end of native port")


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
        self._live: dict[int, _Port] = {}
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
            samples = _samples_of(item)
            if samples is None:
                return False
            loop = isinstance(item, PCMSource) and item.loop
            player = NativePlayer(handle, lambda: self._played(handle))
            job = lambda: self._play(player, pcm_to_int16(samples), loop)  # noqa: E731
            self._items[handle] = (item.describe, False)
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

    def _play(self, player: NativePlayer, samples: np.ndarray, loop: bool) -> None:
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

    def _begin(self, port: _Port) -> bool:
        if self.slot < 0 or not self.ports.available:
            # No audio stream (yet, or any more): the mixer's business, as it would be.
            self._fail(port.handle)
            return False
        with self._lock:
            self._live[port.handle] = port
        return True

    def _refused(self, port: _Port, exc: OSError) -> None:
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
        """A player reached its end: resolve it now, take it off the bridge soon."""
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


def _samples_of(source: Source | Sink) -> np.ndarray | None:
    """The whole sound of a source PJSIP is to play, or None (the mixer plays it)."""
    if isinstance(source, ToneSource):
        if source.total > MAX_TONE_SECONDS * SAMPLE_RATE:
            return None
        samples = source.samples()
    elif isinstance(source, PCMSource):
        samples = source.samples()
        if source.loop:
            return samples if len(samples) >= MIN_SAMPLES else None
    else:
        return None
    return samples if len(samples) >= MIN_SECONDS * SAMPLE_RATE else None
