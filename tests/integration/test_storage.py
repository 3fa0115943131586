import sqlite3

import pytest

from app.storage.db import open_database, schema_version, write_transaction


def test_database_is_wal_with_full_sync(tmp_path):
    db = open_database(tmp_path / "kiosk.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


ALL_MIGRATIONS = ["m001_catalogue", "m002_print_jobs", "m003_payments", "m004_outbox",
                  "m005_outbox_batches", "m006_sessions", "m007_staff_and_audit",
                  "m008_z_report_marks", "m009_payment_provider_refunded",
                  "m010_session_price_snapshot", "m011_upce_catalogue_keys",
                  "m012_payment_codes", "m013_store_data_versions"]


def test_migrations_are_recorded_and_not_rerun(tmp_path):
    path = tmp_path / "kiosk.db"
    db = open_database(path)
    assert schema_version(db) == ALL_MIGRATIONS
    db.close()
    again = open_database(path)
    assert schema_version(again) == ALL_MIGRATIONS
    assert {"products", "promotions", "catalogue_meta"} <= set(again.table_names())


def test_write_transaction_rolls_back_everything(tmp_path):
    db = open_database(tmp_path / "kiosk.db")
    with pytest.raises(RuntimeError):
        with write_transaction(db):
            db.execute("INSERT INTO catalogue_meta VALUES ('a', '1')")
            with write_transaction(db):  # nested: a savepoint
                db.execute("INSERT INTO catalogue_meta VALUES ('b', '2')")
            raise RuntimeError("power cut")
    assert db.execute("SELECT count(*) FROM catalogue_meta").fetchone()[0] == 0


def test_committed_write_is_visible_to_another_connection(tmp_path):
    path = tmp_path / "kiosk.db"
    db = open_database(path)
    with write_transaction(db):
        db.execute("INSERT INTO catalogue_meta VALUES ('k', 'v')")
    other = sqlite3.connect(path)
    assert other.execute("SELECT value FROM catalogue_meta").fetchone() == ("v",)


def test_the_disk_reserve_is_real_bytes_released_and_remade(tmp_path):
    """payment.reserve_mb (issue 16, fault 5): written bytes, not a sparse file; release
    hands them back; a reserve that cannot be made leaves no partial file."""
    from app.storage.disk_reserve import DiskReserve

    reserve = DiskReserve(tmp_path / "disk-reserve", 3 * 1024 * 1024 + 5)
    assert not reserve.held and reserve.ensure() and reserve.held
    st = reserve.path.stat()
    assert st.st_size == 3 * 1024 * 1024 + 5 and st.st_blocks * 512 >= st.st_size
    assert reserve.release() == st.st_size and not reserve.held
    assert reserve.release() == 0  # nothing left to release
    assert reserve.ensure() and reserve.held
    nowhere = DiskReserve(tmp_path / "gone" / "disk-reserve", 1024)
    assert not nowhere.ensure() and not list(tmp_path.glob("gone*"))
    assert DiskReserve(tmp_path / "none", 0).held  # reserve_mb = 0: nothing to hold
