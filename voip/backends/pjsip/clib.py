"""PJSIP's own C functions, for the few things pjsua2 does not offer, one feature at a time.

The pjsua2 binding's shared library exports PJSIP's C API (what the wheel kept of it);
ctypes opens it once. The functions are grouped by the feature that uses them
(:data:`FEATURES`): the request prefilter (:mod:`.prefilter`), the ending of calls never
ACKed (:mod:`.terminate`), the SIP thread's waker (:mod:`.wakeup`), the pausing of idle
ports (:mod:`.conference`) and the players and recorders in C (:mod:`.native`).
:func:`feature` declares one feature's functions, or raises :class:`FeatureUnavailable`
saying why not; each module catches that, logs one warning (what is lost, and why) and
falls back on its own, so a function missing from a build turns off only the feature
that needs it.

Some features also read or lay out PJSIP's structs by offset (``reads_structs``). Those
offsets are pjproject 2.15's, 64-bit: 2.15 and 2.15.1 have the same layouts, 2.16
changed some of these headers. Under any PJSIP outside :data:`KNOWN_LAYOUTS`,
:func:`check_version` (called when the endpoint is created) warns once, and
:func:`feature` refuses those features; the others stay on. The signatures are 2.15's
too. Call the functions on the SIP thread only, unless the module using them says
otherwise.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import VoipError

__all__ = [
    "FEATURES",
    "KNOWN_LAYOUTS",
    "Feature",
    "FeatureUnavailable",
    "check_version",
    "feature",
    "layouts_known",
    "pjsip_version",
]

log = logging.getLogger("voip.sip")

KNOWN_LAYOUTS = ("2.15",)
"""The PJSIP release series (major.minor) whose struct layouts the features reading
them were checked against; ``pyproject.toml`` pins pjsua2-python to them."""

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
    what: str
    """What it is, for log lines."""
    reads_structs: bool
    """Whether it reads or lays out PJSIP's structs by offset (then it needs a PJSIP
    whose layouts are known: :data:`KNOWN_LAYOUTS`)."""
    functions: Mapping[str, Signature]
    """Its C functions, by name."""

    def load(self) -> Any:
        """The binding's shared library with this feature's functions declared. Raises
        :class:`FeatureUnavailable`: without pjsua2, if the library cannot be opened,
        if a function is missing from this build, or if the feature reads structs and
        this PJSIP's layouts are not known."""
        try:
            lib = _library()
        except (ImportError, OSError) as exc:
            raise FeatureUnavailable(self.name, f"PJSIP's library cannot be loaded: {exc}") from exc
        if self.reads_structs:
            try:
                version = pjsip_version()
            except AttributeError:
                raise FeatureUnavailable(self.name, "PJSIP's version is not known") from None
            if not layouts_known(version):
                raise FeatureUnavailable(
                    self.name,
                    f"PJSIP {version}'s struct layouts are not known, only {_known()}'s",
                )
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
            "the request prefilter",
            True,  # pjsip_module, pjsip_rx_data
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
            "the ACK deadline",
            False,
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
            "the SIP thread's waker",
            True,  # pj_ioqueue_callback, pj_ioqueue_op_key_t
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
            "the pausing of idle media ports",
            True,  # pjmedia_port: the bridge behind its master port
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
            "PJSIP's own players and recorders",
            False,
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


def layouts_known(version: str) -> bool:
    """Whether PJSIP ``version`` (as ``pj_get_version()`` gives it: ``"2.15.1"``,
    ``"2.16-dev"``) is a release of a series in :data:`KNOWN_LAYOUTS`. A suffix means a
    build between releases, whose layouts may be anything."""
    release = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", version)
    return release is not None and f"{release[1]}.{release[2]}" in KNOWN_LAYOUTS


def check_version(version: str) -> list[str]:
    """The names of the features PJSIP ``version`` turns off: those reading structs,
    unless its layouts are known. Logs one warning naming them, if any."""
    if layouts_known(version):
        return []
    off = [f for f in FEATURES.values() if f.reads_structs]
    log.warning(
        "PJSIP %s: voip knows the struct layouts of PJSIP %s only, so these are off: %s"
        " (pjsua2-python %s has them)",
        version,
        _known(),
        ", ".join(f.what for f in off),
        _known(),
    )
    return [f.name for f in off]


@functools.cache
def pjsip_version() -> str:
    """The version of the PJSIP in the binding's library (``pj_get_version()``); raises
    ImportError without pjsua2, OSError if the library cannot be opened, AttributeError
    if it has no ``pj_get_version``."""
    get_version = _library().pj_get_version
    get_version.argtypes = []
    get_version.restype = ctypes.c_char_p
    return str((get_version() or b"").decode("ascii", "replace"))


@functools.cache
def _library() -> Any:
    from pjsua2 import pjsua2 as binding  # the SWIG module, for its shared library's path

    return ctypes.CDLL(binding._pjsua2.__file__)


def _known() -> str:
    return " and ".join(f"{series}.x" for series in KNOWN_LAYOUTS)
