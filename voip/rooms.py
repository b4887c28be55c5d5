"""``voip.Room``: callers who all hear each other (a conference, a voice chat room).

A :class:`Room` is an object the app holds (rooms by name: a dict in the app), and
``await room.join(call)`` puts a call in it until the call leaves: each member hears
every other member, never itself, on top of whatever its own handler plays to it (a
prompt, a whisper). Who hears whom goes through :mod:`voip.linking`: two SIP calls of
one process are connected in PJSIP's conference bridge, in C, which sums for each member
what the others send; elsewhere (the simulator, the test kit) a tap and a feed per
member mix in Python.

**Silence gating** (``gate=True``, the default): a member the voice activity detector
(:func:`voip.audio.vad.default_detector`, one per member) does not hear speaking adds
nothing to the others' mix, decided per 20 ms frame, so that ten quiet lines do not add
up to a hiss and nobody's mains hum reaches the room. Over SIP the member's received
frames are then read in Python once each (to ask the detector) and the member's
connections in PJSIP's bridge are opened and closed to follow (the first 20-40 ms of
speech are lost while the gate opens). :meth:`Room.mute` silences a member whatever it
says.

**Size.** A room holds ``capacity`` members if the app sets it. Otherwise a lone process's
room holds :data:`MAX_MEMBERS`, what one SIP process holds (the pjsua2 wheel is built for
4 calls a process): over SIP a fifth caller does not even reach the handler, the server
answers 486 Busy Here. Joining a full room raises :class:`~voip.errors.RoomFullError`,
whose message says why it is full.

**Across workers** (``--workers N``, :mod:`voip.cluster.places`): the room of a name is
one room over the workers of the machine. Each worker joins its own members in its own
:class:`Room` of that name and, unless it is the room's home worker, one SIP leg to the
home worker, a member of both rooms that carries the mix each way (cascaded bridges, a
star: each member hears every other once). The room then holds what the workers' calls
hold, less the legs (8 members over 3 workers), and its default capacity is no limit:
each worker's 4 calls bound it. :attr:`Room.members`, ``len(room)`` and ``capacity`` are
this worker's; :attr:`Room.size` counts the members on every worker (from a file the
workers share). The beeps and :meth:`Room.play` are played into the legs too, which carry
them to every other worker's members: everyone hears them. What the server does is found
through :data:`SIBLINGS`, set in the context of each handler a worker runs.

**Recording** (:meth:`Room.record`) sums every member's gated audio in Python: a room
that is gated reads each member's frames anyway, and the sum adds one copy and one
addition per member and frame; it runs on one member's audio clock (the recording holds
the time the room had members).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Generator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from .audio.engine import PCMSource
from .audio.pcm import PCM, SAMPLE_RATE, as_pcm, int16_to_pcm, pcm_to_int16
from .audio.vad import VoiceDetector, default_detector
from .audio.wav import savePCMtoWAV
from .bridge import MediaBridge
from .call import Call, Playback
from .checks import whole
from .errors import CallEndedError, InvalidArgumentError, RoomFullError
from .events import JoinedRoom, LeftRoom
from .linking import Links, check_free, who

__all__ = [
    "Room",
    "RoomEnd",
    "Announcement",
    "RoomRecording",
    "Siblings",
    "SIBLINGS",
    "MAX_MEMBERS",
    "JOIN_BEEP",
]

MAX_MEMBERS = 4
"""Members a lone process's room holds unless told: the calls one SIP process holds (the
pjsua2 wheel's limit). A room over several workers (``--workers``) has no limit of its
own unless told: each worker's calls bound it."""
_ONE_PROCESS = "one SIP process holds at most 4 calls, the pjsua2 wheel's limit"

JOIN_BEEP = (1000.0, 0.2)
"""(Hz, seconds) of the beep everyone in the room hears when someone joins."""
LEAVE_BEEP = (500.0, 0.2)
"""(Hz, seconds) of the beep the others hear when someone leaves."""

RoomEnd = Literal["hung up", "left", "key"]
"""Why :meth:`Room.join` returned: the caller hung up (or the call ended), the member was
taken out (:meth:`Room.leave`), or the caller pressed the ``leave_key``."""


class Siblings(Protocol):
    """The other workers of this machine, as rooms see them (:mod:`voip.cluster.places`):
    told when a room's members come and go on this worker."""

    def joined(self, room: Room) -> None:
        """A member joined ``room`` on this worker."""

    def left(self, room: Room) -> None:
        """A member left ``room`` on this worker."""

    def size(self, room: Room) -> int:
        """The members of ``room`` on every worker."""


