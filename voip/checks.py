"""Argument checks shared by the API: a number of seconds, a number in a range.

One set of rules for every call site, so that ``timeout=`` means the same everywhere:
``bool`` is never a number; ``int``, ``float`` and numpy integers and floats are; NaN
and infinity are always refused (no parameter takes infinity for "forever": those that
wait without end take None). A refused value raises
:class:`~voip.errors.InvalidArgumentError` whose message names the parameter, says what
it accepts and shows what it was given, e.g. ``timeout is a number of seconds above 0,
got -1``. The checks return the value as a ``float``.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["seconds", "number"]


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
    if x is not None and math.isfinite(x) and (x > low if low_open else x >= low):
        return x
    kind = "a finite number" if x is not None and math.isinf(x) else "a number"
    bound = f" above {low:g}" if low_open else f", {low:g} or more"
    alternative = ", or None" if none else ""
    raise InvalidArgumentError(f"{name} is {kind} of seconds{bound}{alternative}, got {value!r}")


def number(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value``, a finite number from ``low`` to ``high`` (each bound excluded with
    ``low_open``, ``high_open``), as a float. Raises
    :class:`~voip.errors.InvalidArgumentError` naming ``name`` otherwise, with the range
    in interval notation (``[`` bound included, ``(`` excluded)."""
    x = _real(value)
    if x is not None and math.isfinite(x):
        above = x > low if low_open else x >= low
        below = x < high if high_open else x <= high
        if above and below:
            return x
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    raise InvalidArgumentError(f"{name} is a number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
