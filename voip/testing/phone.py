"""The caller's phone in a test: what it does (press, speak, hang up) and what it heard.

A :class:`Phone` is the same over both lines: an in-process call to a handler on
virtual time (:mod:`voip.testing.local`) and a real SIP call in real time
(:mod:`voip.testing.sip`). The line feeds it the audio heard, frame by frame, and on
the in-process line the app's events; its waiters read them through a
:class:`~voip.testing.timeline.Timeline`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np

from .. import checks
from ..audio.pcm import PCM, SAMPLE_RATE, as_pcm
from ..audio.wav import loadWAVtoPCM
from ..dtmf import normalize_key
from ..errors import CallEndedError, InvalidArgumentError, VoipError
from ..events import CallEvent, PlaybackEnded, Said
from ..runtime import collecting
from ..tts import TTStoPCM, TTStoPCMAsync
from .timeline import (
    Cursor,
    EndMatcher,
    Matcher,
    SaidMatcher,
    SilenceMatcher,
    SoundMatcher,
    Timeline,
    ToneMatcher,
    Who,
    describe,
)

__all__ = ["Phone", "Line", "HeardTimeout", "DEFAULT_TIMEOUT", "recording_phones"]

DEFAULT_TIMEOUT = 60.0
"""Seconds of call time a waiter waits by default."""

_phones: ContextVar[list[Phone] | None] = ContextVar("voip_testing_phones", default=None)
"""Where phones made in this context are listed (the pytest plugin keeps their audio)."""


class HeardTimeout(VoipError, AssertionError):
    """A waiter did not hear what it waited for; the message says what was heard instead.

    An ``AssertionError`` too, so that a test runner reports it as a failed check."""


class Line(Protocol):
    """What a phone needs from its call."""

    @property
    def active(self) -> bool:
        """True until the call ends."""

    def now(self) -> float:
        """Seconds of call time since the answer."""

    def sync(self) -> None:
        """Bring the audio heard up to now (a line may hand over silence late)."""

    def send_key(self, key: str) -> None:
        """Send one key now."""

    async def send_audio(self, pcm: PCM) -> None:
        """Send ``pcm`` as the caller's voice, after what was sent before; return once
        it has all been sent."""

    def hang_up(self) -> None:
        """End the call from the caller's side."""


