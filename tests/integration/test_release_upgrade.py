"""Upgrading a store's database to this release (issue 20, deliverable 5): the previous
release's real database is migrated once, keeps every row, and a second start runs nothing;
a pending migration is preceded by a checked backup that a rollback can put back.

``tests/fixtures/kiosk-bdb4f04.db`` is a database made by the previous release's own code
(commit bdb4f04, the last release), committed rather than made in the test so the test
needs neither git history (CI may clone shallow) nor that release's dependencies:

    git archive bdb4f04 | tar -x -C /tmp/rel && cd /tmp/rel
    PYTHONPATH=. python -m app.cli scenario seeds/scenarios/20-staff-refund-and-z.toml \
        --data /tmp/scen
    sqlite3 /tmp/scen/20-staff-refund-and-z/kiosk.db "VACUUM INTO 'kiosk-bdb4f04.db'"

(a sale, a refund, a Z report, staff, audit rows, outbox events, the demo catalogue).
At this commit no migration was added since bdb4f04, so its upgrade applies none; the
backup and rollback paths are tested on a database made with this release's migration list
stopped before its last migration (``MIGRATIONS.apply(stop_before=...)``), i.e. exactly the
schema the release before that migration made.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import sqlite_utils

from app.storage.db import open_database, restore_database, schema_version
from app.storage.migrations import MIGRATIONS
from app.storage.upgrade import upgrade_database

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "kiosk-bdb4f04.db"
BDB4F04_MIGRATIONS = [
    "m001_catalogue", "m002_print_jobs", "m003_payments", "m004_outbox",
    "m005_outbox_batches", "m006_sessions", "m007_staff_and_audit", "m008_z_report_marks",
    "m009_payment_provider_refunded", "m010_session_price_snapshot",
    "m011_upce_catalogue_keys", "m012_payment_codes",
]
NOW = datetime(2026, 11, 30, 12, 0, 0).astimezone()


def snapshot(path: Path) -> dict[str, list[dict[str, object]]]:
    """Every row of every table (but the migrations' own record), as dicts, sorted."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT IN ('_sqlite_migrations', 'sqlite_sequence')")]
        return {t: sorted((dict(r) for r in conn.execute(f"SELECT * FROM [{t}]")), key=repr)
                for t in tables}
    finally:
        conn.close()


def this_release_migrations(tmp_path: Path) -> list[str]:
    db = open_database(tmp_path / "fresh.db")
    try:
        return schema_version(db)
    finally:
        db.close()


def test_the_previous_release_database_is_migrated_once_and_keeps_every_row(tmp_path):
    database = tmp_path / "data" / "kiosk.db"
    database.parent.mkdir()
    shutil.copy(FIXTURE, database)
    before = snapshot(database)
    assert sum(len(rows) for rows in before.values()) > 250  # a real store's worth of rows
    assert len(before["sales"]) == 1 and len(before["audit_log"]) == 7

    result = upgrade_database(database, "next", NOW)

    assert list(result.before) == BDB4F04_MIGRATIONS
    new = [n for n in this_release_migrations(tmp_path) if n not in BDB4F04_MIGRATIONS]
    assert list(result.applied) == new
    assert (result.backup is not None) == bool(new)  # a backup exactly when something ran
    after = snapshot(database)
    for table, rows in before.items():  # every row is still there, every old column kept
        columns = rows[0].keys() if rows else []
        kept = sorted(({c: r[c] for c in columns} for r in after[table]), key=repr)
        assert kept == rows, table
    # The second start (the kiosk's own open) finds nothing to run.
    again = upgrade_database(database, "next", NOW)
    assert again.applied == () and again.backup is None
    db = open_database(database)
    try:
        assert MIGRATIONS.pending(db) == []
    finally:
        db.close()
    assert snapshot(database) == after


def older_database(path: Path) -> str:
    """A database with this release's migrations but the last, and one sale: what the
    release before that migration left. Returns the migration left pending."""
    last = [m.name for m in MIGRATIONS.pending(sqlite_utils.Database(memory=True))][-1]
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before=last)
    db.execute("INSERT INTO sales (order_id, sale, paid_at) VALUES ('K1', '{}', '2026-11-29')")
    db.conn.commit()
    db.close()
    return last


def test_a_pending_migration_runs_once_after_a_checked_backup_that_a_rollback_restores(
        tmp_path):
    database = tmp_path / "data" / "kiosk.db"
    database.parent.mkdir()
    last = older_database(database)
    before = snapshot(database)

    result = upgrade_database(database, "0.2.0-abc", NOW)

    assert result.applied == (last,)
    assert result.backup == (tmp_path / "data" / "backups"
                             / "pre-upgrade-0.2.0-abc-20261130-120000.db")
    assert snapshot(result.backup) == before  # the copy holds the database as it was
    conn = sqlite3.connect(result.backup)
    assert last not in [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
    conn.close()
    assert [r["order_id"] for r in snapshot(database)["sales"]] == ["K1"]
    assert upgrade_database(database, "0.2.0-abc", NOW).applied == ()  # once

    # Rolling back puts the pre-migration file back; the migrated one is kept aside.
    aside = restore_database(result.backup, database, "20261130-120500")
    assert aside is not None and aside.exists()
    assert snapshot(database) == before
    conn = sqlite3.connect(database)
    assert last not in [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
    conn.close()


def test_no_database_yet_is_left_for_the_first_start(tmp_path):
    result = upgrade_database(tmp_path / "kiosk.db", "r", NOW)
    assert result == type(result)((), None, ())
    assert not (tmp_path / "kiosk.db").exists()


def test_only_the_newest_pre_upgrade_backups_are_kept(tmp_path):
    database = tmp_path / "kiosk.db"
    backups = tmp_path / "backups"
    backups.mkdir()
    for i in range(4):
        (backups / f"pre-upgrade-old{i}-20260101-00000{i}.db").write_bytes(b"x")
    older_database(database)
    result = upgrade_database(database, "new", NOW)
    kept = sorted(p.name for p in backups.glob("pre-upgrade-*.db"))
    assert result.backup is not None and result.backup.name in kept
    assert len(kept) == 3
