"""Rooms and queues across the workers of one machine: legs between the workers.

A :class:`voip.Room` joins the calls of one process in PJSIP's conference bridge, and one
process holds 4 calls. With ``--workers N`` the room of a name is one room over the
workers of this machine, as cascaded conference bridges are:

* Every room name has a **home** worker, :func:`home_of` the name, which every worker
  computes alike from its :class:`~.shares.WorkerPlace` (the ports of its siblings).
* A worker with members of a room it is not home to keeps one SIP call, its **leg**, to
  the home worker (``sip:room@<its host>:<home port>``, straight, not through the front;
  header :data:`ROOM_HEADER` naming the room), from when its first member joins until
  its last leaves. The leg is a member of the worker's own room
  (:meth:`~voip.Room.join_leg`: ungated, as the members were gated where they joined, no
  beeps) and, on the home worker, of the home's room.
* The home worker takes such a call from a sibling's port (not the user's handler) and
  joins it to its room of that name, made with the defaults if the app has none there
  yet (the app's own ``Room`` of that name takes the legs over when it gets a member).

A star of bridges, no loop: each member hears every other member once, the members of
other workers through their worker's leg. The home worker of a room spends a call on
each sibling with members, each other worker one call on its leg: 8 members over 3
workers of 4 calls, with the home worker holding 2 of them. A leg the home refuses (all
its calls up) is tried again every :data:`RETRY` seconds while the worker has members
(one warning per outage); the members of that worker meanwhile hear only each other.

A worker that dies takes its calls with it, but not its legs' far ends: no BYE comes, and
a leg would stay up, silent. Each worker writes its pid in the shared directory, and a
leg whose far worker's process is gone is hung up within :data:`WATCH_EVERY` seconds (a
room's leg is then placed again, to the worker started in its place).

A :class:`voip.Queue` of one name is one line over the workers (:mod:`voip.queues` says
what a caller and an agent see): its order is a file the workers share (:mod:`.book`),
each caller waits on its own worker, and an agent that takes a caller of another worker
places a leg to it (header :data:`TAKE_HEADER`: the queue and the ticket). That worker
refuses the leg (410) if the caller is no longer waiting, and otherwise bridges it to the
caller. This was chosen over a home worker per queue, as rooms have: a caller waiting
costs one call on its own worker, not a leg as well (waiting is most of a queue's time);
a conversation costs two calls on each side, the same as through a home.

Across machines (``--join``) is not done: places are shared by the workers of one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..backends.pjsip.agent import SipAgent
from ..backends.pjsip.dial import RUNNING_AGENT, dial
from ..bridging import Bridge, BridgeEnd
from ..call import Call
from ..lifecycle import Handler
from ..queues import Queue, Ticket
from ..rooms import Room
from ..sipuri import join_hostport, split_hostport
from .book import BOOK, Headcounts, QueueBook
from .shares import WorkerPlace

__all__ = ["ROOM_HEADER", "TAKE_HEADER", "RETRY", "WorkerPlaces", "home_of"]

log = logging.getLogger("voip.cluster")

ROOM_HEADER = "X-Voip-Room"
"""The header of a leg's INVITE naming the room (kamailio removes it from callers')."""
TAKE_HEADER = "X-Voip-Take"
"""The header of an agent's leg's INVITE: the queue's name and the ticket, ``"sales 42"``."""
RETRY = 1.0
"""Seconds between attempts to place a leg the home worker did not answer."""
LEG_TIMEOUT = 5.0
"""Seconds a leg may ring at the other worker (it answers at once, or is down)."""
WATCH_EVERY = 1.0
"""Seconds between looks at whether the worker at a leg's far end is still running."""


def home_of(name: str, workers: int) -> int:
    """The index (from 1) of the home worker of the room ``name`` among ``workers``:
    the same in every worker and every run (CRC-32 of its UTF-8, not Python's salted
    ``hash``)."""
    return 1 + zlib.crc32(name.encode("utf-8", "surrogatepass")) % workers


