"""The terminal as a phone: keys as the keypad, a live status line, log lines above it.

Shared by the simulator and the softphone. Only used when stdin/stderr are terminals;
headless runs (CI, pipes) get plain log lines and scripted keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import termios
import tty
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from .dtmf import DTMF_KEYS

if TYPE_CHECKING:
    from .call import Call

__all__ = ["CallTerminal", "KeypadInput", "StatusLine", "level_meter"]

REFRESH_SECONDS = 0.1


def level_meter(level: float, width: int = 10) -> str:
    """A bar for a peak level in [0, 1]."""
    filled = min(width, int(round(level * width)))
    return "#" * filled + "." * (width - filled)


class StatusLine(logging.Handler):
    """Keeps one status line at the bottom of the terminal; log records print above it.

    ``render()`` is called ten times a second on the loop to build the line.
    """

    def __init__(self, render: Callable[[], str], stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self._render = render
        self._line = ""
        self._task: asyncio.Task[None] | None = None
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.print_above(self.format(record) + "\n", self.stream)
        except Exception:
            self.handleError(record)

    def print_above(self, text: str, stream: TextIO) -> None:
        """Write whole lines of ``text`` to ``stream`` above the status line."""
        self.stream.write("\r\x1b[K")
        self.stream.flush()
        stream.write(text)
        stream.flush()
        self.stream.write(self._line)
        self.stream.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh())
        if sys.stdout.isatty():  # the app's print() must not land inside the status line
            sys.stdout = _AboveStatus(self, sys.stdout)

    async def _refresh(self) -> None:
        while True:
            self._draw(self._render())
            await asyncio.sleep(REFRESH_SECONDS)

    def _draw(self, line: str) -> None:
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns or 80
        except OSError:
            width = 80
        self._line = line[: max(width - 1, 10)]
        self.stream.write("\r\x1b[K" + self._line)
        self.stream.flush()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if isinstance(sys.stdout, _AboveStatus):
            sys.stdout.flush()
            sys.stdout = sys.stdout.stream
        self._draw(self._render())
        self.stream.write("\n")
        self.stream.flush()


class _AboveStatus:
    """Stands in for ``sys.stdout``: complete lines go above the status line."""

    def __init__(self, status: StatusLine, stream: TextIO) -> None:
        self.status = status
        self.stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        head, sep, tail = (self._partial + text).rpartition("\n")
        self._partial = tail
        if sep:
            self.status.print_above(head + sep, self.stream)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.status.print_above(self._partial + "\n", self.stream)
            self._partial = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class KeypadInput:
    """Reads single key presses from a terminal (no Enter needed) on the event loop.

    Keys 0-9 * # and A-D (either case) go to ``on_key``; everything else is ignored.
    Ctrl-C keeps its usual meaning (SIGINT), which the caller maps to hanging up.
    """

    def __init__(self, on_key: Callable[[str], object], stream: TextIO | None = None) -> None:
        self._on_key = on_key
        self._stream = stream or sys.stdin
        self._fd = self._stream.fileno()
        self._saved: list[Any] | None = None

    def start(self) -> None:
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._read)

    def _read(self) -> None:
        data = os.read(self._fd, 64).decode(errors="ignore")
        for ch in data.upper():
            if ch in DTMF_KEYS:
                self._on_key(ch)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None


class CallTerminal:
    """Keypad and status line for an interactive call: keys typed go to ``on_key``."""

    def __init__(self, call: Call, on_key: Callable[[str], object]) -> None:
        self.call = call
        self.keypad = KeypadInput(on_key)
        self.status = StatusLine(self.render)
        self._root = logging.getLogger()
        self.keys: list[str] = call.dtmf.history
        """The keys shown: those the call received, unless set otherwise."""
        self._saved_handlers: list[logging.Handler] = []

    def render(self) -> str:
        call = self.call
        playing, recording, level = call.status()
        state = "in call" if call.active else "ended"
        parts = [
            f"[{state}] {call.caller}",
            "playing: " + (", ".join(playing) or "-"),
        ]
        if recording:
            parts.append("recording")
        parts.append(f"mic [{level_meter(level)}]")
        parts.append("keys: " + ("".join(self.keys[-16:]) or "-"))
        parts.append("Ctrl-C hangs up")
        return " | ".join(parts)

    def start(self) -> None:
        self._saved_handlers = self._root.handlers[:]
        if self._saved_handlers and self._saved_handlers[0].formatter is not None:
            self.status.setFormatter(self._saved_handlers[0].formatter)
        for h in self._saved_handlers:
            self._root.removeHandler(h)
        self._root.addHandler(self.status)
        self.keypad.start()
        self.status.start()

    def stop(self) -> None:
        self.keypad.stop()
        self.status.stop()
        self._root.removeHandler(self.status)
        for h in self._saved_handlers:
            self._root.addHandler(h)
