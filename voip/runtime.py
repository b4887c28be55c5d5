"""The process around the calls: logging set-up and running the event loop.

A leaf module: the runner, the softphone and the server start processes through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["configure_logging", "run_loop", "collecting", "CANCEL_GRACE", "LOG_LEVELS"]

T = TypeVar("T")

log = logging.getLogger(__name__)

CANCEL_GRACE = 5.0
"""Seconds a cancelled handler (or a task left behind at exit) gets to clean up before
it is abandoned."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging(level: str) -> None:
    """Log lines with time, level and logger name to stderr, from ``level`` up (an
    application that configured logging itself keeps its handlers)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
    else:
        root.setLevel(level)


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Like ``asyncio.run``, but tasks the app left behind that ignore cancellation
    get :data:`CANCEL_GRACE` seconds, not forever: the process must end."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=CANCEL_GRACE))
        if any(not t.done() for t in leftover):
            log.warning("tasks that ignored cancellation were abandoned at exit")
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@contextmanager
def collecting(var: ContextVar[list[T] | None]) -> Iterator[list[T]]:
    """Within it, ``var`` holds a new list, which it yields: code in this context adds
    what it wants known to ``var.get()`` (when not None)."""
    found: list[T] = []
    token = var.set(found)
    try:
        yield found
    finally:
        var.reset(token)
