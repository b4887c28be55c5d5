"""Answering real SIP calls: a handler task per call, until SIGINT or SIGTERM.

Incoming INVITEs are screened on the SIP thread, first by the agent's
:class:`~voip.guard.RequestGuard` (scanners, allow-list: 403, rate limits and a second
call from an address whose first awaits its ACK: 503), then here (all calls up: 486;
shutting down: 503), answered, and handed to the loop on the caller's ACK, which runs the
handler under the rules of :mod:`voip.lifecycle`. A call never ACKed is ended after the
agent's ``ACK_TIMEOUT`` (8 s), without a BYE. On SIGTERM it stops taking calls,
gives running handlers ``grace`` seconds, hangs up the rest, and destroys the endpoint
cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from ...call import Call
from ...lifecycle import Handler, serve_call
from ..base import Backend
from .agent import SipAgent
from .dial import set_running_agent
from .options import SipOptions

__all__ = ["SipServer"]

log = logging.getLogger("voip.sip")


class SipServer(Backend):
    """Runs ``handler`` for every incoming call, concurrently."""

    def __init__(self, opts: SipOptions) -> None:
        self.opts = opts
        self.agent: SipAgent | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.accepting = True
        self.errors = 0
        self._handler: Handler | None = None
        self._stop = asyncio.Event()

    async def run(self, handler: Handler) -> int:
        self._handler = handler
        loop = asyncio.get_running_loop()
        self.agent = SipAgent(self.opts, loop, self._start_handler, self._screen)
        await self.agent.start()
        set_running_agent(self.agent)  # voip.dial() from a handler calls out through us
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self._stop.wait()
            log.info("shutting down: no new calls; %d in progress", len(self.tasks))
            await self._shutdown()
        finally:
            set_running_agent(None)
            await self.agent.stop()
            # Only now: a second Ctrl-C must not interrupt the endpoint's teardown.
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to shut down (from the loop's thread)."""
        self._stop.set()

    async def _shutdown(self) -> None:
        self.accepting = False
        if self.tasks:
            _done, pending = await asyncio.wait(set(self.tasks), timeout=self.opts.grace)
            if pending:
                log.info("grace period over: hanging up %d calls", len(pending))
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=5)

    # -- SIP thread ----------------------------------------------------------------------

    def _screen(self, source: str) -> tuple[int, str]:
        assert self.agent is not None
        if not self.accepting:
            return 503, "shutting down"
        active = self.agent.active_calls()
        if active >= self.opts.max_calls:
            return 486, f"{active} calls up, the most this process takes"
        return 0, ""

    # -- loop ----------------------------------------------------------------------------

    def _start_handler(self, call: Call) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(call))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, call: Call) -> None:
        assert self._handler is not None
        outcome = await serve_call(self._handler, call)
        if outcome.error is not None:
            self.errors += 1