SIBLINGS: ContextVar[Siblings | None] = ContextVar("voip_siblings", default=None)
"""The sibling workers of a cluster's worker (set in each handler's context); None in a
lone process, the simulator and the test kit."""


@dataclass(eq=False)
class _Member:
    over: asyncio.Future[RoomEnd]
    """Resolves with why the member left."""
    beep: bool
    leg: bool = False
    """A SIP leg to another worker's room: heard ungated, not counted as a member."""
    forget: Callable[[], None] = lambda: None
    keys: asyncio.Task[None] | None = None


class Room:
    """Calls that all hear each other (see the module).

    ``name`` is for messages and events (and names the room across workers);
    ``capacity`` the most members at once (by default :data:`MAX_MEMBERS`, one SIP
    process's calls, in a lone process, and no limit over workers); ``gate``: silence gating
    by voice activity detection; ``detector``: makes each member's detector (default:
    :func:`~voip.audio.vad.default_detector`).
    """

    def __init__(
        self,
        name: str,
        *,
        capacity: int | None = None,
        gate: bool = True,
        detector: Callable[[], VoiceDetector] = default_detector,
    ) -> None:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"a room's name is a string, got {name!r}")
        capacity = whole("capacity", capacity, none=True, of="members")
        self.name = name
        self._capacity = capacity
        self._siblings: Siblings | None = None
        self.gated = bool(gate)
        self._detector = detector
        self._members: dict[Call, _Member] = {}
        self._recordings: list[RoomRecording] = []

    @property
    def capacity(self) -> int | None:
        """The most members at once on this worker (None: no limit of the room's own)."""
        if self._capacity is None and self._siblings is None and SIBLINGS.get() is None:
            return MAX_MEMBERS
        return self._capacity

    @property
    def members(self) -> tuple[Call, ...]:
        """The calls in the room on this process, in the order they joined."""
        return tuple(call for call, member in self._members.items() if not member.leg)

    @property
    def legs(self) -> tuple[Call, ...]:
        """The SIP legs joining this worker's room to the other workers' (see the module)."""
        return tuple(call for call, member in self._members.items() if member.leg)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def size(self) -> int:
        """The members of the room on every worker, over workers (``len(room)`` counts
        this worker's); in a lone process ``len(room)``."""
        siblings = self._siblings or SIBLINGS.get()
        return len(self) if siblings is None else siblings.size(self)

    def __contains__(self, call: object) -> bool:
        return call in self.members

    def describe(self) -> str:
        return f"in room {self.name!r}"

    def __repr__(self) -> str:
        return f"<Room {self.name!r}: {len(self)} of {self.capacity or 'any number'}>"

    # -- joining and leaving -------------------------------------------------------------

    async def join(
        self,
        call: Call,
        *,
        muted: bool = False,
        beep: bool = True,
        leave_key: str | None = None,
    ) -> RoomEnd:
        """Put ``call`` in the room until it leaves; returns why (:data:`RoomEnd`):
        ``"hung up"``, ``"left"`` (:meth:`leave`) or ``"key"`` (``leave_key`` pressed).

        ``muted``: the others do not hear the member until :meth:`unmute`. ``beep``:
        everyone hears :data:`JOIN_BEEP` as the member joins, and the others
        :data:`LEAVE_BEEP` as it leaves. ``leave_key`` (e.g. ``"#"``): pressing it
        leaves the room; while it is set, ``join`` reads the keypad and other keys are
        ignored, so leave it None to read keys in the handler meanwhile (``getDTMF`` in
        another task). The caller hanging up ends the join, not the handler (as with
        :meth:`~voip.call.Call.gather`); cancelling the awaiting task leaves the room.

        Raises :class:`~voip.errors.RoomFullError` when the room holds ``capacity``
        members, :class:`~voip.errors.CallEndedError` if the call has ended, and
        :class:`~voip.errors.InvalidArgumentError` if ``call`` is not a call or is
        already in a room or a bridge.
        """
        return await self._stay(call, self._add(call, muted, beep, leave_key))

    async def join_leg(self, call: Call) -> RoomEnd:
        """Put ``call``, a SIP leg to another worker's room of this name, in the room
        until it leaves (:mod:`voip.cluster.places`): heard ungated (its worker gated its
        members), no beeps, not counted in :attr:`members`."""
        return await self._stay(call, self._add(call, False, False, None, leg=True))

    async def _stay(self, call: Call, member: _Member) -> RoomEnd:
        with call.hangup_ends_verb():
            try:
                return await asyncio.shield(member.over)
            except asyncio.CancelledError:
                self._remove(call, "left")
                raise

    def leave(self, call: Call) -> bool:
        """Take ``call`` out of the room now (its ``join`` returns ``"left"``); the call
        goes on with its handler. Returns False if it was not in the room."""
        if call not in self._members:
            return False
        self._remove(call, "left")
        return True

    def _add(
        self, call: Call, muted: bool, beep: bool, leave_key: str | None, leg: bool = False
    ) -> _Member:
        if not isinstance(call, Call):
            raise InvalidArgumentError(
                f"join() takes a call (a voip Call), got {type(call).__name__}"
            )
        if leave_key is not None and (not isinstance(leave_key, str) or len(leave_key) != 1):
            raise InvalidArgumentError(f"leave_key is one key such as '#', got {leave_key!r}")
        call._check_active()
        if call.place is self:
            raise InvalidArgumentError(f"call {who(call)} is in room {self.name!r} already")
        check_free(call)
        self._siblings = self._siblings or SIBLINGS.get()
        capacity = self.capacity
        if not leg and capacity is not None and len(self) >= capacity:
            why = "" if self._capacity else f" ({_ONE_PROCESS})"
            raise RoomFullError(self.name, capacity, why)
        members = self._members
        loop = asyncio.get_running_loop()
        member = _Member(loop.create_future(), beep, leg)
        for other in members:
            call.links.hear(other.links)
            other.links.hear(call.links)
        if self.gated and not leg:
            call.links.gate(self._detector())
        call.links.mute(bool(muted))
        for recording in self._recordings:
            recording._add(call)
        call.place = self
        members[call] = member
        member.forget = call.on_end(lambda: self._remove(call, "hung up"))
        if leave_key is not None:
            member.keys = loop.create_task(self._watch_keys(call, leave_key))
        if leg:
            call.log.info("joined room %r as the leg to another worker's", self.name)
            return member
        call.log.info("joined room %r (%d of %s)", self.name, len(self), capacity or "any")
        call._emit(JoinedRoom(self.name, len(self)))
        if beep:
            for each in self._members:  # the legs too: they carry it to the other workers
                _beep(each, JOIN_BEEP)
        if self._siblings is not None:
            self._siblings.joined(self)
        return member

    def _remove(self, call: Call, reason: RoomEnd) -> None:
        member = self._members.pop(call, None)
        if member is None:
            return
        member.forget()
        if member.keys is not None and member.keys is not asyncio.current_task():
            member.keys.cancel()
        for other in self._members:
            call.links.unhear(other.links)
            other.links.unhear(call.links)
        for recording in self._recordings:
            recording._remove(call)
        call.links.gate(None)
        call.links.mute(False)
        if call.place is self:
            call.place = None
        if not member.over.done():
            member.over.set_result(reason)
        if member.leg:
            call.log.info("the leg to another worker's room %r left it: %s", self.name, reason)
            return
        call.log.info("left room %r: %s", self.name, reason)
        call._emit(LeftRoom(self.name, reason))
        if member.beep:
            for each in self._members:
                _beep(each, LEAVE_BEEP)
        if self._siblings is not None:
            self._siblings.left(self)

    async def _watch_keys(self, call: Call, leave_key: str) -> None:
        with contextlib.suppress(CallEndedError):
            await call.getDTMF(1, filter=leave_key)
            self._remove(call, "key")

    # -- what members hear ---------------------------------------------------------------

    def mute(self, call: Call, muted: bool = True) -> None:
        """Whether the others hear ``call`` (muted: silence, whatever it says); the
        member still hears the room."""
        self._member(call)
        call.links.mute(muted)

    def unmute(self, call: Call) -> None:
        """Let the others hear ``call`` again."""
        self.mute(call, False)

    def is_muted(self, call: Call) -> bool:
        self._member(call)
        return call.links.muted

    def play(self, sound: str | PCM | Sequence[float]) -> Announcement:
        """Play ``sound`` to every member now (an announcement): text is spoken
        (:meth:`~voip.call.Call.say`), anything else is 8 kHz PCM. Members joining
        meanwhile do not hear it. Returns an :class:`Announcement`: await it for the end
        (True if every member heard it all), ``cancel()`` it to stop. Over workers it is
        played into the legs as well, which carry it to the members of the others."""
        everyone = tuple(self._members)
        if isinstance(sound, str):
            playbacks = [call.say(sound) for call in everyone]
        else:
            pcm = as_pcm(sound)
            playbacks = [call.play_source(PCMSource(pcm)) for call in everyone]
        return Announcement(playbacks)

    def record(self, path: str | os.PathLike[str]) -> RoomRecording:
        """Record the room (what each member says, gated and summed, as an outsider would
        hear it) into the WAV file ``path`` until ``stop()``; returns the
        :class:`RoomRecording`, whose awaiting gives the samples once the file is
        written. Members who join later are recorded from when they join."""
        recording = RoomRecording(self, os.fspath(path))
        self._recordings.append(recording)
        for call in self.members:
            recording._add(call)
        return recording

    def _member(self, call: Call) -> _Member:
        member = self._members.get(call)
        if member is None:
            name = who(call) if isinstance(call, Call) else type(call).__name__
            raise InvalidArgumentError(f"call {name} is not in room {self.name!r}")
        return member