class WorkerPlaces:
    """One worker's rooms and queues, and its legs to the others' (see the module): the
    :class:`~voip.rooms.Siblings` and :class:`~voip.queues.SharedOrder` of a cluster's
    worker. Runs on the loop, but :meth:`vet` (SIP thread)."""

    def __init__(self, place: WorkerPlace, agent: SipAgent) -> None:
        self.place = place
        self.agent = agent
        self.rooms: dict[str, Room] = {}
        """This worker's room of each name that has had members or legs here."""
        self._legs: dict[str, asyncio.Task[None]] = {}
        """The task keeping the leg to the home worker, for each room not homed here."""
        self.queues: dict[str, Queue] = {}
        """This worker's queue of each name that has had callers here."""
        self.book: QueueBook | None = None
        """The queues' line (None: the supervisor gave no shared directory)."""
        self.heads: Headcounts | None = None
        """The rooms' members on each worker (None: no shared directory)."""
        if place.shared:
            _write_pid(Path(place.shared), place.sip_port)
            self.book = QueueBook(Path(place.shared) / BOOK)
            if forgotten := self.book.forget_worker(place.sip_port):
                log.info("%d callers of this worker's last run taken off the queues", forgotten)
            self.heads = Headcounts(Path(place.shared) / BOOK)
            self.heads.forget_worker(place.sip_port)
        self._tickets: set[int] = set()
        """The tickets of the callers waiting here (read by :meth:`vet`)."""

    def close(self) -> None:
        for shared in (self.book, self.heads):
            if shared is not None:
                shared.close()

    def home_port(self, name: str) -> int:
        """The SIP port of the home worker of the room ``name``."""
        return self.place.siblings[home_of(name, len(self.place.siblings)) - 1]

    def is_home(self, name: str) -> bool:
        return self.home_port(name) == self.place.sip_port

    def from_sibling(self, source: str) -> bool:
        """Whether ``source`` (``host:port``) is a sibling worker's own port: a leg's.
        A leg's header alone is not enough (a caller's would come through kamailio,
        which removes it anyway)."""
        host, port = split_hostport(source, 0)
        return host == self.place.sip_host and port in {
            p for p in self.place.siblings if p != self.place.sip_port
        }

    def leg_handler(self, call: Call) -> Handler | None:
        """What serves ``call`` if it is a sibling worker's leg to a room or a caller
        waiting here; None: an ordinary call, for the app's handler."""
        if not self.from_sibling(call.info.source):
            return None
        room = call.headers.get(ROOM_HEADER)
        if room is not None:
            return functools.partial(self.serve_leg, room)
        take = _take(call.headers)
        if take is not None:
            return functools.partial(self._serve_take, *take)
        return None

    def vet(self, headers: Mapping[str, str], source: str) -> tuple[int, str]:
        """Refuse an agent's leg for a caller no longer waiting here (SIP thread)."""
        take = _take(headers)
        if take is None or not self.from_sibling(source) or take[1] in self._tickets:
            return 0, ""
        return 410, f"no caller of ticket {take[1]} waits in queue {take[0]!r} here now"

    def room(self, name: str) -> Room:
        """This worker's room ``name``, made with the defaults if there is none."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        return room

    # -- Siblings: told by the rooms -----------------------------------------------------

    def size(self, room: Room) -> int:
        return len(room) if self.heads is None else self.heads.total(room.name)

    def joined(self, room: Room) -> None:
        self._adopt(room)
        if self.heads is not None:
            self.heads.set(room.name, self.place.sip_port, len(room))
        if not self.is_home(room.name) and room.name not in self._legs:
            task = asyncio.get_running_loop().create_task(self._keep_leg(room.name))
            self._legs[room.name] = task

    def left(self, room: Room) -> None:
        if self.heads is not None and self.rooms.get(room.name) is room:
            self.heads.set(room.name, self.place.sip_port, len(room))
        if not room.members and not self.is_home(room.name):
            for leg in room.legs:  # its handler returns, and the leg is hung up
                room.leave(leg)

    def _adopt(self, room: Room) -> None:
        """Make ``room`` this worker's room of its name; the legs of a room made for them
        move over (two rooms of one name on one worker would not hear each other)."""
        before = self.rooms.get(room.name)
        if before is room:
            return
        self.rooms[room.name] = room
        if before is not None:
            for leg in before.legs:
                before.leave(leg)  # its handler joins it to this room (serve_leg)

    # -- the legs ------------------------------------------------------------------------

    async def serve_leg(self, name: str, call: Call) -> None:
        """The handler of a leg: in this worker's room ``name`` until the call ends (or,
        at the far end, until the room here has no members)."""
        home = self.is_home(name)
        far = _port_of(call.info.source) if home else self.home_port(name)
        with self._watched(call, far):
            while call.active and (home or self.room(name).members):
                await self.room(name).join_leg(call)

    async def _keep_leg(self, name: str) -> None:
        """Keep a leg to the home worker while the room here has members."""
        RUNNING_AGENT.set(self.agent)
        uri = f"sip:room@{join_hostport(self.place.sip_host, self.home_port(name))}"
        refused = False  # said once per outage, not once a second
        try:
            while self.room(name).members:
                result = await dial(
                    uri,
                    functools.partial(self.serve_leg, name),
                    timeout=LEG_TIMEOUT,
                    headers={ROOM_HEADER: name},
                    direct=True,
                )
                if not self.room(name).members:
                    break
                if result.answered or not refused:
                    log.warning(
                        "the leg of room %r to %s %s (%d %s): calling again every %g s; the"
                        " members here hear only each other meanwhile",
                        name,
                        uri,
                        "ended" if result.answered else "was refused",
                        result.status,
                        result.reason,
                        RETRY,
                    )
                refused = not result.answered
                await asyncio.sleep(RETRY)
        finally:
            del self._legs[name]

    # -- SharedOrder: told by the queues ---------------------------------------------------

    def _book(self) -> QueueBook:
        # The server makes this the queues' SharedOrder only when there is a book.
        assert self.book is not None
        return self.book

    def enter(self, queue: Queue, call: Call) -> int:
        self.queues[queue.name] = queue
        ticket = self._book().enter(queue.name, self.place.sip_port)
        self._tickets.add(ticket.number)
        return ticket.number

    def leave(self, number: int) -> None:
        self._tickets.discard(number)
        self._book().leave(number)

    def position(self, number: int) -> int | None:
        return self._book().position(number)

    def next(self, queue: Queue) -> Ticket | None:
        return self._book().take(queue.name)

    def is_here(self, ticket: Ticket) -> bool:
        return ticket.worker == self.place.sip_port

    async def fetch(self, ticket: Ticket, agent: Call) -> tuple[Call, BridgeEnd] | None:
        RUNNING_AGENT.set(self.agent)
        bridged: list[tuple[Call, Bridge]] = []

        async def bridge(leg: Call) -> None:
            if agent.active:  # (it may have hung up while the leg rang)
                bridged.append((leg, Bridge(agent, leg)))
                with self._watched(leg, ticket.worker):
                    await bridged[0][1].until_over(leg)

        uri = f"sip:queue@{join_hostport(self.place.sip_host, ticket.worker)}"
        try:
            result = await dial(
                uri,
                bridge,
                timeout=LEG_TIMEOUT,
                headers={TAKE_HEADER: f"{ticket.queue} {ticket.number}"},
                direct=True,
            )
        except asyncio.CancelledError:  # the agent's take was cancelled
            if not bridged:  # (the leg is cancelled too: the caller waits on)
                self._book().put_back(ticket)
            raise
        if bridged:
            leg, over = bridged[0]
            return leg, await over.until_over(agent)
        if result.status != 410:  # the caller's worker is full or down: later, maybe
            log.warning(
                "cannot reach the caller of ticket %d of queue %r on %s (%d %s): back in line",
                ticket.number,
                ticket.queue,
                uri,
                result.status,
                result.reason,
            )
            self._book().put_back(ticket)
            await asyncio.sleep(RETRY)
        return None

    async def _serve_take(self, queue: str, number: int, call: Call) -> None:
        """The handler of an agent's leg: bridged to the caller of ticket ``number``
        until the bridge is over (hung up at once if the caller is no longer here)."""
        waiting = self.queues.get(queue)
        bridge = None if waiting is None else waiting.hand_over(number, call)
        if bridge is not None:
            with self._watched(call, _port_of(call.info.source)):
                await bridge.until_over(call)

    # -- legs whose far worker died --------------------------------------------------------

    @contextlib.contextmanager
    def _watched(self, leg: Call, port: int) -> Iterator[None]:
        """Within it, ``leg`` is hung up if the worker on ``port`` stops running."""
        pid = _read_pid(Path(self.place.shared), port) if self.place.shared else None
        task = None
        if pid is not None:
            task = asyncio.get_running_loop().create_task(self._hang_up_if_gone(leg, port, pid))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()

    async def _hang_up_if_gone(self, leg: Call, port: int, pid: int) -> None:
        while leg.active:
            await asyncio.sleep(WATCH_EVERY)
            if not _running(pid):
                log.warning(
                    "the worker on port %d (pid %d) is gone: hanging up the leg to it", port, pid
                )
                leg.hangup()
                return


def _take(headers: Mapping[str, str]) -> tuple[str, int] | None:
    """The queue and ticket an agent's leg names (:data:`TAKE_HEADER`), or None."""
    queue, _, number = headers.get(TAKE_HEADER, "").rpartition(" ")
    return (queue, int(number)) if queue and number.isdigit() else None


def _port_of(source: str) -> int:
    return split_hostport(source, 0)[1]


def _pid_file(shared: Path, port: int) -> Path:
    return shared / f"worker-{port}.pid"


def _write_pid(shared: Path, port: int) -> None:
    """Say which process is the worker on ``port`` now (replacing its last run's)."""
    path = _pid_file(shared, port)
    temporary = path.with_suffix(".new")
    temporary.write_text(str(os.getpid()))
    temporary.replace(path)  # a reader sees the old pid or the new one, never half


def _read_pid(shared: Path, port: int) -> int | None:
    try:
        return int(_pid_file(shared, port).read_text())
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (someone else's: the pid was reused)
        return False
    return True
