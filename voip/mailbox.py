"""``voip.Mailbox``: voice mail kept as WAV files, with an index in SQLite.

Each message is a WAV file in ``<directory>/<box>/``; ``<directory>/index.sqlite3``
lists them (box, caller, when, length, heard). SQLite in WAL mode (:mod:`voip.shareddb`),
because several processes on one machine (a SIP server's workers, a web page listing the
messages) read and write the same mailbox. Nothing is kept in memory: a new
:class:`Mailbox` on the same
directory, after a restart, sees every message.

A message is written in one of two ways. :meth:`Mailbox.save` stores a recording
already made (a :class:`~voip.record.Recorded`, or PCM): the file is written under a
temporary name and renamed, then indexed, so a crash leaves either the whole message or
none. :meth:`Mailbox.start` gives a path to record into (``call.record(path=...)``
writes the file as it grows) and indexes it at once as incomplete; :meth:`Mailbox.finish`
completes it. While it records, the :class:`Mailbox` holds a lock on the file
(``flock``, released by the kernel when the process dies), so a recording nobody locks
any more was cut by a crash: the next listing of its box completes it from what the file
holds, all but the last half second or so.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .audio.pcm import PCM, SAMPLE_RATE, as_pcm
from .audio.wav import loadWAVtoPCM, savePCMtoWAV
from .errors import InvalidArgumentError, WAVError
from .record import Recorded
from .shareddb import BUSY_TIMEOUT, open_shared

__all__ = ["Mailbox", "Message", "INDEX", "BUSY_TIMEOUT"]

logger = logging.getLogger(__name__)

INDEX = "index.sqlite3"
"""The index's file name in the mailbox's directory."""

_BOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a stale Message names no other
    box TEXT NOT NULL,
    file TEXT NOT NULL,                    -- its WAV's name in the box's directory
    caller TEXT NOT NULL,
    received REAL NOT NULL,                -- seconds since the epoch
    seconds REAL NOT NULL DEFAULT 0,
    heard INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 1    -- 0: being recorded (or cut by a crash)
);
CREATE INDEX IF NOT EXISTS messages_by_box ON messages (box, complete, heard, id);
"""

_COLUMNS = "id, box, file, caller, received, seconds, heard"


@dataclass(frozen=True)
class Message:
    """One message in a :class:`Mailbox`."""

    id: int
    """Its number in the index, unique in the mailbox and never reused."""
    box: str
    """The box it was left in."""
    caller: str
    """Who left it (as given to :meth:`Mailbox.save` or :meth:`Mailbox.start`)."""
    received: datetime
    """When it was left (when its recording started), in UTC."""
    seconds: float
    """Its length."""
    heard: bool
    """Whether :meth:`Mailbox.mark_heard` was called for it."""
    path: Path
    """Its WAV file (16-bit, 8 kHz, mono): ``loadWAVtoPCM(message.path)``, or a prompt
    for ``call.gather``."""


