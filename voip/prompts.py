"""Prompts: what a verb plays before it listens.

A prompt is text (spoken with text to speech), PCM (a numpy array, or a list of floats),
a WAV file (a :class:`pathlib.Path`, or a string ending in ``.wav``), or a list of these,
played in turn. :func:`play_prompt` plays one and can be stopped between or inside its
parts (barge-in).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from .audio.wav import loadWAVtoPCM
from .errors import InvalidArgumentError
from .tts import speech_future

if TYPE_CHECKING:
    from .call import Call, Playback

__all__ = ["Prompt", "PromptPart", "parts_of", "play_prompt", "synthesise_ahead"]

PromptPart: TypeAlias = "str | os.PathLike[str] | np.ndarray[Any, Any] | Sequence[float]"
Prompt: TypeAlias = "PromptPart | Sequence[PromptPart] | None"


def _is_pcm(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return True
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(x, Real) and not isinstance(x, bool) for x in value)
    )


def parts_of(prompt: Prompt) -> list[PromptPart]:
    """The parts of ``prompt``, in order; WAV files are loaded (and checked) now.

    Raises :class:`InvalidArgumentError` for anything that is not a prompt, and
    :class:`~voip.errors.WAVError` for a WAV file that cannot be read.
    """
    if prompt is None:
        return []
    if isinstance(prompt, str | os.PathLike) or _is_pcm(prompt):
        items: list[Any] = [prompt]
    elif isinstance(prompt, list | tuple):
        items = list(prompt)
    else:
        raise InvalidArgumentError(
            f"a prompt is text, PCM, a WAV path or a list of these; got {type(prompt).__name__}"
        )
    parts: list[PromptPart] = []
    for item in items:
        if isinstance(item, os.PathLike) or (
            isinstance(item, str) and item.lower().endswith(".wav")
        ):
            parts.append(loadWAVtoPCM(Path(item)))
        elif isinstance(item, str) or _is_pcm(item):
            parts.append(item)
        else:
            raise InvalidArgumentError(
                f"a prompt's part is text, PCM or a WAV path; got {type(item).__name__}"
            )
    return parts


def _start(call: Call, part: PromptPart) -> Playback:
    return call.say(part) if isinstance(part, str) else call.playPCM(part)


async def play_prompt(call: Call, parts: Sequence[PromptPart], stop: asyncio.Event) -> bool:
    """Play ``parts`` in turn until they end or ``stop`` is set (the part playing is cut
    off within a frame). True if every part played to its end."""
    if not parts:
        return True
    for part in parts:  # every text synthesised ahead, so that parts follow with no gap
        if isinstance(part, str):
            synthesise_ahead(part)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        for part in parts:
            if stop.is_set():
                return False
            playback = _start(call, part)
            playing = asyncio.ensure_future(playback)
            await asyncio.wait({playing, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not playing.done():
                playback.cancel()
                await playing
                return False
            if not playing.result():
                return False
        return True
    finally:
        stopped.cancel()


def synthesise_ahead(text: str) -> None:
    """Start synthesising ``text`` now, so that saying it later starts at once (its
    errors are reported by the ``say`` that plays it)."""
    speech_future(text).add_done_callback(_ignore)


def _ignore(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
