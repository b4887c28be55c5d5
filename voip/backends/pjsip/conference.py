"""PJSIP's conference bridge, for the one thing pjsua2 does not offer: pausing a port.

PJSIP's conference clock calls every port in the bridge every 20 ms: for a frame to send
(``get_frame``) if anything listens to the port, and with the frame it mixed for the port
(``put_frame``) always, if only with an empty "heart-beat" frame when nothing transmits
to it. For a call's :class:`~.calls.FramePort` each call enters Python, which costs more
than all PJSIP does for the call; with nothing playing or recording in Python it is for
nothing. ``pjmedia_conf_configure_port`` turns either direction off (PJSIP then calls
neither) and on again, but it takes the bridge itself, which pjsua keeps to itself.

The bridge is found through its master port, which ``pjsua_set_no_snd_dev`` returns:
the port's ``port_data.pdata`` is the bridge (pjproject 2.15, 64-bit: 64 bytes into
``pjmedia_port``). That is checked before it is used: the port must carry the bridge's
signature, the memory must be readable, and PJSIP must give back the same master port
for that bridge; under a PJSIP whose layouts :mod:`.clib` does not know, it is not tried.
If anything fails, :meth:`Conference.load` warns once and ports are simply never paused.
Call :meth:`~Conference.load` on the SIP thread after ``libInit`` and before the sound
device is chosen (asking for the master port closes the device).
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from .clib import FeatureUnavailable, feature

__all__ = ["Conference"]

log = logging.getLogger("voip.sip")

_PDATA = 64  # offsetof(pjmedia_port, port_data.pdata): after pjmedia_port_info
_SIGNATURE = 16  # offsetof(pjmedia_port, info.signature)
_CONF_SIGNATURE = int.from_bytes(b"FCAP", "little")  # PJMEDIA_SIG_PORT_CONF ('P','A','C','F')
_DISABLE, _ENABLE = 1, 3  # pjmedia_port_op


class Conference:
    """Turns a conference port's two directions on and off."""

    def __init__(self) -> None:
        self._lib: Any = None
        self._conf = 0

    @property
    def available(self) -> bool:
        return bool(self._conf)

    def load(self) -> bool:
        """Find the bridge (see the module docstring); False, with one warning, if not."""
        try:
            lib = feature("conference")
            master = lib.pjsua_set_no_snd_dev() or 0
            conf = _bridge_of(master)
            if not conf or lib.pjmedia_conf_get_master_port(conf) != master:
                raise OSError("its master port does not lead back to it")
        except (FeatureUnavailable, OSError) as exc:
            log.warning(
                "cannot pause idle media ports (%s): each call's port runs every 20 ms", exc
            )
            return False
        self._lib, self._conf = lib, conf
        return True

    def configure(self, slot: int, *, sends: bool, receives: bool) -> bool:
        """Whether PJSIP may ask the port in ``slot`` for frames to send (``get_frame``)
        and give it the frames it mixed (``put_frame``). Any thread PJSIP knows (the SIP
        thread, its clock). False if PJSIP refused (or the bridge was not found)."""
        if not self._conf or slot < 0:
            return False
        status = self._lib.pjmedia_conf_configure_port(
            self._conf, slot, _ENABLE if receives else _DISABLE, _ENABLE if sends else _DISABLE
        )
        return bool(status == 0)


def _bridge_of(master: int) -> int:
    """The bridge behind its master port, or 0 if the memory is not what it should be."""
    if not master or not _readable(master, _PDATA + 8):
        return 0
    if ctypes.c_uint32.from_address(master + _SIGNATURE).value != _CONF_SIGNATURE:
        return 0
    conf = ctypes.c_void_p.from_address(master + _PDATA).value or 0
    # pjmedia_conf_get_master_port reads a field near the start of the bridge.
    return conf if conf and _readable(conf, 256) else 0


def _readable(address: int, size: int) -> bool:
    """Whether ``size`` bytes at ``address`` can be read (never a crash if not)."""
    try:
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            return len(mem.read(size)) == size
    except (OSError, OverflowError, ValueError):
        return False
