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
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from app.storage.migrations import MIGRATIONS

DATABASE_FILE = "kiosk.db"
BUSY_TIMEOUT_MS = 5000
# What the start-up write check writes: SQLite's -shm index (32 KiB) and a first WAL
# frame must fit before the kiosk can even read its database.
WRITE_CHECK_BYTES = 64 * 1024


class DataDirUnusable(Exception):
    """The data directory cannot be written (read-only mount, no permission, no such
    device); the message names the directory and what to check."""


def check_writable(directory: Path, probe_bytes: int = 0) -> None:
    """Create (if needed) ``directory`` and a scratch file in it holding ``probe_bytes``
    written and synced to disk, then remove the file.

    Raises ``DataDirUnusable`` naming the directory when it cannot be created or written
    (``EROFS``, ``EACCES``, ``ENOSPC``...): SQLite in WAL mode must create its ``-wal`` and
    ``-shm`` files beside the database even to read it, so a directory the kiosk cannot
    write is one it cannot run from (issue 16, fault 5). At start-up the scratch file
    holds ``WRITE_CHECK_BYTES``, not nothing: an empty file needs no free block, so it is
    made on a full disk too, where SQLite then fails sizing its ``-shm`` with a bare
    "disk I/O error" that reads like a damaged database.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-") as scratch:
            if probe_bytes:
                scratch.write(b"\0" * probe_bytes)
                scratch.flush()
                os.fsync(scratch.fileno())  # a file system allocating late: ENOSPC here
    except OSError as exc:
        raise data_dir_unusable(directory, exc) from None


def data_dir_unusable(directory: Path, exc: OSError) -> DataDirUnusable:
    """The staff message for ``directory`` failing a write with ``exc``: the reason, a
    hint from its errno (read-only, full, permission), and what to do."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = ("the disk is mounted read-only" if exc.errno == errno.EROFS else
            "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else
            "the kiosk's user may not write there" if exc.errno in (errno.EACCES, errno.EPERM)
            else "the directory is unusable")
    return DataDirUnusable(
        f"the data directory {directory} cannot be written ({reason}): {hint}. Make it "
        "writable (or choose another with --data-dir / KIOSK_DATA_DIR) and start again")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write refused for want of space: SQLite's ``SQLITE_FULL``
    ("database or disk is full") or an ``OSError`` with ``ENOSPC`` / ``EDQUOT``."""
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(error)
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


class DatabaseDamaged(Exception):
    """The kiosk database is damaged, unreadable, or unexpectedly empty: the kiosk must
    not start on it (the message says what was found and how to restore a backup)."""


RESTORE_HINT = "restore a backup with `kiosk db restore FILE` (see docs/operations.md)"


def open_database(path: Path, *, migrate: bool = True,
                  held_kiosk: Sequence[Path] = ()) -> sqlite_utils.Database:
    """Open (creating if needed) the kiosk database at ``path`` and bring its schema up to date.

    Several processes may open a new data directory at the same moment (the lane and
    a few ``kiosk`` commands at first start): the switch to WAL is retried, and the
    whole migration run holds the write lock (``BEGIN IMMEDIATE``) with a busy timeout
    of ``MIGRATION_WAIT_S``, so one process migrates and the others wait, then find
    nothing left to do. Each migration is applied exactly once. Raises
    ``sqlite3.OperationalError`` if the database stays locked for longer than that.

    With ``migrate`` (the kiosk's own open), an existing file is checked first with
    SQLite's ``PRAGMA quick_check``. ``held_kiosk``: files (the lane's key, the audit
    head) that show this data directory held a kiosk; if any exists, a missing, empty
    or never-migrated database is refused rather than silently started afresh.
    Raises ``DatabaseDamaged`` (a message for staff, no traceback needed) on both, and
    ``DataDirUnusable`` naming ``path.parent`` when the directory cannot be written
    (before SQLite is asked: it would only say "unable to open database file").
    """
    # A read-only or full disk: say so, naming the directory. Room for SQLite's files is
    # checked at the kiosk's own open (start-up) only: a worker thread's open of a
    # database already open must not fail where SQLite itself would not.
    check_writable(path.parent, WRITE_CHECK_BYTES if migrate else 0)
    existed = path.exists() and path.stat().st_size > 0
    marks = [str(m) for m in held_kiosk if m.exists()]
    if migrate and marks and not existed:
        raise DatabaseDamaged(
            f"{path} is {'empty' if path.exists() else 'missing'}, but this data directory "
            f"held a kiosk ({', '.join(marks)}): refusing to start a new, empty kiosk "
            f"without its history; {RESTORE_HINT}")
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn)
    try:
        _retry_while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if migrate and existed:
            problems = integrity_problems(db)
            if problems:
                raise DatabaseDamaged(f"{path} is damaged (SQLite quick_check: "
                                      f"{'; '.join(problems[:3])}); {RESTORE_HINT}")
            if marks and not MIGRATIONS.applied(db):
                raise DatabaseDamaged(
                    f"{path} holds no kiosk tables, but this data directory held a kiosk "
                    f"({', '.join(marks)}): refusing to start a new, empty kiosk; "
                    f"{RESTORE_HINT}")
            foreign = _foreign_tables(db)
            if foreign:
                raise DatabaseDamaged(
                    f"{path} is not a kiosk database: it holds another program's tables "
                    f"({', '.join(foreign[:5])}) and none of the kiosk's; refusing to "
                    "write the kiosk's tables into it. Check --data-dir / KIOSK_DATA_DIR, "
                    "or move that file away")
        if migrate and _retry_while_locked(lambda: MIGRATIONS.pending(db)):
            _migrate(db)
    except DatabaseDamaged:
        conn.close()
        raise
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        raise DatabaseDamaged(f"{path} cannot be read ({exc}); {RESTORE_HINT}") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        conn.close()
        raise DatabaseDamaged(f"{path} is damaged ({exc}); {RESTORE_HINT}") from None
    return db


def _foreign_tables(db: sqlite_utils.Database) -> list[str]:
    """The tables of a database the kiosk never migrated (empty when it holds none, or
    when the kiosk's migrations ran on it). A first start's migrations run in one
    transaction, so another process sees either no tables or the kiosk's with their
    record of migrations, never a half-made schema taken for someone else's."""
    if MIGRATIONS.applied(db):
        return []
    return [str(name) for (name,) in db.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]


def integrity_problems(db: sqlite_utils.Database) -> list[str]:
    """What SQLite's ``PRAGMA quick_check`` found wrong (empty: the file is sound). It
    checks every page and index structure but not index contents, in time linear in the
    file's size (SQLite documentation, PRAGMA quick_check). Raises
    ``sqlite3.DatabaseError`` on a file too damaged to check."""
    rows = [str(r[0]) for r in db.conn.execute("PRAGMA quick_check").fetchall()]
    return [] if rows == ["ok"] else rows


def check_file(path: Path) -> list[str]:
    """``PRAGMA quick_check`` of the database file at ``path``, opened read-only on a
    connection of its own (a running kiosk keeps writing; nothing is created or migrated):
    [] when sound, else SQLite's findings, or the error that kept it from checking (a file
    that is not a database at all). For ``kiosk doctor``."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        return integrity_problems(sqlite_utils.Database(conn))
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()


def backup_database(db: sqlite_utils.Database, target: Path) -> Path:
    """Copy the open database ``db`` to ``target`` with SQLite's online backup API
    (``sqlite3.Connection.backup``: a consistent copy while the lane keeps writing),
    through a temporary file renamed into place, and check the copy (quick_check).
    Returns ``target``. Raises ``DatabaseDamaged`` if the copy does not check out."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    dst = sqlite3.connect(tmp)
    try:
        db.conn.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        problems = integrity_problems(sqlite_utils.Database(dst))
    finally:
        dst.close()
    if problems:
        tmp.unlink(missing_ok=True)
        raise DatabaseDamaged(f"the backup copy failed its check: {'; '.join(problems[:3])}")
    os.replace(tmp, target)
    return target


def restore_database(backup: Path, path: Path, now_stamp: str) -> Path | None:
    """Put the backup file ``backup`` in place of the database at ``path`` (the lane and
    every ``kiosk`` command stopped). The backup is checked first (quick_check, and it
    must hold the kiosk's tables): a bad one changes nothing. The current file and its
    ``-wal``/``-shm`` companions are kept aside as ``<name>.before-restore-<now_stamp>``
    (and its ``-wal``/``-shm``, so it opens with what its WAL held).
    Returns the path of the file set aside (None if there was none). Raises
    ``DatabaseDamaged`` for a backup that is damaged or is not a kiosk database."""
    try:
        src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            problems = integrity_problems(sqlite_utils.Database(src))
            applied = MIGRATIONS.applied(sqlite_utils.Database(src)) if not problems else []
        except sqlite3.DatabaseError as exc:
            problems, applied = [str(exc)], []
        if problems:
            raise DatabaseDamaged(f"{backup} is damaged ({'; '.join(problems[:3])}): "
                                  "nothing restored")
        if not applied:
            raise DatabaseDamaged(f"{backup} is not a kiosk database: nothing restored")
        tmp = path.with_name(path.name + ".restoring")
        tmp.unlink(missing_ok=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    kept = path.with_name(f"{path.name}.before-restore-{now_stamp}")
    aside = None
    if path.exists():
        aside = kept
        os.replace(path, aside)
    # The companions take the names SQLite pairs with the set-aside file (<name>-wal):
    # a killed lane's newest commits are only in its WAL, and the set-aside file must
    # open with them for "restore that file" to undo a wrong restore.
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, kept.with_name(kept.name + suffix))
    os.replace(tmp, path)
    return aside


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
