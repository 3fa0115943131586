"""Opening the kiosk database the one safe way: WAL, synchronous=FULL, explicit transactions.

WAL lets the UI read while the uploader writes; ``synchronous=FULL`` makes a
committed sale survive a power cut (NORMAL may lose the last transactions).
Connections run in autocommit mode and every write goes through
``write_transaction``, which takes the write lock up front (``BEGIN IMMEDIATE``)
so two connections never deadlock upgrading a read lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from app.storage.migrations import MIGRATIONS

DATABASE_FILE = "kiosk.db"
BUSY_TIMEOUT_MS = 5000


def open_database(path: Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the kiosk database at ``path`` and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if migrate:
        MIGRATIONS.apply(db)
    return db


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One atomic write: everything inside commits together or not at all.

    Nested use becomes a savepoint (through sqlite-utils' ``atomic``), so a
    repository can be called inside a larger use-case transaction.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        db.conn.execute("COMMIT")


def schema_version(db: sqlite_utils.Database) -> list[str]:
    """Names of the migrations applied to this database, oldest first."""
    return [m.name for m in MIGRATIONS.applied(db)]
