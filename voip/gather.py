"""``call.gather()``: play a prompt, collect keys, check them, try again.

What every IVR author writes by hand otherwise (Twilio's ``<Gather>``, Asterisk's
``Read``, FreeSWITCH's ``play_and_get_digits``): the prompt stops at the first key
(barge-in), keys typed during it count, the answer ends on a number of keys, a finish
key or a time-out, an empty or invalid answer plays a prompt of its own and the whole
thing is tried again. A caller hanging up ends it with reason ``"hangup"`` instead of
cancelling the handler (:mod:`voip.lifecycle`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .checks import seconds, whole
from .dtmf import parse_filter
from .errors import CallEndedError, InvalidArgumentError
from .prompts import Prompt, PromptPart, parts_of, play_prompt

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Gathered", "GatherReason", "gather"]

GatherReason = Literal["num_digits", "finish_on_key", "timeout", "invalid", "hangup"]


@dataclass(frozen=True)
class Gathered:
    """What :meth:`~voip.call.Call.gather` collected. True when it holds a valid answer."""

    digits: str
    """The keys pressed, without the finish key."""
    reason: GatherReason
    """Why the last attempt ended: ``num_digits``, ``finish_on_key``, ``timeout`` (no key
    in time), ``invalid`` (the answer did not pass ``valid``) or ``hangup``."""
    attempts: int
    """How many attempts were used."""
    valid: bool = False
    """Whether :attr:`digits` is an answer: not empty, and accepted by ``valid``."""

    def __bool__(self) -> bool:
        return self.valid


def _validator(valid: str | Callable[[str], object] | None) -> Callable[[str], bool]:
    if valid is None:
        return lambda _digits: True
    if isinstance(valid, str):
        try:
            pattern = re.compile(valid)
        except re.error as exc:
            raise InvalidArgumentError(
                f"valid {valid!r} is not a regular expression: {exc}"
            ) from None
        return lambda digits: pattern.fullmatch(digits) is not None
    if callable(valid):
        return lambda digits: bool(valid(digits))
    raise InvalidArgumentError(
        f"valid is a regular expression (a str) or a function of the digits, got {valid!r}"
    )


def _finish_keys(finish_on_key: str) -> frozenset[str]:
    if not isinstance(finish_on_key, str):
        raise InvalidArgumentError(f"finish_on_key is a string of keys, got {finish_on_key!r}")
    return (parse_filter(finish_on_key) or frozenset()) if finish_on_key else frozenset()


async def gather(
    call: Call,
    prompt: Prompt = None,
    *,
    num_digits: int | None = None,
    finish_on_key: str = "#",
    timeout: float = 5.0,
    inter_digit_timeout: float | None = None,
    barge_in: bool = True,
    filter: str | Iterable[str] | None = None,
    attempts: int = 1,
    valid: str | Callable[[str], object] | None = None,
    invalid_prompt: Prompt = None,
    no_input_prompt: Prompt = None,
) -> Gathered:
    """Play ``prompt`` and collect the caller's answer, trying again if it is empty or
    invalid; returns a :class:`~voip.gather.Gathered` (true when it holds a valid
    answer: ``if answer := await call.gather(...)``).

    ``prompt`` (and the other two): text (spoken), PCM, a WAV path (a
    :class:`~pathlib.Path` or a str ending in ``.wav``), or a list of these played in
    turn. With ``barge_in`` the first accepted key stops the prompt; keys typed during
    the prompt (or before) count. An answer ends on ``num_digits`` keys, on a key of
    ``finish_on_key`` (not in the digits; ``""``: none), ``timeout`` seconds after the
    prompt with no key, or ``inter_digit_timeout`` (default ``timeout``) seconds after
    the last key. ``filter`` lists the keys accepted (others are ignored). ``valid`` is
    a regular expression the whole answer must match, or a function of the digits.
    An empty answer plays ``no_input_prompt``, an invalid one ``invalid_prompt``, then
    the prompt again, up to ``attempts`` attempts in all. The caller hanging up ends it
    with reason ``"hangup"``; the handler goes on (see :mod:`voip.lifecycle`).
    """
    num_digits = whole("num_digits", num_digits, none=True, of="keys")
    attempts = whole("attempts", attempts)
    timeout = seconds("timeout", timeout, low_open=True)
    inter_digit_timeout = seconds(
        "inter_digit_timeout", inter_digit_timeout, low_open=True, none=True
    )
    finish = _finish_keys(finish_on_key)
    accepted = parse_filter(filter)
    if accepted is not None:
        accepted = accepted | finish
    check = _validator(valid)
    main, invalid, no_input = parts_of(prompt), parts_of(invalid_prompt), parts_of(no_input_prompt)
    if num_digits is None and not finish:
        raise InvalidArgumentError(
            "gather needs a way to end an answer besides the time-out: num_digits, or a"
            " finish_on_key"
        )
    collect = _Collector(
        call,
        num_digits,
        finish,
        accepted,
        timeout,
        timeout if inter_digit_timeout is None else inter_digit_timeout,
        barge_in,
    )
    with call.hangup_ends_verb():
        before: list[PromptPart] = []
        result = Gathered("", "timeout", 0)
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                call.flushDTMF()  # keys left from the failed answer are not the new one's
            try:
                digits, reason = await collect.attempt([*before, *main])
            except CallEndedError:
                return Gathered(collect.digits, "hangup", attempt)
            ok = bool(digits) and check(digits)
            if ok:
                return Gathered(digits, reason, attempt, True)
            if digits:
                result, before = Gathered(digits, "invalid", attempt), invalid
            else:
                result, before = Gathered("", "timeout", attempt), no_input
            call.log.info("gather: %s (attempt %d of %d)", result.reason, attempt, attempts)
        return result


class _Collector:
    """One attempt: the prompt, then the keys."""

    def __init__(
        self,
        call: Call,
        num_digits: int | None,
        finish: frozenset[str],
        accepted: frozenset[str] | None,
        timeout: float,
        inter_digit: float,
        barge_in: bool,
    ) -> None:
        self.call = call
        self.num_digits = num_digits
        self.finish = finish
        self.accepted = accepted
        self.timeout = timeout
        self.inter_digit = inter_digit
        self.barge_in = barge_in
        self.digits = ""
        """The keys of the attempt going on (what a hang-up leaves)."""

    async def attempt(self, parts: list[PromptPart]) -> tuple[str, GatherReason]:
        self.digits = ""
        stop = asyncio.Event()
        key = self._next_key()  # first: a call already over raises here, before any prompt
        prompt = asyncio.ensure_future(play_prompt(self.call, parts, stop))
        try:
            if not prompt.done():
                either: set[asyncio.Future[Any]] = {prompt, key}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if key.done() and self.barge_in:
                stop.set()
            await prompt  # to its end, or cut off by the first key
            wait = self.timeout
            while True:
                if not key.done():
                    try:
                        await asyncio.wait_for(asyncio.shield(key), wait)
                    except TimeoutError:
                        return self.digits, "timeout"
                pressed = key.result()
                if pressed in self.finish:
                    return self.digits, "finish_on_key"
                self.digits += pressed
                if self.num_digits is not None and len(self.digits) >= self.num_digits:
                    return self.digits, "num_digits"
                key, wait = self._next_key(), self.inter_digit
        finally:
            stop.set()
            key.cancel()
            if not prompt.done():
                await asyncio.wait({prompt})

    def _next_key(self) -> asyncio.Future[str]:
        return self.call.getDTMF(1, filter=self.accepted)