class Mailbox(AbstractContextManager["Mailbox"]):
    """Voice mail boxes in ``directory`` (created if need be): one WAV file per message
    and an SQLite index, safe to share between processes on one machine.

    ::

        mailbox = Mailbox("/var/lib/myapp/voicemail")
        path = mailbox.start("100", caller=call.caller)
        await call.record(path=path)           # the file grows as the caller speaks
        message = mailbox.finish(path)         # None if nothing was said
        ...
        for message in mailbox.messages("100", unheard=True):
            ...

    Box names are 1 to 64 letters, digits and ``. _ - + @``, starting with a letter or
    a digit (each is a directory). Each object has its own SQLite connection; its
    methods are quick and synchronous (a handler calls them directly) and may be called
    from any thread. :meth:`close` (or a ``with`` block) closes the connection and
    completes the recordings this object started and did not finish.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).absolute()
        """Where the boxes and the index are."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot create the mailbox directory {str(self.directory)!r}: {exc}"
            ) from None
        self._lock = threading.Lock()
        self._recording: dict[Path, tuple[int, IO[bytes]]] = {}
        """What this object is recording: path -> (message id, the file's locked handle)."""
        self._db: sqlite3.Connection | None = open_shared(self.directory / INDEX, _SCHEMA)

    def __repr__(self) -> str:
        return f"Mailbox({str(self.directory)!r})"

    # -- storing ---------------------------------------------------------------------------

    def save(
        self, box: str, recorded: Recorded | PCM | Sequence[float], *, caller: str = ""
    ) -> Message:
        """Store a message made already: a :class:`~voip.record.Recorded` (its ``.pcm``)
        or 8 kHz PCM. The WAV is written whole under a temporary name, then renamed and
        indexed: a crash leaves the message or nothing. Raises
        :class:`~voip.errors.InvalidArgumentError` for a bad box or caller, or an empty
        recording (check ``recorded.seconds`` first: a caller who said nothing left no
        message)."""
        folder = self._folder(box)
        _check_caller(caller)
        pcm = as_pcm(recorded.pcm if isinstance(recorded, Recorded) else recorded)
        if not len(pcm):
            raise InvalidArgumentError(
                f"nothing to save in box {box!r}: the recording is empty (check "
                "recorded.seconds before saving: the caller said nothing)"
            )
        received = time.time()
        path = folder / _file_name(received)
        partial = path.with_name(path.name + ".part")
        with open(partial, "wb") as fh:
            savePCMtoWAV(pcm, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
        seconds = len(pcm) / SAMPLE_RATE
        number = self._insert(box, path, caller, received, seconds, complete=True)
        logger.info("box %s: message %d of %.1f s from %r saved", box, number, seconds, caller)
        return _message((number, box, path.name, caller, received, seconds, 0), self.directory)

    def start(self, box: str, *, caller: str = "") -> Path:
        """Begin a message recorded straight into its file: returns the path to pass to
        ``call.record(path=...)``, indexed at once as incomplete (not listed yet). Call
        :meth:`finish` with it once the recording has ended. If the process dies first,
        the next :meth:`messages` of the box (from any process) completes it with what
        the file holds."""
        folder = self._folder(box)
        _check_caller(caller)
        received = time.time()
        path = folder / _file_name(received)
        handle = open(path, "xb")  # held, and locked, until finish()
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            number = self._insert(box, path, caller, received, 0.0, complete=False)
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        self._recording[path] = (number, handle)
        logger.debug("box %s: recording message %d into %s", box, number, path)
        return path

    def finish(self, path: str | os.PathLike[str]) -> Message | None:
        """Complete the message that :meth:`start` gave ``path`` for, its length read
        from the file; returns it, or None (and removes it) if the file holds no audio.
        """
        key = Path(path).absolute()
        if key not in self._recording:
            raise InvalidArgumentError(
                f"{str(key)!r} is not a recording this Mailbox started (start() gives "
                "the path to record into, and finish() takes it back once)"
            )
        number, handle = self._recording.pop(key)
        try:
            return self._complete(number, key)
        finally:
            handle.close()  # the lock goes with it

    # -- reading ---------------------------------------------------------------------------

    def messages(self, box: str, *, unheard: bool = False) -> list[Message]:
        """The messages of ``box`` in the order voice mail plays them: those not heard
        yet first, then the heard ones, each oldest first (``unheard=True``: only the
        former). Recordings still going on are left out; one cut by a crash is completed
        first. A message whose file has gone is skipped, with a warning."""
        self._folder(box)
        self._recover(box)
        query = f"SELECT {_COLUMNS} FROM messages WHERE box = ? AND complete = 1"
        if unheard:
            query += " AND heard = 0"
        rows = self._query(query + " ORDER BY heard, received, id", (box,))
        found = []
        for row in rows:
            message = _message(row, self.directory)
            if message.path.is_file():
                found.append(message)
            else:
                logger.warning(
                    "box %s: the file of message %d, %s, is missing; skipped (delete() "
                    "removes it from the index)",
                    box,
                    message.id,
                    message.path,
                )
        return found

    def mark_heard(self, message: Message) -> Message:
        """Record that ``message`` was listened to; returns it with ``heard`` set. A
        message deleted meanwhile (by another process) stays deleted."""
        _check_message(message)
        self._execute("UPDATE messages SET heard = 1 WHERE id = ?", (message.id,))
        return replace(message, heard=True)

    def delete(self, message: Message) -> None:
        """Remove ``message``: its entry, then its file. Deleting it twice does nothing."""
        _check_message(message)
        rows = self._query("SELECT box, file FROM messages WHERE id = ?", (message.id,))
        self._execute("DELETE FROM messages WHERE id = ?", (message.id,))
        for box, name in rows:  # the file named by the index, never a path from outside
            (self.directory / box / name).unlink(missing_ok=True)
            logger.info("box %s: message %d deleted", box, message.id)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Complete the recordings started and not finished, close the index; closing
        twice is harmless."""
        for path in list(self._recording):
            self.finish(path)
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inside ----------------------------------------------------------------------------

    def _folder(self, box: str) -> Path:
        """The directory of ``box`` (created), once its name is checked."""
        if not isinstance(box, str) or not _BOX.fullmatch(box):
            raise InvalidArgumentError(
                f"a box name is 1 to 64 letters, digits and . _ - + @, starting with a "
                f"letter or a digit (it names a directory), got {box!r}; e.g. '100'"
            )
        folder = self.directory / box
        folder.mkdir(exist_ok=True)
        return folder

    def _insert(
        self, box: str, path: Path, caller: str, received: float, seconds: float, complete: bool
    ) -> int:
        cursor = self._execute(
            "INSERT INTO messages (box, file, caller, received, seconds, complete) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (box, path.name, caller, received, seconds, int(complete)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _recover(self, box: str) -> None:
        """Complete the recordings of ``box`` whose process died (no one locks them)."""
        rows = self._query("SELECT id, file FROM messages WHERE box = ? AND complete = 0", (box,))
        for number, name in rows:
            path = self.directory / box / name
            if path in self._recording:
                continue
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                self._complete(number, path)  # died before the file was made: nothing
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # still being recorded
                logger.warning(
                    "box %s: message %d was cut off (its process ended while recording); "
                    "keeping what %s holds",
                    box,
                    number,
                    path,
                )
                self._complete(number, path)

    def _complete(self, number: int, path: Path) -> Message | None:
        """Mark message ``number`` complete with the length its file holds, or remove
        it if that is nothing."""
        try:
            seconds = len(loadWAVtoPCM(path)) / SAMPLE_RATE
        except WAVError as exc:
            if path.exists() and path.stat().st_size:
                logger.warning("message %d has no audio that can be read: %s", number, exc)
            seconds = 0.0
        if not seconds:
            self._execute("DELETE FROM messages WHERE id = ?", (number,))
            path.unlink(missing_ok=True)
            logger.info("message %d holds no audio: removed", number)
            return None
        self._execute(
            "UPDATE messages SET seconds = ?, complete = 1 WHERE id = ?", (seconds, number)
        )
        rows = self._query(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (number,))
        if not rows:  # deleted meanwhile, by another process
            return None
        logger.info("box %s: message %d of %.1f s kept", rows[0][1], number, seconds)
        return _message(rows[0], self.directory)

    def _execute(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        with self._lock:
            return self._connection().execute(sql, args)

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise InvalidArgumentError(f"{self!r} is closed")
        return self._db


def _file_name(received: float) -> str:
    """A new message's file name: when, for people looking in the directory, and a
    random part, so that two processes never pick the same."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(received))
    return f"{stamp}-{uuid.uuid4().hex[:12]}.wav"


def _message(row: tuple[Any, ...], directory: Path) -> Message:
    number, box, name, caller, received, seconds, heard = row
    return Message(
        id=int(number),
        box=str(box),
        caller=str(caller),
        received=datetime.fromtimestamp(received, UTC),
        seconds=float(seconds),
        heard=bool(heard),
        path=directory / str(box) / str(name),
    )


def _check_caller(caller: str) -> None:
    if not isinstance(caller, str):
        raise InvalidArgumentError(f"caller is a string, e.g. call.caller, got {caller!r}")


def _check_message(message: Message) -> None:
    if not isinstance(message, Message):
        raise InvalidArgumentError(
            f"expected a Message from Mailbox.messages() or save(), got {message!r}"
        )
