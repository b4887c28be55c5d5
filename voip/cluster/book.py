"""What the workers of a cluster share in one file: the queues' order, the rooms' heads.

Each waiting caller holds a :class:`~voip.queues.Ticket`: its number (increasing, never
reused), its queue's name, the SIP port of the worker it waits on, and when it began to
wait. The tickets are rows of an SQLite file in WAL mode (:mod:`voip.shareddb`) in a
directory the supervisor gives every worker: taking the oldest ticket of a queue is one
``DELETE ... RETURNING`` statement, so two agents on two workers never take one caller.
Beside them, how many members each worker has in each room (:class:`Headcounts`).
Pure apart from the file: no loop, no SIP.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from ..queues import Ticket
from ..shareddb import open_shared

__all__ = ["BOOK", "QueueBook", "Headcounts"]

BOOK = "places.sqlite3"
"""The file's name in the cluster's shared directory."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    number INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a late leg names no other
    queue TEXT NOT NULL,
    worker INTEGER NOT NULL,                   -- the SIP port of the caller's worker
    since REAL NOT NULL                        -- seconds since the epoch
);
CREATE INDEX IF NOT EXISTS tickets_by_queue ON tickets (queue, number);
CREATE TABLE IF NOT EXISTS heads (
    room TEXT NOT NULL,
    worker INTEGER NOT NULL,                   -- the worker's SIP port
    members INTEGER NOT NULL,
    PRIMARY KEY (room, worker)
);
"""


class _Book:
    """A connection to the file, one statement at a time (from any thread)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._db = open_shared(path, _SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _row(self, sql: str, args: tuple[object, ...]) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()


class QueueBook(_Book):
    """The tickets of every queue of the machine's workers (see the module)."""

    def enter(self, queue: str, worker: int, since: float | None = None) -> Ticket:
        """A new ticket at the end of ``queue`` for a caller waiting on ``worker``."""
        since = time.time() if since is None else since
        cursor = self._run(
            "INSERT INTO tickets (queue, worker, since) VALUES (?, ?, ?)", (queue, worker, since)
        )
        assert cursor.lastrowid is not None
        return Ticket(cursor.lastrowid, queue, worker, since)

    def put_back(self, ticket: Ticket) -> None:
        """``ticket`` back in its place (its caller could not be reached: try later)."""
        self._run(
            "INSERT OR IGNORE INTO tickets (number, queue, worker, since) VALUES (?, ?, ?, ?)",
            (ticket.number, ticket.queue, ticket.worker, ticket.since),
        )

    def leave(self, number: int) -> bool:
        """Tear up ticket ``number``; False if it was not there (taken meanwhile)."""
        return self._run("DELETE FROM tickets WHERE number = ?", (number,)).rowcount > 0

    def take(self, queue: str) -> Ticket | None:
        """The oldest ticket of ``queue``, torn up in the same statement; None: nobody."""
        row = self._row(
            "DELETE FROM tickets WHERE number ="
            " (SELECT MIN(number) FROM tickets WHERE queue = ?)"
            " RETURNING number, queue, worker, since",
            (queue,),
        )
        return None if row is None else Ticket(*row)

    def position(self, number: int) -> int | None:
        """Ticket ``number``'s place in its queue (1: the next to be taken), or None."""
        (count,) = self._row(
            "SELECT COUNT(*) FROM tickets AS t, tickets AS mine WHERE mine.number = ?"
            " AND t.queue = mine.queue AND t.number <= mine.number",
            (number,),
        )
        return int(count) or None

    def waiting(self, queue: str) -> int:
        """How many tickets ``queue`` has, over every worker."""
        return int(self._row("SELECT COUNT(*) FROM tickets WHERE queue = ?", (queue,))[0])

    def forget_worker(self, worker: int) -> int:
        """Tear up the tickets of ``worker`` (started again: its callers are gone); how many."""
        return self._run("DELETE FROM tickets WHERE worker = ?", (worker,)).rowcount


class Headcounts(_Book):
    """How many members each worker has in each room, in the same file."""

    def set(self, room: str, worker: int, members: int) -> None:
        """``worker`` has ``members`` members in ``room`` now."""
        if members:
            self._run(
                "INSERT OR REPLACE INTO heads (room, worker, members) VALUES (?, ?, ?)",
                (room, worker, members),
            )
        else:
            self._run("DELETE FROM heads WHERE room = ? AND worker = ?", (room, worker))

    def total(self, room: str) -> int:
        """The members of ``room`` on every worker."""
        sql = "SELECT COALESCE(SUM(members), 0) FROM heads WHERE room = ?"
        return int(self._row(sql, (room,))[0])

    def forget_worker(self, worker: int) -> None:
        """``worker`` started again: it has no members anywhere."""
        self._run("DELETE FROM heads WHERE worker = ?", (worker,))
