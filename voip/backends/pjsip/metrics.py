"""The SIP server's metrics for Prometheus (``--metrics HOST:PORT``).

One :class:`CallMetrics` per process, fed from two places only: the agent hands it every
action of every call's state machine (:meth:`CallMetrics.observe`, from
``SipAgent._feed``) and the guard's refusal log every refusal with its
:data:`~voip.guard.RefusalKind` (:meth:`CallMetrics.refused`); the server adds each
handler's :class:`~voip.lifecycle.Outcome`. :func:`start_metrics` serves them over HTTP
with ``prometheus_client``'s server, in a thread of its own.

Label values come from small fixed sets (a direction, who hung up, a refusal kind, an
outgoing call's result), never from a caller's address or number.

Several worker processes behind one front (``--workers``): the supervisor starts each
worker with ``PROMETHEUS_MULTIPROC_DIR`` in its environment (``prometheus_client`` reads
it at import), and each worker makes its :class:`CallMetrics` with :func:`worker_metrics`:
its index becomes a ``worker`` label of every series, the values go to files in that
directory, and no HTTP port is opened. The supervisor serves them from one endpoint with
:func:`start_cluster_metrics` (``MultiProcessCollector`` over the directory, and its own
workers' state, and kamailio's own statistics and dispatcher state): per worker, and in
total with ``sum without (worker)``. ``calls_up`` is
declared ``livesum``, so a dead worker's calls stop counting once the supervisor calls
:func:`process_exited` with its pid, while what it counted stays.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...callstate import Action
from ...errors import InvalidArgumentError
from ...guard import RefusalKind
from ...lifecycle import Outcome
from ...sipuri import join_hostport, split_hostport
from .options import METRICS_PORT

try:
    import prometheus_client as prom
    from prometheus_client import multiprocess
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        UnknownMetricFamily,
    )
except ImportError:  # pragma: no cover - depends on the installation
    prom = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .calls import SipCall

__all__ = [
    "CallMetrics",
    "ClusterState",
    "FrontStatistics",
    "MULTIPROC_ENV",
    "MetricsServer",
    "ProcessState",
    "SETUP_BUCKETS",
    "placed_result",
    "process_exited",
    "start_cluster_metrics",
    "start_metrics",
    "worker_metrics",
]

log = logging.getLogger("voip.sip")

SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds from a call's INVITE to its ACK: a few milliseconds on loopback, one round
trip (tens to hundreds of ms) over the internet; an ACK lost comes after PJSIP's next
200 OK, sent again at 0.5, 1.5, 3.5 and 7.5 s, and at 8 s the call is dropped."""


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where ``prometheus_client``'s multiprocess mode keeps a process's values (read at its
import): set by the supervisor in its workers' environment."""

_NEEDS_PROMETHEUS = (
    "--metrics needs prometheus-client: pip install 'voip[sip]' (or pip install prometheus-client)"
)


def placed_result(code: int) -> str:
    """How a call we placed went, in a word, from its final status (200: answered)."""
    if code == 200:
        return "answered"
    if code in (486, 600):
        return "busy"
    if code in (408, 480, 487):
        return "no-answer"
    if 400 <= code < 500 or 600 <= code < 700:
        return "refused"
    return "failed"  # not sent at all (0), or a server's error (5xx)


