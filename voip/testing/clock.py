"""Virtual time: while a kit call runs, the loop's clock jumps to its next timer.

The kit's calls exchange their 20 ms frames on timers of the loop (no thread), so with
the clock jumping from one timer to the next a call runs as fast as the CPU allows, and
every ``asyncio.sleep``, ``wait_for`` and time-out of the handler runs on the same
virtual time. `looptime <https://pypi.org/project/looptime/>`_ does the jumping: it is
made for this (fast-forwarding asyncio loops in tests), maintained, and its pytest
plugin already prepares pytest-asyncio's loops for it. Two of its settings are changed
for the length of a kit block, both measured (docs/architecture.md, "The test kit"):

* ``noop_cycles=1``: before each jump looptime idles the loop 42 times by default, which
  made 120 s of call time (6,000 jumps) cost 1.1 s; with one idle turn, 0.09 s.
* ``idle_step=0``: while work runs in an executor (speech being synthesised), the clock
  stands still until it is done. looptime's default moves the clock on with real time
  meanwhile, so a long synthesis put 20 ms of silence before a prompt in some runs and
  not in others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import VoipError

__all__ = ["virtual_time", "is_virtual"]

NOOP_CYCLES = 1
"""Idle turns of the loop before the clock jumps (looptime's default is 42)."""


@contextmanager
def virtual_time(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Run ``loop`` on virtual time for the block (nested blocks share it)."""
    try:
        import looptime
    except ImportError:
        raise VoipError(
            "voip.testing runs calls on virtual time with looptime: "
            "pip install 'voip[testing]' (or pip install looptime)"
        ) from None
    if not isinstance(loop, asyncio.BaseEventLoop):
        raise VoipError(f"voip.testing needs asyncio's own event loop, not {type(loop).__name__}")
    # pytest-asyncio's loops come patched (disabled) by looptime's plugin; others now.
    patched = looptime.patch_event_loop(loop, _enabled=False)
    if patched.looptime_on:  # an outer block, or a test marked looptime, runs it already
        yield
        return
    patched.setup_looptime(noop_cycles=NOOP_CYCLES, idle_step=0)
    try:
        with patched.looptime_enabled():
            yield
    finally:
        patched.setup_looptime()  # looptime's own settings again, for whoever enables it next


def is_virtual(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop``'s clock is virtual now."""
    return bool(getattr(loop, "looptime_on", False))
