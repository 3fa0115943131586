"""The print queue: receipts of paid sales, kept until the printer has printed them.

A job is written in the same transaction as whatever completed the sale, so
a paid sale always has its receipt job. The printer's worker thread uses its
own connection (``PrintJobs.open``), since a SQLite connection belongs to the
thread that made it. A job that fails part way stays ``pending``; every later
attempt prints it marked COPY, since part of it may already be in the
shopper's hand.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from app.domain.sale import PaidSale
from app.storage.db import open_database, write_transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrintJob:
    job_id: int
    order_id: str
    sale: PaidSale | None  # None for a document (a staff report)
    exit_pass: str
    copy: bool
    status: str  # pending, printed, unconfirmed (sent, but the printer never answered), cancelled
    attempts: int
    last_error: str
    document: str = ""  # a staff report's text, printed instead of a receipt


class PrintJobs:
    """Repository over the ``print_jobs`` table."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path) -> PrintJobs:
        """A repository on its own connection, for another thread."""
        return cls(open_database(path, migrate=False))

    def add(self, sale: PaidSale, exit_pass: str, now: datetime, copy: bool = False) -> int:
        with write_transaction(self.db):
            cursor = self.db.execute(
                "INSERT INTO print_jobs (order_id, sale, exit_pass, copy, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [sale.order_id, json.dumps(sale.to_dict(), ensure_ascii=False), exit_pass,
                 int(copy), now.isoformat(), now.isoformat()],
            )
            return int(cursor.lastrowid or 0)

    def add_document(self, name: str, text: str, now: datetime) -> int:
        """A staff report (or any plain text) to print; ``name`` stands where an order id
        would."""
        with write_transaction(self.db):
            cursor = self.db.execute(
                "INSERT INTO print_jobs (order_id, sale, exit_pass, copy, created_at, "
                "updated_at, document) VALUES (?, '{}', '', 0, ?, ?, ?)",
                [name, now.isoformat(), now.isoformat(), text])
            return int(cursor.lastrowid or 0)

    def reprint(self, order_id: str, now: datetime) -> int:
        """A new job printing the latest receipt of ``order_id`` again, marked COPY."""
        job = self.latest_for(order_id)
        if job is None or job.sale is None:
            raise KeyError(f"no receipt for order {order_id!r}")
        return self.add(job.sale, job.exit_pass, now, copy=True)

    def _job(self, row: tuple[Any, ...]) -> PrintJob:
        job_id, order_id, sale, exit_pass, copy, status, attempts, last_error, document = row
        parsed = None if document else PaidSale.from_dict(json.loads(sale))
        return PrintJob(job_id, order_id, parsed, exit_pass, bool(copy), status, attempts,
                        last_error, document)

    _COLUMNS = ("job_id, order_id, sale, exit_pass, copy, status, attempts, last_error, "
                "document")

    def get(self, job_id: int) -> PrintJob | None:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM print_jobs WHERE job_id = ?",
                              [job_id]).fetchone()
        return self._job(row) if row else None

    def latest_for(self, order_id: str) -> PrintJob | None:
        row = self.db.execute(
            f"SELECT {self._COLUMNS} FROM print_jobs WHERE order_id = ? ORDER BY job_id DESC",
            [order_id]).fetchone()
        return self._job(row) if row else None

    def first_for(self, order_id: str) -> PrintJob | None:
        """The first job of ``order_id``: the receipt its sale was completed with."""
        row = self.db.execute(
            f"SELECT {self._COLUMNS} FROM print_jobs WHERE order_id = ? ORDER BY job_id LIMIT 1",
            [order_id]).fetchone()
        return self._job(row) if row else None

    def exit_passes(self) -> list[str]:
        """Every distinct exit pass queued for printing (documents carry none)."""
        return [str(p) for (p,) in self.db.execute(
            "SELECT DISTINCT exit_pass FROM print_jobs WHERE exit_pass != ''")]

    def pending(self) -> list[PrintJob]:
        rows = self.db.execute(
            f"SELECT {self._COLUMNS} FROM print_jobs WHERE status = 'pending' ORDER BY job_id"
        ).fetchall()
        jobs = []
        for row in rows:
            try:
                jobs.append(self._job(row))
            except (ValueError, KeyError, TypeError):
                # A damaged row must not hold up every receipt behind it.
                log.error("print job %s cannot be read; skipped", row[0])
        return jobs

    def unconfirmed(self) -> list[PrintJob]:
        rows = self.db.execute(
            f"SELECT {self._COLUMNS} FROM print_jobs WHERE status = 'unconfirmed' "
            "ORDER BY job_id").fetchall()
        return [self._job(r) for r in rows]

    def count_unconfirmed(self) -> int:
        return int(self.db.execute(
            "SELECT count(*) FROM print_jobs WHERE status = 'unconfirmed'").fetchone()[0])

    def count_pending(self) -> int:
        return int(self.db.execute(
            "SELECT count(*) FROM print_jobs WHERE status = 'pending'").fetchone()[0])

    def started(self, job_id: int, now: datetime) -> None:
        """Bytes are about to go to the printer: any later attempt prints a COPY."""
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE print_jobs SET attempts = attempts + 1, copy = 1, updated_at = ? "
                "WHERE job_id = ?", [now.isoformat(), job_id])

    def finish(self, job_id: int, status: str, now: datetime, error: str = "") -> None:
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE print_jobs SET status = ?, last_error = ?, updated_at = ? "
                "WHERE job_id = ?", [status, error, now.isoformat(), job_id])

    def failed(self, job_id: int, error: str, now: datetime) -> None:
        """Bytes went out but the receipt did not complete: it stays pending, and is
        printed again marked COPY, since part of it may be in the shopper's hand."""
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE print_jobs SET copy = 1, last_error = ?, updated_at = ? "
                "WHERE job_id = ?", [error, now.isoformat(), job_id])
