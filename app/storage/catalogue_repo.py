"""The catalogue in SQLite: product lookup by key, and all-or-nothing bulk loads.

Lookups use one constant SQL string on the raw connection, so sqlite3's
statement cache keeps it prepared; sqlite-utils' ``table.get`` rebuilds its
query on every call, which would double the cost of a scan.
Bulk loads write ``executemany`` into a staging table: sqlite-utils'
``insert_all`` converts every row through dicts and measured ~3x slower on a
million rows (see bench/catalogue_bench.py).

A load never holds the database's write lock for long (issue 16, fault 2): the
new catalogue is built in the side table ``products_next`` in short write
transactions of ``LOAD_BATCH_ROWS`` rows, switched in by one short transaction
(two table renames and the meta rows), and the old table is emptied in short
transactions afterwards. The lane's writes wait for one batch at most, never for
the whole file (bench/import_lock_bench.py measures both ways).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import islice
from typing import Any

import sqlite_utils

from app.domain.catalogue import Product, Unit
from app.domain.catalogue_file import COLUMNS, ProductRow
from app.domain.gtin import gtin_keys
from app.domain.money import Money
from app.domain.promotions import Promotion, promotion_from_dict, promotion_to_dict
from app.storage.db import write_transaction
from app.storage.migrations import create_products_table

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM products WHERE code = ?"
_INSERT = "INSERT INTO products_next VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT = "INSERT OR REPLACE INTO products_next VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# PLU items' keys ("PLU:4011", gtin.catalogue_keys): every one sorts at or after "PLU:"
# and before "PLU;" (';' follows ':' in ASCII), so they are one range of the primary key.
PLU_RANGE = ("PLU:", "PLU;")
_PLU_WHERE = "code >= ? AND code < ?"
SIDE_TABLE = "products_next"  # the catalogue being built; never read by the lane
OLD_TABLE = "products_old"  # the catalogue just replaced, emptied step by step
# Rows per write transaction while building or emptying a table: about 5 ms of lock
# each (bench/import_lock_bench.py); more rows per batch make the lane wait longer.
LOAD_BATCH_ROWS = 1000
CLEAR_BATCH_ROWS = 2000
# The least time the lock is left free between two of a load's transactions. A writer
# that found the lock taken sleeps and retries on SQLite's busy-handler schedule
# (sqlite3_busy_timeout: after 1, 3, 8, 18, 33, 53 ms...). If the load took the lock
# back at once the lane kept missing the gaps and waited up to a second (measured); a
# gap wider than the handler's retry spacing over the first ~50 ms (at most 20 ms)
# lets a waiter in at its next retry after the batch. Reading and validating the next
# batch counts towards the gap.
LOCK_GAP_S = 0.015

class ImportRunning(RuntimeError):
    """Another catalogue import is running on this database; this one changed nothing."""


class CatalogueMismatch(RuntimeError):
    """The catalogue was imported in another currency than the store now uses."""


class SqliteCatalogue:
    """The store's products and promotions, in the kiosk database."""

    def __init__(self, db: sqlite_utils.Database, currency: str) -> None:
        self._db = db
        self._conn = db.conn
        self.currency = currency
        self._released = 0.0  # monotonic time a load's last write transaction ended

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
        return self._product(row)

    def _product(self, row: tuple[Any, ...]) -> Product:
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

    def plu_departments(self) -> list[tuple[str, int]]:
        """The departments that sell PLU items (loose produce, bread...), with how many
        each sells: ``[(department, count)]``, by department name ('' = none given).

        PLU items are the rows keyed ``PLU:nnnn`` (``gtin.catalogue_keys``). The table
        is a B-tree on ``code`` (WITHOUT ROWID), so they are one contiguous key range,
        ``PLU_RANGE``, and this is a range seek on the primary key, not a scan of the
        catalogue: the primary key is the index on PLU-ness (bench/produce_bench.py
        measures it on a million rows beside a full scan)."""
        return [(str(d), int(n)) for d, n in self._conn.execute(
            f"SELECT department, count(*) FROM products WHERE {_PLU_WHERE} "
            "GROUP BY department ORDER BY department", PLU_RANGE).fetchall()]

    def plu_products(self, *, department: str | None = None, search: str = "",
                     limit: int = 100) -> list[Product]:
        """PLU items (keys ``PLU:nnnn``), at most ``limit``, by English name then code.

        ``department``: only that department's (None: all). ``search``: only items whose
        Chinese or English name contains it, ASCII letters case-insensitive (SQLite's
        LIKE; ``%`` and ``_`` in it are literal). A range seek on the primary key, as
        ``plu_departments``; the department and name tests run on that range only."""
        where, args = _PLU_WHERE, list(PLU_RANGE)
        if department is not None:
            where += " AND department = ?"
            args.append(department)
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            where += " AND (name_zh LIKE ? ESCAPE '\\' OR name_en LIKE ? ESCAPE '\\')"
            args += [pattern, pattern]
        rows = self._conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM products WHERE {where} "
            "ORDER BY name_en COLLATE NOCASE, code LIMIT ?", (*args, limit)).fetchall()
        return [self._product(row) for row in rows]

    def pictured(self) -> list[tuple[str, str, str]]:
        """``(image, name_en, department)`` of every product that names a picture: what
        the demo store draws at seed time. A scan of the whole table: not for the lane."""
        return [(str(i), str(n), str(d)) for i, n, d in self._conn.execute(
            "SELECT image, name_en, department FROM products WHERE image != '' "
            "ORDER BY code").fetchall()]

    def count(self) -> int:
        """Products in the catalogue: its rows, less the second row of each 8-digit code
        stored under both its UPC-E's GTIN-12 and its EAN-8 key (``gtin.catalogue_keys``),
        so ``kiosk db status`` and an import report the products the file listed."""
        rows = int(self._conn.execute("SELECT count(*) FROM products").fetchone()[0])
        # Only an EAN-8 key of a UPC-E (000000, then 0 or 1) can be a second row: one short
        # range of the primary key, not a scan of the table.
        second = 0
        for (code,) in self._conn.execute(
            "SELECT code FROM products WHERE code >= '00000000000000' AND code < '00000020000000'"
        ).fetchall():
            keys = gtin_keys(code)
            if len(keys) == 2 and keys[1] == code != keys[0] and self._conn.execute(
                "SELECT 1 FROM products WHERE code = ?", (keys[0],)
            ).fetchone():
                second += 1
        return rows - second

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM catalogue_meta").fetchall())

    def load(self, rows: Iterable[ProductRow], *, replace: bool, meta: dict[str, str]) -> int:
        """Load ``rows`` (all or none) and return how many were loaded.

        ``replace`` swaps the whole catalogue; otherwise rows are added to it,
        replacing products with the same code. The rows go into ``products_next``
        in write transactions of ``LOAD_BATCH_ROWS`` rows (each pulled from ``rows``
        before the lock is taken, so a slow source never holds it), then one short
        transaction renames the tables and writes ``meta``; the old table is then
        emptied in short transactions. Readers see the old catalogue until that
        switch commits and the new one after it, never a mix.

        If ``rows`` raises, or the process dies, the live catalogue is unchanged; a
        side table left by a killed load is cleared by the next one. Raises
        ``ImportRunning`` if another process is loading into the same database.
        """
        with self._import_lock():
            self._clear(SIDE_TABLE)  # left by a load that was killed
            self._clear(OLD_TABLE)
            with write_transaction(self._db):
                create_products_table(self._db, SIDE_TABLE)
            # The side table's batches need not reach the disk one by one: the
            # switch commits at synchronous=FULL, and WAL frames are synced in order,
            # so that one sync makes every batch before it durable too.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                if not replace:
                    self._copy_current()
                loaded = 0
                source = iter(rows)
                insert = _INSERT if replace else _UPSERT
                while batch := list(islice(source, LOAD_BATCH_ROWS)):
                    with self._short_write():
                        self._conn.executemany(insert, batch)
                    loaded += len(batch)
                self._conn.execute("PRAGMA synchronous=FULL")
                with self._short_write():  # the switch: schema changes only
                    self._conn.execute(f"ALTER TABLE products RENAME TO {OLD_TABLE}")
                    self._conn.execute(f"ALTER TABLE {SIDE_TABLE} RENAME TO products")
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO catalogue_meta (key, value) VALUES (?, ?)",
                        list(meta.items()),
                    )
            except BaseException:
                self._conn.execute("PRAGMA synchronous=FULL")
                try:
                    self._clear(SIDE_TABLE)
                except Exception:  # noqa: S110 - the next load clears it; keep the first error
                    pass
                raise
            self._clear(OLD_TABLE)
        return loaded

    def _copy_current(self) -> None:
        """Copy ``products`` into the side table in code order, one batch per transaction."""
        last = ""
        while True:
            with self._short_write():
                copied = self._conn.execute(
                    f"INSERT INTO {SIDE_TABLE} SELECT * FROM products WHERE code > ? "
                    "ORDER BY code LIMIT ?",
                    (last, LOAD_BATCH_ROWS),
                ).rowcount
                row = self._conn.execute(
                    f"SELECT code FROM {SIDE_TABLE} ORDER BY code DESC LIMIT 1"
                ).fetchone()
            if copied < LOAD_BATCH_ROWS or row is None:
                return
            last = row[0]

    def _clear(self, table: str) -> None:
        """Empty ``table`` (a side or old catalogue table) in short transactions, then
        drop it. A ``DROP`` frees every page of the table in one transaction, so on
        a million rows it would hold the lock for as long as the table is big."""
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if exists is None:
            return
        while True:
            with self._short_write():
                deleted = self._conn.execute(
                    f"DELETE FROM {table} WHERE code IN (SELECT code FROM {table} LIMIT ?)",
                    (CLEAR_BATCH_ROWS,),
                ).rowcount
            if deleted == 0:
                break
        with self._short_write():
            self._conn.execute(f"DROP TABLE IF EXISTS {table}")

    @contextmanager
    def _short_write(self) -> Iterator[None]:
        """One of a load's write transactions, begun no sooner than ``LOCK_GAP_S`` after
        the previous one ended, so that a writer waiting for the lock gets it."""
        wait = self._released + LOCK_GAP_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            with write_transaction(self._db):
                yield
        finally:
            self._released = time.monotonic()

    def import_lock(self) -> AbstractContextManager[None]:
        """The import lock (``<database>.import-lock``, see ``_import_lock``), for whoever
        else changes the whole catalogue (store data's apply, docs/store-sync.md): held,
        no import is running or can start. ``ImportRunning`` at once if one is."""
        return self._import_lock()

    @contextmanager
    def _import_lock(self) -> Iterator[None]:
        """Hold ``<database>.import-lock`` (``flock``, released by the kernel when the
        process dies, so a killed import never blocks the next) for one load; raise
        ``ImportRunning`` at once if another process holds it. An in-memory
        database has no other process to exclude."""
        path = next(
            (row[2] for row in self._conn.execute("PRAGMA database_list") if row[1] == "main"),
            "",
        )
        if not path:
            yield
            return
        fd = os.open(f"{path}.import-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ImportRunning(
                    "another catalogue import is running on this kiosk; the catalogue is "
                    "unchanged. Wait for it to finish, then import again"
                ) from None
            yield
        finally:
            os.close(fd)  # releases the lock

    # promotions ---------------------------------------------------------
    def promotions(self) -> list[Promotion]:
        rows = self._conn.execute("SELECT definition FROM promotions ORDER BY promo_id")
        return [promotion_from_dict(json.loads(d), self.currency) for (d,) in rows]

    def replace_promotions(self, promotions: list[Promotion], *,
                           source: str = "local file") -> None:
        """Replace every promotion (in the caller's transaction, if any). ``source`` is
        kept as the meta row ``promotions_source``: a head-office version names itself
        there, and anything else (``kiosk promotions import``, the demo seed) says
        "local file", which is how store sync sees a local import (app/services/store_data.py)."""
        with write_transaction(self._db):
            self._conn.execute(
                "INSERT OR REPLACE INTO catalogue_meta (key, value) VALUES "
                "('promotions_source', ?)", (source,))
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

    # head-office versions (issue 22; app/storage/store_data_repo.py stages them) ---------
    # Each runs inside the apply or rollback transaction of app/services/store_data.py.
    def switch_in(self, side: str, keep_as: str) -> None:
        """``side`` (a staged full catalogue) becomes ``products``; the current table is
        kept as ``keep_as`` (a rollback's way back). Two renames: schema changes only."""
        with write_transaction(self._db):
            self._conn.execute(f"ALTER TABLE products RENAME TO {keep_as}")
            self._conn.execute(f"ALTER TABLE {side} RENAME TO products")

    def apply_staged_delta(self, version: int) -> None:
        """Catalogue delta ``version`` from ``catalogue_delta_staged``: its removals, then
        its added or changed rows (whole rows)."""
        cols = ", ".join(COLUMNS)
        with write_transaction(self._db):
            self._conn.execute(
                "DELETE FROM products WHERE code IN (SELECT code FROM catalogue_delta_staged "
                "WHERE version = ? AND op = '-')", (version,))
            self._conn.execute(
                f"INSERT OR REPLACE INTO products ({cols}) SELECT {cols} "
                "FROM catalogue_delta_staged WHERE version = ? AND op = '+'", (version,))

    def restore_undo(self, version: int) -> None:
        """Undo catalogue delta ``version`` from its before-images in ``catalogue_undo``."""
        cols = ", ".join(COLUMNS)
        with write_transaction(self._db):
            self._conn.execute(
                "DELETE FROM products WHERE code IN (SELECT code FROM catalogue_undo "
                "WHERE version = ? AND had = 0)", (version,))
            self._conn.execute(
                f"INSERT OR REPLACE INTO products ({cols}) SELECT {cols} "
                "FROM catalogue_undo WHERE version = ? AND had = 1", (version,))

    def set_meta(self, meta: dict[str, str]) -> None:
        with write_transaction(self._db):
            self._conn.executemany(
                "INSERT OR REPLACE INTO catalogue_meta (key, value) VALUES (?, ?)",
                list(meta.items()))

    def rows(self, after: str = "", limit: int = 1000) -> list[ProductRow]:
        """Up to ``limit`` product rows with codes after ``after``, in code order: a walk
        over the whole catalogue in pages (tests compare whole versions with it)."""
        return [tuple(r) for r in self._conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM products WHERE code > ? ORDER BY code LIMIT ?",
            (after, limit))]


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
