"""The exception hierarchy: every error the library raises derives from :class:`VoipError`."""

from __future__ import annotations

__all__ = [
    "VoipError",
    "InvalidArgumentError",
    "WAVError",
    "TTSError",
    "CallEndedError",
    "AudioDeviceError",
    "RoomFullError",
]


class VoipError(Exception):
    """Root of every exception raised by :mod:`voip`."""


class InvalidArgumentError(VoipError, ValueError):
    """An argument is out of range or of the wrong kind; the message says which and why."""


class WAVError(VoipError, ValueError):
    """A file could not be read or written as a WAV file.

    ``path`` names the file (or ``"<stream>"`` for a file object).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TTSError(VoipError):
    """Text to speech failed (bad options, empty text, or the espeak-ng library is missing)."""


class CallEndedError(VoipError):
    """The call has ended: nothing more can be played, recorded or collected on it."""


class AudioDeviceError(VoipError):
    """A sound device could not be opened or used."""


class RoomFullError(VoipError):
    """A :class:`voip.Room` holds as many members as it may (``room``: its name,
    ``capacity``: how many)."""

    def __init__(self, room: str, capacity: int, why: str = "") -> None:
        """``why``: what set the capacity, if not the app (said in the message)."""
        super().__init__(
            f"room {room!r} is full: it holds {capacity} members{why}: tell the caller and"
            " offer another room"
        )
        self.room = room
        self.capacity = capacity
