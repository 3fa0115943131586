"""Payments on disk: every state change written (and logged) before the kiosk acts on it.

The ``payments`` table holds the current state of each payment; the
``payment_steps`` table keeps every step, for staff and for audits; this module
owns both, and ``notifications_seen``. Sales, staff alerts and receipt jobs are
written through their own repositories, inside the payment's transaction. A unique
partial index makes a second open payment for one cart impossible, whatever
the code above it does. ``complete_sale`` writes the paid payment, the sale
and its receipt job in one transaction: a paid sale cannot be half recorded.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

import sqlite_utils

from app.domain.events import EventType, new_event
from app.domain.payment import FINAL, OPEN, Payment, PaymentState
from app.domain.sale import PaidSale
from app.storage.alerts import StaffAlerts
from app.storage.audit import AuditLog
from app.storage.db import write_transaction
from app.storage.outbox import Outbox
from app.storage.print_jobs import PrintJobs
from app.storage.sales_repo import Sales

_FIELDS = ("out_trade_no", "cart_id", "amount_minor", "currency", "method", "state",
           "created_at", "expires_at", "qr_payload", "provider_ref", "paid_minor", "paid_at",
           "closing", "close_reason", "staff_flag", "last_error", "provider_refunded",
           "mode", "wallet", "code_submitted", "decline")


class OpenPaymentExists(Exception):
    """The cart already has an open payment (the database refused a second)."""


def _row(p: Payment, now: datetime) -> dict[str, Any]:
    return {
        "out_trade_no": p.out_trade_no, "cart_id": p.cart_id, "amount_minor": p.amount_minor,
        "currency": p.currency, "method": p.method, "state": p.state.value,
        "created_at": p.created_at.isoformat(), "expires_at": p.expires_at.isoformat(),
        "updated_at": now.isoformat(), "qr_payload": p.qr_payload,
        "provider_ref": p.provider_ref, "paid_minor": p.paid_minor,
        "paid_at": p.paid_at.isoformat() if p.paid_at else None, "closing": int(p.closing),
        "close_reason": p.close_reason, "staff_flag": p.staff_flag, "last_error": p.last_error,
        "provider_refunded": int(p.provider_refunded), "mode": p.mode, "wallet": p.wallet,
        "code_submitted": int(p.code_submitted), "decline": p.decline,
    }


def _payment(row: sqlite3.Row | tuple[Any, ...]) -> Payment:
    d = dict(zip(_FIELDS, row, strict=True))
    return Payment(
        out_trade_no=d["out_trade_no"], cart_id=d["cart_id"], amount_minor=d["amount_minor"],
        currency=d["currency"], method=d["method"], state=PaymentState(d["state"]),
        created_at=datetime.fromisoformat(d["created_at"]),
        expires_at=datetime.fromisoformat(d["expires_at"]),
        qr_payload=d["qr_payload"], provider_ref=d["provider_ref"], paid_minor=d["paid_minor"],
        paid_at=datetime.fromisoformat(d["paid_at"]) if d["paid_at"] else None,
        closing=bool(d["closing"]), close_reason=d["close_reason"],
        staff_flag=d["staff_flag"], last_error=d["last_error"],
        provider_refunded=bool(d["provider_refunded"]), mode=d["mode"], wallet=d["wallet"],
        code_submitted=bool(d["code_submitted"]), decline=d["decline"],
    )


_ENDED_EVENTS = {PaymentState.FAILED: EventType.PAYMENT_FAILED,
                 PaymentState.CANCELLED: EventType.PAYMENT_CANCELLED,
                 PaymentState.EXPIRED: EventType.PAYMENT_EXPIRED}


class PaymentsRepo:
    """Payments; with an ``outbox``, each step's behaviour event is written in the same
    transaction as the step (payment started, paid, failed, cancelled, expired)."""

    def __init__(self, db: sqlite_utils.Database, outbox: Outbox | None = None,
                 audit: AuditLog | None = None) -> None:
        self.db = db
        self.sales = Sales(db)
        self.staff_alerts = StaffAlerts(db)
        self.outbox = outbox
        self.audit = audit  # every payment outcome is audited, in the outcome's transaction

    def _audited(self, p: Payment, now: datetime, **detail: Any) -> None:
        if self.audit is not None:
            self.audit.append(f"payment_{p.state.value}", "kiosk", {
                "order_id": p.out_trade_no, "amount_minor": p.amount_minor,
                "paid_minor": p.paid_minor, "method": p.method, "staff_flag": p.staff_flag,
                **detail}, now)

    def _event(self, kind: EventType, p: Payment, now: datetime, **payload: Any) -> None:
        if self.outbox is not None:
            self.outbox.record(new_event(kind, occurred_at=now, session_id=p.cart_id,
                                         payload={"order_id": p.out_trade_no, **payload}))

    _SELECT = f"SELECT {', '.join(_FIELDS)} FROM payments"

    def add(self, p: Payment, sale_draft: dict[str, Any], now: datetime) -> None:
        row = _row(p, now) | {"sale_draft": json.dumps(sale_draft, ensure_ascii=False)}
        try:
            with write_transaction(self.db):
                self.db.execute(
                    f"INSERT INTO payments ({', '.join(row)}) VALUES "
                    f"({', '.join('?' for _ in row)})", list(row.values()))
                self._step(p, now, "created")
                # A payment code is recorded as used, with its wallet: never the code.
                extra = {"mode": p.mode, "wallet": p.wallet} if p.by_code else {}
                self._event(EventType.PAYMENT_STARTED, p, now, amount_minor=p.amount_minor,
                            method=p.method, **extra)
        except sqlite3.IntegrityError as exc:
            raise OpenPaymentExists(str(exc)) from None

    def transaction(self) -> Any:
        """One atomic unit over several repository calls (they nest as savepoints)."""
        return write_transaction(self.db)

    def save(self, p: Payment, now: datetime, note: str = "") -> bool:
        """Write ``p``; False (nothing written) if the row on disk is final (paid, failed,
        cancelled, expired) in another state than ``p``'s, or is marked refunded by the
        provider and ``p`` is not: a stale view of the payment (another desk or process
        read it before it ended) must never undo a payment, reopen one, nor end it twice.

        The end's audit row and behaviour event are written only by the save that moved
        the row from open to final, in the same transaction. A final payment becomes paid
        only through ``complete_sale`` (the provider took the money after all).
        """
        row = _row(p, now)
        final = ", ".join(f"'{s.value}'" for s in FINAL)
        with write_transaction(self.db):
            before = self.db.execute("SELECT state FROM payments WHERE out_trade_no = ?",
                                     [p.out_trade_no]).fetchone()
            cursor = self.db.execute(
                f"UPDATE payments SET {', '.join(f'{k} = ?' for k in row)} "
                f"WHERE out_trade_no = ? AND (state NOT IN ({final}) OR state = ?) "
                "AND (provider_refunded = 0 OR ? = 1)",
                [*row.values(), p.out_trade_no, p.state.value, int(p.provider_refunded)])
            if cursor.rowcount == 0:
                return False
            self._step(p, now, note)
            if p.staff_flag:
                self._alert(p, now)
            ended = _ENDED_EVENTS.get(p.state)
            if ended is not None and before is not None and \
                    PaymentState(before[0]) not in FINAL:
                extra = {"reason": p.decline or p.last_error or p.close_reason
                         or p.state.value} if ended is EventType.PAYMENT_FAILED else {}
                self._event(ended, p, now, **extra)
                self._audited(p, now, **extra)
        return True

    def refunded(self, p: Payment, now: datetime, amount_minor: int, refund_no: str,
                 refund_id: str, actor: str) -> None:
        """A refund the provider made: its step and its audit row, in one transaction."""
        with write_transaction(self.db):
            self._step(p, now, f"refunded {amount_minor} as {refund_no}: {refund_id}")
            if self.audit is not None:
                self.audit.append("refund", actor, {
                    "order_id": p.out_trade_no, "amount_minor": amount_minor,
                    "refund_no": refund_no, "refund_id": refund_id}, now)

    def refunded_minor(self, out_trade_no: str) -> int:
        """How much of this payment has been refunded so far."""
        total = 0
        for (note,) in self.db.execute("SELECT note FROM payment_steps WHERE out_trade_no = ? "
                                       "AND note LIKE 'refunded %'", [out_trade_no]):
            amount = note.split()[1]
            total += int(amount) if amount.isdigit() else 0
        return total

    def log(self, p: Payment, now: datetime, note: str) -> None:
        with write_transaction(self.db):
            self._step(p, now, note)

    def _step(self, p: Payment, now: datetime, note: str) -> None:
        self.db.execute("INSERT INTO payment_steps (out_trade_no, at, state, note) "
                        "VALUES (?, ?, ?, ?)", [p.out_trade_no, now.isoformat(),
                                                p.state.value, note])

    def _alert(self, p: Payment, now: datetime) -> None:
        # Once per payment and flag, resolved or not: a flag is raised once.
        if not self.staff_alerts.exists("payment", ref=p.out_trade_no, message=p.staff_flag,
                                        unresolved_only=False):
            self.staff_alerts.add("payment", p.out_trade_no, p.staff_flag, now)

    def get(self, out_trade_no: str) -> Payment | None:
        row = self.db.execute(f"{self._SELECT} WHERE out_trade_no = ?",
                              [out_trade_no]).fetchone()
        return _payment(row) if row else None

    def sale_draft(self, out_trade_no: str) -> dict[str, Any]:
        row = self.db.execute("SELECT sale_draft FROM payments WHERE out_trade_no = ?",
                              [out_trade_no]).fetchone()
        return dict(json.loads(row[0])) if row and row[0] else {}

    def open_for_cart(self, cart_id: str) -> Payment | None:
        states = ", ".join(f"'{s.value}'" for s in OPEN)
        row = self.db.execute(f"{self._SELECT} WHERE cart_id = ? AND state IN ({states})",
                              [cart_id]).fetchone()
        return _payment(row) if row else None

    def paid_for_cart(self, cart_id: str) -> Payment | None:
        row = self.db.execute(f"{self._SELECT} WHERE cart_id = ? AND state = 'paid'",
                              [cart_id]).fetchone()
        return _payment(row) if row else None

    def all_open(self) -> list[Payment]:
        states = ", ".join(f"'{s.value}'" for s in OPEN)
        rows = self.db.execute(f"{self._SELECT} WHERE state IN ({states}) "
                               "ORDER BY created_at").fetchall()
        return [_payment(r) for r in rows]

    def steps(self, out_trade_no: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT state, note FROM payment_steps WHERE out_trade_no = ? ORDER BY step_id",
            [out_trade_no]).fetchall()]

    def alerts(self) -> list[tuple[str, str]]:
        """Unresolved staff alerts (all kinds) as (ref, message), oldest first."""
        return [(a.ref, a.message) for a in self.staff_alerts.unresolved()]

    def count(self) -> int:
        """How many payments (provider orders) were ever created."""
        return int(self.db.execute("SELECT count(*) FROM payments").fetchone()[0])

    def latest(self) -> Payment | None:
        """The newest payment (by creation time, then insertion), or None."""
        row = self.db.execute(f"{self._SELECT} ORDER BY created_at DESC, rowid DESC LIMIT 1"
                              ).fetchone()
        return _payment(row) if row else None

    def all_payments(self) -> list[Payment]:
        """Every payment, oldest first (by creation time)."""
        return [_payment(r) for r in self.db.execute(f"{self._SELECT} ORDER BY created_at")]

    def last_step_mark(self) -> int:
        """The newest payment step's id (0 with none): where a report period ends."""
        return int(self.db.execute("SELECT coalesce(max(step_id), 0) FROM payment_steps"
                                   ).fetchone()[0])

    def refund_notes(self, after: int, upto: int) -> list[str]:
        """The notes of refund steps with ``after < step_id <= upto`` ('refunded N as ...'),
        oldest first."""
        return [str(note) for (note,) in self.db.execute(
            "SELECT note FROM payment_steps WHERE step_id > ? AND step_id <= ? AND note LIKE "
            "'refunded %' ORDER BY step_id", [after, upto])]

    def seen_notification(self, notification_id: str, out_trade_no: str,
                          now: datetime) -> bool:
        """Record a notification id; True if it had been seen before (a replay)."""
        try:
            with write_transaction(self.db):
                self.db.execute("INSERT INTO notifications_seen VALUES (?, ?, ?)",
                                [notification_id, out_trade_no, now.isoformat()])
        except sqlite3.IntegrityError:
            return True
        return False

    def complete_sale(self, p: Payment, sale: PaidSale, exit_pass: str,
                      now: datetime) -> int | None:
        """The paid payment, the sale and its receipt job: all written, or none.

        None if the payment was already paid (another desk or a notification got
        there first): the sale is completed exactly once. None too if the provider
        refunded or reversed the payment (``provider_refunded`` on disk): it is closed
        for good, and never a sale, whatever ``p`` says.
        """
        with write_transaction(self.db):
            cursor = self.db.execute(
                "UPDATE payments SET state = 'paid' WHERE out_trade_no = ? AND state != 'paid' "
                "AND provider_refunded = 0", [p.out_trade_no])
            if cursor.rowcount == 0:
                return None
            self.save(p, now, "paid")
            self._event(EventType.PAYMENT_PAID, p, now, amount_minor=p.paid_minor or 0,
                        provider_ref=p.provider_ref, staff_flag=p.staff_flag)
            self._audited(p, now, provider_ref=p.provider_ref)
            self.sales.add(sale, now)
            return PrintJobs(self.db).add(sale, exit_pass, now)

    def sale(self, order_id: str) -> PaidSale | None:
        return self.sales.get(order_id)

    def count_sales(self, order_id: str) -> int:
        return self.sales.count(order_id)

    def notification_applied(self, notification_id: str) -> bool:
        """Whether a notification id was recorded (applied) already; writes nothing."""
        return self.db.execute("SELECT 1 FROM notifications_seen WHERE notification_id = ?",
                               [notification_id]).fetchone() is not None
