"""X and Z reports: what the lane took since the last Z, and closing the period.

Figures come from the records, not from counters that could drift: paid sales
(``sales``), refunds (the payment steps the desk logs when a refund succeeds),
voids and price overrides (the audit log), abandoned sessions, exit audits
(flags signed into the sales) and payments flagged for staff. Money is
cut into periods by row id, not by clock: each sale and refund is in exactly
one Z, even one that commits while the Z is being taken. A Z report is
kept (``z_reports``) with the audit log's head, which is how a shortened log
is caught later, and is written to the audit log itself. ``net`` is always
the period's sales less its refunds.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlite_utils

from app.domain.money import Money
from app.storage.alerts import StaffAlerts
from app.storage.audit import AuditLog
from app.storage.db import write_transaction
from app.storage.payments_repo import PaymentsRepo
from app.storage.sales_repo import Sales
from app.storage.sessions_repo import Sessions
from app.storage.store_data_repo import current_versions
from app.storage.z_reports import ZReports

EPOCH = "0000"
REFUND_NOTE = re.compile(r"^refunded (\d+) as ")


@dataclass(frozen=True)
class Marks:
    """Where a period starts or ends: a time, and the last sale, payment step and audit row."""

    at: str
    sale: int
    step: int
    audit: int


@dataclass(frozen=True)
class Report:
    kind: str  # "X" or "Z"
    z_number: int | None  # the Z this closed (None for X)
    opened_at: str  # the period: since the last Z (or the first sale)
    closed_at: str
    lane_id: str
    currency: str
    body: dict[str, Any]
    zone: tzinfo = UTC  # the store's time zone (store.time_zone): what text() shows

    def local(self, at: str) -> datetime | None:
        """A period mark (ISO 8601, UTC) as the store's local time; None for the start of
        the records (no Z yet: ``EPOCH``)."""
        if at == EPOCH:
            return None
        when = datetime.fromisoformat(at)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(self.zone)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "z_number": self.z_number, "lane_id": self.lane_id,
                "opened_at": self.opened_at, "closed_at": self.closed_at,
                "currency": self.currency, **self.body}

    def text(self) -> str:
        """The printed and on-screen form (English: staff reports are read by staff)."""
        b = self.body

        def m(minor: int) -> str:
            return Money(minor, self.currency).to_decimal_string()
        title = f"{self.kind} REPORT" + (f" #{self.z_number}" if self.z_number else "")
        def when(at: str) -> str:
            local = self.local(at)
            return local.strftime("%Y-%m-%d %H:%M:%S %z") if local else "the first sale"
        lines = [title, f"Lane: {self.lane_id}", f"From {when(self.opened_at)}",
                 f"To   {when(self.closed_at)}", "-" * 24,
                 f"Sales: {b['sales_count']}  total {m(b['sales_minor'])}"]
        for method, row in sorted(b["by_method"].items()):
            lines.append(f"  {method}: {row['count']}  {m(row['minor'])}")
        lines += [f"Refunds: {b['refunds_count']}  total {m(b['refunds_minor'])}",
                  f"Net: {m(b['net_minor'])}", "-" * 24,
                  f"Voided lines: {b['voids']}", f"Price overrides: {b['price_overrides']}",
                  f"Abandoned carts: {b['abandoned_carts']}",
                  f"Exit audits: {b['exit_audits']}",
                  f"Payments flagged for staff: {b['payments_flagged']}",
                  *_version_lines(b),
                  f"Audit head: {b['audit_seq']}:",  # in full: `kiosk audit verify --head`
                  b["audit_hash"][:32], b["audit_hash"][32:]]
        return "\n".join(lines)


def _versions_text(versions: dict[str, Any] | None) -> str:
    if not versions:
        return "not recorded"
    order = ("catalogue", "promotions", "lane-keys")  # store_data.KINDS
    kinds = sorted(versions, key=lambda k: (order.index(k) if k in order else 9, k))
    return ", ".join(f"{k} {'-' if versions[k] is None else versions[k]}" for k in kinds)


def _version_lines(body: dict[str, Any]) -> list[str]:
    """The store data lines of a report (reports made before issue 22 have none)."""
    if "data_versions" not in body:
        return []
    lines = [f"Data now: {_versions_text(body['data_versions'])}"]
    lines += [f"Sold under {_versions_text(row['versions'])}: {row['sales']} sale(s)"
              for row in body.get("sold_under", [])]
    return lines


class Reports:
    def __init__(self, db: sqlite_utils.Database, audit: AuditLog, lane_id: str,
                 currency: str, on_closed: Callable[[], object] = lambda: None,
                 zone: tzinfo = UTC) -> None:
        """``on_closed``: called after each Z report has committed (the end-of-day
        backup: app.bootstrap.build_reports); ``zone``: the store's time zone, in which
        reports show their times (the marks themselves are kept in UTC)."""
        self.zone = zone
        self.db, self.audit = db, audit
        self.on_closed = on_closed
        self.sales, self.payments = Sales(db), PaymentsRepo(db)
        self.sessions, self.staff_alerts = Sessions(db), StaffAlerts(db)
        self.z_reports = ZReports(db)
        self.lane_id, self.currency = lane_id, currency

    def period_start(self) -> Marks:
        last = self.z_reports.last_marks()
        return Marks(last.closed_at, last.last_sale, last.last_step, last.audit_seq) \
            if last else Marks(EPOCH, 0, 0, 0)

    def _now_marks(self, now: datetime) -> Marks:
        return Marks(now.isoformat(), self.sales.last_mark(), self.payments.last_step_mark(),
                     self.audit.head()[0])

    def _body(self, start: Marks, end: Marks) -> dict[str, Any]:
        # Sales, refunds and audit rows by id: each in exactly one period. Abandoned carts
        # and alerts (counts, not money) by time.
        sales = self.sales.between(start.sale, end.sale)
        by_method: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "minor": 0})
        for sale in sales:
            by_method[sale.payment_method or "unknown"]["count"] += 1
            by_method[sale.payment_method or "unknown"]["minor"] += sale.total.minor
        refunds = [int(match.group(1)) for note in self.payments.refund_notes(start.step, end.step)
                   if (match := REFUND_NOTE.match(note))]
        audit_kinds = self.audit.count_kinds(start.audit, end.audit)
        abandoned = self.sessions.count_abandoned(start.at, end.at)
        flagged = self.staff_alerts.count_refs("payment", start.at, end.at)
        sales_minor = sum(s.total.minor for s in sales)
        seq, digest = self.audit.head()
        return {
            "sales_count": len(sales), "sales_minor": sales_minor,
            "by_method": dict(by_method),
            "refunds_count": len(refunds), "refunds_minor": sum(refunds),
            "net_minor": sales_minor - sum(refunds),
            "voids": audit_kinds.get("void_line", 0),
            "price_overrides": audit_kinds.get("override_price", 0),
            "abandoned_carts": int(abandoned),
            "exit_audits": sum(1 for s in sales if s.exit_audit),
            "payments_flagged": int(flagged),
            "audit_seq": seq, "audit_hash": digest,
            # Issue 22: the store data versions in effect now, and those the period's
            # sales were made under (each set with its count of sales).
            "data_versions": current_versions(self.db),
            "sold_under": [{"versions": json.loads(v) if v else None, "sales": n}
                           for v, n in self.sales.versions_between(start.sale, end.sale)],
        }

    def x(self, now: datetime) -> Report:
        start = self.period_start()
        end = self._now_marks(now)
        return Report("X", None, start.at, end.at, self.lane_id, self.currency,
                      self._body(start, end), self.zone)

    def z(self, now: datetime, staff: str) -> Report:
        """Close the period: the report is kept, and written to the audit log."""
        with write_transaction(self.db):  # one snapshot: nothing commits in between
            start = self.period_start()
            end = self._now_marks(now)
            body = self._body(start, end)
            number = self.z_reports.next_number()
            # The lane, as in every staff action's audit row (app.services.staff_actions).
            entry = self.audit.append("z_report", staff, {
                "lane": self.lane_id, "z_number": number, "sales_count": body["sales_count"],
                "net_minor": body["net_minor"]}, now)
            # The report carries the head *including* its own audit row.
            body["audit_seq"], body["audit_hash"] = entry.seq, entry.hash
            self.z_reports.add(number, start.at, end.at, body, entry.seq, entry.hash,
                               end.sale, end.step)
        self.on_closed()
        return Report("Z", number, start.at, end.at, self.lane_id, self.currency, body,
                      self.zone)

    def z_heads(self) -> list[tuple[int, str]]:
        """Every audit head a Z report carried (to check the log still reaches them)."""
        return self.z_reports.heads()


__all__ = ["Report", "Reports"]
