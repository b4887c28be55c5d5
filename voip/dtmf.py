"""Collecting keypad digits: the pure logic behind ``call.getDTMF``.

Keys pressed while nobody waits are kept in a bounded type-ahead buffer (as Twilio and
Asterisk do) and served to the next request. No event loop here: :class:`DTMFCollector`
returns completed results, and the call resolves the future it keeps in the pending
request (:attr:`DTMFRequest.future`), so the collector is the one record of what waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .checks import whole
from .errors import InvalidArgumentError, VoipError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "DTMF_KEYS",
    "DTMFCollector",
    "DTMFRequest",
    "normalize_key",
    "parse_filter",
    "parse_key_script",
]

DTMF_KEYS = "0123456789*#ABCD"
"""Every key a DTMF keypad can send (A-D are the fourth column of a full keypad)."""

TYPE_AHEAD = 64
"""Keys kept while no getDTMF is waiting; older ones are dropped first."""


def normalize_key(key: str) -> str:
    """Return ``key`` as one of :data:`DTMF_KEYS` (``a``-``d`` are accepted), else raise."""
    k = key.upper() if isinstance(key, str) else key
    if not isinstance(k, str) or len(k) != 1 or k not in DTMF_KEYS:
        raise InvalidArgumentError(f"{key!r} is not a DTMF key; keys are {DTMF_KEYS}")
    return k


def parse_filter(keys: str | Iterable[str] | None) -> frozenset[str] | None:
    """Validate a ``filter`` argument: a string or iterable of keys, or None for all."""
    if keys is None:
        return None
    items = list(keys)
    bad = [k for k in items if not (isinstance(k, str) and k.upper() in DTMF_KEYS and len(k) == 1)]
    if bad:
        raise InvalidArgumentError(
            f"filter contains {', '.join(repr(b) for b in bad)}, which "
            f"{'is not a DTMF key' if len(bad) == 1 else 'are not DTMF keys'}; "
            f'use only {DTMF_KEYS}, e.g. filter="0123456789"'
        )
    if not items:
        raise InvalidArgumentError("filter is empty: no key could ever be accepted")
    return frozenset(k.upper() for k in items)


@dataclass
class DTMFRequest:
    """One pending ``getDTMF``: how many keys, which ones, and what has come so far."""

    n: int
    allowed: frozenset[str] | None = None
    on_first: Callable[[str], object] | None = None
    digits: list[str] = field(default_factory=list)
    future: asyncio.Future[str] | None = None
    """What ``getDTMF`` returned, for the call to resolve (the collector never touches it)."""

    def offer(self, key: str) -> bool:
        """Take ``key`` if the filter allows it; return True when the request is complete."""
        if self.allowed is not None and key not in self.allowed:
            return False
        self.digits.append(key)
        if len(self.digits) == 1 and self.on_first is not None:
            self.on_first(key)
        return len(self.digits) >= self.n

    @property
    def result(self) -> str:
        return "".join(self.digits)


class DTMFCollector:
    """Type-ahead buffer plus at most one pending request."""

    def __init__(self, type_ahead: int = TYPE_AHEAD) -> None:
        self.buffer: deque[str] = deque(maxlen=type_ahead)
        self.pending: DTMFRequest | None = None
        self.history: list[str] = []
        """Every key received, in order (for status displays and tests)."""

    def request(
        self,
        n: int = 1,
        filter: str | Iterable[str] | None = None,
        on_first: Callable[[str], object] | None = None,
    ) -> tuple[DTMFRequest, str | None]:
        """Start a request; returns it and its result if type-ahead already completes it.

        Buffered keys the filter rejects are discarded as they are served, the same as if
        they had been pressed while this request was waiting.
        """
        n = whole("n", n, of="keys")
        if on_first is not None and not callable(on_first):
            raise InvalidArgumentError("on_first must be a function taking the first key")
        if self.pending is not None:
            raise VoipError(
                "getDTMF is already waiting on this call; await it (or cancel it) "
                "before asking again"
            )
        req = DTMFRequest(n, parse_filter(filter), on_first)
        while self.buffer:
            if req.offer(self.buffer.popleft()):
                return req, req.result
        self.pending = req
        return req, None

    def push(self, key: str) -> tuple[DTMFRequest, str] | None:
        """A key arrived. Returns (request, result) when it completes the pending request."""
        key = normalize_key(key)
        self.history.append(key)
        req = self.pending
        if req is None:
            self.buffer.append(key)
            return None
        if req.offer(key):
            self.pending = None
            return req, req.result
        return None

    def abandon(self, req: DTMFRequest) -> None:
        """The request was cancelled (e.g. timed out): its keys go back to type-ahead.

        Nothing the caller typed is lost; :meth:`flush` discards it if it is not wanted.
        """
        if self.pending is req:
            self.pending = None
        self.buffer.extendleft(reversed(req.digits))
        req.digits.clear()

    def flush(self) -> str:
        """Discard and return the buffered keys."""
        keys = "".join(self.buffer)
        self.buffer.clear()
        return keys


KEY_SCRIPT_WAIT = 0.5
"""Seconds a ``w`` waits in a key script (as in Twilio's ``sendDigits``)."""

KEY_SCRIPT_STEP = 0.2
"""Seconds each scripted key takes: a 100 ms press and a 100 ms pause, as a phone dials."""


def parse_key_script(script: str) -> list[tuple[float, str]]:
    """Turn ``"ww1234"`` into ``[(1.0, "1"), (1.2, "2"), ...]``: when each key is pressed.

    ``w`` waits :data:`KEY_SCRIPT_WAIT` seconds; other characters must be DTMF keys.
    """
    at = 0.0
    presses: list[tuple[float, str]] = []
    for i, ch in enumerate(script):
        if ch in "wW":
            at += KEY_SCRIPT_WAIT
            continue
        if ch.upper() not in DTMF_KEYS:
            raise InvalidArgumentError(
                f"key script {script!r}: character {i + 1} ({ch!r}) is not a key; use "
                f"{DTMF_KEYS} and 'w' for a {KEY_SCRIPT_WAIT} s pause"
            )
        presses.append((round(at, 6), ch.upper()))
        at += KEY_SCRIPT_STEP
    return presses
