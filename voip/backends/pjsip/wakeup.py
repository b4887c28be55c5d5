"""Waking the SIP thread out of PJSIP's poll when other threads hand it work.

The SIP thread (:mod:`.stack`) spends its idle time inside ``libHandleEvents``, blocked
in PJSIP's own socket poll. Work submitted from other threads (hang-ups, DTMF, outgoing
calls) sits in a Python queue the poll knows nothing about, so before this module the
thread polled for 10 ms at a time: 100 wake-ups a second even with nothing to do, the
largest share of the SIP thread's CPU. Here a socket pair's reading end is registered in
the SIP endpoint's ioqueue (through ctypes, as :mod:`.prefilter` registers its module),
with a read always pending on it: one byte written by :meth:`Waker.wake` makes the poll
return at once. The thread can then sleep in the poll for up to a second (PJSIP itself
shortens that wait to its next timer) and still take submitted work without delay.

The structs below are pjproject 2.15's (``pj/ioqueue.h``): ``pj_ioqueue_callback`` (four
function pointers) and ``pj_ioqueue_op_key_t`` (32 pointers of PJSIP's, then two of
ours); under a PJSIP whose layouts :mod:`.clib` does not know, the waker is not used. If
it is not, or a function is missing, or PJSIP refuses the socket, :meth:`Waker.install`
warns once and returns False, and the SIP thread goes back to short polls.

:meth:`Waker.wake` may be called from any thread; everything else runs on the SIP thread.
"""

from __future__ import annotations

import ctypes
import logging
import socket
from typing import Any

from .clib import FeatureUnavailable, feature

__all__ = ["Waker"]

log = logging.getLogger("voip.sip")

_PJ_SUCCESS = 0
_PJ_EPENDING = 70002  # PJ_ERRNO_START_STATUS + 2
_PJ_ECANCELLED = 70014  # PJ_ERRNO_START_STATUS + 14

_BUFFER = 64
"""Bytes read at a time: more than the few a burst of wakes can leave (see wake())."""

# on_read_complete(key, op_key, bytes_read); the other three callbacks stay NULL.
_ON_READ = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t)


class _Callbacks(ctypes.Structure):
    """pj_ioqueue_callback."""

    _fields_ = [
        ("on_read_complete", _ON_READ),
        ("on_write_complete", ctypes.c_void_p),
        ("on_accept_complete", ctypes.c_void_p),
        ("on_connect_complete", ctypes.c_void_p),
    ]


class _OpKey(ctypes.Structure):
    """pj_ioqueue_op_key_t: PJSIP keeps a pending read's state in ``internal__``."""

    _fields_ = [
        ("internal__", ctypes.c_void_p * 32),
        ("activesock_data", ctypes.c_void_p),
        ("user_data", ctypes.c_void_p),
    ]


