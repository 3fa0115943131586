"""Rolling backups of the kiosk database in ``<data dir>/backups`` (issue 16, fault 6).

Each backup is a checked copy taken with SQLite's online backup API
(``app.storage.db.backup_database``) on a connection of its own: in WAL mode the
copy reads one snapshot while the lane keeps writing, so the lane never waits
for it. Files are named ``kiosk-<YYYYmmdd-HHMMSS>.db`` (local wall-clock time: a
name staff read), so names sort oldest first; the newest ``keep`` are kept.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from app.storage.db import BUSY_TIMEOUT_MS, backup_database

BACKUPS_DIR = "backups"
PATTERN = "kiosk-*.db"


@dataclass(frozen=True)
class BackupFile:
    path: Path
    taken_at: datetime  # the file's modification time, local wall clock (for staff)
    size: int  # bytes


def list_backups(directory: Path) -> list[BackupFile]:
    """The backups in ``directory``, oldest first (by name: their time); [] if none."""
    out = []
    for path in sorted(directory.glob(PATTERN)):
        st = path.stat()
        out.append(BackupFile(path, datetime.fromtimestamp(st.st_mtime).astimezone(),
                              st.st_size))
    return out


def newest_age_s(directory: Path, now_s: float) -> float | None:
    """Seconds since the newest backup was written (``now_s``: ``time.time()``, since the
    files' times are wall-clock), or None when there is none."""
    backups = list_backups(directory)
    return now_s - backups[-1].path.stat().st_mtime if backups else None


def take_backup(database_path: Path, directory: Path, now: datetime,
                keep: int) -> tuple[Path, list[Path]]:
    """Copy the database at ``database_path`` to ``directory/kiosk-<now>.db`` (online,
    checked: ``backup_database``) on a connection of its own, then delete the oldest
    backups beyond ``keep``. Returns (the new file, the files deleted). Raises
    ``DatabaseDamaged`` (the copy failed its check), ``sqlite3.Error`` or ``OSError``
    (no space, no directory): the caller alerts staff."""
    target = directory / f"kiosk-{now.strftime('%Y%m%d-%H%M%S')}.db"
    conn = sqlite3.connect(f"file:{database_path}?mode=ro", uri=True,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        backup_database(sqlite_utils.Database(conn), target)
    finally:
        conn.close()
    removed = [b.path for b in list_backups(directory)[:-keep]] if keep > 0 else []
    for path in removed:
        path.unlink(missing_ok=True)
    return target, removed