class Announcement:
    """A sound played to every member of a room (:meth:`Room.play`): ``await`` it (True
    if it played to its end for everyone), ``cancel()`` it."""

    def __init__(self, playbacks: list[Playback]) -> None:
        self.playbacks = playbacks

    def __await__(self) -> Generator[Any, None, bool]:
        results = yield from asyncio.gather(*self.playbacks, return_exceptions=True).__await__()
        return all(r is True for r in results)

    def cancel(self) -> None:
        for playback in self.playbacks:
            playback.cancel()


class RoomRecording:
    """The whole room being recorded (:meth:`Room.record`): ``stop()``, then ``await``
    it for the samples (also written to its ``path``).

    It is a listener of its own (:class:`~voip.linking.Links` over a bridge of its own,
    whose mixer plays one feed summing every member's gated audio), clocked by one
    member's audio thread: a small sink on that member's mixer takes one frame of the
    sum each time the member's own frame comes in.
    """

    def __init__(self, room: Room, path: str) -> None:
        self.room = room
        self.path = path
        loop = asyncio.get_running_loop()
        self._bridge = MediaBridge(loop)
        self._links = Links(self._bridge)
        self._frames: list[np.ndarray] = []
        self._clock: tuple[Call, int] | None = None
        self._done: asyncio.Future[PCM] = loop.create_future()

    def __await__(self) -> Generator[Any, None, PCM]:
        return self._done.__await__()

    @property
    def seconds(self) -> float:
        return sum(len(f) for f in self._frames) / SAMPLE_RATE

    def stop(self) -> None:
        """End the recording and write the file (on the loop, at once)."""
        if self._done.done():
            return
        self.room._recordings.remove(self)
        self._stop_clock()
        self._links.leave_all()
        self._bridge.close()
        chunks = self._frames
        pcm = int16_to_pcm(b"".join(c.tobytes() for c in chunks)) if chunks else np.zeros(0)
        try:
            savePCMtoWAV(pcm, self.path)
        except Exception as exc:
            self._done.set_exception(exc)
        else:
            self._done.set_result(np.asarray(pcm, dtype=np.float32))

    def _add(self, call: Call) -> None:
        self._links.hear(call.links)
        if self._clock is None:
            self._start_clock(call)

    def _remove(self, call: Call) -> None:
        self._links.unhear(call.links)
        if self._clock is not None and self._clock[0] is call:
            self._stop_clock()
            others = [m for m in self.room.members if m is not call]
            if others:
                self._start_clock(others[0])

    def _start_clock(self, call: Call) -> None:
        handle, _ = call._bridge.record(_Clock(self._tick))
        self._clock = (call, handle)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            call, handle = self._clock
            self._clock = None
            call._bridge.stop(handle)

    def _tick(self) -> None:
        # The clock member's audio thread: one frame of the room's sum.
        self._frames.append(pcm_to_int16(self._bridge.exchange(None)))


class _Clock:
    """A sink that only counts frames: calls ``tick()`` once per frame received."""

    def __init__(self, tick: Callable[[], None]) -> None:
        self._tick = tick

    def write(self, samples: PCM) -> bool:
        self._tick()
        return False

    def result(self) -> None:
        return None

    def describe(self) -> str:
        return "recording the room"


def _beep(call: Call, beep: tuple[float, float]) -> None:
    if call.active:
        call.playTone(beep[0], beep[1], 0.5)
