"""Paid sales on disk (table ``sales``): the record reports, reprints and refunds read.

A sale is written once, in the transaction that completes its payment
(``PaymentsRepo.complete_sale``); ``add`` joins that transaction. Its row id
orders sales for Z periods: a sale belongs to exactly one period.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlite_utils

from app.domain.sale import PaidSale
from app.storage.db import write_transaction


class Sales:
    """Repository over ``sales`` (its only owner)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, sale: PaidSale, now: datetime) -> None:
        """Record ``sale`` (once: a second add of the same order id is ignored)."""
        with write_transaction(self.db):
            self.db.execute("INSERT OR IGNORE INTO sales (order_id, sale, paid_at) "
                            "VALUES (?, ?, ?)", [sale.order_id, json.dumps(
                                sale.to_dict(), ensure_ascii=False), now.isoformat()])

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
