"""Z reports on disk (table ``z_reports``): each closed period, with the marks it ended at.

A Z report ends its period at row ids (the last sale, the last payment step,
the audit row it wrote), so the next period starts exactly where it stopped.
``add`` joins the caller's transaction: the report, its audit row and the read
of its figures are one snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from app.storage.db import write_transaction


@dataclass(frozen=True)
class ZMarks:
    """Where the last Z period ended: its close time, last sale row, payment step, audit row."""

    closed_at: str
    last_sale: int
    last_step: int
    audit_seq: int


class ZReports:
    """Repository over ``z_reports`` (its only owner)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def last_marks(self) -> ZMarks | None:
        """The newest Z report's marks, or None before the first Z."""
        row = self.db.execute("SELECT closed_at, last_sale_rowid, last_step_id, audit_seq "
                              "FROM z_reports ORDER BY z_number DESC LIMIT 1").fetchone()
        return ZMarks(str(row[0]), int(row[1]), int(row[2]), int(row[3])) if row else None

    def next_number(self) -> int:
        """The number the next Z report takes (1 for the first)."""
        return int(self.db.execute("SELECT coalesce(max(z_number), 0) + 1 FROM z_reports"
                                   ).fetchone()[0])

    def add(self, number: int, opened_at: str, closed_at: str, body: dict[str, Any],
            audit_seq: int, audit_hash: str, last_sale: int, last_step: int) -> None:
        """Keep a Z report (inside the caller's transaction, if any)."""
        with write_transaction(self.db):
            self.db.execute("INSERT INTO z_reports (z_number, opened_at, closed_at, body, "
                            "audit_seq, audit_hash, last_sale_rowid, last_step_id) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [number, opened_at, closed_at, json.dumps(body), audit_seq,
                             audit_hash, last_sale, last_step])

    def heads(self) -> list[tuple[int, str]]:
        """Every audit head (seq, hash) a Z report carried, oldest report first."""
        return [(int(a), str(b)) for a, b in self.db.execute(
            "SELECT audit_seq, audit_hash FROM z_reports ORDER BY z_number")]


__all__ = ["ZMarks", "ZReports"]
