"""How an outgoing call went (:class:`DialResult`), and where a context's calls go out.

Pure: no backend is imported here. :func:`voip.dial` and :meth:`voip.call.Call.connect`
place calls through the :data:`DIALLER` of the context they run in: whatever runs a
handler sets it (the SIP server and the simulator: over SIP, through PJSIP; the test
kit: to the callees of :meth:`voip.testing.RunningApp.callee`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .lifecycle import Handler

__all__ = ["DialState", "DialResult", "Dialler", "DIALLER"]

DialState = Literal["answered", "busy", "no answer", "rejected", "failed"]
"""How an outgoing call went, in a word (:attr:`DialResult.state`)."""


@dataclass(frozen=True)
class DialResult:
    """How an outgoing call went."""

    status: int
    """The final SIP status: 200 when answered, else e.g. 486 (busy), 603 (declined),
    480 or 408 (no answer), 487 (cancelled), 404 (no such user), 0 if no response came
    at all."""
    reason: str
    answered: bool
    error: BaseException | None = None
    """What the handler raised, if it did."""

    @property
    def state(self) -> DialState:
        """``answered``, ``busy``, ``no answer``, ``rejected`` or ``failed``."""
        if self.answered:
            return "answered"
        if self.status in (486, 600):
            return "busy"
        if self.status in (408, 480, 487):
            return "no answer"
        if self.status in (403, 603):
            return "rejected"
        return "failed"


class Dialler(Protocol):
    """Places one call: ``voip.dial``'s work, for one backend."""

    def __call__(
        self, uri: str, handler: Handler, *, timeout: float, caller_id: str | None
    ) -> Awaitable[DialResult]:
        """Call ``uri``; once answered run ``handler`` on the call; return how it went
        (``"no answer"`` after ``timeout`` seconds of ringing; ``caller_id``: who the
        callee is told is calling). Cancelling it cancels the call (CANCEL, or BYE)."""


DIALLER: ContextVar[Dialler | None] = ContextVar("voip_dialler", default=None)
"""Where this context's outgoing calls go. Set for every handler voip runs; None
elsewhere (a script's own ``voip.dial`` then calls over SIP with an endpoint of its own)."""
