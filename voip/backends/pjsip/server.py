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

A cluster's worker (``place`` given) also joins its rooms and queues to its sibling
workers' (:mod:`voip.cluster.places`): a sibling's leg to a room or to a waiting caller is
served by that module, not by the app's handler, and one for a caller no longer waiting
is refused (410).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...call import Call
from ...cluster.places import WorkerPlaces
from ...dialling import DIALLER
from ...lifecycle import Handler, serve_call
from ...queues import SHARED_ORDER
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
        self.places: WorkerPlaces | None = None
        """The rooms and queues shared with the sibling workers (a cluster's worker only)."""
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
        self.agent = SipAgent(
            self.opts, loop, self._start_handler, self._screen, self.metrics, self._vet
        )
        if self.place is not None and len(self.place.siblings) > 1:
            self.places = WorkerPlaces(self.place, self.agent)
        # Before the stack starts: a SIGTERM just after it listens (a supervisor draining
        # a worker it has just started) must drain the server, not kill it.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.agent.start()
            await self._stop.wait()
            log.info("shutting down: no new calls; %d in progress", len(self.tasks))
            await self._shutdown()
        finally:
            await self.agent.stop()
            if self.places is not None:
                self.places.close()
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

    def _vet(self, headers: Mapping[str, str], source: str) -> tuple[int, str]:
        return (0, "") if self.places is None else self.places.vet(headers, source)

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
        SIBLINGS.set(self.places)  # rooms and queues reach the sibling workers' through it
        SHARED_ORDER.set(self.places if self.places and self.places.book else None)
        handler = self._handler
        if self.places is not None:
            handler = self.places.leg_handler(call) or handler
        outcome = await serve_call(handler, call)  # the agent logs the call's end
        if self.metrics is not None:
            self.metrics.handled(outcome)
