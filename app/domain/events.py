"""Shopper behaviour events: what happened at the kiosk, in the words the store's backend uses.

Every event has a UUID ``event_id``, a per-kiosk ``seq`` that only grows
(given by the outbox, never by a clock), ``occurred_at`` (RFC 3339 with its
offset), the ``session_id``, the ``member_id`` (or None) and a typed
``payload``: each type names the payload fields it must carry, and
``new_event`` refuses an event without them. The outbox writes an event in
the same transaction as the change it records.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_ENDED = "session_ended"
    SESSION_ABANDONED = "session_abandoned"
    MEMBER_IDENTIFIED = "member_identified"
    ITEM_SCANNED = "item_scanned"
    SCAN_REJECTED = "scan_rejected"
    QUANTITY_CHANGED = "quantity_changed"
    ITEM_REMOVED = "item_removed"
    HELP_REQUESTED = "help_requested"
    AGE_CHECK_REQUESTED = "age_check_requested"
    AGE_CHECK_APPROVED = "age_check_approved"
    PAYMENT_STARTED = "payment_started"
    PAYMENT_PAID = "payment_paid"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_CANCELLED = "payment_cancelled"
    PAYMENT_EXPIRED = "payment_expired"
    RECEIPT_PRINTED = "receipt_printed"
    RECEIPT_FAILED = "receipt_failed"
    EXIT_AUDIT_FLAGGED = "exit_audit_flagged"
    STAFF_ACTION = "staff_action"
    EVENTS_EVICTED = "events_evicted"  # the gap marker a full outbox leaves (see EVICTABLE)


# The payload fields each type must carry (more are allowed).
REQUIRED: dict[EventType, tuple[str, ...]] = {
    EventType.SESSION_STARTED: ("how",),  # "start_button", "member_scan", "product_scan"
    EventType.SESSION_ENDED: ("order_id", "total_minor", "item_count"),
    EventType.SESSION_ABANDONED: ("cart",),  # the cart at that moment
    EventType.MEMBER_IDENTIFIED: ("how", "provisional"),  # "member_qr", "phone"
    EventType.ITEM_SCANNED: ("code", "product", "price_minor", "how"),  # camera/wedge/serial/manual
    EventType.SCAN_REJECTED: ("reason", "how"),
    EventType.QUANTITY_CHANGED: ("line_id", "product", "quantity"),
    EventType.ITEM_REMOVED: ("line_id", "product"),
    EventType.HELP_REQUESTED: ("reason",),
    EventType.AGE_CHECK_REQUESTED: ("line_id", "product", "min_age"),
    EventType.AGE_CHECK_APPROVED: ("line_id", "staff"),
    EventType.PAYMENT_STARTED: ("order_id", "amount_minor", "method"),
    EventType.PAYMENT_PAID: ("order_id", "amount_minor", "provider_ref"),
    EventType.PAYMENT_FAILED: ("order_id", "reason"),
    EventType.PAYMENT_CANCELLED: ("order_id",),
    EventType.PAYMENT_EXPIRED: ("order_id",),
    EventType.RECEIPT_PRINTED: ("order_id",),
    EventType.RECEIPT_FAILED: ("order_id", "reason"),
    EventType.EXIT_AUDIT_FLAGGED: ("order_id", "reasons"),
    EventType.STAFF_ACTION: ("action", "staff"),
    # seqs first_seq..last_seq held ``count`` evicted behaviour events (kept ones in between)
    EventType.EVENTS_EVICTED: ("count", "first_seq", "last_seq"),
}

EVICTABLE: frozenset[EventType] = frozenset({
    EventType.SESSION_STARTED, EventType.SESSION_ABANDONED, EventType.MEMBER_IDENTIFIED,
    EventType.ITEM_SCANNED, EventType.SCAN_REJECTED, EventType.QUANTITY_CHANGED,
    EventType.ITEM_REMOVED, EventType.HELP_REQUESTED, EventType.AGE_CHECK_REQUESTED,
})
"""The behaviour events a full outbox may evict, oldest first (issue 16, fault 4).

Only what the shopper did on the way to paying: starting, identifying, scanning,
changing and removing lines, asking for help or an age check, walking away. Never
evicted, because money, the receipt or an audit depends on them:

- money: ``payment_*`` and ``session_ended`` (the sale's order, total and items);
- receipts: ``receipt_printed``, ``receipt_failed``;
- audit and staff: ``exit_audit_flagged``, ``age_check_approved`` (a staff member's
  decision, named), ``staff_action``;
- the gap marker ``events_evicted`` itself, which tells the backend what is missing.

A new event type is kept unless it is added here on purpose.
"""


class BadEvent(ValueError):
    """An event missing payload fields or carrying values JSON cannot hold."""


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    type: EventType
    occurred_at: datetime
    session_id: str
    member_id: str | None
    payload: dict[str, Any]

    def wire(self, seq: int, payload_json: str) -> str:
        """The event as the membership API carries it (docs/membership-api.yaml), as JSON
        text around its already encoded payload."""
        return wire_text(self.event_id, seq, self.type.value, self.occurred_at.isoformat(),
                         self.session_id, self.member_id, payload_json)


def wire_text(event_id: str, seq: int, type_: str, occurred_at: str, session_id: str,
              member_id: str | None, payload_json: str) -> str:
    return (f'{{"event_id":{json.dumps(event_id)},"seq":{seq},"type":{json.dumps(type_)},'
            f'"occurred_at":{json.dumps(occurred_at)},"session_id":{json.dumps(session_id)},'
            f'"member_id":{json.dumps(member_id)},"payload":{payload_json}}}')


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_json_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def new_event(type_: EventType | str, *, occurred_at: datetime, session_id: str,
              member_id: str | None = None, payload: dict[str, Any] | None = None,
              event_id: str | None = None) -> Event:
    kind = EventType(type_)
    body = dict(payload or {})
    missing = [k for k in REQUIRED[kind] if k not in body]
    if missing:
        raise BadEvent(f"{kind.value} needs payload fields {', '.join(missing)}")
    if not _json_safe(body):
        raise BadEvent(f"{kind.value} payload holds values JSON cannot carry")
    if occurred_at.tzinfo is None:
        raise BadEvent("occurred_at must carry its UTC offset")
    return Event(event_id or str(uuid.uuid4()), kind, occurred_at, session_id, member_id, body)