class Waker:
    """A socket in PJSIP's SIP poll whose one byte ends the SIP thread's wait."""

    def __init__(self) -> None:
        self.active = False
        """Whether wake() ends the SIP thread's poll (False: not installed, or broken)."""
        self._lib: Any = None
        self._pool: int | None = None
        self._key: int | None = None
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._closing = False
        self._pending = False
        """Whether a byte is on its way and not yet read: wake() need not send another.
        Cleared on the SIP thread before each read (see _read)."""
        # PJSIP holds pointers to all of these until the key is unregistered (and the
        # callback may run until then): they live as long as this object.
        self._on_read = _ON_READ(self._on_read_complete)
        self._callbacks = _Callbacks(on_read_complete=self._on_read)
        self._op_key = _OpKey()  # zeroed: no operation pending
        self._buffer = ctypes.create_string_buffer(_BUFFER)

    # -- any thread ----------------------------------------------------------------------

    def wake(self) -> None:
        """End the SIP thread's current (or next) poll. Never blocks."""
        writer = self._writer
        if writer is None or self._pending:
            return
        # Set before sending: a wake racing this one sees it and sends nothing; the
        # byte below is read after it, and the SIP thread looks at its queue after that.
        self._pending = True
        try:
            writer.send(b"\0")
        except BlockingIOError:
            pass  # the socket is full of wakes not yet read: one is enough
        except OSError:
            pass  # closed by uninstall(): the SIP thread is stopping anyway

    # -- the SIP thread ------------------------------------------------------------------

    def install(self) -> bool:
        """Register the socket in the SIP endpoint's ioqueue (after libStart). False,
        with one warning, if that cannot be done."""
        try:
            self._lib = feature("waker")
        except FeatureUnavailable as exc:
            return self._fail(str(exc))
        endpt = self._lib.pjsua_get_pjsip_endpt()
        ioqueue = self._lib.pjsip_endpt_get_ioqueue(endpt) if endpt else None
        if not ioqueue:
            return self._fail("no SIP endpoint running")
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        pool = self._lib.pjsua_pool_create(b"voip-waker", 512, 512)
        if not pool:
            reader.close()
            writer.close()
            return self._fail("no memory pool")
        key = ctypes.c_void_p()
        status = self._lib.pj_ioqueue_register_sock(
            pool,
            ioqueue,
            reader.fileno(),
            None,
            ctypes.byref(self._callbacks),
            ctypes.byref(key),
        )
        if status != _PJ_SUCCESS or not key.value:
            self._lib.pj_pool_release(pool)
            reader.close()
            writer.close()
            return self._fail(f"PJSIP refused its socket (status {status})")
        self._pool, self._key, self._reader = pool, key.value, reader
        self._closing = False
        if not self._read():
            self.uninstall()
            return self._fail("the first read on its socket failed")
        self._writer = writer  # last: wake() sends nothing until reads are pending
        self.active = True
        return True

    def uninstall(self) -> None:
        """Unregister and close everything (SIP thread, before libDestroy)."""
        self.active = False
        self._closing = True
        writer, self._writer = self._writer, None
        if self._key is not None:
            # PJSIP wants no read pending on a key it unregisters: cancel ours (the
            # callback runs now, sees _closing and reads no more).
            self._lib.pj_ioqueue_post_completion(
                self._key, ctypes.byref(self._op_key), -_PJ_ECANCELLED
            )
            self._lib.pj_ioqueue_unregister(self._key)
            self._key = None
            if self._reader is not None:
                self._reader.detach()  # PJSIP closed the descriptor when unregistering
        elif self._reader is not None:
            self._reader.close()
        self._reader = None
        if self._pool is not None:
            self._lib.pj_pool_release(self._pool)
            self._pool = None
        if writer is not None:
            writer.close()

    def _read(self) -> bool:
        """Keep a read pending on the socket, reading what is there already. False if
        PJSIP fails it (the waker is then no use)."""
        while True:
            # Cleared before each read: a wake from now on sends a byte, that this read
            # or the poll will see; a wake before it was read by now (or is being read
            # here), and the SIP thread drains its queue after this poll returns.
            self._pending = False
            length = ctypes.c_ssize_t(_BUFFER)
            status = self._lib.pj_ioqueue_recv(
                self._key, ctypes.byref(self._op_key), self._buffer, ctypes.byref(length), 0
            )
            if status == _PJ_EPENDING:
                return True
            if status != _PJ_SUCCESS or length.value <= 0:  # an error, or the end
                log.warning(
                    "SIP waker failed (PJSIP status %d, %d bytes): polling every few"
                    " milliseconds instead",
                    status,
                    length.value,
                )
                return False
            # Read at once (PJSIP then calls no callback): wakes sent since; read again.

    def _on_read_complete(self, _key: int, _op_key: int, bytes_read: int) -> None:
        """PJSIP's callback, inside libHandleEvents: the wake bytes are read."""
        try:
            if self._closing:
                return
            if bytes_read <= 0:  # an error (a negated status) or the writer closed
                log.warning(
                    "SIP waker failed (read returned %d): polling every few milliseconds instead",
                    bytes_read,
                )
                self.active = False
                return
            if not self._read():
                self.active = False
        except Exception:  # an exception must not reach PJSIP's C stack
            log.exception("SIP waker failed")
            self.active = False

    def _fail(self, why: str) -> bool:
        log.warning("cannot wake the SIP thread at once (%s): it polls every few milliseconds", why)
        self._lib = None if self._key is None else self._lib
        return False
