"""Calling out: ``await voip.dial(uri, handler)``.

Inside a SIP server the call goes out through the server's own agent, found through
:data:`RUNNING_AGENT` (set in the context of each call the server serves); elsewhere an
agent is started for the one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from contextvars import ContextVar

from ...dialling import DIALLER
from ...lifecycle import Handler, check_handler, serve_call
from ...settings import resolve
from ...sipuri import uri_wants_tls
from .agent import DialResult, SipAgent
from .options import SipOptions

__all__ = ["dial", "DialEndpoint", "DialResult", "RUNNING_AGENT"]

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
    headers: Mapping[str, str] | None = None,
    direct: bool = False,
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
    :func:`~voip.sipuri.caller_id_uri`); the callee's side may overwrite it. ``headers``
    are added to the INVITE (``{"X-Account": "42"}``); ``direct``: not through the
    endpoint's outbound proxy (a cluster's worker calling a sibling). The handler's own
    calls out (``voip.dial``, ``call.connect``) go through this endpoint too.
    """
    check_handler(handler)
    loop = asyncio.get_running_loop()
    agent = RUNNING_AGENT.get()
    if agent is not None and agent.loop is not loop:
        agent = None
    if agent is not None:
        return await _dial_through(agent, uri, handler, timeout, caller_id, headers, direct)
    agent = await _start_agent(options, uri)
    try:
        return await _dial_through(agent, uri, handler, timeout, caller_id, headers, direct)
    finally:
        await agent.stop()


class DialEndpoint:
    """One SIP endpoint for a session's calls out (the simulator's ``call.connect`` and
    ``voip.dial``): started at the first call, kept until :meth:`close`. With an
    endpoint per call, each call would return only once its endpoint has stopped, a
    second or more after the far side hung up (pjsua's shutdown waits a second for
    late messages), and the caller would hear that silence."""

    def __init__(self, options: SipOptions | None = None) -> None:
        self.options = options
        self._agent: asyncio.Future[SipAgent] | None = None

    async def dial(
        self, uri: str, handler: Handler, *, timeout: float, caller_id: str | None
    ) -> DialResult:
        """:func:`dial` through this endpoint (a ``sips:`` URI when the endpoint has no
        TLS: through an endpoint of its own, as :func:`dial` does)."""
        check_handler(handler)
        if self._agent is None:
            self._agent = asyncio.ensure_future(_start_agent(self.options, uri))
        agent = await asyncio.shield(self._agent)
        if uri_wants_tls(uri) and "tls" not in agent.opts.sip_transports:
            return await dial(
                uri, handler, timeout=timeout, caller_id=caller_id, options=self.options
            )
        return await _dial_through(agent, uri, handler, timeout, caller_id)

    async def close(self) -> None:
        """Stop the endpoint (hanging up what is still up), if it started."""
        starting, self._agent = self._agent, None
        if starting is None:
            return
        with contextlib.suppress(Exception):  # a start that failed was told to its caller
            agent = await starting
            await agent.stop()


async def _start_agent(options: SipOptions | None, uri: str) -> SipAgent:
    opts = options or resolve(SipOptions, "dialler", environ={})
    if uri_wants_tls(uri) and "tls" not in opts.sip_transports:
        # A client-side TLS transport: no certificate needed to call out.
        opts = dataclasses.replace(opts, transports=(*opts.transports, "tls"))
    agent = SipAgent(opts, asyncio.get_running_loop())
    await agent.start()
    return agent


async def _dial_through(
    agent: SipAgent,
    uri: str,
    handler: Handler,
    timeout: float,
    caller_id: str | None,
    headers: Mapping[str, str] | None = None,
    direct: bool = False,
) -> DialResult:
    try:
        call, result = await agent.dial(uri, timeout, caller_id, headers, direct)
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
