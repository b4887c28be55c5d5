"""voip.checks: the shared argument checks (seconds, a number in a range, a whole number)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voip.checks import number, seconds, whole
from voip.errors import InvalidArgumentError

NOT_NUMBERS = [True, False, np.bool_(True), "1", None, [1], 1j, np.complex128(1)]
NOT_FINITE = [math.nan, np.float64("nan"), math.inf, -math.inf, np.float32("inf"), 10**400]


@pytest.mark.parametrize("value", [0, 2, 2.5, np.int16(2), np.float32(2.5), np.float64(0)])
def test_seconds_takes_ints_floats_and_numpy_numbers(value):
    got = seconds("timeout", value)
    assert type(got) is float and got == float(value)


@pytest.mark.parametrize("value", NOT_NUMBERS + NOT_FINITE)
def test_seconds_refuses_bools_nan_infinity_and_non_numbers(value):
    with pytest.raises(InvalidArgumentError, match=r"^timeout is a (finite )?number of seconds"):
        seconds("timeout", value)


def test_seconds_messages_say_name_accepted_and_given():
    with pytest.raises(InvalidArgumentError) as closed:
        seconds("gap", -1)
    assert str(closed.value) == "gap is a number of seconds, 0 or more, got -1"
    with pytest.raises(InvalidArgumentError) as open_:
        seconds("timeout", 0, low_open=True)
    assert str(open_.value) == "timeout is a number of seconds above 0, got 0"
    with pytest.raises(InvalidArgumentError) as none:
        seconds("timeout", "5", none=True)
    assert str(none.value) == "timeout is a number of seconds, 0 or more, or None, got '5'"
    with pytest.raises(InvalidArgumentError) as infinite:
        seconds("timeout", math.inf, low_open=True)
    assert str(infinite.value) == "timeout is a finite number of seconds above 0, got inf"


def test_seconds_bounds_and_none():
    assert seconds("t", 0) == 0.0
    assert seconds("t", 1e-9, low_open=True) == 1e-9
    assert seconds("t", 3, low=3) == 3.0
    with pytest.raises(InvalidArgumentError, match="above 3"):
        seconds("t", 3, low=3, low_open=True)
    assert seconds("t", None, none=True) is None
    with pytest.raises(InvalidArgumentError, match=", got None$"):
        seconds("t", None)


def test_number_bounds_open_and_closed():
    assert number("volume", 0, 0, 1) == 0.0 and number("volume", 1, 0, 1) == 1.0
    assert number("volume", np.float32(0.5), 0, 1) == 0.5
    assert number("freq", 1, 0, 4000, low_open=True, high_open=True) == 1.0
    for bad in (0, 4000, -1, 5000):
        with pytest.raises(InvalidArgumentError) as caught:
            number("freq", bad, 0, 4000, low_open=True, high_open=True)
        assert str(caught.value) == f"freq is a number in (0, 4000), got {bad}"
    with pytest.raises(InvalidArgumentError, match=r"^volume is a number in \[0, 1\], got 2$"):
        number("volume", 2, 0, 1)


@pytest.mark.parametrize("value", NOT_NUMBERS + NOT_FINITE)
def test_number_refuses_bools_nan_infinity_and_non_numbers(value):
    pattern = r"^x is a (finite )?number in \[-1e\+09, 1e\+09\], got "
    with pytest.raises(InvalidArgumentError, match=pattern):
        number("x", value, -1e9, 1e9)


def test_number_without_an_upper_bound():
    assert number("threshold", 7, 0) == 7.0
    with pytest.raises(InvalidArgumentError) as caught:
        number("threshold", -1, 0)
    assert str(caught.value) == "threshold is a number, 0 or more, got -1"
    with pytest.raises(InvalidArgumentError, match="^threshold is a finite number, 0 or more"):
        number("threshold", math.inf, 0)
    with pytest.raises(InvalidArgumentError, match="^peak is a number above 0, got 0$"):
        number("peak", 0, 0, low_open=True)


def test_whole_takes_ints_and_numpy_integers_only():
    assert whole("n", 1) == 1 and whole("n", np.int64(3)) == 3
    assert type(whole("n", np.uint8(3))) is int
    assert whole("frames", 0, low=0) == 0
    assert whole("capacity", None, none=True) is None
    for bad in (0, -1, 2.0, np.float64(2), True, np.bool_(True), "2", None, math.nan):
        with pytest.raises(InvalidArgumentError, match=r"^n is a whole number of keys, 1 or"):
            whole("n", bad, of="keys")
    with pytest.raises(InvalidArgumentError) as caught:
        whole("capacity", 0, none=True, of="members")
    assert str(caught.value) == "capacity is a whole number of members, 1 or more, or None, got 0"
