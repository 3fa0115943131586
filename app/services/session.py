"""A shopping session: the cart on disk, each change written with its behaviour event.

Every change the shopper makes (a scan, a quantity, a removal) is applied to
the cart, then written to SQLite together with its event in one transaction.
If the write fails (the disk, the outbox cap), the cart in memory is put back
as it was: no change without its event, no event without its change. Scans
that are refused change nothing and record only their ``scan_rejected`` event.
A kiosk restarted mid-session finds the open session and its cart (``resume``).

A session's prices are fixed when they enter it (docs/pricing.md, "A session's
prices"): each line is stored with the product as it was scanned and resumed from
that snapshot, and the session keeps the promotions in force when it started
(``promotions``), so a catalogue or promotions import never alters an open cart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlite_utils

from app.domain.cart import Cart, CartLine
from app.domain.events import EventType, new_event
from app.domain.money import Money
from app.domain.promotions import Promotion
from app.domain.rejections import Refused
from app.domain.scan_input import CleanScan
from app.services.checkout import Checkout
from app.services.members import MemberIdentity
from app.storage.db import write_transaction
from app.storage.outbox import Outbox
from app.storage.sessions_repo import Sessions, StoredLine


class ShoppingSession:
    def __init__(self, db: sqlite_utils.Database, outbox: Outbox, checkout: Checkout,
                 lane_id: str, session_id: str, member_id: str | None = None,
                 promotions: list[Promotion] | None = None) -> None:
        self.db, self.outbox, self.checkout = db, outbox, checkout
        self.sessions = Sessions(db)
        self.lane_id, self.session_id = lane_id, session_id
        self.member_id = member_id
        # The promotions this session is priced with: those in force when it started.
        self.promotions: list[Promotion] = list(promotions or [])

    # -- life --------------------------------------------------------------------------------
    @classmethod
    def start(cls, db: sqlite_utils.Database, outbox: Outbox, checkout: Checkout,
              lane_id: str, how: str, promotions: list[Promotion] | None = None,
              currency: str = "") -> ShoppingSession:
        """A new session on ``lane_id``; ``promotions`` (amounts in ``currency``) are those
        in force now, stored with it and kept until it ends, whatever is imported since."""
        session_id = uuid.uuid4().hex
        session = cls(db, outbox, checkout, lane_id, session_id, promotions=promotions)
        now = checkout.clock.now()
        with write_transaction(db):
            session.sessions.add(session_id, lane_id, now.isoformat(), session.promotions,
                                 currency)
            session._event(EventType.SESSION_STARTED, how=how)
        # Only once it is on disk: a new, empty cart under the new session's id.
        checkout.cart_id, checkout.cart = session_id, Cart()
        return session

    @classmethod
    def resume(cls, db: sqlite_utils.Database, outbox: Outbox, checkout: Checkout,
               lane_id: str, current_promotions: list[Promotion] | None = None,
               ) -> ShoppingSession | None:
        """The session a crash or restart interrupted, with its cart, or None.

        Each line comes back as it was scanned (its stored product snapshot: a product
        withdrawn or re-priced since is still the line it was), with the promotions the
        session started with. Only a session written before migration m010 (no snapshot)
        is looked up in the catalogue and priced with ``current_promotions``."""
        sessions = Sessions(db)
        stored = sessions.open_for_lane(lane_id)
        if stored is None:
            return None
        checkout.cart_id = stored.session_id
        lines = []
        for s in sessions.lines(stored.session_id):
            product = s.product or checkout.catalogue.get(s.product_code)
            if product is None:
                continue  # pre-m010 line withdrawn from the catalogue since: nothing to sell
            price = Money(s.label_price_minor, product.price.currency) \
                if s.label_price_minor is not None else None
            lines.append(CartLine(s.line_id, product, s.quantity, s.weight_g, price,
                                  s.age_approved))
        checkout.cart = Cart(lines)
        kept = sessions.promotions(stored.session_id)
        return cls(db, outbox, checkout, lane_id, stored.session_id, stored.member_id,
                   promotions=kept if kept is not None else current_promotions)

    def end(self, order_id: str, total_minor: int, item_count: int,
            points_earned: int = 0) -> None:
        """The sale was paid: the session is over. ``points_earned`` (the sale's, 0 for a
        guest) travels in the event so head office credits the member from the events."""
        with write_transaction(self.db):
            self._close("paid", order_id)
            self._event(EventType.SESSION_ENDED, order_id=order_id, total_minor=total_minor,
                        item_count=item_count, points_earned=points_earned)

    def abandon(self, reason: str = "timeout") -> None:
        """The shopper walked away (or staff reset the kiosk): recorded with the cart."""
        cart = [{"product": ln.product.code, "name": ln.product.name_en,
                 "quantity": ln.quantity, "weight_g": ln.weight_g} for ln in self.checkout.lines()]
        with write_transaction(self.db):
            self._close("abandoned", None)
            self._event(EventType.SESSION_ABANDONED, cart=cart, reason=reason)

    def _close(self, state: str, order_id: str | None) -> None:
        self.sessions.close(self.session_id, state, self.checkout.clock.now().isoformat(),
                            order_id)

    # -- what the shopper does ---------------------------------------------------------------
    def identify(self, member: MemberIdentity) -> None:
        with write_transaction(self.db):
            self.sessions.set_member(self.session_id, member.member_id, member.provisional)
            self._event(EventType.MEMBER_IDENTIFIED, member_id=member.member_id,
                        how=member.how, provisional=member.provisional)
        self.member_id = member.member_id  # only once written with its event

    def scan(self, scan: CleanScan | str, how: str = "camera") -> CartLine:
        """Add what a scan names (``Checkout.add_scan``: cleaned already, or raw text).
        A refusal is recorded (scan_rejected) and raised."""
        try:
            line = self._change(lambda: self.checkout.add_scan(scan),
                                EventType.ITEM_SCANNED, how=how)
        except Refused as exc:
            with write_transaction(self.db):
                self._event(EventType.SCAN_REJECTED, reason=exc.refusal.code, how=how)
            raise
        return line

    def record(self, kind: EventType, **payload: Any) -> None:
        """An event of this session that changes no cart line (exit audit flagged...)."""
        with write_transaction(self.db):
            self._event(kind, **payload)

    def scan_refused(self, reason: str, how: str = "camera") -> None:
        """A scanner refused what it read before it became a scan: recorded, nothing added."""
        with write_transaction(self.db):
            self._event(EventType.SCAN_REJECTED, reason=reason, how=how)

    def set_quantity(self, line_id: int, quantity: int) -> CartLine:
        return self._change(lambda: self.checkout.cart.set_quantity(line_id, quantity),
                            EventType.QUANTITY_CHANGED)

    def remove(self, line_id: int) -> CartLine:
        return self._change(lambda: self.checkout.cart.remove(line_id), EventType.ITEM_REMOVED)

    def void(self, line_id: int, staff: str) -> CartLine:
        """Staff took a line off the cart."""
        return self._change(lambda: self.checkout.cart.remove(line_id), EventType.ITEM_REMOVED,
                            staff=staff)

    def override_price(self, line_id: int, line_total: Money, staff: str) -> CartLine:
        return self._change(lambda: self.checkout.cart.override_price(line_id, line_total),
                            EventType.STAFF_ACTION, action="override_price", staff=staff,
                            total_minor=line_total.minor)

    def approve_age(self, line_id: int, staff: str) -> CartLine:
        return self._change(lambda: self.checkout.cart.approve_age(line_id),
                            EventType.AGE_CHECK_APPROVED, staff=staff)

    def request_help(self, reason: str) -> None:
        with write_transaction(self.db):
            self._event(EventType.HELP_REQUESTED, reason=reason)

    # -- the one way a cart changes ----------------------------------------------------------
    def _change(self, apply: Callable[[], CartLine], kind: EventType = EventType.ITEM_SCANNED,
                **extra: Any) -> CartLine:
        cart = self.checkout.cart
        before = (list(cart.lines), cart.next_line_id, cart.frozen)
        line = apply()
        try:
            with write_transaction(self.db):
                self._write_line(line, removed=kind is EventType.ITEM_REMOVED)
                self._line_event(kind, line, **extra)
        except BaseException:
            restored = Cart(before[0], before[1])
            restored.frozen = before[2]
            self.checkout.cart = restored  # the write failed: the change did not happen
            raise
        return line

    def _write_line(self, line: CartLine, removed: bool) -> None:
        if removed:
            self.sessions.remove_line(self.session_id, line.line_id)
            return
        self.sessions.put_line(self.session_id, StoredLine(
            line.line_id, line.product.code, line.quantity, line.weight_g,
            line.label_price.minor if line.label_price else None, line.age_approved,
            line.product))

    def _line_event(self, kind: EventType, line: CartLine, **extra: Any) -> None:
        fields: dict[str, Any] = {"line_id": line.line_id, "product": line.product.code,
                                  "quantity": line.quantity, "weight_g": line.weight_g}
        if kind is EventType.ITEM_SCANNED:
            fields |= {"code": line.product.code, "price_minor": line.product.price.minor,
                       "how": extra.pop("how", "camera")}
        self._event(kind, **fields, **extra)
        if kind is EventType.ITEM_SCANNED and line.needs_age_check:
            self._event(EventType.AGE_CHECK_REQUESTED, line_id=line.line_id,
                        product=line.product.code, min_age=line.product.min_age)

    def _event(self, kind: EventType, *, member_id: str | None = None,
               **payload: Any) -> None:
        self.outbox.record(new_event(kind, occurred_at=self.checkout.clock.now(),
                                     session_id=self.session_id,
                                     member_id=member_id or self.member_id, payload=payload))
