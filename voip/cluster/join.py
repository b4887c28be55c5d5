"""A machine's workers joining a front elsewhere (``--join sip:FRONT``).

For each worker the supervisor sends the front a REGISTER whose Contact is the worker's
SIP address (``sip:HOST:PORT``, on this machine's listen host), from that host, and
sends it again every :data:`REFRESH` seconds: the front's kamailio adds a worker it does
not have to its dispatcher list (``dispatcher.add`` over its JSON-RPC), so a front that
restarted has them back within :data:`REFRESH` s. On the way out the same REGISTER with
``Expires: 0`` removes each (``dispatcher.remove``): the front sends no new call there
from then on. A worker that stops answering is taken out of the rotation by the
front's own OPTIONS probes, as its local workers are, and out of the list once its join
goes :data:`EXPIRES` seconds unrefreshed.

The front takes these only from ``--join-allow`` addresses, and only for the address the
request came from (the Contact's host must be the source address): a machine allowed
to join can point the front at itself alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .probe import ask
from .shares import WorkerPlace

__all__ = ["Joiner", "REFRESH"]

log = logging.getLogger("voip.cluster")

REFRESH = 10.0
"""Seconds between two REGISTERs of each worker (and between tries while the front
does not answer)."""
EXPIRES = 3 * int(REFRESH)
"""Seconds the front keeps a join not refreshed (three refreshes missed)."""


class Joiner:
    """Keeps ``workers`` joined to the front at ``host``:``port``."""

    def __init__(self, host: str, port: int, workers: Sequence[WorkerPlace]) -> None:
        self.host = host
        self.port = port
        self.workers = list(workers)
        self.joined = asyncio.Event()
        """Set while the front has taken every worker at the last refresh."""
        self.refused = asyncio.Event()
        """Set when the front refused one: this machine may not join it."""
        self._task: asyncio.Task[None] | None = None
        self._tried = False
        self._ever_joined = False

    @property
    def front(self) -> str:
        return f"sip:{self.host}:{self.port}"

    async def _register(self, place: WorkerPlace, expires: int) -> int | None:
        headers = (f"Contact: <{place.uri}>", f"Expires: {expires}")
        return await ask(self.host, self.port, "REGISTER", headers, place.sip_host)

    async def _join_all(self) -> list[int]:
        """Register every worker; the refusals' statuses (empty: none refused)."""
        statuses = await asyncio.gather(*(self._register(w, EXPIRES) for w in self.workers))
        refused = sorted({s for s in statuses if s is not None and s // 100 == 4})
        if refused:
            return refused
        if any(s != 200 for s in statuses):
            if self.joined.is_set() or not self._tried:  # said once, not every refresh
                log.warning(
                    "the front at %s did not take every worker (%s): trying again every %g s",
                    self.front,
                    ", ".join("no answer" if s is None else str(s) for s in statuses),
                    REFRESH,
                )
            self.joined.clear()
        elif not self.joined.is_set():
            log.info("joined the front at %s", self.front)
            self.joined.set()
            self._ever_joined = True
        self._tried = True
        return []

    async def _keep_joined(self) -> None:
        while not (refused := await self._join_all()):
            await asyncio.sleep(REFRESH)
        log.error(
            "the front at %s refused this machine's workers (%s): add %s to its"
            " --join-allow, and --listen with the address the front sees",
            self.front,
            ", ".join(map(str, refused)),
            self.workers[0].sip_host,
        )
        self.refused.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep_joined())

    async def leave(self) -> None:
        """Stop refreshing and take every worker out of the front's list."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        if not self._ever_joined:
            return
        statuses = await asyncio.gather(*(self._register(w, 0) for w in self.workers))
        if all(s == 200 for s in statuses):
            log.info("left the front at %s", self.front)
        else:
            log.warning(
                "the front at %s did not confirm every worker's leaving (%s): its probes"
                " will find them gone",
                self.front,
                ", ".join(str(s) for s in statuses),
            )
