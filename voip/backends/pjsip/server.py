"""Answering real SIP calls: a handler task per call, until SIGINT or SIGTERM.

Incoming INVITEs are screened on the SIP thread, first by the agent's
:class:`~voip.guard.RequestGuard` (scanners, allow-list: 403, rate limits: 503; a second
call from an address whose first awaits its ACK, unless there is an allow-list: dropped
over UDP, which its caller sends again, 503 over TCP or TLS), then here (all calls up: 486;
shutting down: 503), answered, and handed to the loop on the caller's ACK, which runs the
handler under the rules of :mod:`voip.lifecycle`. A call never ACKed is ended after the
agent's ``ACK_TIMEOUT`` (8 s), without a BYE. On SIGTERM it stops taking calls,
gives running handlers ``grace`` seconds, hangs up the rest, and destroys the endpoint
cleanly.

A cluster's worker (``place`` given) also joins its rooms to its sibling workers'
(:mod:`voip.cluster.places`): a sibling's leg to a room is served by that module, not by
the app's handler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from typing import TYPE_CHECKING, Any

from ...call import Call
from ...cluster.places import WorkerRooms
from ...dialling import DIALLER
from ...lifecycle import Handler, serve_call
from ...rooms import SIBLINGS
from ..base import Backend
from .agent import SipAgent
from .dial import RUNNING_AGENT, dial
from .metrics import CallMetrics, MetricsServer, start_metrics, worker_metrics
from .options import SipOptions

if TYPE_CHECKING:
    from ...cluster.shares import WorkerPlace

__all__ = ["SipServer"]

log = logging.getLogger("voip.sip")


class SipServer(Backend):
    """Runs ``handler`` for every incoming call, concurrently."""

    def __init__(self, opts: SipOptions, place: WorkerPlace | None = None) -> None:
        """``place``: this process's place in a cluster (None: a lone server)."""
        self.opts = opts
        self.place = place
        self.rooms: WorkerRooms | None = None
        """The rooms shared with the sibling workers (a cluster's worker only)."""
        self.agent: SipAgent | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.accepting = True
        self._handler: Handler | None = None
        self.metrics: CallMetrics | None = None
        self._metrics_http: MetricsServer | None = None
        self._stop = asyncio.Event()

    async def run(self, handler: Handler) -> int:
        self._handler = handler
        loop = asyncio.get_running_loop()
        if self.opts.metrics_worker:  # a cluster's worker: its supervisor serves them
            self.metrics = worker_metrics(self.opts.metrics_worker)
        elif self.opts.metrics:
            # Before the SIP stack: a port in use stops the server before it takes calls.
            self._metrics_http = start_metrics(self.opts.metrics)
            self.metrics = self._metrics_http.metrics
        self.agent = SipAgent(self.opts, loop, self._start_handler, self._screen, self.metrics)
        await self.agent.start()
        if self.place is not None and len(self.place.siblings) > 1:
            self.rooms = WorkerRooms(self.place, self.agent)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self._stop.wait()
            log.info("shutting down: no new calls; %d in progress", len(self.tasks))
            await self._shutdown()
        finally:
            await self.agent.stop()
            # Only now: a second Ctrl-C must not interrupt the endpoint's teardown.
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self._metrics_http is not None:
                self._metrics_http.close()
        log.info("stopped")
        return 0

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
        RUNNING_AGENT.set(self.agent)  # voip.dial() from the handler calls out through us
        DIALLER.set(dial)  # and so does call.connect()
        SIBLINGS.set(self.rooms)  # and rooms reach the sibling workers' through it
        handler = self._handler
        if self.rooms is not None and (room := self.rooms.leg_room(call)) is not None:
            handler = functools.partial(self.rooms.serve_leg, room)
        outcome = await serve_call(handler, call)  # the agent logs the call's end
        if self.metrics is not None:
            self.metrics.handled(outcome)
