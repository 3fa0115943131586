"""Opening the kiosk database the one safe way: WAL, synchronous=FULL, explicit transactions.

WAL lets the UI read while the uploader writes; ``synchronous=FULL`` makes a
committed sale survive a power cut (NORMAL may lose the last transactions).
Connections run in autocommit mode and every write goes through
``write_transaction``, which takes the write lock up front (``BEGIN IMMEDIATE``)
so two connections never deadlock upgrading a read lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from app.storage.migrations import MIGRATIONS

DATABASE_FILE = "kiosk.db"
BUSY_TIMEOUT_MS = 5000


def open_database(path: Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the kiosk database at ``path`` and bring its schema up to date.

    Several processes may open a new data directory at the same moment (the lane and
    a few ``kiosk`` commands at first start): the switch to WAL is retried, and the
    whole migration run holds the write lock (``BEGIN IMMEDIATE``) with a busy timeout
    of ``MIGRATION_WAIT_S``, so one process migrates and the others wait, then find
    nothing left to do. Each migration is applied exactly once. Raises
    ``sqlite3.OperationalError`` if the database stays locked for longer than that.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn)
    _retry_while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if migrate and _retry_while_locked(lambda: MIGRATIONS.pending(db)):
        _migrate(db)
    return db


MIGRATION_WAIT_S = 60.0  # how long a process waits for another one's migrations


def _migrate(db: sqlite_utils.Database) -> None:
    # The write lock for the whole run: another process's run finishes first, and the
    # pending list is read again under the lock (each migration is then a savepoint).
    db.conn.execute(f"PRAGMA busy_timeout={int(MIGRATION_WAIT_S * 1000)}")
    try:
        _retry_while_locked(lambda: db.conn.execute("BEGIN IMMEDIATE"))
        try:
            MIGRATIONS.apply(db)
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")
    finally:
        db.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


_T = TypeVar("_T")


def _retry_while_locked(step: Callable[[], _T]) -> _T:
    """Run ``step``, again while SQLite says the database is locked or busy (some lock
    waits, such as switching a new file to WAL, do not go through the busy timeout),
    for up to ``MIGRATION_WAIT_S`` seconds of the monotonic clock."""
    deadline = time.monotonic() + MIGRATION_WAIT_S
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


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
