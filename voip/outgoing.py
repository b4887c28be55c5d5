"""``voip.dial``: outgoing calls, importable without loading PJSIP until used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dialling import DIALLER, DialResult

if TYPE_CHECKING:
    from .backends.pjsip.dial import DialEndpoint
    from .backends.pjsip.options import SipOptions
    from .lifecycle import Handler

__all__ = ["dial", "dial_over_sip", "SessionDialler"]


async def dial(
    uri: str,
    handler: Handler,
    *,
    timeout: float = 60.0,
    caller_id: str | None = None,
    options: SipOptions | None = None,
) -> DialResult:
    """Call ``uri`` and run ``handler(call)`` once it is answered.

    Returns a :class:`~voip.dialling.DialResult` (``state``: answered, busy, no answer,
    rejected, failed). ``timeout``: seconds to wait for an answer; ``caller_id``: the
    number (or SIP URI) the callee is shown, in the INVITE's From; ``options``: a
    ``SipOptions`` for the endpoint when no SIP server runs in this process. Over SIP it
    needs ``pip install 'voip[sip]'``; in the test kit the call goes to a
    :meth:`~voip.testing.RunningApp.callee`.
    """
    dialler = DIALLER.get()
    if dialler is None or options is not None:
        return await dial_over_sip(
            uri, handler, timeout=timeout, caller_id=caller_id, options=options
        )
    return await dialler(uri, handler, timeout=timeout, caller_id=caller_id)


async def dial_over_sip(
    uri: str,
    handler: Handler,
    *,
    timeout: float,
    caller_id: str | None,
    options: SipOptions | None = None,
) -> DialResult:
    """:func:`dial` over SIP, whatever the context (the simulator's dialler)."""
    from .backends.pjsip.dial import dial as _dial

    return await _dial(uri, handler, timeout=timeout, caller_id=caller_id, options=options)


class SessionDialler:
    """The :class:`~voip.dialling.Dialler` of a session that is not a SIP server (the
    simulator): its calls out go over SIP through one endpoint, started at the first
    (loading PJSIP only then) and stopped by :meth:`close`
    (:class:`~voip.backends.pjsip.dial.DialEndpoint`)."""

    def __init__(self) -> None:
        self._endpoint: DialEndpoint | None = None

    async def __call__(
        self, uri: str, handler: Handler, *, timeout: float, caller_id: str | None
    ) -> DialResult:
        if self._endpoint is None:
            from .backends.pjsip.dial import DialEndpoint

            self._endpoint = DialEndpoint()
        return await self._endpoint.dial(uri, handler, timeout=timeout, caller_id=caller_id)

    async def close(self) -> None:
        if self._endpoint is not None:
            await self._endpoint.close()
