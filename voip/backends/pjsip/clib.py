"""PJSIP's own C functions, for the few things pjsua2 does not offer.

The pjsua2 binding's shared library exports PJSIP's whole C API; :func:`pjsip_library`
opens it once with ctypes and declares the functions we call: the request filter's
(:mod:`.prefilter`) and the ending of calls never ACKed (:mod:`.terminate`). Their
signatures are pjproject 2.15's. Call them on the SIP thread only.
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
