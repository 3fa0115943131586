"""Opening the kiosk database the one safe way: WAL, synchronous=FULL, explicit transactions.

WAL lets the UI read while the uploader writes; ``synchronous=FULL`` makes a
committed sale survive a power cut (NORMAL may lose the last transactions).
Connections run in autocommit mode and every write goes through
``write_transaction``, which takes the write lock up front (``BEGIN IMMEDIATE``)
so two connections never deadlock upgrading a read lock.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from app.storage.migrations import MIGRATIONS

DATABASE_FILE = "kiosk.db"
BUSY_TIMEOUT_MS = 5000


class DataDirUnusable(Exception):
    """The data directory cannot be written (read-only mount, no permission, no such
    device); the message names the directory and what to check."""


def check_writable(directory: Path) -> None:
    """Create (if needed) ``directory`` and a scratch file in it, then remove the file.

    Raises ``DataDirUnusable`` naming the directory when it cannot be created or written
    (``EROFS``, ``EACCES``, ``ENOSPC``...): SQLite in WAL mode must create its ``-wal`` and
    ``-shm`` files beside the database even to read it, so a directory the kiosk cannot
    write is one it cannot run from (issue 16, fault 5).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        hint = ("the disk is mounted read-only" if exc.errno == errno.EROFS else
                "the disk is full" if exc.errno == errno.ENOSPC else
                "the kiosk's user may not write there" if exc.errno in (errno.EACCES,
                                                                        errno.EPERM)
                else "the directory is unusable")
        raise DataDirUnusable(
            f"the data directory {directory} cannot be written ({reason}): {hint}. Make it "
            "writable (or choose another with --data-dir / KIOSK_DATA_DIR) and start again"
        ) from None


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write refused for want of space: SQLite's ``SQLITE_FULL``
    ("database or disk is full") or an ``OSError`` with ``ENOSPC`` / ``EDQUOT``."""
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(error)
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def open_database(path: Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the kiosk database at ``path`` and bring its schema up to date.

    Raises ``DataDirUnusable`` naming ``path.parent`` when the directory cannot be written,
    before SQLite is asked (it would only say "unable to open database file").
    """
    check_writable(path.parent)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:  # e.g. kiosk.db itself read-only
        conn.close()
        raise DataDirUnusable(f"the database {path} cannot be opened for writing ({exc}): "
                              "make it and its directory writable and start again") from None
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
