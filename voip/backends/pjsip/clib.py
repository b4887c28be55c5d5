"""PJSIP's own C functions, for the few things pjsua2 does not offer.

The pjsua2 binding's shared library exports PJSIP's whole C API; :func:`pjsip_library`
opens it once with ctypes and declares the functions we call: the request filter's
(:mod:`.prefilter`), the ending of calls never ACKed (:mod:`.terminate`), the SIP
thread's waker (:mod:`.wakeup`), the pausing of idle ports (:mod:`.conference`) and the
players and recorders in C (:mod:`.native`). Their signatures are pjproject 2.15's. Call
them on the SIP thread only, unless the module using them says otherwise.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

__all__ = ["pjsip_library"]

_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "pjsua_get_pjsip_endpt": ([], _P),
    "pjsip_endpt_register_module": ([_P, _P], ctypes.c_int),
    "pjsip_endpt_unregister_module": ([_P, _P], ctypes.c_int),
    # endpoint, rdata, status, reason text, header list, body
    "pjsip_endpt_respond_stateless": ([_P, _P, ctypes.c_int, _P, _P, _P], ctypes.c_int),
    # pjsua's own helper: finds a call's dialog and returns with the dialog locked
    "acquire_call": (
        [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_P), ctypes.POINTER(_P)],
        ctypes.c_int,
    ),
    "pjsip_dlg_get_inv_session": ([_P], _P),
    "pjsip_inv_terminate": ([_P, ctypes.c_int, ctypes.c_int], ctypes.c_int),
    "pjsip_dlg_dec_lock": ([_P], None),
    "pjsua_call_get_max_count": ([], ctypes.c_uint),
    # The SIP thread's waker (wakeup.py): a socket read through the SIP endpoint's ioqueue,
    # in a pool of its own.
    "pjsua_pool_create": ([ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t], _P),
    "pj_pool_release": ([_P], None),
    "pjsip_endpt_get_ioqueue": ([_P], _P),
    # pool, ioqueue, socket (pj_sock_t: a long), user data, callbacks, the key (out)
    "pj_ioqueue_register_sock": ([_P, _P, ctypes.c_long, _P, _P, ctypes.POINTER(_P)], ctypes.c_int),
    # key, op key, buffer, length (pj_ssize_t; in: buffer size, out: bytes read), flags
    "pj_ioqueue_recv": (
        [_P, _P, _P, ctypes.POINTER(ctypes.c_ssize_t), ctypes.c_uint32],
        ctypes.c_int,
    ),
    # key, op key, what the callback gets as bytes read (a negated status)
    "pj_ioqueue_post_completion": ([_P, _P, ctypes.c_ssize_t], ctypes.c_int),
    "pj_ioqueue_unregister": ([_P], ctypes.c_int),
    # The conference bridge, found through its master port (conference.py): bridge, slot,
    # what the bridge sends the port (tx), what it takes from it (rx): pjmedia_port_op.
    "pjsua_set_no_snd_dev": ([], _P),
    "pjmedia_conf_get_master_port": ([_P], _P),
    "pjmedia_conf_configure_port": ([_P, ctypes.c_uint, ctypes.c_int, ctypes.c_int], ctypes.c_int),
    # PJSIP's WAV player and writer ports in the conference bridge (native.py)
    # pool, file name, ptime (ms), options, buffer size, the port (out)
    "pjmedia_wav_player_port_create": (
        [_P, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_ssize_t, ctypes.POINTER(_P)],
        ctypes.c_int,
    ),
    "pjmedia_wav_player_set_eof_cb2": ([_P, _P, _P], ctypes.c_int),
    # pool, file name, clock rate, channels, samples per frame, bits, flags, buffer, port
    "pjmedia_wav_writer_port_create": (
        [_P, ctypes.c_char_p] + [ctypes.c_uint] * 5 + [ctypes.c_ssize_t, ctypes.POINTER(_P)],
        ctypes.c_int,
    ),
    "pjmedia_wav_writer_port_set_cb2": ([_P, ctypes.c_size_t, _P, _P], ctypes.c_int),
    "pjmedia_port_destroy": ([_P], ctypes.c_int),
    "pjsua_conf_add_port": ([_P, _P, ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
    "pjsua_conf_remove_port": ([ctypes.c_int], ctypes.c_int),
    "pjsua_conf_connect": ([ctypes.c_int, ctypes.c_int], ctypes.c_int),
}


@functools.cache
def pjsip_library() -> Any:
    """The binding's shared library with our functions declared. Raises ImportError
    without pjsua2, OSError if it cannot be opened, AttributeError if a function is
    missing from this build."""
    from pjsua2 import pjsua2 as binding  # the SWIG module, for its shared library's path

    lib = ctypes.CDLL(binding._pjsua2.__file__)
    for name, (args, result) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = args
        function.restype = result
    return lib
