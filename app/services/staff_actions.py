"""Staff actions that staff mode and the ``kiosk`` command both take, done once.

A store manager may reprint a receipt, close the period with a Z report, send
rejected events again or change who is staff either on the kiosk's staff screen
or with ``kiosk`` on the store PC. Each function here is the whole action: the
work, the audit row (always ``{"lane": <lane id>, ...}`` and the actor's name),
and the print queue and printer wake where there is paper. Staff mode and the
CLI differ only in who acts (``Acting``):

- staff mode acts as the signed-in staff member, and while a shopper session is
  open at the lane also records a ``staff_action`` event into that session
  (``Acting.staff_event``, made by ``session_event``);
- the CLI acts as ``--staff`` or ``"cli"``, outside any shopper session, so it
  records no event (``Acting.staff_event`` is None). Its printer wake is a no-op:
  the running kiosk's printer finds the queued job on its next poll (about 1 s).

Pure service code: storage and domain only, no devices, no UI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import sqlite_utils

from app.domain.clock import Clock
from app.domain.events import Event, EventType, new_event
from app.domain.payment import PaymentError, error_text
from app.services.receipts import reprint
from app.services.reports import Report, Reports
from app.storage.audit import AuditEntry, AuditLog
from app.storage.db import write_transaction
from app.storage.payments_repo import PaymentsRepo
from app.storage.print_jobs import PrintJobs
from app.storage.sessions_repo import Sessions
from app.storage.staff_book import StaffBook, StaffMember

if TYPE_CHECKING:
    from app.services.payments import PaymentDesk

StaffEvent = Callable[[str, str, datetime], None]
"""Records that staff took ``action`` as ``actor`` at a time: (action, actor, at)."""

CLI_ACTOR = "cli"


class EventSink(Protocol):
    """Where a shopper session's events go (the outbox)."""

    def record(self, event: Event) -> int: ...


class OpenSession(Protocol):
    """The shopper session open at the lane, as far as a staff event needs it."""

    @property
    def session_id(self) -> str: ...

    @property
    def member_id(self) -> str | None: ...


@dataclass(frozen=True)
class Acting:
    """Who takes an action and at which lane.

    ``actor`` is the staff member's name (or ``"cli"``), written as the audit row's
    actor; ``lane_id`` goes into every audit row's detail as ``"lane"``;
    ``staff_event`` is set only in staff mode with a shopper session open (see
    ``session_event``); the CLI never has one.
    """

    actor: str
    lane_id: str
    staff_event: StaffEvent | None = None


def session_event(outbox: EventSink, session: OpenSession | None) -> StaffEvent | None:
    """The ``staff_action`` event recorder for ``session``, or None when no shopper
    session is open (then a staff action is audited only)."""
    if session is None:
        return None
    session_id, member_id = session.session_id, session.member_id

    def emit(action: str, actor: str, at: datetime) -> None:
        outbox.record(new_event(EventType.STAFF_ACTION, occurred_at=at, session_id=session_id,
                                member_id=member_id,
                                payload={"action": action, "staff": actor}))
    return emit


def _nothing() -> None:
    return None


def record(audit: AuditLog, clock: Clock, by: Acting, action: str, detail: dict[str, Any],
           *, event: bool = True) -> AuditEntry:
    """Write one staff action to the audit log as ``by.actor`` with
    ``{"lane": by.lane_id, **detail}``, then (``event`` and a session open) the
    session's ``staff_action`` event. Returns the audit row."""
    now = clock.now()
    entry = audit.append(action, by.actor, {"lane": by.lane_id, **detail}, now)
    if event and by.staff_event is not None:
        by.staff_event(action, by.actor, now)
    return entry


def reprint_receipt(jobs: PrintJobs, audit: AuditLog, clock: Clock, by: Acting, order_id: str,
                    wake_printer: Callable[[], None] = _nothing) -> int:
    """Queue another copy (marked COPY) of sale ``order_id``'s receipt, wake the printer,
    audit ``reprint`` ``{"lane", "order_id", "job_id"}``. Returns the new print job's id.

    Raises KeyError when the order has no receipt (nothing is queued or audited)."""
    job_id = reprint(jobs, order_id, clock)
    wake_printer()
    record(audit, clock, by, "reprint", {"order_id": order_id, "job_id": job_id})
    return job_id


def close_period(reports: Reports, jobs: PrintJobs, clock: Clock, by: Acting,
                 wake_printer: Callable[[], None] = _nothing) -> Report:
    """Take the Z report: the period closes, the report is kept and audited (``z_report``
    ``{"lane", "z_number", "sales_count", "net_minor"}`` as ``by.actor``, in the report's
    own transaction: see ``Reports.z``), then queued for the printer as ``Z<number>`` and
    the printer woken. No ``staff_action`` event: the period is the lane's, not a
    shopper's. Returns the report."""
    report = reports.z(clock.now(), by.actor)
    jobs.add_document(f"Z{report.z_number}", report.text(), clock.now())
    wake_printer()
    return report


def retry_dead_letters(retry_dead: Callable[[], int], audit: AuditLog, clock: Clock,
                       by: Acting) -> int:
    """Queue every event the backend set aside (dead letters) to be sent again
    (``retry_dead``: the outbox's own), and audit ``retry_dead_letters``
    ``{"lane", "events": count}``. Returns how many events were queued again."""
    count = retry_dead()
    record(audit, clock, by, "retry_dead_letters", {"events": count})
    return count


