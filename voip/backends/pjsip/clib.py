"""PJSIP's own C functions, for the few things pjsua2 does not offer, one feature at a time.

The pjsua2 binding's shared library exports PJSIP's C API (what the wheel kept of it);
ctypes opens it once. The functions are grouped by the feature that uses them
(:data:`FEATURES`): the request prefilter (:mod:`.prefilter`), the ending of calls never
ACKed (:mod:`.terminate`), the SIP thread's waker (:mod:`.wakeup`), the pausing of idle
ports (:mod:`.conference`) and the players and recorders in C (:mod:`.native`).
:func:`feature` declares one feature's functions, or raises :class:`FeatureUnavailable`
saying why not; each module catches that, logs one warning (what is lost, and why) and
falls back on its own, so a function missing from a build turns off only the feature
that needs it. The signatures are pjproject 2.15's. Call the functions on the SIP thread
only, unless the module using them says otherwise.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import VoipError

__all__ = ["FEATURES", "Feature", "FeatureUnavailable", "feature"]

Signature = tuple[list[Any], Any]
"""A C function's argument types and result type, as ctypes takes them."""

_P = ctypes.c_void_p
_OUT = ctypes.POINTER(_P)  # where a function stores a pointer it made
_ENDPOINT: dict[str, Signature] = {"pjsua_get_pjsip_endpt": ([], _P)}
_POOLS: dict[str, Signature] = {
    "pjsua_pool_create": ([ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t], _P),
    "pj_pool_release": ([_P], None),
}


@dataclass(frozen=True)
class Feature:
    """PJSIP functions that one module needs all of."""

    name: str
    """Its key in :data:`FEATURES`."""
    functions: Mapping[str, Signature]
    """Its C functions, by name."""

    def load(self) -> Any:
        """The binding's shared library with this feature's functions declared. Raises
        :class:`FeatureUnavailable`: without pjsua2, if the library cannot be opened,
        or if a function is missing from this build."""
        try:
            lib = _library()
        except (ImportError, OSError) as exc:
            raise FeatureUnavailable(self.name, f"PJSIP's library cannot be loaded: {exc}") from exc
        for name, (args, result) in self.functions.items():
            try:
                function = getattr(lib, name)
            except AttributeError:
                raise FeatureUnavailable(self.name, f"this PJSIP build has no {name}()") from None
            function.argtypes = args
            function.restype = result
        return lib


class FeatureUnavailable(VoipError):
    """A feature of :data:`FEATURES` cannot be used here; the message says why."""

    def __init__(self, feature: str, reason: str) -> None:
        super().__init__(reason)
        self.feature = feature
        self.reason = reason


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature(
            "prefilter",
            {
                **_ENDPOINT,
                "pjsip_endpt_register_module": ([_P, _P], ctypes.c_int),
                "pjsip_endpt_unregister_module": ([_P, _P], ctypes.c_int),
                # endpoint, rdata, status, reason text, header list, body
                "pjsip_endpt_respond_stateless": ([_P, _P, ctypes.c_int, _P, _P, _P], ctypes.c_int),
            },
        ),
        Feature(
            "terminate",
            {
                # pjsua's own helper: finds a call's dialog and returns with it locked
                "acquire_call": ([ctypes.c_char_p, ctypes.c_int, _OUT, _OUT], ctypes.c_int),
                "pjsip_dlg_get_inv_session": ([_P], _P),
                "pjsip_inv_terminate": ([_P, ctypes.c_int, ctypes.c_int], ctypes.c_int),
                "pjsip_dlg_dec_lock": ([_P], None),
                "pjsua_call_get_max_count": ([], ctypes.c_uint),
            },
        ),
        Feature(
            "waker",
            {
                # A socket read through the SIP endpoint's ioqueue, in a pool of its own.
                **_ENDPOINT,
                **_POOLS,
                "pjsip_endpt_get_ioqueue": ([_P], _P),
                # pool, ioqueue, socket (pj_sock_t: a long), user data, callbacks, key (out)
                "pj_ioqueue_register_sock": ([_P, _P, ctypes.c_long, _P, _P, _OUT], ctypes.c_int),
                # key, op key, buffer, length (pj_ssize_t; in: size, out: bytes read), flags
                "pj_ioqueue_recv": (
                    [_P, _P, _P, ctypes.POINTER(ctypes.c_ssize_t), ctypes.c_uint32],
                    ctypes.c_int,
                ),
                # key, op key, what the callback gets as bytes read (a negated status)
                "pj_ioqueue_post_completion": ([_P, _P, ctypes.c_ssize_t], ctypes.c_int),
                "pj_ioqueue_unregister": ([_P], ctypes.c_int),
            },
        ),
        Feature(
            "conference",
            {
                # bridge, slot, what the bridge sends the port (tx), what it takes from it
                # (rx): pjmedia_port_op.
                "pjsua_set_no_snd_dev": ([], _P),
                "pjmedia_conf_get_master_port": ([_P], _P),
                "pjmedia_conf_configure_port": (
                    [_P, ctypes.c_uint, ctypes.c_int, ctypes.c_int],
                    ctypes.c_int,
                ),
            },
        ),
        Feature(
            "native",
            {
                **_POOLS,
                # pool, file name, ptime (ms), options, buffer size, the port (out)
                "pjmedia_wav_player_port_create": (
                    [_P, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_ssize_t, _OUT],
                    ctypes.c_int,
                ),
                "pjmedia_wav_player_set_eof_cb2": ([_P, _P, _P], ctypes.c_int),
                # pool, file name, clock rate, channels, samples per frame, bits, flags,
                # buffer, port
                "pjmedia_wav_writer_port_create": (
                    [_P, ctypes.c_char_p, *[ctypes.c_uint] * 5, ctypes.c_ssize_t, _OUT],
                    ctypes.c_int,
                ),
                "pjmedia_wav_writer_port_set_cb2": ([_P, ctypes.c_size_t, _P, _P], ctypes.c_int),
                "pjmedia_port_destroy": ([_P], ctypes.c_int),
                "pjsua_conf_add_port": ([_P, _P, ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
                "pjsua_conf_remove_port": ([ctypes.c_int], ctypes.c_int),
                "pjsua_conf_connect": ([ctypes.c_int, ctypes.c_int], ctypes.c_int),
            },
        ),
    )
}
"""Every feature, by name."""


def feature(name: str) -> Any:
    """The binding's shared library with the functions of ``FEATURES[name]`` declared;
    raises :class:`FeatureUnavailable` (see :meth:`Feature.load`)."""
    return FEATURES[name].load()


@functools.cache
def _library() -> Any:
    from pjsua2 import pjsua2 as binding  # the SWIG module, for its shared library's path

    return ctypes.CDLL(binding._pjsua2.__file__)
