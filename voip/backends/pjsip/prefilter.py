"""A PJSIP module, registered through ctypes, that screens requests before PJSIP acts.

pjsua2 offers no hook before a call exists: by ``onIncomingCall`` PJSIP has created a
transaction, an invite session and the call's RTP sockets, and it answers OPTIONS by
itself. Under a flood that is work we cannot afford (pjsua2 2.15 aborts above about 60
new calls a second: its socket slots run out). So we register a tiny module of our own,
ahead of the transaction layer, whose ``on_rx_request`` hands each request to the
:class:`~voip.guard.RequestGuard` and drops it or answers it statelessly when told.

The module sees the request as PJSIP's ``pjsip_rx_data`` struct; the offsets below are
pjproject 2.15's layout (``PJSIP_MAX_PKT_LEN`` 4000, 64-bit), and the filter is not
installed under a PJSIP whose layouts :mod:`.clib` does not know, nor when a function it
needs is missing (one warning each time). Every request is also checked against them
(its buffer pointer, length, source port and address must be sane); if one ever is not,
the filter switches itself off with one warning. Either way the guard is applied in
``onIncomingCall`` instead, which still refuses but later and at a higher cost.

All of this runs on the SIP thread: PJSIP calls ``on_rx_request`` from
``libHandleEvents``, which only the SIP thread pumps.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
from typing import Any

from ...guard import RequestGuard, parse_request_head
from .clib import FeatureUnavailable, feature

__all__ = ["RequestFilter"]

log = logging.getLogger("voip.guard")

# pjsip_rx_data, pjproject 2.15 on 64-bit Linux (checked per request, see above).
_PACKET = 320  # pkt_info.packet[PJSIP_MAX_PKT_LEN]
_MAX_PKT_LEN = 4000
_SRC_NAME = 4368  # pkt_info.src_name[PJ_INET6_ADDRSTRLEN]
_SRC_NAME_LEN = 46
_SRC_PORT = 4416  # pkt_info.src_port
_MSG_BUF = 4424  # msg_info.msg_buf: this request's first byte, inside packet
_MSG_LEN = 4432  # msg_info.len

# Before the transaction layer (16), and before pjsua's message logger (7), so that a
# dropped flood does not fill the --sip-log output either.
_PRIORITY = 6

_ON_RX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


class _Module(ctypes.Structure):
    """pjsip_module: a list node, a name, id, priority, then nine callbacks."""

    _fields_ = [
        ("prev", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("name", _PjStr),
        ("id", ctypes.c_int),
        ("priority", ctypes.c_int),
        ("load", ctypes.c_void_p),
        ("start", ctypes.c_void_p),
        ("stop", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("on_rx_request", _ON_RX),
        ("on_rx_response", ctypes.c_void_p),
        ("on_tx_request", ctypes.c_void_p),
        ("on_tx_response", ctypes.c_void_p),
        ("on_tsx_state", ctypes.c_void_p),
    ]


class RequestFilter:
    """Applies ``guard`` to every request PJSIP receives, while :attr:`active`."""

    def __init__(self, guard: RequestGuard) -> None:
        self.guard = guard
        self.active = False
        """Whether requests go through the guard here (False: not installed, or off)."""
        self._lib: Any = None
        self._endpt: int | None = None
        self._callback = _ON_RX(self._on_rx_request)  # kept: PJSIP holds a pointer to it
        self._name = b"mod-voip-guard"
        self._module = _Module()
        self._module.name = _PjStr(self._name, len(self._name))
        self._module.id = -1
        self._module.priority = _PRIORITY
        self._module.on_rx_request = self._callback

    def install(self) -> bool:
        """Register the module with the running endpoint (SIP thread, after libStart)."""
        try:
            self._lib = feature("prefilter")
        except FeatureUnavailable as exc:
            log.warning("request filter unavailable (%s): screening calls later instead", exc)
            return False
        endpt = self._lib.pjsua_get_pjsip_endpt()
        status = self._lib.pjsip_endpt_register_module(endpt, ctypes.byref(self._module))
        if status != 0:
            log.warning("request filter not registered (PJSIP status %d)", status)
            return False
        self._endpt = endpt
        self.active = True
        return True

    def uninstall(self) -> None:
        """Unregister the module (SIP thread, before the endpoint is destroyed)."""
        if self._endpt is not None:
            self._lib.pjsip_endpt_unregister_module(self._endpt, ctypes.byref(self._module))
            self._endpt = None
        self.active = False

    def _on_rx_request(self, rdata: int) -> int:
        """PJSIP's callback: 1 when we took care of the request, 0 to let PJSIP go on."""
        if not self.active:
            return 0
        try:
            request = _read(rdata)
            if request is None:
                self.active = False
                log.warning(
                    "request filter off: this PJSIP build's message layout is not the one"
                    " expected; calls are screened in onIncomingCall instead"
                )
                return 0
            raw, source = request
            head = parse_request_head(raw)
            if head is None:
                return 0
            verdict = self.guard.check(head, source)
            if verdict.action == "pass":
                return 0
            if verdict.action == "reply":
                self._lib.pjsip_endpt_respond_stateless(
                    self._endpt, rdata, verdict.status, None, None, None
                )
            return 1
        except Exception:  # an exception must not reach PJSIP's C stack
            log.exception("request filter failed on a request; letting it through")
            return 0


def _read(rdata: int) -> tuple[bytes, str] | None:
    """The request's bytes and source address, or None if the layout does not hold."""
    packet = rdata + _PACKET
    start = ctypes.c_void_p.from_address(rdata + _MSG_BUF).value or 0
    length = ctypes.c_int.from_address(rdata + _MSG_LEN).value
    port = ctypes.c_int.from_address(rdata + _SRC_PORT).value
    if not (packet <= start and 0 < length and start + length <= packet + _MAX_PKT_LEN):
        return None
    if not 0 < port < 65536:
        return None
    name = ctypes.string_at(rdata + _SRC_NAME, _SRC_NAME_LEN).split(b"\0", 1)[0]
    try:
        source = str(ipaddress.ip_address(name.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        return None
    return ctypes.string_at(start, length), source
