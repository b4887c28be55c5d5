"""Which calls hear which: the audio under bridges, rooms and queues.

Each :class:`~voip.call.Call` has its :class:`Links`: ``listener.links.hear(speaker.links)``
lets ``listener``'s caller hear what ``speaker``'s caller says, on top of whatever the
listener's handler plays (a whisper, an announcement). Two ways, chosen per pair:

* **In the backend**, when both calls' bridges have a :class:`~voip.bridge.NativeLink`
  that reaches the other: two SIP calls of one process are connected in PJSIP's
  conference bridge, in C, and no Python runs per frame.
* **In Python** otherwise (the simulator, the test kit, a SIP call bridged to the
  simulator's call): the speaker's mixer feeds a :class:`~voip.audio.links.Tap` and the
  listener's mixer plays a :class:`~voip.audio.links.Feed`; see :mod:`voip.audio.links`.

A speaker may be gated (:meth:`Links.gate`: silence while it says nothing, as rooms
do) or muted (:meth:`Links.mute`). With PJSIP's bridge the speaker's connections are
opened and closed (:meth:`~voip.bridge.NativeLink.set_open`) by a tap that only listens;
otherwise the tap hands its listeners silence. Either way each received frame is read
once, whoever listens.

Everything here runs on the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .audio.links import Feed, Tap, link, unlink
from .audio.vad import VoiceDetector
from .bridge import MediaBridge
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Links", "Place", "check_free", "who"]


class Place(Protocol):
    """Where a call's audio is joined to others' (a bridge, a room, a queue): a call is
    in one at a time (:attr:`voip.call.Call.place`)."""

    def describe(self) -> str:
        """What it is, for messages: ``"bridged to 5551234"``, ``"in room 'lobby'"``."""


def who(call: Call) -> str:
    """A call's caller, for messages and logs: the number, else the URI or the call's id."""
    return call.info.number or call.info.remote_uri or call.info.call_id or "a call"


def check_free(call: Call) -> None:
    """Raise :class:`~voip.errors.InvalidArgumentError` if ``call`` is in a bridge, room
    or queue already (a call is in one place at a time)."""
    if call.place is not None:
        raise InvalidArgumentError(
            f"call {who(call)} is {call.place.describe()}: it must leave that first "
            "(unbridge(), room.leave(call), or queue.leave(call))"
        )


class Links:
    """One call's place among the calls that hear each other."""

    def __init__(self, bridge: MediaBridge) -> None:
        self._bridge = bridge
        self.hears: set[Links] = set()
        """The calls this one hears."""
        self.heard_by: set[Links] = set()
        """The calls that hear this one."""
        self._python: set[Links] = set()
        """Of :attr:`heard_by`, those fed by this call's tap (the others natively)."""
        self._tap: Tap | None = None
        self._tap_handle = 0
        self._feed: Feed | None = None
        self._feed_handle = 0
        self._detector: VoiceDetector | None = None
        self._muted = False

    # -- who hears whom ------------------------------------------------------------------

    def hear(self, speaker: Links) -> None:
        """From now on this call's caller hears ``speaker``'s caller."""
        if speaker is self or speaker in self.hears:
            return
        self.hears.add(speaker)
        speaker.heard_by.add(self)
        mine, theirs = self._bridge.link, speaker._bridge.link
        if mine is not None and theirs is not None and theirs.reaches(mine):
            theirs.transmit(mine, True)
        else:
            speaker._python.add(self)
            link(speaker._tap_on(), self._feed_on())
        speaker._sync_tap()

    def unhear(self, speaker: Links) -> None:
        """This call's caller no longer hears ``speaker``'s caller."""
        if speaker not in self.hears:
            return
        self.hears.discard(speaker)
        speaker.heard_by.discard(self)
        if self in speaker._python:
            speaker._python.discard(self)
            assert speaker._tap is not None and self._feed is not None
            unlink(speaker._tap, self._feed)
            if not any(self in s._python for s in self.hears):
                self._feed_off()
        else:
            mine, theirs = self._bridge.link, speaker._bridge.link
            if mine is not None and theirs is not None:
                theirs.transmit(mine, False)
        speaker._sync_tap()

    def leave_all(self) -> None:
        """Hear nobody and be heard by nobody (the call is leaving, or it ended)."""
        for speaker in list(self.hears):
            self.unhear(speaker)
        for listener in list(self.heard_by):
            listener.unhear(self)
        self.gate(None)
        self.mute(False)

    # -- what the others hear of this call -----------------------------------------------

    def gate(self, detector: VoiceDetector | None) -> None:
        """Let the others hear this call only while ``detector`` hears speech (None: always)."""
        self._detector = detector
        if self._tap is not None:
            self._tap.detector = detector
            self._tap.speaking = detector is None
        self._sync_tap()

    def mute(self, muted: bool) -> None:
        """Whether the others hear silence from this call, whatever its caller says."""
        self._muted = muted
        if self._tap is not None:
            self._tap.muted = muted
        self._sync_tap()

    @property
    def muted(self) -> bool:
        return self._muted

    # -- the tap and the feed ------------------------------------------------------------

    def _tap_on(self) -> Tap:
        if self._tap is None:
            link_ = self._bridge.link
            on_speech = None if link_ is None else self._speaking
            self._tap = Tap(self._detector, on_speech)
            self._tap.muted = self._muted
            self._tap_handle, _ = self._bridge.record(self._tap)
        return self._tap

    def _speaking(self, speaking: bool) -> None:
        """The tap's gate opened or closed (audio thread): the native links follow."""
        if self._bridge.link is not None:
            self._bridge.link.set_open(speaking and not self._muted)

    def _sync_tap(self) -> None:
        """Keep a tap while anyone hears it in Python, or while a native listener needs
        it gated or muted; open or close the native links to match."""
        native = bool(self.heard_by - self._python)
        needs_tap = bool(self._python) or (native and (self._detector is not None or self._muted))
        if needs_tap:
            tap = self._tap_on()
            tap.detector, tap.muted = self._detector, self._muted
        elif self._tap is not None:
            self._bridge.stop(self._tap_handle)
            self._tap = None
        link_ = self._bridge.link
        if link_ is not None and native:
            open_ = not self._muted and (
                self._detector is None or (self._tap is not None and self._tap.speaking)
            )
            link_.set_open(open_)

    def _feed_on(self) -> Feed:
        if self._feed is None:
            self._feed = Feed()
            self._feed_handle, _ = self._bridge.play(self._feed)
        return self._feed

    def _feed_off(self) -> None:
        if self._feed is not None:
            self._bridge.stop(self._feed_handle)
            self._feed = None