class Phone:
    """A caller on a call to the app.

    What it does: :meth:`press`, :meth:`speak`, :meth:`silence`, :meth:`wait`,
    :meth:`hang_up`, and accepting or refusing transfers (:attr:`refuses_transfer`,
    :attr:`transferred_to`). What it heard: :attr:`heard`, :attr:`events`, :attr:`said`, and
    the waiters, each reading on from where the previous one matched:
    :meth:`heard_say`, :meth:`heard_tone`, :meth:`heard_sound`, :meth:`heard_silence`,
    :meth:`hung_up`. Times are seconds of call time from the answer.
    """

    def __init__(self, line: Line, with_events: bool, name: str = "phone") -> None:
        self.name = name
        """A name for messages and the plugin's WAV files."""
        self._line = line
        self._timeline = Timeline(with_events)
        self._cursor = Cursor()
        self._changed: asyncio.Future[None] | None = None
        self.refuses_transfer: bool | int = False
        """Whether the app's ``call.transfer()`` fails, which then returns false and
        leaves the call up: True, the phone declines it (603 Decline); a SIP status
        such as 486, the phone took it and its call to the target failed with that
        status. By default it accepts, reaches the target at once and the app hangs up.
        In-process only: over SIP voip's own phone always declines."""
        self.transfers: list[str] = []
        """The URIs the app asked the phone to transfer to (``call.transfer()``), in
        order, accepted or not."""
        self.transferred_to: str | None = None
        """The URI of the transfer the phone accepted, or None."""
        phones = _phones.get()
        if phones is not None:
            phones.append(self)

    # -- what was heard --------------------------------------------------------------

    @property
    def heard(self) -> PCM:
        """Everything the caller heard since the answer, as 8 kHz PCM (a copy): what
        the simulator's ``--speaker`` writes, up to the end of the call."""
        self._line.sync()
        return self._timeline.audio.copy()

    @property
    def events(self) -> list[CallEvent]:
        """What the app did (:mod:`voip.events`), ``at`` in seconds from the answer.
        Known in-process only: over SIP, reading it raises :class:`VoipError`."""
        if self._timeline.events is None:
            raise VoipError(
                "a call over SIP tells nothing of what the app did: phone.events and "
                "phone.said are known in-process only (voip.testing.dial); check what "
                "was heard with the waiters (heard_say, heard_tone, ...) or phone.heard"
            )
        return list(self._timeline.events)

    @property
    def said(self) -> list[str]:
        """The texts the app spoke (``call.say``), in order, including those cut off."""
        return [e.text for e in self.events if isinstance(e, Said)]

    @property
    def ended_by(self) -> Who | None:
        """``"app"`` or ``"caller"`` once the call is over, else None."""
        return self._timeline.ended_by

    @property
    def now(self) -> float:
        """Seconds of call time since the answer (once it is over, its length)."""
        if self._timeline.ended_by is not None:
            return self._timeline.seconds
        return self._line.now()

    # -- what the caller does --------------------------------------------------------

    async def press(self, keys: str, gap: float = 0.2) -> None:
        """Press ``keys`` (0-9, ``*``, ``#``, A-D) one every ``gap`` seconds; returns
        once the last one's ``gap`` has passed."""
        checks.seconds("gap", gap)
        if not isinstance(keys, str):
            raise InvalidArgumentError(f"keys must be a string such as '123#', got {keys!r}")
        for key in [normalize_key(k) for k in keys]:
            self._check_up()
            self._line.send_key(key)
            await self.wait(gap)

    async def speak(self, voice: PCM | Sequence[float] | str | os.PathLike[str]) -> None:
        """Say something into the phone: 8 kHz PCM, a WAV file (a path, or a name
        ending in ``.wav``), or text (spoken with text to speech). Returns once it has
        all been sent; what is sent after waits for it."""
        if isinstance(voice, os.PathLike) or (
            isinstance(voice, str) and voice.lower().endswith(".wav")
        ):
            pcm = loadWAVtoPCM(voice)
        elif isinstance(voice, str):
            pcm = await TTStoPCMAsync(voice)
        else:
            pcm = as_pcm(voice)
        self._check_up()
        await self._line.send_audio(pcm)

    async def silence(self, seconds: float) -> None:
        """Say nothing for ``seconds`` (after what is being said)."""
        checks.seconds("seconds", seconds)
        self._check_up()
        await self._line.send_audio(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32))

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` of call time pass."""
        checks.seconds("seconds", seconds)
        await asyncio.sleep(seconds)

    async def hang_up(self) -> None:
        """Hang up (if the call is still up); returns once the call is over."""
        if self._line.active:
            self._line.hang_up()
        await self._until(EndMatcher(), DEFAULT_TIMEOUT, move=False)

    # -- waiters ---------------------------------------------------------------------

    async def heard_say(
        self, text: str, timeout: float = DEFAULT_TIMEOUT, *, opts: Sequence[str] = ()
    ) -> str:
        """Wait for a prompt whose text contains ``text`` (case and punctuation aside)
        to be played to its end or cut off; returns the prompt's whole text.

        In-process, prompts are known by their text (``call.say``); speech the app
        played as audio, and everything over SIP, is recognised by comparing its
        loudness contour with ``text`` spoken by the same text to speech (``opts``:
        the voice options the app used, e.g. ``["-v", "en-us"]``).
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgumentError(f"heard_say needs some text, got {text!r}")
        options = list(opts)
        matcher = SaidMatcher(text, lambda t: TTStoPCM(t, options))
        value: str = await self._until(matcher, timeout)
        return value

    async def heard_tone(
        self, freq: float, seconds: float = 0.1, timeout: float = DEFAULT_TIMEOUT
    ) -> float:
        """Wait until a tone of ``freq`` Hz (within about 10 Hz) has been heard for
        ``seconds`` without a break (or a tone that long, give or take 60 ms, has
        ended); returns when it started."""
        checks.seconds("seconds", seconds)
        start: float = await self._until(ToneMatcher(freq, seconds), timeout)
        return start

    async def heard_sound(
        self, pcm: PCM | Sequence[float], timeout: float = DEFAULT_TIMEOUT
    ) -> float:
        """Wait until ``pcm`` has been heard whole, as played (``call.playPCM``);
        returns when it started."""
        sound = as_pcm(pcm)
        if not len(sound):
            raise InvalidArgumentError("heard_sound needs a sound, got no samples")
        start: float = await self._until(SoundMatcher(sound), timeout)
        return start

    async def heard_silence(self, seconds: float, timeout: float = DEFAULT_TIMEOUT) -> float:
        """Wait until ``seconds`` of silence have been heard in a row; returns when
        the silence started."""
        checks.seconds("seconds", seconds)
        start: float = await self._until(SilenceMatcher(seconds), timeout)
        return start

    async def hung_up(self, timeout: float = DEFAULT_TIMEOUT) -> Who:
        """Wait for the end of the call; returns who hung up: ``"app"`` or ``"caller"``."""
        who: Who = await self._until(EndMatcher(), timeout)
        return who

    async def _until(self, matcher: Matcher, timeout: float, move: bool = True) -> Any:
        checks.seconds("timeout", timeout)
        timeline, cursor = self._timeline, self._cursor
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._line.sync()
                    found = matcher.check(timeline, cursor)
                    if found is not None:
                        if move:
                            self._cursor = found.cursor
                        return found.value
                    if timeline.ended_by is not None:
                        raise HeardTimeout(
                            f"{matcher.what}: the call ended at {timeline.seconds:.2f} s "
                            f"(the {timeline.ended_by} hung up) without it; "
                            f"{self._since(cursor)}"
                        )
                    if self._changed is None:
                        self._changed = asyncio.get_running_loop().create_future()
                    wake = matcher.wake_at(timeline)
                    if wake is None or wake <= self.now:
                        await self._changed
                    else:  # the line may be quiet until then: look again at that time
                        await asyncio.wait({self._changed}, timeout=wake - self.now)
        except TimeoutError:
            raise HeardTimeout(
                f"{matcher.what} timed out after {timeout:g} s of call time; {self._since(cursor)}"
            ) from None

    def _since(self, cursor: Cursor) -> str:
        self._line.sync()
        return (
            f"heard since {cursor.sample / SAMPLE_RATE:.2f} s (the last match): "
            f"{describe(self._timeline, cursor)}"
        )

    def _check_up(self) -> None:
        if not self._line.active:
            raise CallEndedError(
                f"the call has ended: the {self.ended_by or 'app'} hung up "
                f"at {self._timeline.seconds:.2f} s"
            )

    # -- the line's side ---------------------------------------------------------------

    def _on_audio(self, samples: PCM) -> None:
        self._timeline.add_audio(samples)
        self._notify()

    def _on_event(self, event: CallEvent) -> None:
        self._timeline.add_event(event)
        if isinstance(event, PlaybackEnded):
            self._notify()

    def _transfer_asked(self, target: str) -> tuple[int, str]:
        """The app transfers the call to ``target``: the final status and reason."""
        self.transfers.append(target)
        refusal = self.refuses_transfer
        if refusal is True:
            return 603, "Decline"
        if refusal:
            return int(refusal), _REASONS.get(int(refusal), "Refused")
        self.transferred_to = target
        return 200, "OK"

    def _on_end(self, by: Who) -> None:
        self._timeline.end(by)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)


def recording_phones() -> AbstractContextManager[list[Phone]]:
    """Within it, every phone made (in this context) is listed in the list it yields."""
    return collecting(_phones)


_REASONS = {
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    600: "Busy Everywhere",
    603: "Decline",
}
"""Reason phrases for the statuses a test may have a transfer fail with."""
