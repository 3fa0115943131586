"""Upgrading the kiosk database to a new release: a checked backup first, then the migrations.

``kiosk install`` calls ``upgrade_database`` once per install, with the kiosk stopped,
so a new release's migrations run at install time (once, with a backup that
``kiosk install --rollback`` puts back) and the lane's own start finds nothing
pending. The backup is taken only when a migration is pending: a database the new
code does not change needs none, and a rollback then keeps every sale made since.

Pre-upgrade backups are named ``pre-upgrade-<release>-<YYYYmmdd-HHMMSS>.db`` in
``<data dir>/backups``: outside the rolling backups' pattern (``kiosk-*.db``), so
the rolling backups never delete the one a rollback needs. The newest
``PRE_UPGRADE_KEEP`` are kept.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from app.storage.backups import BACKUPS_DIR
from app.storage.db import BUSY_TIMEOUT_MS, backup_database, open_database
from app.storage.migrations import MIGRATIONS

PRE_UPGRADE_PATTERN = "pre-upgrade-*.db"
PRE_UPGRADE_KEEP = 3


@dataclass(frozen=True)
class UpgradeResult:
    """What ``upgrade_database`` did: the migrations applied (names, in order; empty when
    none was pending), the backup taken before them (None: no database yet, or nothing
    pending), and the migrations the database held before."""

    applied: tuple[str, ...]
    backup: Path | None
    before: tuple[str, ...]


def upgrade_database(database_path: Path, release: str, now: datetime) -> UpgradeResult:
    """Bring the database at ``database_path`` up to this code's schema, for ``release``
    (a name such as ``0.1.0-bdb4f04``, used in the backup's file name; ``now``: local
    wall clock, for the name staff read). With the kiosk stopped.

    No database yet (a first install): nothing is done; the kiosk's first start creates
    it. Nothing pending: nothing is done, no backup. Otherwise a checked copy goes to
    ``<data dir>/backups/pre-upgrade-<release>-<now>.db`` first (SQLite's online backup,
    ``app.storage.db.backup_database``), then ``open_database`` applies the pending
    migrations (each once, in one locked run), and the oldest pre-upgrade backups beyond
    ``PRE_UPGRADE_KEEP`` are deleted. Raises ``DatabaseDamaged`` (a damaged database or
    copy: nothing migrated), ``sqlite3.Error`` or ``OSError`` (no room for the backup)."""
    if not database_path.exists() or database_path.stat().st_size == 0:
        return UpgradeResult((), None, ())
    conn = sqlite3.connect(f"file:{database_path}?mode=ro", uri=True,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        ro = sqlite_utils.Database(conn)
        before = tuple(m.name for m in MIGRATIONS.applied(ro))
        pending = [m.name for m in MIGRATIONS.pending(ro)]
        if not pending:
            return UpgradeResult((), None, before)
        directory = database_path.parent / BACKUPS_DIR
        safe = "".join(c if c.isalnum() or c in "._+-" else "_" for c in release)
        backup = backup_database(
            ro, directory / f"pre-upgrade-{safe}-{now.strftime('%Y%m%d-%H%M%S')}.db")
    finally:
        conn.close()
    db = open_database(database_path)  # applies what is pending (and checks the file)
    try:
        after = [m.name for m in MIGRATIONS.applied(db)]
    finally:
        db.close()
    for old in sorted(directory.glob(PRE_UPGRADE_PATTERN),
                      key=lambda p: p.stat().st_mtime)[:-PRE_UPGRADE_KEEP]:
        old.unlink(missing_ok=True)
    return UpgradeResult(tuple(n for n in after if n not in before), backup, before)
