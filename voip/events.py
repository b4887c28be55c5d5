"""What an app did on a call, as events, for whoever watches it (the test kit, logs).

A :class:`~voip.call.Call` whose ``listener`` is set calls it on the loop with each event
as it happens: a sound starting (:class:`Said`, :class:`TonePlayed`, :class:`SoundPlayed`,
or :class:`DtmfSent` for keys sent as tones) and its :class:`PlaybackEnded`, recordings
starting and stopping, keys sent, bridges (:class:`Bridged`, :class:`Unbridged`), queues
(:class:`Queued`, :class:`LeftQueue`), rooms (:class:`JoinedRoom`, :class:`LeftRoom`), and
the end of the call (:class:`HungUp`). Each event's ``at`` is the loop's time when it
happened. With no listener nothing is made: backends
pay nothing for it. Pure: frozen dataclasses and one function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .audio.engine import PCMSource, Source, ToneSource
from .audio.pcm import SAMPLE_RATE
from .callstate import EndedBy

__all__ = [
    "Said",
    "TonePlayed",
    "SoundPlayed",
    "DtmfSent",
    "Played",
    "PlaybackEnded",
    "RecordingStarted",
    "RecordingStopped",
    "HungUp",
    "Bridged",
    "Unbridged",
    "Queued",
    "LeftQueue",
    "JoinedRoom",
    "LeftRoom",
    "CallEvent",
    "Listener",
    "played",
]


@dataclass(frozen=True)
class Said:
    """Speech started playing (``call.say``)."""

    text: str
    """The whole text spoken."""
    at: float = 0.0
    """The loop's time when it started."""


@dataclass(frozen=True)
class TonePlayed:
    """A tone started playing (``call.playTone``)."""

    freq: float
    """Its frequency in Hz."""
    seconds: float
    """How long it lasts if it plays to its end."""
    at: float = 0.0


@dataclass(frozen=True)
class SoundPlayed:
    """A sound started playing (``call.playPCM``, ``playCustom`` and the like)."""

    seconds: float | None
    """Its length (once round when looped); None when unknown (``playCustom``)."""
    loop: bool = False
    """Whether it repeats until cancelled."""
    at: float = 0.0


@dataclass(frozen=True)
class DtmfSent:
    """Keys sent to the other end (``call.sendDTMF``); in-band keys are also played,
    and their :class:`PlaybackEnded` follows."""

    keys: str
    method: str
    """``rfc4733``, ``info`` or ``inband``."""
    at: float = 0.0


Played = Said | TonePlayed | SoundPlayed | DtmfSent
"""The events that start a sound."""


@dataclass(frozen=True)
class PlaybackEnded:
    """A sound stopped."""

    what: Played
    """The event that started it."""
    completed: bool
    """True when it played to its end, False when it was cut off (cancelled, or the
    call ended)."""
    at: float = 0.0


@dataclass(frozen=True)
class RecordingStarted:
    """A recording of the caller started (``call.recordPCM``, ``recordCustom``)."""

    at: float = 0.0


@dataclass(frozen=True)
class RecordingStopped:
    """A recording ended."""

    seconds: float | None
    """How much audio it holds; None for ``recordCustom``, which keeps nothing."""
    at: float = 0.0


@dataclass(frozen=True)
class HungUp:
    """The call ended."""

    by: EndedBy
    """``"local"``: the app hung up; ``"remote"``: the caller did."""
    at: float = 0.0


@dataclass(frozen=True)
class Bridged:
    """The caller now hears another call (``call.bridge``), and it hears them."""

    other: str
    """The other caller's number (or URI)."""
    at: float = 0.0


@dataclass(frozen=True)
class Unbridged:
    """The bridge ended."""

    reason: str
    """Why, from this call's side: ``hung up``, ``other hung up`` or ``unbridged``."""
    at: float = 0.0


@dataclass(frozen=True)
class Queued:
    """The caller waits in a queue (``voip.Queue.wait``); told again each time they move up."""

    queue: str
    """The queue's name."""
    position: int
    """Their place in it: 1 is the next to be taken."""
    at: float = 0.0


@dataclass(frozen=True)
class LeftQueue:
    """The caller is no longer waiting in the queue."""

    queue: str
    reason: str
    """Why: ``bridged`` (to an agent), ``timeout``, ``hung up`` or ``left``."""
    at: float = 0.0


@dataclass(frozen=True)
class JoinedRoom:
    """The caller is now in a room (``voip.Room.join``): it hears the other members."""

    room: str
    """The room's name."""
    members: int
    """How many are in the room, the caller included."""
    at: float = 0.0


@dataclass(frozen=True)
class LeftRoom:
    """The caller left the room."""

    room: str
    reason: str
    """Why: ``hung up``, ``left`` (taken out by the app) or ``key`` (the leave key)."""
    at: float = 0.0


CallEvent = (
    Played
    | PlaybackEnded
    | RecordingStarted
    | RecordingStopped
    | HungUp
    | Bridged
    | Unbridged
    | Queued
    | LeftQueue
    | JoinedRoom
    | LeftRoom
)

Listener = Callable[[CallEvent], None]
"""Called on the loop with each event; it must not raise (the call does not catch)."""


def played(source: Source) -> Played:
    """The event for a sound the app started without saying what it is."""
    if isinstance(source, ToneSource):
        return TonePlayed(source.freq, source.total / SAMPLE_RATE)
    if isinstance(source, PCMSource):
        return SoundPlayed(len(source.pcm) / SAMPLE_RATE, source.loop)
    return SoundPlayed(None)
