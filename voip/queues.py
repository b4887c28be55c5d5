"""``voip.Queue``: callers wait on hold, in order, until an agent takes them.

A :class:`Queue` is a first-in, first-out line of waiting calls, shared by the handlers
of one process (a module-level object). A caller's handler ``await queue.wait(call)``:
the caller hears hold music (looped, resumed where it was after each announcement) and,
on entry and every ``position_every`` seconds, "You are caller number 2." An agent is
just another call (someone who called in and gave a code, or one that :func:`voip.dial`
placed); its handler ``await queue.take(agent)`` bridges it (:meth:`voip.call.Call.bridge`)
to the caller who has waited longest, and returns when that conversation is over, so that
it can loop to take the next. Both handlers keep running meanwhile.

``wait`` returns a :class:`Dequeued` (``bridged``, then how the bridge ended; ``timeout``;
``hung up``; ``left``: :meth:`Queue.leave` or the task cancelled), ``take`` a
:class:`Taken` (who, how it ended), or None. While it waits, the queue is the call's
:attr:`~voip.call.Call.place`.

In a lone process a queue holds the calls of that process, at most 4 SIP calls (the
``pjsua2`` wheel's limit): callers and agents together.

**Across workers** (``--workers N``, :mod:`voip.cluster.places`): the queues of one name
on the workers of the machine are one line, in the order the callers came, kept in a file
the workers share (:mod:`voip.cluster.book`): each waiting caller holds a
:class:`Ticket`. A caller waits on its own worker, hearing its hold music and its place
in the whole line there; an agent's ``take`` tears up the oldest ticket and, if that
caller waits on another worker, places a SIP call (a leg) to that worker, which bridges
it to the caller, while ``take`` bridges the agent to the leg: two calls on each worker
for the conversation, none while the caller waits. A caller who left meanwhile refuses
the leg (410), and ``take`` goes on to the next. ``len(queue)`` and :attr:`Queue.callers`
are this worker's callers; :meth:`Queue.position` is in the whole line; for a caller taken
from another worker, :attr:`Taken.caller` and :attr:`Dequeued.agent` are the leg. Agents
on several workers each take the next caller when they look, every :data:`LOOK_EVERY`
seconds while the line is empty (the order of agents is kept on one worker only). What the
server does is found through :data:`SHARED_ORDER`, set in each handler's context.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from . import checks
from .audio.engine import PCMSource
from .audio.pcm import PCM, as_pcm
from .audio.tones import hold_music
from .bridging import Bridge, BridgeEnd
from .call import Call, Playback
from .errors import CallEndedError, InvalidArgumentError
from .events import LeftQueue, Queued
from .linking import check_free, who
from .prompts import Prompt, parts_of, synthesise_ahead

__all__ = [
    "Queue",
    "Dequeued",
    "Taken",
    "Ticket",
    "QueueReason",
    "SharedOrder",
    "SHARED_ORDER",
    "POSITION_TEXT",
    "SPEECH_PAUSE",
    "LOOK_EVERY",
]

QueueReason = Literal["bridged", "timeout", "hung up", "left"]
"""Why :meth:`Queue.wait` returned."""

POSITION_TEXT = "You are caller number {position}."
"""What a waiting caller is told of their place (1: the next to be taken)."""

SPEECH_PAUSE = 10.0
"""Seconds of silence after each text of a ``hold`` prompt, before it is said again."""

SOON = 0.001
"""Seconds within which a deadline on hold counts as reached."""

LOOK_EVERY = 0.2
"""Seconds between an agent's looks at a shared line while it is empty (across workers:
an arrival on another worker wakes nobody here)."""

LIMIT = (
    "a queue holds the calls of one process (and one process at most 4 SIP calls, "
    "pjsua2's limit, callers and agents together)"
)


@dataclass(frozen=True)
class Dequeued:
    """What :meth:`Queue.wait` returns: why the caller no longer waits."""

    reason: QueueReason
    """``bridged`` (an agent took them, and the bridge is over: see :attr:`end`),
    ``timeout``, ``hung up`` (while waiting) or ``left`` (:meth:`Queue.leave`)."""
    waited: float
    """Seconds spent waiting in the queue."""
    agent: Call | None = None
    """The agent's call, when bridged."""
    end: BridgeEnd | None = None
    """When bridged, how the bridge ended, from the caller's side: ``hung up`` (the
    caller did), ``other hung up`` (the agent did) or ``unbridged``."""


