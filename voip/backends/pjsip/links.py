"""Audio between two SIP calls of one process, in PJSIP's conference bridge.

A call's :class:`SipLink` is its :class:`~voip.bridge.NativeLink`: ``a.transmit(b, True)``
has PJSIP send what a's caller says to b's caller (``AudioMedia.startTransmit``), mixed
in C with whatever else b hears (b's own port, other members of a room: PJSIP sums the
ports transmitting to one port). No Python runs per frame for it.

PJSIP's connections belong to the calls' media ports, which come and go with the media
(a re-INVITE may give a call a new port; the end of the call removes it): each link
keeps whom it sends to and hears from (SIP thread only), and :meth:`SipLink.attach`
connects them again whenever its call's media starts. A gated or muted speaker
(:meth:`SipLink.set_open`) keeps its list but has its connections taken down, so that
nothing of it is mixed; its own media port still hears it (the tap deciding the gate
listens there).
"""

from __future__ import annotations

import logging
from typing import Any

from ...bridge import NativeLink
from .stack import SipStack, pj

__all__ = ["SipLink"]

log = logging.getLogger("voip.sip")


class SipLink:
    """One SIP call's audio in the conference bridge (see the module)."""

    def __init__(self, stack: SipStack) -> None:
        self.stack = stack
        self.media: Any = None
        """The call's ``pj.AudioMedia`` while its media is up (SIP thread)."""
        self._to: set[SipLink] = set()
        self._from: set[SipLink] = set()
        self._made: set[SipLink] = set()
        """The links PJSIP has connected this one to, now."""
        self._open = True

    # -- the loop and the audio clock ----------------------------------------------------

    def reaches(self, other: NativeLink) -> bool:
        return isinstance(other, SipLink) and other.stack is self.stack

    def transmit(self, to: NativeLink, on: bool) -> None:
        assert isinstance(to, SipLink)
        self.stack.submit(self._transmit, to, on)

    def set_open(self, open_: bool) -> None:
        if open_ != self._open:
            self._open = open_
            self.stack.submit(self._reopen)

    # -- the SIP thread ------------------------------------------------------------------

    def attach(self, media: Any) -> None:
        """The call's media started (again): connect what was asked for."""
        self.media = media
        self._made.clear()  # a new port has no connections; the same port keeps its own
        for source in self._from:
            source._made.discard(self)
        for to in self._to:
            self._connect(to, self._open)
        for source in self._from:
            source._connect(self, source._open)

    def detach(self) -> None:
        """The call is over: PJSIP has removed its port; forget every link."""
        for to in self._to:
            to._from.discard(self)
        for source in self._from:
            source._to.discard(self)
            source._made.discard(self)
        self._to.clear()
        self._from.clear()
        self._made.clear()
        self.media = None

    def _transmit(self, to: SipLink, on: bool) -> None:
        if on:
            self._to.add(to)
            to._from.add(self)
        else:
            self._to.discard(to)
            to._from.discard(self)
        self._connect(to, on and self._open)

    def _reopen(self) -> None:
        for to in self._to:
            self._connect(to, self._open)

    def _connect(self, to: SipLink, on: bool) -> None:
        if self.media is None or to.media is None or (to in self._made) == on:
            return  # done already, or by attach() once both have media
        try:
            if on:
                self.media.startTransmit(to.media)
                self._made.add(to)
            else:
                self._made.discard(to)
                self.media.stopTransmit(to.media)
        except pj.Error as exc:
            what = "connect" if on else "disconnect"
            log.warning("cannot %s the audio of two calls: %s", what, exc.reason)
