"""The catalogue in SQLite: product lookup by key, and all-or-nothing bulk loads.

Lookups use one constant SQL string on the raw connection, so sqlite3's
statement cache keeps it prepared; sqlite-utils' ``table.get`` rebuilds its
query on every call, which would double the cost of a scan.
Bulk loads write ``executemany`` into a staging table: sqlite-utils'
``insert_all`` converts every row through dicts and measured ~3x slower on a
million rows (see bench/catalogue_bench.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlite_utils

from app.domain.catalogue import Product, Unit
from app.domain.money import Money
from app.domain.promotions import Promotion, promotion_from_dict, promotion_to_dict
from app.storage.db import write_transaction
from app.storage.migrations import create_products_table

COLUMNS = (
    "code",
    "name_zh",
    "name_en",
    "price",
    "member_price",
    "unit",
    "tax_class",
    "min_age",
    "quantity_limit",
    "department",
    "image",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM products WHERE code = ?"
_INSERT = "INSERT INTO products_next VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

ProductRow = tuple[str, str, str, int, int | None, str, str, int, int | None, str, str]


class CatalogueMismatch(RuntimeError):
    """The catalogue was imported in another currency than the store now uses."""


class SqliteCatalogue:
    """The store's products and promotions, in the kiosk database."""

    def __init__(self, db: sqlite_utils.Database, currency: str) -> None:
        self._db = db
        self._conn = db.conn
        self.currency = currency

    def check_currency(self) -> None:
        stored = self.meta().get("currency")
        if stored is not None and stored != self.currency:
            raise CatalogueMismatch(
                f"the catalogue was imported in {stored} but store.currency is {self.currency}; "
                "re-import the catalogue or fix store.currency"
            )

    def get(self, key: str) -> Product | None:
        row = self._conn.execute(_SELECT, (key,)).fetchone()
        if row is None:
            return None
        code, zh, en, price, member, unit, tax_class, min_age, limit, dept, image = row
        currency = self.currency
        return Product(
            code,
            zh,
            en,
            Money(price, currency),
            Unit(unit),
            tax_class,
            Money(member, currency) if member is not None else None,
            min_age,
            limit,
            dept,
            image,
        )

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM products").fetchone()[0])

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM catalogue_meta").fetchall())

    def load(self, rows: Iterable[ProductRow], *, replace: bool, meta: dict[str, str]) -> int:
        """Write all ``rows`` in one transaction; if ``rows`` raises, nothing changes.

        ``replace`` swaps the whole catalogue; otherwise rows are added to it,
        replacing products with the same code.
        """
        with write_transaction(self._db):
            self._conn.execute("DROP TABLE IF EXISTS products_next")
            create_products_table(self._db, "products_next")
            cursor = self._conn.executemany(_INSERT, rows)
            loaded = cursor.rowcount
            if replace:
                self._conn.execute("DROP TABLE products")
                self._conn.execute("ALTER TABLE products_next RENAME TO products")
            else:
                self._conn.execute("INSERT OR REPLACE INTO products SELECT * FROM products_next")
                self._conn.execute("DROP TABLE products_next")
            self._conn.executemany(
                "INSERT OR REPLACE INTO catalogue_meta (key, value) VALUES (?, ?)",
                list(meta.items()),
            )
        return int(loaded)

    # promotions ---------------------------------------------------------
    def promotions(self) -> list[Promotion]:
        rows = self._conn.execute("SELECT definition FROM promotions ORDER BY promo_id")
        return [promotion_from_dict(json.loads(d), self.currency) for (d,) in rows]

    def replace_promotions(self, promotions: list[Promotion]) -> None:
        with write_transaction(self._db):
            self._conn.execute("DELETE FROM promotions")
            self._conn.executemany(
                "INSERT INTO promotions (promo_id, definition) VALUES (?, ?)",
                [
                    (
                        p.promo_id,
                        json.dumps(promotion_to_dict(p), ensure_ascii=False, sort_keys=True),
                    )
                    for p in promotions
                ],
            )


def product_row(product: Product) -> ProductRow:
    """The row a Product is stored as (used by tests and the demo seeding)."""
    return (
        product.code,
        product.name_zh,
        product.name_en,
        product.price.minor,
        product.member_price.minor if product.member_price else None,
        product.unit.value,
        product.tax_class,
        product.min_age,
        product.quantity_limit,
        product.department,
        product.image,
    )