class CallMetrics:
    """The counters, gauge and histogram of one server process, in :attr:`registry`."""

    def __init__(self, registry: Any = None, worker: str = "") -> None:
        """``registry``: a ``prometheus_client`` ``CollectorRegistry`` (None: a new one);
        ``worker``: this process's index among a supervisor's workers (a ``worker``
        label on every series), or empty for a server on its own."""
        if prom is None:
            raise InvalidArgumentError(_NEEDS_PROMETHEUS)
        self.registry = prom.CollectorRegistry() if registry is None else registry
        self._worker = {"worker": worker} if worker else {}
        w = tuple(self._worker)
        r = self.registry

        def counter(name: str, text: str, *labels: str) -> Any:
            return prom.Counter(name, text, (*labels, *w), registry=r)

        self.calls_up = prom.Gauge(
            "voip_calls_up",
            "Calls answered and not yet ended",
            ("direction", *w),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.answered = counter(
            "voip_calls_answered",
            "Calls answered: incoming ones on the caller's ACK, outgoing on the 200 OK",
            "direction",
        )
        self.refused_calls = counter(
            "voip_calls_refused", "New calls (INVITEs) refused or dropped, by reason", "reason"
        )
        self.refused_requests = counter(
            "voip_requests_refused",
            "Other requests that start nothing (OPTIONS, REGISTER ...) dropped, by reason",
            "reason",
        )
        self.handler_errors = counter("voip_handler_errors", "Handlers that raised an exception")
        self.setup = prom.Histogram(
            "voip_call_setup_seconds",
            "Seconds from an incoming call's INVITE to the caller's ACK (answered calls)",
            w,
            registry=r,
            buckets=SETUP_BUCKETS,
        )
        self.ended = counter(
            "voip_calls_ended",
            "Answered calls ended, by who hung up (local: we did)",
            "direction",
            "by",
        )
        self.placed = counter(
            "voip_calls_placed",
            "Calls we placed, by result (answered, busy, no-answer, refused, failed)",
            "result",
        )
        for direction in ("in", "out"):  # present from the start, at 0
            self._of(self.calls_up, direction=direction)
            self._of(self.answered, direction=direction)
        self._of(self.handler_errors)
        self._of(self.setup)

    def _of(self, metric: Any, **labels: str) -> Any:
        """The series of ``metric`` with ``labels`` (and this worker's)."""
        labels.update(self._worker)
        return metric.labels(**labels) if labels else metric

    # -- fed by the agent (SIP thread) and the guard's refusal log --------------------

    def observe(self, action: Action, sip_call: SipCall, code: int) -> None:
        """A call's state machine asked for ``action`` (``code``: the event's status)."""
        direction = "in" if sip_call.incoming else "out"
        match action:
            case Action.LOG_ANSWERED:
                self._of(self.answered, direction=direction).inc()
                self._of(self.calls_up, direction=direction).inc()
                if sip_call.incoming:
                    self._of(self.setup).observe(time.monotonic() - sip_call.started)
            case Action.LOG_ENDED:
                self._of(self.calls_up, direction=direction).dec()
                by = sip_call.life.ended_by or "remote"
                self._of(self.ended, direction=direction, by=by).inc()
            case Action.LOG_FAILED:  # answered, then PJSIP refused it (e.g. 488): no ACK
                self.refused("media" if code == 488 else "failed", True)
            case Action.SETTLE_ANSWERED:
                self._of(self.placed, result="answered").inc()
            case Action.SETTLE_FAILED:
                self._of(self.placed, result=placed_result(code)).inc()
            case _:
                pass

    def refused(self, kind: RefusalKind, call: bool) -> None:
        """A request was refused (``call``: a new call's INVITE); the guard's listener."""
        self._of(self.refused_calls if call else self.refused_requests, reason=kind).inc()

    # -- fed by the server (loop) -----------------------------------------------------

    def handled(self, outcome: Outcome) -> None:
        """A handler finished."""
        if outcome.error is not None:
            self._of(self.handler_errors).inc()


def worker_metrics(worker: str) -> CallMetrics:
    """The :class:`CallMetrics` of a cluster's worker number ``worker``: kept in
    ``prometheus_client``'s multiprocess files, which its supervisor serves; no HTTP port
    of its own."""
    if not os.environ.get(MULTIPROC_ENV):
        raise InvalidArgumentError(
            f"worker {worker}: its metrics need {MULTIPROC_ENV} in its environment (set by"
            " the supervisor of --workers, which serves them)"
        )
    return CallMetrics(worker=worker)


class MetricsServer:
    """The HTTP server of :func:`start_metrics` or :func:`start_cluster_metrics`, until
    :meth:`close`."""

    def __init__(self, httpd: Any, thread: threading.Thread, metrics: CallMetrics | None) -> None:
        self.metrics = metrics
        """What a lone server counts (None: a supervisor's, read from its workers' files)."""
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.address = join_hostport(host, port)
        """Where it listens (with the port chosen, for port 0)."""

    def close(self) -> None:
        self._httpd.shutdown()  # its loop wakes every 0.5 s to look: it stops by then
        self._httpd.server_close()
        self._thread.join()


def _serve(address: str, registry: Any, metrics: CallMetrics | None) -> MetricsServer:
    """Serve ``registry`` at ``http://address/metrics``, or raise
    :class:`InvalidArgumentError` saying why it cannot (a port in use, a host not ours)."""
    host, port = split_hostport(address, METRICS_PORT)
    try:
        httpd, thread = prom.start_http_server(port, host, registry=registry)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot serve metrics on {address}: {exc.strerror or exc}; give --metrics"
            " a free port on an address of this machine (e.g. 127.0.0.1:9464), or stop"
            " what listens there"
        ) from None
    server = MetricsServer(httpd, thread, metrics)
    log.info("metrics at http://%s/metrics", server.address)
    return server


