"""Paid sales on disk (table ``sales``): the record reports, reprints and refunds read.

A sale is written once, in the transaction that completes its payment
(``PaymentsRepo.complete_sale``); ``add`` joins that transaction. Its row id
orders sales for Z periods: a sale belongs to exactly one period. Each row carries the
store data versions in effect when it was made (``data_versions``, JSON kind -> head
office version, ``"local"`` or null; issue 22), read in the sale's own transaction.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlite_utils

from app.domain.sale import PaidSale
from app.storage.db import write_transaction
from app.storage.store_data_repo import current_versions, versions_json


class Sales:
    """Repository over ``sales`` (its only owner)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, sale: PaidSale, now: datetime) -> None:
        """Record ``sale`` (once: a second add of the same order id is ignored), with the
        store data versions in effect, read inside the same transaction."""
        with write_transaction(self.db):
            self.db.execute("INSERT OR IGNORE INTO sales (order_id, sale, paid_at, "
                            "data_versions) VALUES (?, ?, ?, ?)", [sale.order_id, json.dumps(
                                sale.to_dict(), ensure_ascii=False), now.isoformat(),
                                versions_json(current_versions(self.db))])

    def data_versions(self, order_id: str) -> dict[str, int | str | None] | None:
        """The store data versions sale ``order_id`` was made under (None: no such sale,
        or one recorded before issue 22)."""
        row = self.db.execute("SELECT data_versions FROM sales WHERE order_id = ?",
                              [order_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def versions_between(self, after: int, upto: int) -> list[tuple[str, int]]:
        """(data_versions JSON, how many sales) for sales with ``after < rowid <= upto``,
        in the order each set of versions was first sold under ("" for sales recorded
        before issue 22)."""
        return [(str(v or ""), int(n)) for v, n in self.db.execute(
            "SELECT data_versions, count(*) FROM sales WHERE rowid > ? AND rowid <= ? "
            "GROUP BY data_versions ORDER BY min(rowid)", [after, upto])]

    def get(self, order_id: str) -> PaidSale | None:
        row = self.db.execute("SELECT sale FROM sales WHERE order_id = ?", [order_id]).fetchone()
        return PaidSale.from_dict(json.loads(row[0])) if row else None

    def count(self, order_id: str) -> int:
        """How many sales carry ``order_id`` (0 or 1: a check that none is recorded twice)."""
        return int(self.db.execute("SELECT count(*) FROM sales WHERE order_id = ?",
                                   [order_id]).fetchone()[0])

    def recent(self, limit: int = 8) -> list[tuple[str, PaidSale]]:
        """The newest ``limit`` sales as (order id, sale), newest first (by paid time)."""
        return [(str(order_id), PaidSale.from_dict(json.loads(body)))
                for order_id, body in self.db.execute(
                    "SELECT order_id, sale FROM sales ORDER BY paid_at DESC LIMIT ?",
                    [limit]).fetchall()]

    def last_mark(self) -> int:
        """The newest sale's row id (0 with none): where a report period ends."""
        return int(self.db.execute("SELECT coalesce(max(rowid), 0) FROM sales").fetchone()[0])

    def between(self, after: int, upto: int) -> list[PaidSale]:
        """Sales with ``after < rowid <= upto`` (marks from ``last_mark``), oldest first."""
        return [PaidSale.from_dict(json.loads(r[0])) for r in self.db.execute(
            "SELECT sale FROM sales WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
            [after, upto])]


__all__ = ["Sales"]
