"""Versioned schema migrations (sqlite-utils' ``Migrations``), applied in order on open.

Never edit a migration that has shipped: add a new one. Each runs in its own
transaction together with the record that it ran.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

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
