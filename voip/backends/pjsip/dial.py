"""Calling out: ``await voip.dial(uri, handler)``.

Inside a SIP server the call goes out through the server's own agent, found through
:data:`RUNNING_AGENT` (set in the context of each call the server serves); elsewhere an
agent is started for the one call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from contextvars import ContextVar

from ...dialling import DIALLER
from ...lifecycle import Handler, check_handler, serve_call
from ...settings import resolve
from ...sipuri import uri_wants_tls
from .agent import DialResult, SipAgent
from .options import SipOptions

__all__ = ["dial", "DialResult", "RUNNING_AGENT"]

log = logging.getLogger("voip.dial")

RUNNING_AGENT: ContextVar[SipAgent | None] = ContextVar("voip_running_agent", default=None)
"""The agent of the SIP server whose call this code runs for: ``dial`` calls out
through it. The server sets it in each handler's context."""


async def dial(
    uri: str,
    handler: Handler,
    *,
    timeout: float = 60.0,
    caller_id: str | None = None,
    options: SipOptions | None = None,
) -> DialResult:
    """Call ``uri`` and, once answered, run ``handler(call)`` on the call.

    Inside a SIP server (``--sip``) the call goes out through the server's own endpoint;
    elsewhere a SIP endpoint is started for it (``options``, default: the dialler's
    defaults, UDP on a free port, plus TLS for a ``sips:`` URI or ``;transport=tls``)
    and stopped afterwards; ``options.srtp`` and the ``tls_*`` settings secure the call.
    Returns a :class:`DialResult`: ``state`` is ``answered``, ``busy``, ``no answer``
    (also when nobody answers within ``timeout`` seconds), ``rejected`` or ``failed``,
    ``status`` the SIP code, ``error`` what the handler raised. ``caller_id`` sets the
    INVITE's From (a number at our own host, or a SIP URI with a display name, see
    :func:`~voip.sipuri.caller_id_uri`); the callee's side may overwrite it. The handler's
    own calls out (``voip.dial``, ``call.connect``) go through this endpoint too.
    """
    check_handler(handler)
    loop = asyncio.get_running_loop()
    agent = RUNNING_AGENT.get()
    if agent is not None and agent.loop is not loop:
        agent = None
    own = agent is None
    if agent is None:
        opts = options or resolve(SipOptions, "dialler", environ={})
        if uri_wants_tls(uri) and "tls" not in opts.sip_transports:
            # A client-side TLS transport: no certificate needed to call out.
            opts = dataclasses.replace(opts, transports=(*opts.transports, "tls"))
        agent = SipAgent(opts, loop)
        await agent.start()
    try:
        try:
            call, result = await agent.dial(uri, timeout, caller_id)
        except TimeoutError:
            return DialResult(408, "no answer", False)
        if call is None:
            log.info("call to %s: %s (%d %s)", uri, result.state, result.status, result.reason)
            return result
        # The handler's own calls out (voip.dial, call.connect) go through this agent.
        agent_token, dialler_token = RUNNING_AGENT.set(agent), DIALLER.set(dial)
        try:
            outcome = await serve_call(handler, call)
        finally:
            RUNNING_AGENT.reset(agent_token)
            DIALLER.reset(dialler_token)
        return DialResult(200, "OK", True, outcome.error)
    finally:
        if own:
            await agent.stop()
