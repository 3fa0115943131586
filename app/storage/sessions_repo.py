"""Shopping sessions and their cart lines on disk (tables ``sessions`` and ``cart_lines``).

Every write joins the caller's transaction (``write_transaction`` nests as a
savepoint), so a cart change and its behaviour event commit together: the
session service opens the transaction, this repository and the outbox write
inside it. Alone, each write is its own atomic transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils

from app.domain.catalogue import Product, product_from_dict, product_to_dict
from app.domain.promotions import Promotion, promotion_from_dict, promotion_to_dict
from app.storage.db import write_transaction


@dataclass(frozen=True)
class StoredSession:
    session_id: str
    member_id: str | None
    member_provisional: bool


@dataclass(frozen=True)
class StoredLine:
    """One cart line as stored: the product by code and, since m010, as it was scanned
    (``product``: the snapshot the line is priced from; None for a line written before)."""

    line_id: int
    product_code: str
    quantity: int
    weight_g: int | None
    label_price_minor: int | None  # a price-embedded label's price, in minor units
    age_approved: bool
    product: Product | None = None


class Sessions:
    """Repository over ``sessions`` and ``cart_lines`` (their only owner)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, session_id: str, lane_id: str, started_at: str,
            promotions: list[Promotion] | None = None, currency: str = "") -> None:
        """A new open session; ``started_at`` is an ISO 8601 time with its offset;
        ``promotions``: those in force as it starts, kept for the whole session (amounts
        in ``currency``); None stores none (the session is priced with the current ones)."""
        kept = None if promotions is None else json.dumps(
            {"currency": currency, "promotions": [promotion_to_dict(p) for p in promotions]},
            ensure_ascii=False, sort_keys=True)
        with write_transaction(self.db):
            self.db.execute("INSERT INTO sessions (session_id, lane_id, started_at, promotions) "
                            "VALUES (?, ?, ?, ?)", [session_id, lane_id, started_at, kept])

    def promotions(self, session_id: str) -> list[Promotion] | None:
        """The promotions the session started with, or None (an unknown session, or one
        started before m010 kept them)."""
        row = self.db.execute("SELECT promotions FROM sessions WHERE session_id = ?",
                              [session_id]).fetchone()
        if row is None or row[0] is None:
            return None
        kept = json.loads(row[0])
        return [promotion_from_dict(p, kept["currency"]) for p in kept["promotions"]]

    def open_for_lane(self, lane_id: str) -> StoredSession | None:
        """The newest session of ``lane_id`` still open (a crash interrupted it), or None."""
        row = self.db.execute("SELECT session_id, member_id, member_provisional FROM sessions "
                              "WHERE lane_id = ? AND state = 'open' ORDER BY started_at DESC",
                              [lane_id]).fetchone()
        return StoredSession(str(row[0]), row[1], bool(row[2])) if row else None

    def member_provisional(self, session_id: str) -> bool:
        """Whether the session's member was identified only provisionally (offline);
        False for an unknown session."""
        row = self.db.execute("SELECT member_provisional FROM sessions WHERE session_id = ?",
                              [session_id]).fetchone()
        return bool(row[0]) if row else False

    def session_for_order(self, order_id: str) -> str | None:
        """The session that ended in the sale ``order_id``, or None."""
        row = self.db.execute("SELECT session_id FROM sessions WHERE order_id = ?",
                              [order_id]).fetchone()
        return str(row[0]) if row else None

    def close(self, session_id: str, state: str, ended_at: str, order_id: str | None) -> None:
        """End the session: ``state`` is 'paid' or 'abandoned'; ``order_id`` the sale's."""
        with write_transaction(self.db):
            self.db.execute("UPDATE sessions SET state = ?, ended_at = ?, order_id = ? "
                            "WHERE session_id = ?", [state, ended_at, order_id, session_id])

    def set_member(self, session_id: str, member_id: str, provisional: bool) -> None:
        with write_transaction(self.db):
            self.db.execute("UPDATE sessions SET member_id = ?, member_provisional = ? "
                            "WHERE session_id = ?", [member_id, int(provisional), session_id])

    def count_abandoned(self, since: str, until: str) -> int:
        """Sessions abandoned with ``since <= ended_at < until`` (ISO 8601 strings)."""
        row = self.db.execute("SELECT count(*) FROM sessions WHERE state = 'abandoned' AND "
                              "ended_at >= ? AND ended_at < ?", [since, until]).fetchone()
        return int(row[0])

    # -- cart lines ---------------------------------------------------------------------------
    def lines(self, session_id: str) -> list[StoredLine]:
        """The session's cart lines, by line id."""
        return [StoredLine(int(r[0]), str(r[1]), int(r[2]), r[3], r[4], bool(r[5]),
                           product_from_dict(json.loads(r[6])) if r[6] is not None else None)
                for r in self.db.execute(
                    "SELECT line_id, product_code, quantity, weight_g, label_price_minor, "
                    "age_approved, product FROM cart_lines WHERE session_id = ? "
                    "ORDER BY line_id", [session_id])]

    def put_line(self, session_id: str, line: StoredLine) -> None:
        """Write (add or replace) one cart line, with its product snapshot if it has one."""
        snapshot = None if line.product is None else json.dumps(
            product_to_dict(line.product), ensure_ascii=False, sort_keys=True)
        with write_transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO cart_lines (session_id, line_id, product_code, "
                "quantity, weight_g, label_price_minor, age_approved, product) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [session_id, line.line_id, line.product_code, line.quantity, line.weight_g,
                 line.label_price_minor, int(line.age_approved), snapshot])

    def remove_line(self, session_id: str, line_id: int) -> None:
        with write_transaction(self.db):
            self.db.execute("DELETE FROM cart_lines WHERE session_id = ? AND line_id = ?",
                            [session_id, line_id])


__all__ = ["Sessions", "StoredLine", "StoredSession"]