@dataclass(frozen=True)
class Taken:
    """What :meth:`Queue.take` returns: the caller the agent talked with."""

    caller: Call
    """The caller's call (it may still be up: the agent unbridged, or hung up)."""
    end: BridgeEnd
    """How the bridge ended, from the agent's side: ``hung up`` (the agent did),
    ``other hung up`` (the caller did) or ``unbridged``."""
    waited: float
    """Seconds the caller had waited in the queue."""


@dataclass(frozen=True)
class Ticket:
    """A caller's place in a line shared by workers (see the module)."""

    number: int
    """Increasing with the time of arrival, never reused."""
    queue: str
    worker: int
    """The SIP port of the worker the caller waits on."""
    since: float
    """When the caller began to wait (seconds since the epoch)."""


class SharedOrder(Protocol):
    """The line of each queue over the workers of one machine (:mod:`voip.cluster.places`)."""

    def enter(self, queue: Queue, call: Call) -> int:
        """A ticket at the end of ``queue``'s line for ``call``, waiting here: its number."""

    def leave(self, number: int) -> None:
        """Ticket ``number`` no longer waits (the caller left, or was taken here)."""

    def position(self, number: int) -> int | None:
        """Ticket ``number``'s place in the whole line (1: the next), or None."""

    def next(self, queue: Queue) -> Ticket | None:
        """The oldest ticket of ``queue``'s line, torn up (None: nobody waits)."""

    def is_here(self, ticket: Ticket) -> bool:
        """Whether ``ticket``'s caller waits on this worker."""

    def fetch(self, ticket: Ticket, agent: Call) -> Awaitable[tuple[Call, BridgeEnd] | None]:
        """Bridge ``agent`` to ``ticket``'s caller on another worker, through a leg, until
        the bridge is over: the leg and how it ended, from the agent's side; None if the
        caller could not be reached (gone: the ticket is torn up; else it is put back)."""


SHARED_ORDER: ContextVar[SharedOrder | None] = ContextVar("voip_shared_order", default=None)
"""The shared line of a cluster's worker (set in each handler's context); None in a lone
process, the simulator and the test kit."""


@dataclass(eq=False)
class _Waiting:
    """One caller in the queue."""

    call: Call
    since: float
    outcome: asyncio.Future[tuple[QueueReason, Call | None, Bridge | None]]
    holding: asyncio.Task[None] | None = None
    playing: Playback | None = None
    ticket: int = 0
    """Its ticket in the shared line (0: a lone process's queue)."""

    def stop_hold(self) -> None:
        """Stop the hold music and the announcements now (from the next frame)."""
        if self.holding is not None:
            self.holding.cancel()
        if self.playing is not None:
            self.playing.cancel()


