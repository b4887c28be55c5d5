"""Silencing C libraries that print to the terminal on their own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["quiet_fds"]


@contextlib.contextmanager
def quiet_fds(*fds: int) -> Iterator[None]:
    """Send what C code writes to these file descriptors to /dev/null meanwhile.

    ALSA and JACK print dozens of lines while PortAudio probes a machine with no sound
    card; PJSIP prints its start-up lines before its log settings apply.
    """
    saved = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            except OSError:
                continue
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
