"""SQLite files shared by the processes of one machine (the mailbox, the cluster's queues).

WAL mode, because several processes read and write one file: readers go on while one
writes, every write is one short statement (autocommit), and a ``busy_timeout`` makes a
writer wait its turn instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import time

__all__ = ["BUSY_TIMEOUT", "open_shared"]

BUSY_TIMEOUT = 30.0
"""Seconds a write waits for another process's write before it fails."""


def open_shared(path: str | os.PathLike[str], schema: str) -> sqlite3.Connection:
    """A connection to the SQLite file ``path`` in WAL mode, usable from any thread (the
    caller serialises its statements), with the tables of ``schema`` made if absent.

    Changing the journal mode does not wait for a lock as other statements do: while
    another process makes the file it fails at once with "database is locked", so it is
    tried again until :data:`BUSY_TIMEOUT`."""
    # Autocommit (isolation_level=None): every statement is its own short transaction.
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
            return db
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)
