"""Versioned schema migrations (sqlite-utils' ``Migrations``), applied in order on open.

Never edit a migration that has shipped: add a new one. Each runs in its own
transaction together with the record that it ran.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from app.domain.gtin import gtin_keys

MIGRATIONS = Migrations("kiosk")

PRODUCTS_COLUMNS = (
    "code TEXT PRIMARY KEY NOT NULL, "
    "name_zh TEXT NOT NULL, name_en TEXT NOT NULL, "
    "price INTEGER NOT NULL CHECK (price >= 0), "
    "member_price INTEGER CHECK (member_price >= 0), "
    "unit TEXT NOT NULL CHECK (unit IN ('each', 'kg')), "
    "tax_class TEXT NOT NULL, "
    "min_age INTEGER NOT NULL DEFAULT 0, "
    "quantity_limit INTEGER, "
    "department TEXT NOT NULL DEFAULT '', "
    "image TEXT NOT NULL DEFAULT ''"
)


def create_products_table(db: sqlite_utils.Database, name: str) -> None:
    # WITHOUT ROWID: the table is a B-tree keyed by code, so a lookup is one seek.
    db.execute(f"CREATE TABLE [{name}] ({PRODUCTS_COLUMNS}) WITHOUT ROWID")


@MIGRATIONS()
def m001_catalogue(db: sqlite_utils.Database) -> None:
    create_products_table(db, "products")
    db.execute(
        "CREATE TABLE promotions (promo_id TEXT PRIMARY KEY NOT NULL, definition TEXT NOT NULL)"
    )
    db.execute("CREATE TABLE catalogue_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")


@MIGRATIONS()
def m002_print_jobs(db: sqlite_utils.Database) -> None:
    # A paid sale's receipt waits here until the printer has printed it; the sale
    # itself (JSON) is kept so a copy can be printed again from it at any time.
    db.execute(
        "CREATE TABLE print_jobs ("
        "job_id INTEGER PRIMARY KEY, "
        "order_id TEXT NOT NULL, "
        "sale TEXT NOT NULL, "
        "exit_pass TEXT NOT NULL, "
        "copy INTEGER NOT NULL DEFAULT 0, "
        "status TEXT NOT NULL DEFAULT 'pending' "
        "CHECK (status IN ('pending', 'printed', 'unconfirmed', 'cancelled')), "
        "attempts INTEGER NOT NULL DEFAULT 0, "
        "created_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, "
        "last_error TEXT NOT NULL DEFAULT '')"
    )
    db.execute("CREATE INDEX print_jobs_pending ON print_jobs (status, job_id)")


@MIGRATIONS()
def m003_payments(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE payments ("
        "out_trade_no TEXT PRIMARY KEY NOT NULL, "
        "cart_id TEXT NOT NULL, "
        "amount_minor INTEGER NOT NULL CHECK (amount_minor > 0), "
        "currency TEXT NOT NULL, "
        "method TEXT NOT NULL, "
        "state TEXT NOT NULL, "
        "created_at TEXT NOT NULL, "
        "expires_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, "
        "qr_payload TEXT NOT NULL DEFAULT '', "
        "provider_ref TEXT NOT NULL DEFAULT '', "
        "paid_minor INTEGER, "
        "paid_at TEXT, "
        "closing INTEGER NOT NULL DEFAULT 0, "
        "close_reason TEXT NOT NULL DEFAULT '', "
        "staff_flag TEXT NOT NULL DEFAULT '', "
        "last_error TEXT NOT NULL DEFAULT '', "
        "sale_draft TEXT NOT NULL DEFAULT '')"
    )
    # At most one open provider order per cart, enforced by the database itself.
    db.execute(
        "CREATE UNIQUE INDEX payments_one_open_per_cart ON payments (cart_id) "
        "WHERE state IN ('created', 'pending', 'unknown')"
    )
    db.execute(
        "CREATE TABLE payment_steps (step_id INTEGER PRIMARY KEY, out_trade_no TEXT NOT NULL, "
        "at TEXT NOT NULL, state TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')"
    )
    db.execute(
        "CREATE TABLE notifications_seen (notification_id TEXT PRIMARY KEY NOT NULL, "
        "out_trade_no TEXT NOT NULL, at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE sales (order_id TEXT PRIMARY KEY NOT NULL, sale TEXT NOT NULL, "
        "paid_at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE staff_alerts (alert_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
        "ref TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL, "
        "resolved_at TEXT)"
    )


@MIGRATIONS()
def m004_outbox(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: seq never goes back and is never reused, even after delivered
    # rows are removed or the kiosk restarts; the clock plays no part in it.
    db.execute(
        "CREATE TABLE outbox ("
        "seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "event_id TEXT NOT NULL UNIQUE, "
        "type TEXT NOT NULL, "
        "occurred_at TEXT NOT NULL, "
        "session_id TEXT NOT NULL, "
        "member_id TEXT, "
        "payload TEXT NOT NULL, "
        "size INTEGER NOT NULL, "
        "status TEXT NOT NULL DEFAULT 'pending' "
        "CHECK (status IN ('pending', 'in_flight', 'delivered', 'dead')), "
        "batch_id TEXT, "
        "attempts INTEGER NOT NULL DEFAULT 0, "
        "reason TEXT NOT NULL DEFAULT '', "
        "delivered_at TEXT)"
    )
    db.execute("CREATE INDEX outbox_status ON outbox (status, seq)")
    db.execute("CREATE TABLE outbox_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")


@MIGRATIONS()
def m005_outbox_batches(db: sqlite_utils.Database) -> None:
    # settle() and release() find a batch's rows by batch_id: without an index each
    # batch scanned the whole outbox, slowing a large backlog's drain.
    db.execute("CREATE INDEX outbox_batch ON outbox (batch_id) WHERE batch_id IS NOT NULL")


@MIGRATIONS()
def m006_sessions(db: sqlite_utils.Database) -> None:
    # The shopping session and its cart on disk: each change is written with its
    # behaviour event, and a kiosk restarted mid-session finds the cart again.
    db.execute(
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY NOT NULL, lane_id TEXT NOT NULL, "
        "started_at TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'open' "
        "CHECK (state IN ('open', 'paid', 'abandoned')), member_id TEXT, "
        "member_provisional INTEGER NOT NULL DEFAULT 0, ended_at TEXT, order_id TEXT)"
    )
    db.execute(
        "CREATE TABLE cart_lines (session_id TEXT NOT NULL, line_id INTEGER NOT NULL, "
        "product_code TEXT NOT NULL, quantity INTEGER NOT NULL, weight_g INTEGER, "
        "label_price_minor INTEGER, age_approved INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (session_id, line_id))"
    )


@MIGRATIONS()
def m007_staff_and_audit(db: sqlite_utils.Database) -> None:
    # The audit log is append-only twice over: triggers refuse UPDATE and DELETE through
    # SQL, and each row's hash covers the one before it, so an edit made around the
    # triggers (another tool, the file itself) breaks the chain where it was made.
    db.execute(
        "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, "
        "kind TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL, "
        "prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TABLE staff (name TEXT PRIMARY KEY NOT NULL, role TEXT NOT NULL "
        "CHECK (role IN ('attendant', 'manager')), salt BLOB NOT NULL, pin_hash BLOB NOT NULL, "
        "badge TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)"
    )
    # One row: failed PIN entries and the lock they earned, on disk so a restart keeps it.
    db.execute(
        "CREATE TABLE staff_lock (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "failures INTEGER NOT NULL DEFAULT 0, locked_until TEXT)"
    )
    db.execute("INSERT INTO staff_lock (id, failures) VALUES (1, 0)")
    db.execute(
        "CREATE TABLE z_reports (z_number INTEGER PRIMARY KEY, opened_at TEXT NOT NULL, "
        "closed_at TEXT NOT NULL, body TEXT NOT NULL, audit_seq INTEGER NOT NULL, "
        "audit_hash TEXT NOT NULL)"
    )
    db.execute("CREATE TABLE lane_state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
    # Staff reports (X, Z) print through the same queue as receipts: plain text documents.
    db.execute("ALTER TABLE print_jobs ADD COLUMN document TEXT NOT NULL DEFAULT ''")


@MIGRATIONS()
def m008_z_report_marks(db: sqlite_utils.Database) -> None:
    # A Z period ends at row ids, not at a time: a sale or refund that commits just after
    # the report read its clock still belongs to exactly one period.
    db.execute("ALTER TABLE z_reports ADD COLUMN last_sale_rowid INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE z_reports ADD COLUMN last_step_id INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS()
def m009_payment_provider_refunded(db: sqlite_utils.Database) -> None:
    # A payment the provider refunded or reversed (Alipay's cancel of a trade paid a moment
    # before) is closed for good: no later "paid" view may make it a sale.
    db.execute("ALTER TABLE payments ADD COLUMN provider_refunded INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS()
def m010_session_price_snapshot(db: sqlite_utils.Database) -> None:
    # A cart line keeps the product as it was scanned (names, prices, unit, tax class, age,
    # limit, department: JSON), and a session the promotions in force when it started, so
    # a catalogue or promotions import never alters an open cart, even across a restart
    # (docs/pricing.md, "A session's prices"). NULL: written before this migration, priced
    # from the catalogue as before.
    db.execute("ALTER TABLE cart_lines ADD COLUMN product TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN promotions TEXT")


@MIGRATIONS()
def m011_upce_catalogue_keys(db: sqlite_utils.Database) -> None:
    # Issue 17, part 1: an import before this stored an 8-digit code that is both a
    # valid UPC-E and a valid EAN-8 only under its EAN-8 key. Scans now key a UPC-E by
    # its GTIN-12 first and a camera sends only that, so such a product was refused by
    # the camera until the catalogue was imported again. Add the GTIN-12 row, as an
    # import does now (gtin.catalogue_keys); the EAN-8 row stays. Only EAN-8 keys of
    # a UPC-E (000000 then 0 or 1) can need it: one short range of the key.
    rows = db.execute(
        "SELECT * FROM products WHERE code >= '00000000000000' AND code < '00000020000000'"
    ).fetchall()
    for row in rows:
        keys = gtin_keys(row[0])
        if len(keys) == 2 and keys[1] == row[0] and keys[0] != row[0]:
            db.execute(
                f"INSERT OR IGNORE INTO products VALUES ({', '.join('?' * len(row))})",
                (keys[0], *row[1:]),
            )


@MIGRATIONS()
def m012_payment_codes(db: sqlite_utils.Database) -> None:
    # Customer-presented payment (the shopper's payment code): the mode, the wallet, and
    # whether the code was (about to be) sent, written before the call so a restarted kiosk
    # queries and reverses instead of charging again. The code itself is never stored.
    db.execute("ALTER TABLE payments ADD COLUMN mode TEXT NOT NULL DEFAULT 'qr'")
    db.execute("ALTER TABLE payments ADD COLUMN wallet TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE payments ADD COLUMN code_submitted INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE payments ADD COLUMN decline TEXT NOT NULL DEFAULT ''")


@MIGRATIONS()
def m013_store_data_versions(db: sqlite_utils.Database) -> None:
    # Issue 22: the versions of the store's data that head office publishes (catalogue,
    # promotions, lane keys), as this lane holds them (app/storage/store_data_repo.py).
    db.execute(
        "CREATE TABLE store_data_versions ("
        "kind TEXT NOT NULL, version INTEGER NOT NULL, "
        "state TEXT NOT NULL CHECK (state IN "
        "('staged', 'applied', 'superseded', 'refused', 'rolled_back')), "
        "format TEXT NOT NULL CHECK (format IN ('full', 'delta')), "
        "effective_at TEXT NOT NULL, manifest BLOB NOT NULL, signature BLOB NOT NULL, "
        "staged_at TEXT NOT NULL, applied_at TEXT, reason TEXT NOT NULL DEFAULT '', "
        "undo TEXT, "
        "PRIMARY KEY (kind, version))")
    # Refused downloads and manifests, newest last: what device health shows.
    db.execute(
        "CREATE TABLE store_data_refusals (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
        "version INTEGER, at TEXT NOT NULL, reason TEXT NOT NULL)")
    # A staged catalogue delta's rows ('+': the whole product row; '-': code only).
    db.execute(
        "CREATE TABLE catalogue_delta_staged (version INTEGER NOT NULL, "
        "op TEXT NOT NULL CHECK (op IN ('+', '-')), code TEXT NOT NULL, "
        "name_zh TEXT, name_en TEXT, price INTEGER, member_price INTEGER, unit TEXT, "
        "tax_class TEXT, min_age INTEGER, quantity_limit INTEGER, department TEXT, "
        "image TEXT, PRIMARY KEY (version, code)) WITHOUT ROWID")
    # Before-images of the products an applied catalogue delta changed (had = 0: the code
    # was not in the catalogue): what a rollback puts back.
    db.execute(
        "CREATE TABLE catalogue_undo (version INTEGER NOT NULL, code TEXT NOT NULL, "
        "had INTEGER NOT NULL, "
        "name_zh TEXT, name_en TEXT, price INTEGER, member_price INTEGER, unit TEXT, "
        "tax_class TEXT, min_age INTEGER, quantity_limit INTEGER, department TEXT, "
        "image TEXT, PRIMARY KEY (version, code)) WITHOUT ROWID")
    # Staged rows of the small kinds (promotions, lane keys), one JSON row each.
    db.execute(
        "CREATE TABLE store_data_staged_rows (kind TEXT NOT NULL, version INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, row TEXT NOT NULL, PRIMARY KEY (kind, version, seq))")
    db.execute("CREATE TABLE lane_keys (lane_id TEXT PRIMARY KEY NOT NULL, "
               "public_key TEXT NOT NULL, version INTEGER NOT NULL)")
    db.execute(
        "CREATE TABLE sync_contact (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "checked_at TEXT, last_error TEXT, last_error_at TEXT)")
    # The versions in effect when each sale was made (JSON kind -> version).
    db.execute("ALTER TABLE sales ADD COLUMN data_versions TEXT")
