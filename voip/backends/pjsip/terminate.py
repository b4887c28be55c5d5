"""Ending a call at once, without a BYE, through PJSIP's C functions (ctypes).

For a call we answered whose caller never ACKs, pjsua2 offers nothing that frees the call
slot: hanging up makes PJSIP wait for the ACK before sending its BYE ("Delaying BYE
request until ACK is received"), while it retransmits the 200 OK for 32 s, and then tries
the BYE for as long again. The pjsua2 wheel holds 4 calls, so 4 unACKed INVITEs would
block every caller for about a minute. PJSIP's own ``pjsip_inv_terminate`` ends an
invite session on the spot: its INVITE transaction (and the 200's retransmissions) is
terminated, nothing is sent, and pjsua reports the call DISCONNECTED, so the usual
clean-up runs and the slot is free.

The functions are exported by the binding's shared library (:mod:`.clib`'s
``terminate`` feature): ``acquire_call`` (pjsua's own helper: it finds the call's dialog
and returns with the dialog locked, released with ``pjsip_dlg_dec_lock``, as pjsua's
functions do), ``pjsip_dlg_get_inv_session`` and ``pjsip_inv_terminate``. They read no
struct, so they are used under any PJSIP version. If one is missing,
:meth:`CallTerminator.load` warns once and :meth:`CallTerminator.end` is never used:
such calls then last as long as PJSIP keeps them.

Everything here runs on the SIP thread.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from .clib import FeatureUnavailable, feature

__all__ = ["CallTerminator"]

log = logging.getLogger("voip.sip")

_PJ_SUCCESS = 0
_PJ_TRUE = 1
_SC_OK = 200


class CallTerminator:
    """Ends calls without a BYE (see the module's docstring)."""

    def __init__(self) -> None:
        self._lib: Any = None

    @property
    def available(self) -> bool:
        return self._lib is not None

    def load(self) -> bool:
        """Find PJSIP's functions (once the endpoint runs); False, with one warning, if
        this build lacks them."""
        try:
            self._lib = feature("terminate")
        except FeatureUnavailable as exc:
            log.warning(
                "cannot end unACKed calls early (%s): a call answered and never ACKed"
                " keeps its slot for up to a minute, as PJSIP decides",
                exc,
            )
            self._lib = None
        return self.available

    def end(self, call_id: int) -> bool:
        """End pjsua call ``call_id`` now, sending nothing. PJSIP reports it
        DISCONNECTED before this returns. False if there is no such call or no way to
        end it.

        The call's INVITE transaction is terminated with status 200, the status it has
        already (the 200 OK sent): terminated with an error status instead, PJSIP takes
        it for a failed 2xx and sends a BYE after all (seen: 408 did). So the call's
        cause reads 200, "Normal call clearing"."""
        lib = self._lib
        if lib is None or not 0 <= call_id < lib.pjsua_call_get_max_count():
            return False
        call, dlg = ctypes.c_void_p(), ctypes.c_void_p()
        if lib.acquire_call(b"voip_end_call()", call_id, ctypes.byref(call), ctypes.byref(dlg)):
            return False
        try:
            inv = lib.pjsip_dlg_get_inv_session(dlg)
            if not inv:  # no invite session yet (media still being set up)
                return False
            return bool(lib.pjsip_inv_terminate(inv, _SC_OK, _PJ_TRUE) == _PJ_SUCCESS)
        finally:
            lib.pjsip_dlg_dec_lock(dlg)
