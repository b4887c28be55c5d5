"""Argument checks shared by the API: a number of seconds, a number in a range, a whole
number (a count).

One set of rules for every call site, so that ``timeout=`` means the same everywhere:
``bool`` is never a number; ``int``, ``float`` and numpy integers and floats are; NaN
and infinity are always refused (no parameter takes infinity for "forever": those that
wait without end take None). A refused value raises
:class:`~voip.errors.InvalidArgumentError` whose message names the parameter, says what
it accepts and shows what it was given, e.g. ``timeout is a number of seconds above 0,
got -1``. The checks return the value as a ``float`` (:func:`whole`: an ``int``).
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["seconds", "number", "whole"]


def _real(value: object) -> float | None:
    """``value`` as a float if it is a number (not a bool, not NaN), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    try:
        x = float(value)
    except OverflowError:  # an int too large for a float: infinite for our purposes
        return math.inf
    return None if math.isnan(x) else x


@overload
def seconds(
    name: str,
    value: object,
    *,
    low: float = 0.0,
    low_open: bool = False,
    none: Literal[False] = False,
) -> float: ...


@overload
def seconds(
    name: str, value: object, *, low: float = 0.0, low_open: bool = False, none: bool
) -> float | None: ...


def seconds(
    name: str, value: object, *, low: float = 0.0, low_open: bool = False, none: bool = False
) -> float | None:
    """``value``, a finite number of seconds of at least ``low`` (above it with
    ``low_open``), as a float; None if it is None and ``none`` allows that (the
    parameter then takes None, typically for "no limit"). Raises
    :class:`~voip.errors.InvalidArgumentError` naming ``name`` otherwise."""
    if value is None and none:
        return None
    x = _real(value)
    if x is not None and _within(x, low, math.inf, low_open, True):
        return x
    alternative = ", or None" if none else ""
    raise InvalidArgumentError(
        f"{name} is {_kind(x)} of seconds{_bounds(low, math.inf, low_open, True)}"
        f"{alternative}, got {value!r}"
    )


def number(
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value``, a finite number from ``low`` to ``high`` (each bound excluded with
    ``low_open``, ``high_open``; no upper bound by default), as a float. Raises
    :class:`~voip.errors.InvalidArgumentError` naming ``name`` otherwise, with the range
    in interval notation (``[`` bound included, ``(`` excluded)."""
    x = _real(value)
    if x is not None and _within(x, low, high, low_open, high_open):
        return x
    raise InvalidArgumentError(
        f"{name} is {_kind(x)}{_bounds(low, high, low_open, high_open)}, got {value!r}"
    )


@overload
def whole(
    name: str, value: object, *, low: int = 1, none: Literal[False] = False, of: str = ""
) -> int: ...


@overload
def whole(name: str, value: object, *, low: int = 1, none: bool, of: str = "") -> int | None: ...


def whole(
    name: str, value: object, *, low: int = 1, none: bool = False, of: str = ""
) -> int | None:
    """``value``, a whole number (an ``int`` or numpy integer, not a float) of at least
    ``low``, as an int; None if it is None and ``none`` allows that. ``of`` says what it
    counts, for the message (``"keys"``: ``n is a whole number of keys, 1 or more, got
    0``). Raises :class:`~voip.errors.InvalidArgumentError` naming ``name`` otherwise."""
    if value is None and none:
        return None
    if not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= low:
        return int(value)
    counts = f" of {of}" if of else ""
    alternative = ", or None" if none else ""
    raise InvalidArgumentError(
        f"{name} is a whole number{counts}, {low} or more{alternative}, got {value!r}"
    )


def _within(x: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    return math.isfinite(x) and above and below


def _kind(x: float | None) -> str:
    """What the value should be: "a finite number" when it is an infinite one."""
    return "a finite number" if x is not None and math.isinf(x) else "a number"


def _bounds(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """The range in words after "a number": " above 0", ", 0 or more", " in (0, 1]"."""
    if math.isinf(high):
        return f" above {low:g}" if low_open else f", {low:g} or more"
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    return f" in {lo}{low:g}, {high:g}{hi}"