def add_staff(book: StaffBook, audit: AuditLog, clock: Clock, by: Acting, name: str,
              role: str, pin: str) -> StaffMember:
    """Add a staff member (``role`` attendant or manager, ``pin`` 4-12 digits, never
    stored or audited) and audit ``staff_added`` ``{"lane", "name", "role"}``.

    Raises StaffError (bad name, role or PIN; name or PIN taken): nothing is audited."""
    member = book.add(name, role, pin, clock.now())
    record(audit, clock, by, "staff_added", {"name": name, "role": role})
    return member


def remove_staff(book: StaffBook, audit: AuditLog, clock: Clock, by: Acting,
                 name: str) -> None:
    """Remove a staff member (their PIN and badge stop working at once) and audit
    ``staff_removed`` ``{"lane", "name"}``. Raises StaffError for an unknown name."""
    book.remove(name)
    record(audit, clock, by, "staff_removed", {"name": name})


class LaneBusy(ValueError):
    """Store data may not change now: a shopper has ``what`` open ("session" or
    "payment") at this lane."""

    def __init__(self, what: str) -> None:
        super().__init__(f"a shopper's {what} is open at this lane: store data changes only "
                         "between shoppers; try again when the lane is at its start screen")
        self.what = what


class RollsBack(Protocol):
    """``app.services.store_data.StoreData`` as a rollback needs it."""

    def rollback(self, kind: str, staff: str) -> tuple[int, int]: ...


def shopper_open_on_disk(db: sqlite_utils.Database, lane_id: str) -> str | None:
    """What a shopper has open at lane ``lane_id`` according to its database: "payment"
    (a payment in an open state), "session" (a session not ended), or None. This is what
    a command outside the running kiosk can know; the running lane asks itself
    (``LaneControl.shopper_busy``)."""
    if PaymentsRepo(db).all_open():
        return "payment"
    return "session" if Sessions(db).open_for_lane(lane_id) is not None else None


def rollback_between_shoppers(db: sqlite_utils.Database, data: RollsBack, kind: str,
                              by: Acting) -> tuple[int, int]:
    """Roll ``kind`` (catalogue, promotions, lane-keys) back to the version before the
    applied one, as ``by.actor``, from outside the running kiosk (``kiosk sync rollback``):
    the check that no session or payment is open and the rollback hold one write
    transaction (BEGIN IMMEDIATE; StoreData's own transaction nests as a savepoint), so
    a shopper cannot start between them. StoreData audits it (staff, kind, from, to).
    Returns (from, to). Raises LaneBusy (nothing changed), ValueError with the reason
    when there is nothing to roll back to."""
    with write_transaction(db):
        busy = shopper_open_on_disk(db, by.lane_id)
        if busy is not None:
            raise LaneBusy(busy)
        return data.rollback(kind, by.actor)


@dataclass(frozen=True)
class Replayed:
    """What a relayed notification did: ``outcome`` is ``"applied"`` (verified and applied:
    ``before`` -> ``after``, the payment's states), ``"duplicate"`` (verified, its id was
    applied before: no second effect) or ``"refused"`` (``why``: not verified, stale, for no
    payment on this kiosk, or the provider could not be asked)."""

    outcome: str
    out_trade_no: str = ""
    before: str = ""
    after: str = ""
    why: str = ""


def replay_notification(desk: PaymentDesk, audit: AuditLog, clock: Clock, by: Acting,
                        headers: Mapping[str, str], body: bytes) -> Replayed:
    """Feed a provider notification that a store backend relayed (``headers`` and the
    ``body`` bytes exactly as the provider sent them) into ``PaymentDesk.notify``, which
    verifies it with the adapter's own rules (signature, timestamp window, decryption) and
    applies each notification id once. Audits ``payment_notification_replayed``
    ``{"lane", "outcome", "out_trade_no", "notification_id", "state", "why"}`` (never the
    body or headers). Returns what happened; refusals are returned, not raised."""
    from app.services.payment_port import InvalidNotification

    def audited(result: Replayed, notification_id: str = "") -> Replayed:
        record(audit, clock, by, "payment_notification_replayed", {
            "outcome": result.outcome, "out_trade_no": result.out_trade_no,
            "notification_id": notification_id, "state": result.after, "why": result.why},
            event=False)
        return result

    try:
        note = desk.provider.parse_notification(headers, body)
    except InvalidNotification as exc:
        return audited(Replayed("refused", why=f"not verified: {exc}"))
    no, nid = note.out_trade_no, note.notification_id
    before = desk.repo.get(no)
    if before is None:
        return audited(Replayed("refused", no, why=f"no payment {no!r} on this kiosk"), nid)
    if desk.repo.notification_applied(nid):
        return audited(Replayed("duplicate", no, before.state.value, before.state.value,
                                "this notification id was applied before"), nid)
    try:
        after = desk.notify(headers, body)
    except InvalidNotification as exc:
        return audited(Replayed("refused", no, before.state.value, before.state.value,
                                f"not verified: {exc}"), nid)
    except PaymentError as exc:
        return audited(Replayed("refused", no, before.state.value, before.state.value,
                                error_text(exc)), nid)
    state = (after or before).state.value
    return audited(Replayed("applied", no, before.state.value, state), nid)


__all__ = ["CLI_ACTOR", "Acting", "EventSink", "LaneBusy", "OpenSession", "Replayed",
           "RollsBack", "StaffEvent", "add_staff", "close_period", "record", "remove_staff",
           "replay_notification", "reprint_receipt", "retry_dead_letters",
           "rollback_between_shoppers", "session_event", "shopper_open_on_disk"]
