"""Rooms across the workers of one machine: a room's home, and the legs to it.

A :class:`voip.Room` joins the calls of one process in PJSIP's conference bridge, and one
process holds 4 calls. With ``--workers N`` the room of a name is one room over the
workers of this machine, as cascaded conference bridges are:

* Every room name has a **home** worker, :func:`home_of` the name, which every worker
  computes alike from its :class:`~.shares.WorkerPlace` (the ports of its siblings).
* A worker with members of a room it is not home to keeps one SIP call, its **leg**, to
  the home worker (``sip:room@127.0.0.1:<home port>``, header :data:`ROOM_HEADER` naming
  the room), from when its first member joins until its last leaves. The leg is a member
  of the worker's own room (:meth:`~voip.Room.join_leg`: ungated, as the members were
  gated where they joined, no beeps) and, on the home worker, of the home's room.
* The home worker takes such a call from a sibling's port (not the user's handler) and
  joins it to its room of that name, made with the defaults if the app has none there
  yet (the app's own ``Room`` of that name takes the legs over when it gets a member).

A star of bridges, no loop: each member hears every other member once, the members of
other workers through their worker's leg. The home worker of a room spends a call on
each sibling with members, each other worker one call on its leg: 8 members over 3
workers of 4 calls, with the home worker holding 2 of them. A leg the home refuses (all
its calls up) is tried again every :data:`RETRY` seconds while the worker has members;
the members of that worker meanwhile hear only each other.

Across machines (``--join``) is not done: places are shared by the workers of one machine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import zlib

from ..backends.pjsip.agent import SipAgent
from ..backends.pjsip.dial import RUNNING_AGENT, dial
from ..call import Call
from ..rooms import Room
from .shares import LOOPBACK, WorkerPlace

__all__ = ["ROOM_HEADER", "RETRY", "WorkerRooms", "home_of"]

log = logging.getLogger("voip.cluster")

ROOM_HEADER = "X-Voip-Room"
"""The header of a leg's INVITE naming the room (kamailio removes it from callers')."""
RETRY = 1.0
"""Seconds between attempts to place a leg the home worker did not answer."""
LEG_TIMEOUT = 5.0
"""Seconds a leg may ring at the home worker (it answers at once, or is down)."""


def home_of(name: str, workers: int) -> int:
    """The index (from 1) of the home worker of the room ``name`` among ``workers``:
    the same in every worker and every run (CRC-32 of its UTF-8, not Python's salted
    ``hash``)."""
    return 1 + zlib.crc32(name.encode("utf-8", "surrogatepass")) % workers


class WorkerRooms:
    """One worker's rooms and its legs to the others' (see the module): the
    :class:`~voip.rooms.Siblings` of a cluster's worker. Runs on the loop."""

    def __init__(self, place: WorkerPlace, agent: SipAgent) -> None:
        self.place = place
        self.agent = agent
        self.rooms: dict[str, Room] = {}
        """This worker's room of each name that has had members or legs here."""
        self._legs: dict[str, asyncio.Task[None]] = {}
        """The task keeping the leg to the home worker, for each room not homed here."""

    def home_port(self, name: str) -> int:
        """The SIP port of the home worker of the room ``name``."""
        return self.place.siblings[home_of(name, len(self.place.siblings)) - 1]

    def is_home(self, name: str) -> bool:
        return self.home_port(name) == self.place.sip_port

    def leg_room(self, call: Call) -> str | None:
        """The room ``call`` is a sibling worker's leg to, or None: an ordinary call.

        A leg comes from a sibling's own port on the loopback; the header alone is not
        enough (a caller's would come through kamailio, which removes it anyway)."""
        name = call.headers.get(ROOM_HEADER)
        host, _, port = call.info.source.rpartition(":")
        siblings = {str(p) for p in self.place.siblings if p != self.place.sip_port}
        if name is None or host != LOOPBACK or port not in siblings:
            return None
        return name

    def room(self, name: str) -> Room:
        """This worker's room ``name``, made with the defaults if there is none."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        return room

    # -- Siblings: told by the rooms -----------------------------------------------------

    def joined(self, room: Room) -> None:
        self._adopt(room)
        if not self.is_home(room.name) and room.name not in self._legs:
            task = asyncio.get_running_loop().create_task(self._keep_leg(room.name))
            self._legs[room.name] = task

    def left(self, room: Room) -> None:
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
        while call.active and (self.is_home(name) or self.room(name).members):
            await self.room(name).join_leg(call)

    async def _keep_leg(self, name: str) -> None:
        """Keep a leg to the home worker while the room here has members."""
        RUNNING_AGENT.set(self.agent)
        uri = f"sip:room@{LOOPBACK}:{self.home_port(name)}"
        try:
            while self.room(name).members:
                result = await dial(
                    uri,
                    functools.partial(self.serve_leg, name),
                    timeout=LEG_TIMEOUT,
                    headers={ROOM_HEADER: name},
                )
                if self.room(name).members:
                    log.warning(
                        "the leg of room %r to %s ended (%d %s): again in %g s",
                        name,
                        uri,
                        result.status,
                        result.reason,
                        RETRY,
                    )
                    await asyncio.sleep(RETRY)
        finally:
            del self._legs[name]