class Queue:
    """Callers waiting, in order, for an agent: ``await queue.wait(call)`` on the
    caller's side, ``await queue.take(agent)`` on the agent's.

    ``len(queue)`` is the number of callers waiting, :attr:`callers` lists them (the
    next to be taken first): this process's. A lone process's queue holds its calls, at
    most 4 SIP calls (callers and agents together); over workers, see the module.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"a queue needs a name (a non-empty str), got {name!r}")
        self.name = name
        self._waiting: list[_Waiting] = []
        self._takers: deque[asyncio.Future[None]] = deque()
        self._shared: SharedOrder | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}: {len(self)} waiting>"

    @property
    def callers(self) -> list[Call]:
        """The calls waiting, the next to be taken first."""
        return [entry.call for entry in self._waiting]

    def position(self, call: Call) -> int | None:
        """``call``'s place in the queue (1: the next to be taken), or None. Over
        workers, its place in the whole line."""
        for n, entry in enumerate(self._waiting, 1):
            if entry.call is call:
                return self._shared.position(entry.ticket) if self._shared else n
        return None

    def describe(self) -> str:
        return f"waiting in queue {self.name!r}"

    # -- the caller's side -----------------------------------------------------------

    async def wait(
        self,
        call: Call,
        *,
        hold: Prompt = None,
        position_every: float | None = 30.0,
        timeout: float | None = None,
    ) -> Dequeued:
        """Wait in the queue, on hold, until an agent takes the call and the bridge to
        them is over, or ``timeout`` seconds pass, or the caller hangs up, or
        :meth:`leave`; returns a :class:`Dequeued` saying which.

        ``hold``: what the caller hears, looped: None for the default music
        (:func:`voip.audio.tones.hold_music`), or a prompt (text, PCM, a WAV path, or a
        list of these; each text is followed by :data:`SPEECH_PAUSE` seconds of
        silence); an empty list for silence. ``position_every``: seconds between
        announcements of their place (:data:`POSITION_TEXT`), the first on entry, the
        music paused meanwhile; None: none. The caller hanging up ends the wait, not the
        handler; cancelling the task leaves the queue (or, once bridged, unbridges).

        Raises :class:`CallEndedError` if the call has ended, and
        :class:`InvalidArgumentError` if it is not a call of this process or is in a
        bridge, a room or a queue already.
        """
        _check_call("wait", call)
        position_every = checks.seconds("position_every", position_every, low_open=True, none=True)
        timeout = checks.seconds("timeout", timeout, none=True)
        self._check_free(call)
        hold_parts = _hold_parts(hold)
        loop = asyncio.get_running_loop()
        entry = _Waiting(call, loop.time(), loop.create_future())
        self._waiting.append(entry)
        self._shared = self._shared or SHARED_ORDER.get()
        if self._shared is not None:
            entry.ticket = self._shared.enter(self, call)
        call.place = self
        forget = call.on_end(lambda: self._drop(entry, "hung up"))
        position = self.position(call) or len(self)
        call.log.info("waiting in queue %r at position %d", self.name, position)
        call._emit(Queued(self.name, position))
        self._wake_taker()
        entry.holding = asyncio.create_task(self._hold(entry, hold_parts, position_every))
        with call.hangup_ends_verb():
            try:
                await asyncio.wait({entry.outcome}, timeout=timeout)
            except asyncio.CancelledError:
                self._drop(entry, "left")
                raise
            finally:
                forget()
                entry.stop_hold()
            self._drop(entry, "timeout")  # (nothing, if it is over already)
            reason, agent, bridge = entry.outcome.result()
            waited = loop.time() - entry.since
            if bridge is None:
                return Dequeued(reason, waited)
            return Dequeued(reason, waited, agent, await bridge.until_over(call))

    def leave(self, call: Call) -> bool:
        """Take ``call`` out of the queue: its :meth:`wait` returns ``left``. Returns
        False if it was not waiting."""
        for entry in self._waiting:
            if entry.call is call:
                self._drop(entry, "left")
                return True
        return False

    # -- the agent's side ------------------------------------------------------------

    async def take(self, agent: Call, *, timeout: float | None = None) -> Taken | None:
        """Bridge ``agent`` to the caller who has waited longest (waiting for one if
        the queue is empty) and return when that bridge is over: a :class:`Taken`
        (who, and how it ended). None if no caller came within ``timeout`` seconds
        (None: no limit) or the agent's call ended first.

        Agents waiting together take callers in the order they began to wait. The agent
        hanging up ends the bridge, not the handler; cancelling the task unbridges (the
        caller's :meth:`wait` returns, with ``end`` ``"unbridged"``).

        Raises :class:`CallEndedError` if the agent's call has ended, and
        :class:`InvalidArgumentError` if it is not a call of this process or is in a
        bridge, a room or a queue already.
        """
        _check_call("take", agent)
        timeout = checks.seconds("timeout", timeout, none=True)
        self._check_free(agent)
        self._shared = self._shared or SHARED_ORDER.get()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        with agent.hangup_ends_verb():
            if self._shared is not None:
                return await self._take_shared(self._shared, agent, deadline)
            while agent.active and not self._waiting:
                if not await self._arrival(agent, deadline):
                    return None
            if not agent.active:
                return None
            return await self._bridge_to(self._waiting[0], agent)

    async def _take_shared(
        self, shared: SharedOrder, agent: Call, deadline: float | None
    ) -> Taken | None:
        """``take`` from the line shared by the workers: the oldest ticket, here or on
        another worker; the next one if its caller is gone."""
        while agent.active:
            ticket = shared.next(self)
            if ticket is None:
                if not await self._arrival(agent, deadline, LOOK_EVERY):
                    return None
                continue
            if shared.is_here(ticket):
                entry = next((e for e in self._waiting if e.ticket == ticket.number), None)
                if entry is not None:  # (else it left meanwhile)
                    return await self._bridge_to(entry, agent)
                continue
            fetched = await shared.fetch(ticket, agent)
            if fetched is not None:
                leg, end = fetched
                waited = time.time() - ticket.since
                agent.log.info("took a caller of queue %r on another worker", self.name)
                return Taken(leg, end, waited)
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                return None
        return None

    async def _bridge_to(self, entry: _Waiting, agent: Call) -> Taken:
        """Bridge ``agent`` to the caller of ``entry`` until the bridge is over."""
        self._check_free(agent)  # (bridged meanwhile by another task?)
        caller = entry.call
        bridge = self._hand_over(entry, agent)
        waited = asyncio.get_running_loop().time() - entry.since
        agent.log.info("took %s from queue %r after %.1f s", who(caller), self.name, waited)
        return Taken(caller, await bridge.until_over(agent), waited)

    def hand_over(self, ticket: int, leg: Call) -> Bridge | None:
        """Bridge the caller of ticket ``ticket``, waiting here, to ``leg``, an agent's leg
        from another worker (:mod:`voip.cluster.places`); None if it waits no more."""
        entry = next((e for e in self._waiting if e.ticket == ticket), None)
        return None if entry is None else self._hand_over(entry, leg)

    def _hand_over(self, entry: _Waiting, agent: Call) -> Bridge:
        self._remove(entry, "bridged")
        entry.stop_hold()
        bridge = Bridge(agent, entry.call)
        entry.outcome.set_result(("bridged", agent, bridge))
        return bridge

    async def _arrival(
        self, agent: Call, deadline: float | None, most: float | None = None
    ) -> bool:
        """Wait for a caller to arrive here, or ``most`` seconds; False at the
        ``deadline`` or when the agent's call ends."""
        loop = asyncio.get_running_loop()
        arrival: asyncio.Future[None] = loop.create_future()
        self._takers.append(arrival)
        forget = agent.on_end(functools.partial(_wake, arrival))
        try:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            if most is not None:
                left = most if left is None else min(left, most)
            await asyncio.wait({arrival}, timeout=left)
        finally:
            forget()
            if arrival in self._takers:
                self._takers.remove(arrival)
        woken = arrival.done()
        if not woken:
            arrival.cancel()
        past = deadline is not None and loop.time() >= deadline
        return agent.active and (woken or not past)

    def _wake_taker(self) -> None:
        while self._takers:
            taker = self._takers.popleft()
            if not taker.done():
                _wake(taker)
                return

    # -- in and out ------------------------------------------------------------------

    def _check_free(self, call: Call) -> None:
        call._check_active()
        check_free(call)

    def _drop(self, entry: _Waiting, reason: QueueReason) -> None:
        """``entry`` leaves the queue without an agent (if it is still waiting)."""
        if entry.outcome.done():
            return
        self._remove(entry, reason)
        entry.stop_hold()
        entry.outcome.set_result((reason, None, None))
        entry.call.log.info("left queue %r: %s", self.name, reason)

    def _remove(self, entry: _Waiting, reason: QueueReason) -> None:
        """Out of the line; those behind move up (and are told so)."""
        index = self._waiting.index(entry)
        del self._waiting[index]
        if self._shared is not None:
            self._shared.leave(entry.ticket)
        if entry.call.place is self:
            entry.call.place = None
        entry.call._emit(LeftQueue(self.name, reason))
        for behind in self._waiting[index:]:
            behind.call._emit(Queued(self.name, self.position(behind.call) or 0))

    # -- on hold ---------------------------------------------------------------------

    async def _hold(self, entry: _Waiting, hold: _Hold, every: float | None) -> None:
        """The hold prompt, round and round, and the caller's position now and then."""
        call, loop = entry.call, asyncio.get_running_loop()
        announce_at = loop.time()
        try:
            while call.active:
                # Due within a millisecond counts as due: a clock that jumps (the test
                # kit's) may stop a float's rounding short of the deadline, and waiting
                # for what is left would not move it (seen: 52,000 empty plays in a row).
                if every is not None and loop.time() >= announce_at - SOON:
                    announce_at = loop.time() + every
                    position = self.position(call)
                    if position is not None:
                        text = POSITION_TEXT.format(position=position)
                        await _play(entry, call.say(text), None)
                await hold.step(entry, None if every is None else announce_at)
        except CallEndedError:
            return
        except Exception:  # (a bad text to speech): the caller waits on, in silence
            call.log.exception("the hold music of queue %r failed", self.name)
        finally:
            if entry.playing is not None:
                entry.playing.cancel()


class _Hold:
    """What one caller hears on hold: its parts in turn, round and round (text, PCM,
    or a pause in seconds), each resumed where it was cut off if it is PCM."""

    def __init__(self, parts: list[str | PCM | float]) -> None:
        self.parts = parts
        self.loop = len(parts) == 1 and isinstance(parts[0], np.ndarray)
        """One sound: looped, so that it goes round with no gap."""
        self.index = 0
        self.source: PCMSource | None = None
        """The sound being played, kept while it is cut off, to go on from there."""

    async def step(self, entry: _Waiting, deadline: float | None) -> None:
        """Play the current part until it ends (then move to the next) or ``deadline``."""
        loop = asyncio.get_running_loop()
        seconds = None if deadline is None else max(0.0, deadline - loop.time())
        if not self.parts:
            await asyncio.sleep(1e9 if seconds is None else seconds)
            return
        part = self.parts[self.index]
        if isinstance(part, float):
            await asyncio.sleep(part if seconds is None else min(part, seconds))
            completed = True
        elif isinstance(part, str):
            completed = await _play(entry, entry.call.say(part), seconds)
        else:
            if self.source is None:
                self.source = PCMSource(part, self.loop, "hold music")
            completed = await _play(entry, entry.call.play_source(self.source), seconds)
        if completed:
            self.index = (self.index + 1) % len(self.parts)
            self.source = None


async def _play(entry: _Waiting, playback: Playback, seconds: float | None) -> bool:
    """Play until the end or for ``seconds``, whichever comes first; True at the end."""
    entry.playing = playback
    playing = asyncio.ensure_future(playback)
    await asyncio.wait({playing}, timeout=seconds)
    if playing.done():
        return bool(playing.result())
    playback.cancel()
    await playing  # the mixer has let go of the source
    return False


def _hold_parts(hold: Prompt) -> _Hold:
    """What a caller hears on hold: the default music, or ``hold``, each text followed
    by a pause; nothing for an empty list."""
    if hold is None:
        return _Hold([hold_music()])
    parts: list[str | PCM | float] = []
    for part in parts_of(hold):
        if isinstance(part, str):
            synthesise_ahead(part)
            parts += [part, SPEECH_PAUSE]
        else:
            parts.append(as_pcm(part))
    return _Hold(parts)


def _check_call(verb: str, call: object) -> None:
    if not isinstance(call, Call):
        raise InvalidArgumentError(
            f"queue.{verb}() takes a call of this process (a voip Call), got "
            f"{type(call).__name__}: {LIMIT}"
        )


def _wake(taker: asyncio.Future[None]) -> None:
    if not taker.done():
        taker.set_result(None)
