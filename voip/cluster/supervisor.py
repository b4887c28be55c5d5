"""The supervisor of ``--workers N``: the workers, then kamailio; restarts; the drain.

One asyncio loop, one task per child process (:class:`Child`): it starts the process
(asyncio subprocess, in a session of its own so that a terminal's Ctrl-C reaches the
supervisor alone, and told by the kernel to stop if the supervisor dies), copies its
output to ours line by line with its name in front, and when it dies, logs why and
starts it again (after 1 s, doubling while it keeps dying young, up to 30 s).

Start: every worker, each ready once it answers an OPTIONS on its loopback port; then
kamailio, ready once it answers one on its own. SIGTERM or SIGINT: the workers get
SIGTERM and drain as a lone server does (their probes answered 503, so kamailio sends
them no new call; running handlers get ``--grace`` seconds; the rest are hung up, their
BYEs through kamailio), and only once they have all exited does kamailio get its own.
The exit status is 0 when every process exited 0.

With ``--join``, the supervisor starts no kamailio: once its workers are up (on the listen
host) it joins the front elsewhere (:mod:`.join`), and on SIGTERM it leaves it before
the workers drain.

The workers share a directory of the supervisor's, made afresh at each start and removed
at exit, for what rooms and queues share between them (:mod:`.places`).

With ``--metrics``, the workers keep their metrics in ``prometheus_client``'s
multiprocess files, in a directory of the supervisor's made afresh at each start and
removed at exit, and the supervisor serves them all from the one address, with its own
(workers up, restarts; kamailio's statistics and dispatcher state, asked over its
control socket at each scrape); a worker that exits is marked dead there, so that its calls stop
counting as up (:mod:`voip.backends.pjsip.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ..backends.base import Backend
from ..backends.pjsip.metrics import (
    MULTIPROC_ENV,
    ClusterState,
    MetricsServer,
    ProcessState,
    process_exited,
    start_cluster_metrics,
)
from ..backends.pjsip.options import SipOptions
from ..backends.pjsip.security import check_security
from ..lifecycle import Handler
from ..sipuri import join_hostport
from . import kamailio
from .join import Joiner
from .probe import ask_options
from .shares import LOOPBACK, WORKER_ENV, ClusterPlan
from .worker import cluster_plan

__all__ = ["Supervisor", "Child", "exit_reason"]

log = logging.getLogger("voip.cluster")

START_TIMEOUT = 30.0
"""Seconds a process has to answer its first OPTIONS."""
FIRST_RESTART = 1.0
LAST_RESTART = 30.0
YOUNG = 10.0
"""A process that dies younger than this waits twice as long as last time to restart."""
STOP_TIMEOUT = 15.0
"""Seconds beyond the grace period a worker has to exit before it is killed."""
ENV_OPTIONS = "VOIP_OPTIONS"  # runner's; the workers get the whole command line instead


def exit_reason(returncode: int) -> str:
    """How a process ended, in words: ``killed by SIGKILL``, ``exited with status 1``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Have the kernel send SIGTERM to this child when the supervisor dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One process the supervisor keeps running: ``ready()`` says when a start worked."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], Awaitable[bool]],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        exited: Callable[[int], None] | None = None,
    ) -> None:
        """``exited(pid)`` is called when a process of this child's has exited."""
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self._ready = ready
        self._exited = exited
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.restarts = 0
        self.up = False
        """Running, and ready since its (re)start."""
        self.started = asyncio.Event()
        """Set once the first start is ready."""
        self.failed_start = False
        self._task: asyncio.Task[None] | None = None

    def keep_running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = FIRST_RESTART
        while not self.stopping:
            born = time.monotonic()
            returncode = await self._once()
            if self.stopping:
                return
            if not self.started.is_set():  # never came up: no point trying again
                self.failed_start = True
                self.started.set()
                return
            if time.monotonic() - born >= YOUNG:
                delay = FIRST_RESTART  # it had been running well: start afresh
            log.warning(
                "%s (pid %s) died: %s; restarting it in %g s",
                self.name,
                self.proc.pid if self.proc else "?",
                exit_reason(returncode),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(LAST_RESTART, delay * 2)
            self.restarts += 1

    async def _once(self) -> int:
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        self.proc = proc
        copy = asyncio.get_running_loop().create_task(self._copy_output(proc))
        readiness = asyncio.ensure_future(self._ready())
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait({readiness, exited}, return_when=asyncio.FIRST_COMPLETED)
        if self.stopping:
            readiness.cancel()
        elif readiness.done() and readiness.result() and not exited.done():
            what = "restarted" if self.started.is_set() else "up"
            log.info("%s %s (pid %d)", self.name, what, proc.pid)
            self.up = True
            self.started.set()
        else:
            readiness.cancel()
        returncode = await exited
        self.up = False
        if self._exited is not None:
            self._exited(proc.pid)
        await copy
        return returncode

    async def _copy_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        prefix = f"[{self.name}] ".encode()
        async for line in proc.stdout:
            sys.stderr.buffer.write(prefix + line)
            sys.stderr.buffer.flush()

    def state(self) -> ProcessState:
        return ProcessState(self.up, self.restarts)

    async def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status (None: not running)."""
        self.stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            if self._task is not None:
                self._task.cancel()
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning(
                "%s (pid %d) still running %g s after SIGTERM: killed", self.name, proc.pid, timeout
            )
            proc.kill()
            returncode = await proc.wait()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5)
        return returncode


async def _until_answers(host: str, port: int, timeout: float = START_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await ask_options(host, port, timeout=0.5) is not None:
            return True
        await asyncio.sleep(0.2)
    return False


class Supervisor(Backend):
    """Runs a cluster for ``opts`` (``workers`` > 0); ``command`` starts the app as a
    worker (its place is added to the environment). Raises
    :class:`~voip.errors.InvalidArgumentError` or :class:`.kamailio.KamailioMissing`
    at once when it cannot work."""

    def __init__(self, opts: SipOptions, command: Sequence[str]) -> None:
        self.opts = opts
        self.plan: ClusterPlan = cluster_plan(opts)
        check_security(opts, listening=True)  # kamailio is the TLS listener
        # A machine joining a front elsewhere runs no kamailio of its own.
        tls = "tls" in opts.sip_transports
        self.front = None if opts.join else kamailio.find_kamailio(tls=tls)
        self.command = list(command)
        self._stop = asyncio.Event()
        self.workers: list[Child] = []
        self.kamailio: Child | None = None
        self.joiner: Joiner | None = None
        self.rundir = Path()
        """kamailio's runtime directory (made at :meth:`run`)."""
        self.metrics: MetricsServer | None = None

    async def run(self, handler: Handler) -> int:
        """Serve until SIGTERM or SIGINT (``handler`` runs in the workers, which import
        the app themselves)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        rundir = self.rundir = Path(tempfile.mkdtemp(prefix="voip-front-"))
        try:
            if self.opts.metrics:  # before the workers: a port in use stops it all at once
                (rundir / "metrics").mkdir()
                self.metrics = start_cluster_metrics(
                    self.opts.metrics, rundir / "metrics", self._state
                )
            start = loop.create_task(self._start(rundir))
            stop = loop.create_task(self._stop.wait())
            await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done():  # stopped while starting: stop what has started
                start.cancel()
                await asyncio.wait({start})
                log.info("stopping before the cluster was up")
                return await self._shutdown()
            if not start.result():
                stop.cancel()
                await self._shutdown()
                return 1
            await stop
            log.info(
                "shutting down: the workers %s (grace %g s)%s",
                "leave the front and drain" if self.opts.join else "drain",
                self.opts.grace,
                "" if self.opts.join else ", then kamailio",
            )
            return await self._shutdown()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self.metrics is not None:
                self.metrics.close()
            for path in sorted(rundir.rglob("*"), reverse=True):
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()
            with contextlib.suppress(OSError):
                rundir.rmdir()

    async def _start(self, rundir: Path) -> bool:
        plan = self.plan
        env = {k: v for k, v in os.environ.items() if k != ENV_OPTIONS}
        env["PYTHONUNBUFFERED"] = "1"
        exited = None
        if self.metrics is not None:
            env.pop("prometheus_multiproc_dir", None)  # the old name, read if set
            env[MULTIPROC_ENV] = str(rundir / "metrics")
            exited = functools.partial(process_exited, rundir / "metrics")
        shared = rundir / "shared"  # queues, rooms' heads, pids (voip.cluster.places)
        shared.mkdir()
        for place in plan.workers:
            child = Child(
                f"worker {place.index}",
                self.command,
                functools.partial(_until_answers, place.sip_host, place.sip_port),
                env={**env, WORKER_ENV: dataclasses.replace(place, shared=str(shared)).to_env()},
                exited=exited,
            )
            self.workers.append(child)
            child.keep_running()
        await asyncio.gather(*(w.started.wait() for w in self.workers))
        failed = [w.name for w in self.workers if w.failed_start]
        if failed:
            log.error("%s did not start (its lines above say why)", ", ".join(failed))
            return False
        o = self.opts
        if self.front is None:
            return await self._join()
        cfg = kamailio.write_front(plan, o, rundir)
        self.kamailio = Child(
            "kamailio",
            kamailio.command(self.front, cfg, rundir),
            functools.partial(_until_answers, LOOPBACK, plan.inner_port),
            cwd=str(rundir),
        )
        self.kamailio.keep_running()
        await self.kamailio.started.wait()
        if self.kamailio.failed_start:
            log.error("kamailio did not start (its lines above say why)")
            return False
        first, last = plan.workers[0].sip_port, plan.workers[-1].sip_port
        plain = "+".join(t.upper() for t in o.sip_transports if t != "tls")
        tls = "tls" in o.sip_transports
        log.info(
            "cluster up: SIP on %s (%s)%s through kamailio; %d workers on %s:%d-%d",
            join_hostport(plan.front_host, plan.front_port),
            plain or "no UDP/TCP",
            f", TLS on {join_hostport(*o.tls_host_port)}" if tls else "",
            len(plan.workers),
            LOOPBACK,
            first,
            last,
        )
        return True

    async def _join(self) -> bool:
        """Join the front elsewhere (``--join``); False when it refuses this machine."""
        self.joiner = Joiner(*self.opts.join_host_port, self.plan.workers)
        self.joiner.start()
        joined = asyncio.ensure_future(self.joiner.joined.wait())
        refused = asyncio.ensure_future(self.joiner.refused.wait())
        await asyncio.wait({joined, refused}, return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()
        refused.cancel()
        if self.joiner.refused.is_set():
            return False
        places = self.plan.workers
        log.info(
            "cluster up: %d workers on %s:%d-%d, joined to the front at %s",
            len(places),
            places[0].sip_host,
            places[0].sip_port,
            places[-1].sip_port,
            self.joiner.front,
        )
        return True

    def _state(self) -> ClusterState:
        """The processes' state and kamailio's statistics for the metrics (called in the
        metrics server's thread)."""
        places = zip(self.plan.workers, list(self.workers), strict=False)
        front = None if self.kamailio is None else self.kamailio.state()
        stats = None
        if front is not None and front.up and self.front is not None:
            stats = kamailio.read_statistics(self.front, self.rundir)
        if self.joiner is not None:  # a joining machine's front: the one it joined
            front = ProcessState(self.joiner.joined.is_set(), 0)
        return ClusterState(
            {str(place.index): child.state() for place, child in places}, front, stats
        )

    async def _shutdown(self) -> int:
        if self.joiner is not None:  # first out of the front's list: no new calls come
            await self.joiner.leave()
        statuses = await asyncio.gather(
            *(w.stop(self.opts.grace + STOP_TIMEOUT) for w in self.workers)
        )
        front = None
        if self.kamailio is not None:
            front = await self.kamailio.stop(STOP_TIMEOUT)
        bad = [
            f"{child.name} {exit_reason(status)}"
            for child, status in zip(
                [*self.workers, self.kamailio], [*statuses, front], strict=True
            )
            if child is not None and status not in (0, None)
        ]
        if bad:
            log.warning("stopped: %s", ", ".join(bad))
            return 1
        log.info("stopped")
        return 0
