"""Staff alerts on disk (table ``staff_alerts``): what staff mode and `kiosk doctor` show.

Alerts are raised by payments (a payment flagged for staff), the outbox (filling
up) and the uploader (rejected events, a refused token). Each writer decides
what counts as "the same alert" (``exists``) and adds one only if there is none,
inside its own transaction, so an alert is never raised twice by a race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from app.storage.db import write_transaction


@dataclass(frozen=True)
class StaffAlert:
    kind: str  # "payment", "outbox", "uploader"
    ref: str  # what it is about: an order id, "events", "fill"
    message: str
    created_at: str


class StaffAlerts:
    """Repository over ``staff_alerts`` (its only owner)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, kind: str, ref: str, message: str, now: datetime) -> None:
        """A new alert (inside the caller's transaction, if any)."""
        with write_transaction(self.db):
            self.db.execute("INSERT INTO staff_alerts (kind, ref, message, created_at) "
                            "VALUES (?, ?, ?, ?)", [kind, ref, message, now.isoformat()])

    def exists(self, kind: str, *, ref: str | None = None, message: str | None = None,
               unresolved_only: bool = True) -> bool:
        """Whether an alert of ``kind`` (and ``ref``, ``message`` when given) is on record;
        with ``unresolved_only``, only one staff have not resolved counts."""
        sql = "SELECT 1 FROM staff_alerts WHERE kind = ?"
        args: list[Any] = [kind]
        if ref is not None:
            sql += " AND ref = ?"
            args.append(ref)
        if message is not None:
            sql += " AND message = ?"
            args.append(message)
        if unresolved_only:
            sql += " AND resolved_at IS NULL"
        return self.db.execute(sql, args).fetchone() is not None

    def unresolved(self, *, newest_first: bool = False,
                   limit: int | None = None) -> list[StaffAlert]:
        """Alerts staff have not resolved: oldest first (by id), or newest first (by time)."""
        order = "created_at DESC" if newest_first else "alert_id"
        sql = ("SELECT kind, ref, message, created_at FROM staff_alerts "
               f"WHERE resolved_at IS NULL ORDER BY {order}")
        args: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [StaffAlert(r[0], r[1], r[2], r[3]) for r in self.db.execute(sql, args)]

    def count_refs(self, kind: str, since: str, until: str) -> int:
        """How many different things (refs) raised ``kind`` alerts with
        ``since <= created_at < until`` (ISO 8601 strings)."""
        row = self.db.execute("SELECT count(DISTINCT ref) FROM staff_alerts WHERE kind = ? AND "
                              "created_at >= ? AND created_at < ?",
                              [kind, since, until]).fetchone()
        return int(row[0])


__all__ = ["StaffAlert", "StaffAlerts"]


ALERTS_FILE = "ALERTS.txt"


def append_alert_file(data_dir: Path, kind: str, message: str, now: datetime) -> Path:
    """Append one line ``<ISO time> <kind>: <message>`` to ``<data_dir>/ALERTS.txt`` and
    return its path: a staff alert that must be kept when the database itself cannot be
    written (it is damaged, or the backup that failed was of it). Plain text, so staff
    read it with any tool; ``OSError`` if the directory cannot be written."""
    path = data_dir / ALERTS_FILE
    with path.open("a", encoding="utf-8") as out:
        out.write(f"{now.isoformat(timespec='seconds')} {kind}: {' '.join(message.split())}\n")
    return path
