"""PJSIP's own WAV player and writer ports, created through ctypes, on in-memory files.

Entering Python from PJSIP's conference clock costs more than everything PJSIP does for a
call (bench/media_load.py). PJSIP's WAV player and WAV writer ports play and record in C,
in the conference bridge, next to the call; :mod:`.offload` decides what they play and
record for a call. This module only makes and removes the ports.

The pjsua2 wheel keeps only the C functions something in it uses: the memory player and
capture ports are not there, the WAV ones are. So the "file" is a memfd, an in-memory
file the kernel gives us (``/proc/self/fd/N`` is its name for PJSIP): a playback is its
samples written once as a WAV file there; a recording is a WAV writer filling one.

* A :class:`NativePlayer` is a WAV player port connected to the call's conference slot;
  PJSIP reports its end (``eof_cb2``, delivered on its event thread), one frame late: the
  player notices the end when asked for the next frame, which it leaves silent.
* A :class:`NativeRecorder` is a WAV writer the call's slot is connected to. Its samples
  reach the file through C stdio's buffer, so the recording is read once the writer is
  closed; the writer marks that by filling in the RIFF length (zero until then). A
  ``maxlen`` is PJSIP's size callback on the writer.

PJSIP 2.15 removes a port from the bridge at the clock's next tick and counts references
to it, so a port is destroyed right after its removal; the pool we lent for it is
released only seconds later (our destroy may not be the last reference), and never
while the clock is stopped. Everything calling PJSIP here runs on the SIP thread, except
:meth:`NativeRecorder.closed` / :meth:`NativeRecorder.read`, which only read the file.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...audio.pcm import FRAME_SAMPLES, PCM, SAMPLE_RATE, int16_to_pcm
from ...audio.wav import savePCMtoWAV
from .clib import FeatureUnavailable, feature

__all__ = ["NativePorts", "NativePort", "NativePlayer", "NativeRecorder", "MIN_SAMPLES"]

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
"""PJSIP's WAV player refuses anything shorter than a frame."""


class NativePort:
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


class NativePlayer(NativePort):
    """A WAV player port playing samples into a call."""


class NativeRecorder(NativePort):
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
        return int16_to_pcm(data)

    def describe(self) -> str:
        return f"recording ({time.monotonic() - self.started:.1f} s)"


class NativePorts:
    """Creates and removes our PJSIP ports; one per endpoint (see the module docstring)."""

    def __init__(self) -> None:
        self._lib: Any = None
        self._ids = itertools.count(1)
        self._live: dict[int, NativePort] = {}
        """Ports PJSIP may still call back about, by the id given to PJSIP."""
        self._lock = threading.Lock()  # _live is read on PJSIP's event thread
        self._graveyard: list[tuple[float, NativePort]] = []
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
            self._lib = feature("native")
        except (FeatureUnavailable, OSError) as exc:
            log.warning("PJSIP cannot play and record by itself here (%s): using Python", exc)
            self._lib = None
        return self.available

    # -- SIP thread ----------------------------------------------------------------------

    def play(self, player: NativePlayer, samples: PCM, loop: bool, sink: int) -> None:
        """Start playing ``samples`` (float PCM, at least :data:`MIN_SAMPLES`) into
        conference slot ``sink``. Raises OSError if PJSIP refuses."""
        lib = self._lib
        self._bury()
        fd = os.memfd_create("voip-play", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as file:
                savePCMtoWAV(samples, file)
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

    def reconnect(self, port: NativePort, call_slot: int) -> None:
        """Connect a live ``port`` to a call's new conference slot (after a re-INVITE
        replaced the call's audio stream)."""
        if port.slot < 0:
            return
        if isinstance(port, NativeRecorder):
            self._lib.pjsua_conf_connect(call_slot, port.slot)
        else:
            self._lib.pjsua_conf_connect(port.slot, call_slot)

    def stop(self, port: NativePort) -> None:
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

    def _new_pool(self, port: NativePort) -> None:
        port.pool = self._lib.pjsua_pool_create(b"voip-media", 512, 512) or 0
        if not port.pool:
            raise OSError("PJSIP is out of memory (pool)")

    def _callback(self, port: NativePort) -> tuple[int, Any]:
        """User data and callback for PJSIP to report the port's end."""
        port.ident = next(self._ids)
        with self._lock:
            self._live[port.ident] = port
        return port.ident, ctypes.cast(self._on_event, ctypes.c_void_p)

    def _add(self, port: NativePort, source: int | None, sink: int | None) -> None:
        slot = ctypes.c_int(-1)
        self._check(
            "add a port to the conference bridge",
            self._lib.pjsua_conf_add_port(port.pool, port.port, ctypes.byref(slot)),
            port,
        )
        port.slot = slot.value
        a, b = (port.slot, sink) if source is None else (source, port.slot)
        self._check("connect a port", self._lib.pjsua_conf_connect(a, b), port)

    def _check(self, what: str, status: int, port: NativePort) -> None:
        if status != _PJ_SUCCESS:
            self.stop(port)
            if isinstance(port, NativeRecorder) and port.fd >= 0:
                os.close(port.fd)
                port.fd = -1
            raise OSError(f"PJSIP could not {what} (status {status})")

    def _forget(self, port: NativePort) -> None:
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
