"""voip.Menu: options, nesting, the way back, retries and the failure path, by what the
caller hears (each prompt is a tone of its own) and what runs."""

from __future__ import annotations

import asyncio

import pytest

from voip import InvalidArgumentError, Menu
from voip.lifecycle import serve_call

from .helpers import tone, tone_spans
from .test_call import Line

MAIN, SUB, INVALID, NO_INPUT = 500, 700, 900, 1100


async def nothing(call):
    pass


def prompt(freq: float):
    return tone(freq, 0.3)


def heard_in_order(line: Line) -> list[int]:
    spans = [
        (start, freq)
        for freq in (MAIN, SUB, INVALID, NO_INPUT)
        for start, _length in tone_spans(line.audio, freq, bridge=0.03)
    ]
    return [freq for _start, freq in sorted(spans)]


def keys_at(line: Line, *presses: tuple[float, str]) -> None:
    loop = asyncio.get_running_loop()
    for at, key in presses:
        loop.call_later(at, line.call.feed_dtmf, key)


def menus(ran: list[str], **kwargs) -> Menu:
    async def sales(call):
        ran.append("sales")

    async def support(call):
        ran.append("support")

    return Menu(
        prompt(MAIN),
        {"1": sales, "2": Menu(prompt(SUB), {"1": support}, **kwargs)},
        **kwargs,
    )


KW = {"timeout": 0.4, "attempts": 2, "invalid_prompt": prompt(INVALID)}


async def test_an_option_runs_and_the_call_ends():
    ran: list[str] = []
    with Line() as line:
        keys_at(line, (0.4, "1"))
        outcome = await serve_call(menus(ran, no_input_prompt=prompt(NO_INPUT), **KW), line.call)
    assert ran == ["sales"] and outcome.error is None and line.hangups == 1
    assert heard_in_order(line) == [MAIN]


async def test_nested_menu_and_back_to_the_parent():
    ran: list[str] = []
    with Line() as line:
        # Main: 2 -> sub menu; *: back; main again: 9 (not an option); then 2, 1.
        keys_at(line, (0.4, "2"), (0.8, "*"), (1.2, "9"), (2.0, "2"), (2.4, "1"))
        await serve_call(menus(ran, no_input_prompt=prompt(NO_INPUT), **KW), line.call)
    assert ran == ["support"]
    assert heard_in_order(line) == [MAIN, SUB, MAIN, INVALID, MAIN, SUB]


async def test_every_attempt_failing_says_goodbye_and_hangs_up():
    ran: list[str] = []
    with Line() as line:
        await serve_call(menus(ran, no_input_prompt=prompt(NO_INPUT), **KW), line.call)
    assert ran == [] and line.hangups == 1
    assert heard_in_order(line)[:3] == [MAIN, NO_INPUT, MAIN]
    # Then "Goodbye." in speech: something after the last prompt that is none of the tones.
    last_prompt_end = sum(tone_spans(line.audio, MAIN, bridge=0.03)[-1])
    assert abs(line.audio[int(last_prompt_end * 8000) :]).max() > 0.05


async def test_a_custom_failure_handler_runs_instead():
    failed: list[str] = []

    async def on_failure(call):
        failed.append(call.caller)

    with Line() as line:
        menu = Menu(prompt(MAIN), {"1": on_failure}, timeout=0.2, attempts=1, on_failure=on_failure)
        await serve_call(menu, line.call)
    assert failed == ["42"]


async def test_a_hang_up_in_a_menu_ends_it_quietly():
    ran: list[str] = []
    with Line() as line:
        asyncio.get_running_loop().call_later(0.2, line.call.mark_ended, "remote")
        outcome = await serve_call(menus(ran, **KW), line.call)
    assert ran == [] and outcome.error is None and outcome.ended_by == "remote"


@pytest.mark.parametrize(
    "options, kwargs, message",
    [
        ({}, {}, "a Menu needs options"),
        ({"12": None}, {}, "options are single keys"),
        ({"x": None}, {}, "not a DTMF key"),
        ({"1": "not a handler"}, {}, "must be an async function"),
        ({"*": nothing}, {}, "back_key '\\*' is also an option"),
        ({"1": nothing}, {"prompt_typo": 1}, "unexpected keyword"),
        ({"1": nothing}, {"attempts": 0}, "attempts is a whole number, 1 or more, got 0"),
        ({"1": nothing}, {"timeout": -1}, "timeout is a number of seconds above 0, got -1"),
    ],
)
def test_bad_menus_fail_when_made(options, kwargs, message):
    with pytest.raises((InvalidArgumentError, TypeError), match=message):
        Menu("hello", options, **kwargs)
