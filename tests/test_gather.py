"""call.gather(): every end, retries with their prompts, barge-in, type-ahead, hang-up.

Over a real bridge driven by a real 20 ms clock thread (tests/test_call.py's Line): the
prompts are tones, so what the caller heard, and when, is read back by frequency.
"""

from __future__ import annotations

import asyncio

import pytest

from voip import InvalidArgumentError
from voip.gather import Gathered
from voip.lifecycle import serve_call

from .helpers import tone, tone_spans
from .test_call import Line

PROMPT = tone(500, 0.6)
INVALID = tone(700, 0.3)
NO_INPUT = tone(900, 0.3)


def keys_at(line: Line, *presses: tuple[float, str]) -> None:
    """The caller presses each key that many seconds from now."""
    loop = asyncio.get_running_loop()
    for at, key in presses:
        loop.call_later(at, line.call.feed_dtmf, key)


def heard(line: Line, freq: float) -> list[tuple[float, float]]:
    return tone_spans(line.audio, freq, bridge=0.03)


async def test_num_digits_ends_it_and_the_first_key_stops_the_prompt():
    with Line() as line:
        keys_at(line, (0.2, "4"), (0.4, "2"))
        got = await line.call.gather(PROMPT, num_digits=2)
    assert got == Gathered("42", "num_digits", 1, True) and got
    (start, length), *_ = heard(line, 500)
    assert length < 0.3  # cut by the first key at 0.2 s, not played for 0.6 s


async def test_finish_key_is_not_in_the_digits_and_without_barge_in_the_prompt_plays_on():
    with Line() as line:
        keys_at(line, (0.1, "1"), (0.2, "2"), (0.7, "#"))
        got = await line.call.gather(PROMPT, barge_in=False)
    assert (got.digits, got.reason, bool(got)) == ("12", "finish_on_key", True)
    assert [round(length, 1) for _s, length in heard(line, 500)] == [0.6]


async def test_type_ahead_before_the_gather_counts():
    with Line() as line:
        line.call.feed_dtmf("7")
        line.call.feed_dtmf("#")
        got = await line.call.gather(PROMPT)
    assert (got.digits, got.reason) == ("7", "finish_on_key")
    assert heard(line, 500) == []  # the prompt never started: the answer was there


async def test_time_outs_first_key_and_between_keys():
    with Line() as line:
        got = await line.call.gather(timeout=0.3)
        assert (got.digits, got.reason, bool(got)) == ("", "timeout", False)
        keys_at(line, (0.1, "5"), (0.2, "6"))
        got = await line.call.gather(timeout=2, inter_digit_timeout=0.3)
        # Digits and then silence: an answer, as Twilio takes it.
        assert (got.digits, got.reason, bool(got)) == ("56", "timeout", True)


async def test_retries_play_their_prompts_in_order_then_give_up():
    with Line() as line:
        keys_at(line, (0.8, "9"), (1.0, "#"))  # attempt 1: invalid
        got = await line.call.gather(
            PROMPT,
            valid=r"[1-3]",
            attempts=3,
            timeout=0.4,
            invalid_prompt=INVALID,
            no_input_prompt=NO_INPUT,
        )
    assert (got.digits, got.reason, got.attempts, bool(got)) == ("", "timeout", 3, False)
    # Attempt 1: prompt, "9#" (invalid). 2: invalid prompt, prompt, nothing. 3: no-input
    # prompt, prompt, nothing.
    order = sorted(
        (start, name)
        for name, freq in (("prompt", 500), ("invalid", 700), ("no input", 900))
        for start, _length in heard(line, freq)
    )
    assert [name for _t, name in order] == [
        "prompt",
        "invalid",
        "prompt",
        "no input",
        "prompt",
    ]


async def test_a_valid_answer_on_a_later_attempt():
    with Line() as line:
        keys_at(line, (0.1, "0"), (1.2, "2"))
        got = await line.call.gather(
            PROMPT, num_digits=1, valid=lambda d: d != "0", attempts=2, invalid_prompt=INVALID
        )
    assert (got.digits, got.reason, got.attempts, bool(got)) == ("2", "num_digits", 2, True)


async def test_filter_ignores_other_keys_but_the_finish_key_still_ends_it():
    with Line() as line:
        keys_at(line, (0.1, "*"), (0.2, "3"), (0.3, "A"), (0.4, "#"))
        got = await line.call.gather(filter="0123456789")
    assert (got.digits, got.reason) == ("3", "finish_on_key")


async def test_caller_hanging_up_ends_the_gather_and_the_handler_goes_on():
    """A hang-up mid-gather is not a cancellation: the handler gets the keys so far."""
    seen: list[object] = []

    async def handler(call):
        got = await call.gather(PROMPT, timeout=5)
        seen.append(got)
        await asyncio.sleep(0.05)  # after the hang-up: still running
        seen.append("went on")

    with Line() as line:
        keys_at(line, (0.1, "8"))
        asyncio.get_running_loop().call_later(0.3, line.call.mark_ended, "remote")
        outcome = await serve_call(handler, line.call)
    assert outcome.error is None and outcome.ended_by == "remote"
    assert seen == [Gathered("8", "hangup", 1), "went on"]


async def test_outside_a_verb_the_hang_up_still_cancels_the_handler():
    seen: list[str] = []

    async def handler(call):
        try:
            await call.getDTMF()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with Line() as line:
        asyncio.get_running_loop().call_later(0.1, line.call.mark_ended, "remote")
        await serve_call(handler, line.call)
    assert seen == ["cancelled"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_digits": 0}, "num_digits is a whole number"),
        ({"attempts": 0}, "attempts is a whole number"),
        ({"timeout": 0}, "timeout is a number of seconds above 0"),
        ({"valid": "("}, "is not a regular expression"),
        ({"finish_on_key": "x"}, "not a DTMF key"),
        ({"finish_on_key": ""}, "needs a way to end an answer"),
        ({"prompt": 42}, "a prompt is text, PCM, a WAV path"),
    ],
)
async def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with Line() as line:
        with pytest.raises(InvalidArgumentError, match=message):
            await line.call.gather(**kwargs)