def start_metrics(address: str) -> MetricsServer:
    """Serve a new :class:`CallMetrics` (and this process's CPU, memory and open files)
    at ``http://address/metrics``. Raises :class:`InvalidArgumentError` when the address
    cannot be listened on (a port in use, a host not ours)."""
    metrics = CallMetrics()
    prom.ProcessCollector(registry=metrics.registry)
    prom.PlatformCollector(registry=metrics.registry)
    return _serve(address, metrics.registry, metrics)


@dataclass(frozen=True)
class ProcessState:
    """One process a supervisor keeps running, as its metrics say it."""

    up: bool
    """Running and ready (it answered its start's OPTIONS)."""
    restarts: int
    """Times it was started again after dying."""


@dataclass(frozen=True)
class FrontStatistics:
    """What kamailio says of itself (:func:`voip.cluster.kamailio.read_statistics`)."""

    counters: dict[str, float]
    """Its statistics (``kamcmd stats.get_statistics all``: the core's, sl's, tcp's,
    dns', shmem's and tmx's) by Prometheus name, as ``xhttp_prom`` names them
    (``core:rcv_requests``: ``kamailio_core_rcv_requests``)."""
    destinations: dict[str, bool]
    """The dispatcher's workers (local and joined) by URI: in rotation or not."""


@dataclass(frozen=True)
class ClusterState:
    """What :func:`start_cluster_metrics` reads from the supervisor at each scrape."""

    workers: dict[str, ProcessState]
    """By worker index (the ``worker`` label)."""
    front: ProcessState | None
    """kamailio's (None: not started yet)."""
    front_statistics: FrontStatistics | None = None
    """kamailio's own (None: not running, or it did not answer)."""


class _SupervisorCollector:
    """The supervisor's own series, read from its state at each scrape."""

    def __init__(self, state: Callable[[], ClusterState]) -> None:
        self._state = state

    def collect(self) -> Iterable[Any]:
        state = self._state()
        up = GaugeMetricFamily(
            "voip_worker_up", "1 while the worker runs and has started", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "voip_worker_restarts",
            "Times the worker was started again after dying",
            labels=["worker"],
        )
        for worker, process in state.workers.items():
            up.add_metric([worker], float(process.up))
            restarts.add_metric([worker], process.restarts)
        front = state.front or ProcessState(False, 0)
        yield up
        yield restarts
        yield GaugeMetricFamily(
            "voip_front_up", "1 while kamailio (the front) runs and has started", float(front.up)
        )
        yield CounterMetricFamily(
            "voip_front_restarts", "Times kamailio was started again after dying", front.restarts
        )
        stats = state.front_statistics
        if stats is None:
            return
        for name, number in stats.counters.items():
            # Counters and gauges mixed, as kamailio does not say which: untyped.
            yield UnknownMetricFamily(name, "kamailio's own statistic (kamcmd)", number)
        rotation = GaugeMetricFamily(
            "voip_front_destination_up",
            "1 while kamailio's dispatcher has the worker in rotation (its probe answered 200)",
            labels=["destination"],
        )
        for uri, active in stats.destinations.items():
            rotation.add_metric([uri], float(active))
        yield rotation


def start_cluster_metrics(
    address: str, directory: Path, state: Callable[[], ClusterState]
) -> MetricsServer:
    """Serve at ``http://address/metrics`` every worker's series from the multiprocess
    files in ``directory`` (each with its ``worker`` label; not summed: that is
    ``sum without (worker)`` in PromQL) and the supervisor's own from ``state()``,
    called in the server's thread. Raises :class:`InvalidArgumentError` as
    :func:`start_metrics` does."""
    if prom is None:
        raise InvalidArgumentError(_NEEDS_PROMETHEUS)
    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_SupervisorCollector(state))
    return _serve(address, registry, None)


def process_exited(directory: Path, pid: int) -> None:
    """Worker ``pid``, whose files are in ``directory``, has exited: its calls are no
    longer up (what it counted stays)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
