"""The per-frame costs of Python in PJSIP's conference clock, and how they are kept low.

Every 20 ms PJSIP's clock thread calls each call's media port twice (a frame to send, the
frame received). Two costs there are not voip's own work, and both are avoided here:

* **Entering Python.** pjsua2's SWIG callbacks enter Python with ``PyGILState_Ensure``
  and leave with ``PyGILState_Release``. PJSIP's clock thread is not a Python thread, so
  each callback created a Python thread state and destroyed it on the way out (seen: a
  ``threading.local`` value never survived to the next frame). :func:`keep_thread_state`
  takes one more, unreleased, reference on the thread's state on its first frame: the
  state, and what Python and numpy cache in it, then lives as long as the thread.
* **Converting frames.** ``pj.ByteVector(some_bytes)`` fills the vector one element at
  a time (about 8 µs for 320 bytes) after the samples were converted to ``bytes``. A
  :class:`FrameBuffer` is one ``ByteVector`` per port whose storage numpy writes into
  directly; handing it to PJSIP copies 320 bytes in C. A received frame is read by
  :func:`read_pcm` straight from the vector's storage into float samples, in one numpy
  operation, with no ``bytes`` in between.

Each Python or numpy call counts: run every 20 ms on a thread that slept in between, each
costs several times what a warm loop measures (seen: 5-10x). The fast paths rely on
std::vector keeping its begin pointer first (libstdc++ does), checked once against the
slow path (SWIG's element-by-element copy), which is used if it does not hold.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

from ...audio.pcm import FRAME_SAMPLES, PCM, clip_ufunc, int16_to_pcm, pcm_to_int16
from .stack import pj

__all__ = ["FrameBuffer", "keep_thread_state", "read_pcm"]

log = logging.getLogger("voip.sip")

_SCALE = np.float32(32767.0)
_UNSCALE = np.float32(1.0 / 32768.0)  # a power of two: the same as dividing
_INT16_FRAME = ctypes.c_int16 * FRAME_SAMPLES
_kept = threading.local()


def keep_thread_state() -> None:
    """Keep the calling thread's Python thread state until the thread ends.

    For a thread that PJSIP created and that enters Python only through pjsua2's
    callbacks. Cheap after the first call on a thread; call it at the top of a callback.
    """
    if getattr(_kept, "done", False):
        return
    # With the GIL held this only counts one more user of this thread's state, so the
    # binding's own PyGILState_Release at the end of the callback no longer frees it.
    ctypes.pythonapi.PyGILState_Ensure()
    _kept.done = True


def _storage(vec: Any) -> int:
    """The address of a ByteVector's first element (std::vector's begin pointer)."""
    return ctypes.c_void_p.from_address(int(vec.this)).value or 0


def _direct_access() -> bool:
    """Whether a ByteVector's storage can be read through its begin pointer."""
    if pj is None:
        return False
    probe = bytes(range(256)) * 2
    vec = pj.ByteVector(probe)
    try:
        address = _storage(vec)
        return bool(address) and ctypes.string_at(address, len(probe)) == bytes(vec) == probe
    except Exception:  # noqa: BLE001 - any failure means: use the slow path
        return False


_DIRECT = _direct_access()


def read_pcm(vec: Any) -> PCM:
    """A received frame's 16-bit samples (a ``ByteVector``) as float PCM, a new array."""
    size = vec.size()
    if not _DIRECT or size == 0:
        return int16_to_pcm(bytes(vec))
    if size != 2 * FRAME_SAMPLES:
        return int16_to_pcm(ctypes.string_at(_storage(vec), size))
    storage = _INT16_FRAME.from_address(_storage(vec))  # a buffer, as numpy's stubs omit
    samples = np.frombuffer(storage, dtype=np.int16)  # type: ignore[call-overload]
    pcm: PCM = np.multiply(samples, _UNSCALE, dtype=np.float32)  # copies out of the vector
    return pcm


class FrameBuffer:
    """One frame to send, as a ``ByteVector`` that numpy fills in place.

    :meth:`fill` converts float PCM to 16-bit samples straight into the vector's storage
    and returns the vector, to be assigned to ``frame.buf``. The vector is never resized,
    so its storage stays where it is. Not thread-safe: one per port, used by the clock
    thread only.
    """

    def __init__(self, samples: int = FRAME_SAMPLES) -> None:
        self.vector = pj.ByteVector(bytes(2 * samples))
        self._scratch = np.zeros(samples, dtype=np.float32)
        self._samples: np.ndarray | None = None
        address = _storage(self.vector) if _DIRECT else 0
        if address:
            view = np.ctypeslib.as_array((ctypes.c_int16 * samples).from_address(address))
            probe = np.arange(-samples, samples, 2, dtype=np.int16)
            view[:] = probe
            if bytes(self.vector) == probe.tobytes():  # the slow path agrees: use it
                self._samples = view
        if self._samples is None:
            log.info("ByteVector in-place writes unavailable: building frames the slow way")

    def fill(self, pcm: PCM) -> Any:
        """The vector holding ``pcm`` (float, [-1, 1]) as 16-bit samples, as
        :func:`~voip.audio.pcm.pcm_to_int16` converts them."""
        samples = self._samples
        if samples is None or len(pcm) != len(samples):
            return pj.ByteVector(pcm_to_int16(pcm).tobytes())
        scratch = self._scratch
        np.multiply(pcm, _SCALE, out=scratch)
        clip_ufunc(scratch, -_SCALE, _SCALE, out=scratch)
        # Rounds half to even as np.round does; the int16 store of a whole number is exact.
        np.rint(scratch, out=samples, casting="unsafe")
        return self.vector
