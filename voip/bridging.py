"""``call.bridge(other)``: two callers hear each other.

A bridge is one :class:`Bridge` shared by its two calls (:attr:`voip.call.Call.place`):
either handler may ``await call.bridge(other)`` (the second one joins the bridge the
first made) and both keep running meanwhile; the audio goes both ways through
:mod:`voip.linking`, so each handler may still play to its own caller (a whisper) over
the other's voice. It ends when either call ends or either handler calls
``unbridge()`` (or the task awaiting ``bridge`` is cancelled), and every ``bridge``
awaiting it returns why, from its own call's side: ``"hung up"`` (this call ended),
``"other hung up"`` or ``"unbridged"``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Literal

from .errors import InvalidArgumentError
from .events import Bridged, Unbridged
from .linking import check_free, who

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Bridge", "BridgeEnd", "bridge", "unbridge"]

BridgeEnd = Literal["hung up", "other hung up", "unbridged"]
"""Why :meth:`voip.call.Call.bridge` returned, from the awaiting call's side."""


class Bridge:
    """Two calls hearing each other, until :meth:`end`."""

    def __init__(self, a: Call, b: Call) -> None:
        self.calls = (a, b)
        self.over: asyncio.Future[Call | None] = asyncio.get_running_loop().create_future()
        """Resolves when the bridge ends: with the call whose end ended it, or None."""
        self._forget = [c.on_end(functools.partial(self.end, c)) for c in self.calls]
        for call, other in ((a, b), (b, a)):
            call.place = self
            call.links.hear(other.links)
            call._emit(Bridged(who(other)))
        a.log.info("bridged to %s (%s)", who(b), b.info.call_id or "-")

    def other(self, call: Call) -> Call:
        return self.calls[1] if call is self.calls[0] else self.calls[0]

    def describe(self) -> str:
        a, b = self.calls
        return f"bridged ({who(a)} and {who(b)})"

    async def until_over(self, call: Call) -> BridgeEnd:
        """Wait for the end of the bridge; returns why, from ``call``'s side. The caller
        hanging up ends the bridge, not the handler; cancelling the task unbridges."""
        with call.hangup_ends_verb():
            try:
                ended = await asyncio.shield(self.over)
            except asyncio.CancelledError:
                self.end()
                raise
        return _reason(call, ended)

    def end(self, ended: Call | None = None) -> None:
        """Unbridge (``ended``: the call whose end ends the bridge, None: on request)."""
        if self.over.done():
            return
        for forget in self._forget:
            forget()
        a, b = self.calls
        a.links.unhear(b.links)
        b.links.unhear(a.links)
        for call in self.calls:
            if call.place is self:
                call.place = None
            call._emit(Unbridged(_reason(call, ended)))
        a.log.info("unbridged from %s: %s", who(b), _reason(a, ended))
        self.over.set_result(ended)


async def bridge(self: Call, other: Call) -> BridgeEnd:
    """Let this call's caller and ``other``'s hear each other until either call ends or
    :meth:`unbridge` is called; returns why it ended, from this call's side:
    ``"hung up"``, ``"other hung up"`` or ``"unbridged"``.

    ``other`` is another :class:`~voip.call.Call` of this process (one that
    :func:`voip.dial` placed, or another caller's). Both handlers keep running: each may
    play to its own caller meanwhile, hang up or unbridge. Awaiting ``other.bridge(self)``
    too joins the same bridge. Cancelling the task that awaits it unbridges. The caller
    hanging up ends the bridge, not the handler (as with :meth:`gather`).

    Raises :class:`CallEndedError` if this call has ended (an ``other`` that has ended
    gives ``"other hung up"`` at once) and :class:`InvalidArgumentError` if ``other`` is
    this call, not a call, or either is in another bridge or a room.
    """
    if not isinstance(other, type(self)):
        raise InvalidArgumentError(
            f"bridge() takes another call (a voip Call), got {type(other).__name__}"
        )
    if other is self:
        raise InvalidArgumentError("a call cannot be bridged to itself")
    self._check_active()
    place = self.place
    if not (isinstance(place, Bridge) and other in place.calls):
        if not other.active:
            return "other hung up"
        for call in (self, other):
            check_free(call)
        place = Bridge(self, other)
    return await place.until_over(self)


def unbridge(self: Call) -> bool:
    """End this call's bridge now: both calls go on, each alone with its handler.
    Returns False if the call was not bridged."""
    place = self.place
    if not isinstance(place, Bridge):
        return False
    place.end()
    return True


def _reason(call: Call, ended: Call | None) -> BridgeEnd:
    if ended is None:
        return "unbridged"
    return "hung up" if ended is call else "other hung up"
