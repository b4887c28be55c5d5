"""``voip.dial``: outgoing calls, importable without loading PJSIP until used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.pjsip.agent import DialResult
    from .lifecycle import Handler

__all__ = ["dial"]


async def dial(uri: str, handler: Handler, **kwargs: Any) -> DialResult:
    """Call ``uri`` over SIP and run ``handler(call)`` once it is answered.

    Returns a :class:`~voip.backends.pjsip.agent.DialResult` (``state``: answered, busy,
    no answer, rejected, failed). Keyword arguments: ``timeout`` (seconds to wait for an
    answer, default 60) and ``options`` (a ``SipOptions`` for the endpoint when no SIP
    server runs in this process). Needs ``pip install 'voip[sip]'``.
    """
    from .backends.pjsip.dial import dial as _dial

    return await _dial(uri, handler, **kwargs)
