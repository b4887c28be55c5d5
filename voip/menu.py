"""Menus as data: "press 1 for sales, 2 for support", nested, with retries and a way back.

A :class:`Menu` is a handler: ``runVoipClient(Menu(...))`` runs one, and a menu's options
are handlers or other menus. It asks with :meth:`~voip.call.Call.gather` (one key, the
menu's attempts and prompts), runs the option chosen, returns to its parent on
``back_key``, and runs ``on_failure`` (by default: "Goodbye." and a hang-up) when every
attempt went unanswered or wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Union

from .checks import seconds, whole
from .dtmf import normalize_key
from .errors import InvalidArgumentError
from .lifecycle import check_handler
from .prompts import Prompt, parts_of

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Menu", "INVALID_TEXT", "NO_INPUT_TEXT", "GOODBYE_TEXT"]

INVALID_TEXT = "Sorry, that is not one of the choices."
NO_INPUT_TEXT = "Sorry, I did not hear a choice."
GOODBYE_TEXT = "Goodbye."

Option = Union["Menu", Callable[["Call"], Awaitable[object]]]


class Menu:
    """A menu of keys. ``options`` maps each key to a handler or a nested :class:`Menu`.

    ``prompt`` (text, PCM, a WAV path, or a list of these) is played until a key is
    pressed; a key that is not an option plays ``invalid_prompt``, no key within
    ``timeout`` seconds plays ``no_input_prompt``, and the menu asks again, up to
    ``attempts`` times. A handler chosen runs to its end, and so does the menu. In a
    nested menu ``back_key`` returns to the menu above (in the top menu it asks again).
    After the last failed attempt ``on_failure(call)`` runs (default: "Goodbye." and
    hang up). A caller hanging up ends the menu quietly.
    """

    def __init__(
        self,
        prompt: Prompt,
        options: Mapping[str, Option],
        *,
        attempts: int = 3,
        timeout: float = 5.0,
        invalid_prompt: Prompt = INVALID_TEXT,
        no_input_prompt: Prompt = NO_INPUT_TEXT,
        on_failure: Callable[[Call], Awaitable[object]] | None = None,
        back_key: str = "*",
    ) -> None:
        if not isinstance(options, Mapping) or not options:
            raise InvalidArgumentError("a Menu needs options: a dict of keys to handlers")
        self.back_key = normalize_key(back_key) if back_key else ""
        self.options: dict[str, Option] = {}
        for key, option in options.items():
            if not isinstance(key, str) or len(key) != 1:
                raise InvalidArgumentError(f"menu option {key!r}: options are single keys")
            key = normalize_key(key)
            check_handler(option)
            self.options[key] = option
        if self.back_key in self.options:
            raise InvalidArgumentError(
                f"back_key {self.back_key!r} is also an option: choose another (or back_key='')"
            )
        if on_failure is not None:
            check_handler(on_failure)
        # Checked and loaded now: a bad prompt fails here, not in the middle of a call.
        self.prompt = parts_of(prompt)
        self.invalid_prompt = parts_of(invalid_prompt)
        self.no_input_prompt = parts_of(no_input_prompt)
        self.attempts = whole("attempts", attempts)
        self.timeout = seconds("timeout", timeout, low_open=True)
        self.on_failure = on_failure

    async def __call__(self, call: Call) -> None:
        await self.run(call)

    async def run(self, call: Call, nested: bool = False) -> bool:
        """Ask until an option runs; True if the caller went back (``back_key``)."""
        keys = "".join(self.options) + (self.back_key if nested else "")
        while True:
            got = await call.gather(
                self.prompt,
                num_digits=1,
                finish_on_key="",
                timeout=self.timeout,
                attempts=self.attempts,
                valid=lambda digits: digits in keys,
                invalid_prompt=self.invalid_prompt,
                no_input_prompt=self.no_input_prompt,
            )
            if got.reason == "hangup":
                return False
            if not got:
                await self._fail(call)
                return False
            if got.digits == self.back_key:
                return True
            option = self.options[got.digits]
            call.log.info("menu: %s", got.digits)
            if isinstance(option, Menu):
                if await option.run(call, nested=True):
                    continue  # back here: ask again
                return False
            await option(call)
            return False

    async def _fail(self, call: Call) -> None:
        if self.on_failure is not None:
            await self.on_failure(call)
            return
        if call.active:
            await call.say(GOODBYE_TEXT)
            call.hangup()
