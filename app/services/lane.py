"""One lane's shopper flow: which screen is up, what it shows, and what each touch or scan does.

The screens (attract, member, shopping, age check, pay, receipt, "still
there?", lane closed, out of order, error) are states of this object, not of
Kivy: the touch UI renders the ``LaneView`` it publishes and forwards touches;
the headless scenario runner drives the very same methods. Every change goes
through the shopping session (cart and event in one transaction) and the
payment desk (state persisted before every provider call), so a kiosk killed at
any point comes back, through ``boot``, to the same cart and the same payment.

Not thread-safe by design: one thread owns a lane (``LaneWorker`` in the UI,
the scenario loop headless). Device threads post to that thread; they never
call in directly.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlite_utils

from app.domain.clock import Clock
from app.domain.events import EventType, new_event
from app.domain.exit_audit import ExitAuditRules, exit_audit_reasons
from app.domain.member_code import PREFIX as MEMBER_CODE_PREFIX
from app.domain.member_code import CodeInvalid
from app.domain.money import Money
from app.domain.payment import Payment, PaymentState
from app.domain.points import points_for
from app.domain.pricing import PricedCart, price_cart
from app.domain.promotions import Promotion
from app.domain.rejections import Refused
from app.domain.sale import PaidSale, sale_from_cart
from app.domain.tax import TaxPolicy
from app.services.checkout import Checkout
from app.services.members import MemberCodes, MemberIdentity, identify_by_phone
from app.services.payments import Completed, PaymentDesk
from app.services.session import ShoppingSession
from app.storage.db import write_transaction
from app.storage.outbox import Outbox
from app.storage.staff_book import BADGE_PREFIX

if TYPE_CHECKING:
    from app.services.staff import StaffMode, StaffView

log = logging.getLogger(__name__)


class Screen(StrEnum):
    ATTRACT = "attract"
    MEMBER = "member"
    SHOPPING = "shopping"
    AGE_CHECK = "age_check"
    PAY = "pay"
    RECEIPT = "receipt"
    STILL_THERE = "still_there"
    CLOSED = "closed"
    OUT_OF_ORDER = "out_of_order"
    ERROR = "error"
    STAFF = "staff"


# Screens where a shopper is in the middle of something and may walk away.
_IDLE_WATCHED = (Screen.MEMBER, Screen.SHOPPING, Screen.AGE_CHECK)
HELP_REPEAT = timedelta(minutes=1)  # "Call staff" again within this is the same call
HELP_WAIT = timedelta(minutes=5)  # no "still there?" while waiting this long for staff
ATTRACT_NOTICE = timedelta(seconds=10)  # a message on the attract screen, then clear it
RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class Notice:
    """A message for the shopper: a string id (translated by the UI) and its values."""

    key: str
    level: str = "info"  # info, ok, warn, error
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, key: str, level: str = "info", **values: object) -> Notice:
        return cls(key, level, tuple((k, str(v)) for k, v in values.items()))


@dataclass(frozen=True)
class PaymentView:
    out_trade_no: str
    qr_payload: str
    amount: Money
    provider: str
    wallet: str
    expires_at: datetime
    state: str
    closing: bool


@dataclass(frozen=True)
class ReceiptView:
    order_id: str
    total: Money
    item_count: int
    exit_pass: str
    printed: bool | None  # None: still printing
    show_pass: bool  # the exit pass is on screen (no printer, or it failed)
    exit_audit: bool
    member_id: str | None
    points: int


@dataclass(frozen=True)
class LaneView:
    """Everything the screen shows, as one immutable snapshot."""

    screen: Screen
    version: int = 0
    priced: PricedCart | None = None
    member_id: str | None = None
    member_provisional: bool = False
    notice: Notice | None = None
    last_line_id: int | None = None  # the line the last scan touched (highlighted)
    frozen: bool = False
    age_lines: tuple[tuple[int, str, str, int], ...] = ()  # line id, zh, en, minimum age
    checking_printer: bool = False
    printer_notice: tuple[str, str] | None = None  # (zh, en) before taking money
    wallets: tuple[str, ...] = ()
    payment: PaymentView | None = None
    receipt: ReceiptView | None = None
    deadline: datetime | None = None  # "still there?" countdown, or the receipt screen's end
    back_to: Screen | None = None  # where "I'm still here" or "Back" returns
    help_requested: bool = False
    manual_entry: bool = False  # the camera is lost: typing the code is offered first
    camera_ok: bool = True
    staff: StaffView | None = None  # staff mode's page, while it is open


@dataclass
class LaneTimings:
    idle: timedelta = timedelta(seconds=90)  # no touch or scan: ask "still there?"
    still_there: timedelta = timedelta(seconds=30)  # the countdown before abandoning
    receipt: timedelta = timedelta(seconds=15)  # receipt screen, receipt printed
    receipt_on_screen: timedelta = timedelta(seconds=60)  # exit pass on screen
    poll: timedelta = timedelta(milliseconds=1500)  # ask the provider about an open payment
    out_of_order_after: timedelta = timedelta(seconds=30)  # camera lost, no other scanner


@dataclass
class LaneParts:
    """What a lane works with; ``app.bootstrap.build_lane`` wires the real ones."""

    db: sqlite_utils.Database
    outbox: Outbox
    new_checkout: Callable[[], Checkout]
    desk: PaymentDesk
    clock: Clock
    lane_id: str
    store_name_zh: str
    store_name_en: str
    currency: str
    tax: TaxPolicy
    promotions: Callable[[], list[Promotion]]
    # What to tell the shopper before paying about the receipt, or None if it will
    # print. May block (it asks the printer), which is why a lane has its own thread.
    receipt_notice: Callable[[], tuple[str, str] | None]
    wake_printer: Callable[[], None] = lambda: None
    member_codes: MemberCodes | None = None
    phone_lookup: Callable[[str], str | None] | None = None
    phone_secret: str = ""
    wallets: tuple[str, ...] = ()
    points_per_unit: int = 1
    exit_audit: ExitAuditRules = field(default_factory=lambda: ExitAuditRules(share=0.0))
    roll: Callable[[], float] = random.random  # bootstrap passes SystemRandom's
    other_scanners: bool = False  # a serial or wedge scanner works without the camera
    timings: LaneTimings = field(default_factory=LaneTimings)


def _refused(exc: Refused) -> Notice:
    """A refusal carries its own words in both languages, saying what to do next."""
    r = exc.refusal
    return Notice.of("refused", "error", code=r.code, message_zh=r.message_zh,
                     message_en=r.message_en)


class Lane:
    def __init__(self, parts: LaneParts) -> None:
        self.p = parts
        self.clock = parts.clock
        self.checkout = parts.new_checkout()
        self.session: ShoppingSession | None = None
        self.member_provisional = False
        self._promotions: list[Promotion] = []
        self._view = LaneView(Screen.ATTRACT)
        self._listeners: list[Callable[[LaneView], None]] = []
        self._leaving = False
        self._last_activity = self.clock.now()
        self._next_poll: datetime | None = None
        self._receipt_job: int | None = None
        self._open = True
        self._camera_lost_since: datetime | None = None
        self._receipt_notice: tuple[str, str] | None = None
        self._wallet = ""
        self._help_at: datetime | None = None
        self._notice_at = self.clock.now()
        # Payments whose close failed (provider unreachable): retried with backoff.
        self._retry_at: dict[str, datetime] = {}
        self._retry_wait: dict[str, float] = {}
        self._recover: set[str] = set()  # left open by a crash: settle at the next ticks
        self.staff: StaffMode | None = None  # set by bootstrap.build_lane
        self._open = self._stored_open()
        self._exit_audit: tuple[str, list[str]] | None = None  # the last decision's reasons
        self._roll: tuple[str, float] | None = None  # the random draw, once per session

    # -- publishing the view ------------------------------------------------------------------
    @property
    def view(self) -> LaneView:
        return self._view

    def on_view(self, listener: Callable[[LaneView], None]) -> None:
        self._listeners.append(listener)

    def _show(self, **changes: Any) -> None:
        screen = changes.get("screen")
        if self._view.screen is Screen.STAFF and screen is not None and \
                screen is not Screen.STAFF and not self._leaving:
            # Staff mode stays up; what the lane did underneath is where it returns to.
            changes["back_to"] = changes.pop("screen")
        if "notice" in changes and changes["notice"] is not self._view.notice:
            self._notice_at = self.clock.now()
        view = replace(self._view, version=self._view.version + 1, **changes)
        self._view = view
        for listener in self._listeners:
            listener(view)

    def _cart_view(self, **changes: Any) -> None:
        """Show the cart as it is now (priced for the member, if any) with ``changes``."""
        lines = self.checkout.lines()
        priced = price_cart(lines, self._promotions, member=self.session is not None and
                            self.session.member_id is not None, tax=self.p.tax,
                            currency=self.p.currency) if lines or self.session else None
        ages = tuple((ln.line_id, ln.product.name_zh, ln.product.name_en, ln.product.min_age or 0)
                     for ln in self.checkout.cart.pending_age_checks())
        self._show(priced=priced, member_id=self.session.member_id if self.session else None,
                   member_provisional=self.member_provisional, frozen=self.checkout.cart.frozen,
                   age_lines=ages, **changes)

    # -- start-up -----------------------------------------------------------------------------
    def boot(self) -> None:
        """Come back to where a crash or restart left this lane, or to the attract screen."""
        self._promotions = self.p.promotions()
        session = ShoppingSession.resume(self.p.db, self.p.outbox, self.checkout, self.p.lane_id)
        mine: Payment | None = None
        if session is not None:
            self.session = session
            self.member_provisional = bool(self.p.db.execute(
                "SELECT member_provisional FROM sessions WHERE session_id = ?",
                [session.session_id]).fetchone()[0])
            mine = self.p.desk.repo.open_for_cart(session.session_id)
        # Payments a crash left open that are not this cart's: settled (query, close) by
        # the next ticks, not here: an unreachable provider must not stop the kiosk starting.
        self._recover = {p.out_trade_no for p in self.p.desk.repo.all_open()
                         if mine is None or p.out_trade_no != mine.out_trade_no}
        if session is not None:
            self._receipt_notice = self.p.receipt_notice()  # asked again: a restart forgot it
        if session is None:
            self._show(screen=self._home())
            return
        paid = self.p.desk.repo.paid_for_cart(session.session_id)
        if paid is not None:  # paid, then the kiosk died before the receipt screen
            self._finish_paid(paid)
            return
        self._last_activity = self.clock.now()
        if mine is not None:
            self.checkout.cart.frozen = True
            self._show_payment(mine)
            return
        self._cart_view(screen=Screen.SHOPPING, notice=Notice.of("welcome_back"))

    def _home(self) -> Screen:
        if not self._open:
            return Screen.CLOSED
        if self._out_of_order():
            return Screen.OUT_OF_ORDER
        return Screen.ATTRACT

    def _out_of_order(self) -> bool:
        lost = self._camera_lost_since
        return (lost is not None and not self.p.other_scanners
                and self.clock.now() - lost >= self.p.timings.out_of_order_after)

    # -- the shopper's session ----------------------------------------------------------------
    def _begin(self, how: str) -> None:
        self.checkout = self.p.new_checkout()
        self._promotions = self.p.promotions()
        self.session = ShoppingSession.start(self.p.db, self.p.outbox, self.checkout,
                                             self.p.lane_id, how)
        self.member_provisional = False
        self._help_at = None
        self._show(help_requested=False)
        self._touched()

    def _touched(self) -> None:
        self._last_activity = self.clock.now()

    def touch(self) -> None:
        """Any touch on the screen: the shopper is still there."""
        self._touched()

    def start(self) -> None:
        """Attract screen, "Start": the member screen comes first."""
        if self._view.screen is not Screen.ATTRACT:
            return
        self._begin("touch")
        self._cart_view(screen=Screen.MEMBER, notice=None)

    def skip_member(self) -> None:
        self._touched()
        if self._view.screen is Screen.MEMBER and self.session is not None:
            self._cart_view(screen=Screen.SHOPPING, notice=None)

    def member_sign_in(self) -> None:
        """Shopping screen, "Member": identify later in the session."""
        self._touched()
        if self._view.screen is Screen.SHOPPING and self.session and not self.session.member_id:
            self._cart_view(screen=Screen.MEMBER, notice=None)

    # -- scans --------------------------------------------------------------------------------
    def scan(self, text: str, symbology: str | None = None, how: str = "camera") -> None:
        """A code from the camera, a scanner or the keypad."""
        self._touched()
        screen = self._view.screen
        if self.staff is not None and (screen is Screen.STAFF or
                                       text.startswith(BADGE_PREFIX)):
            if screen is Screen.STAFF:
                self.staff.scanned(text)
            else:
                self.staff.open_pin_pad(text)  # a staff badge, on any screen
            return
        if screen in (Screen.CLOSED, Screen.OUT_OF_ORDER, Screen.ERROR, Screen.RECEIPT,
                      Screen.PAY):
            return  # no cart to add to; a payment QR or exit pass under the camera is not a buy
        if screen is Screen.STILL_THERE:
            self.still_here()
        if text.startswith(MEMBER_CODE_PREFIX):
            self._member_code(text)
            return
        if self.session is None:
            self._begin(how)
        assert self.session is not None
        if self.checkout.cart.frozen:
            self._cart_view(screen=Screen.SHOPPING, notice=Notice.of("cart_frozen", "warn"))
            return
        try:
            line = self.session.scan(text, symbology, how)
        except Refused as exc:
            self._cart_view(screen=Screen.SHOPPING,
                            notice=_refused(exc),
                            last_line_id=None)
            return
        self._cart_view(screen=Screen.SHOPPING, last_line_id=line.line_id,
                        notice=Notice.of("added", "ok", name_zh=line.product.name_zh,
                                         name_en=line.product.name_en))

    def scan_rejected(self, reason: str) -> None:
        """A scanner refused what it read (control characters, too long): say so, add nothing."""
        self._touched()
        if self.session is not None:
            self.session.scan_refused(reason)
        if self._view.screen in (Screen.SHOPPING, Screen.MEMBER, Screen.ATTRACT):
            self._cart_view(notice=Notice.of("refused_unreadable", "error", code=reason))

    def typed_code(self, text: str) -> None:
        """The manual-entry keypad: a barcode's digits or a PLU."""
        text = text.strip()
        if not text:
            return
        self.scan(text, None, how="manual")

    def _member_code(self, text: str) -> None:
        if self.session is not None and self.session.member_id:
            self._cart_view(notice=Notice.of("member_already", "info"))
            return
        if self.p.member_codes is None:
            self._cart_view(notice=Notice.of("member_qr_unavailable", "warn"))
            return
        try:
            member = self.p.member_codes.verify(text, int(self.clock.now().timestamp()))
        except CodeInvalid as exc:
            self._cart_view(notice=Notice.of(f"member_{exc.code}", "error"))
            return
        self._identified(member)

    def member_phone(self, text: str) -> None:
        self._touched()
        if self.session is None or self.session.member_id:
            return
        if self.p.phone_lookup is None:
            self._cart_view(notice=Notice.of("member_phone_unavailable", "warn"))
            return
        try:
            member = identify_by_phone(text, self.p.phone_lookup, self.p.phone_secret)
        except ValueError:
            self._cart_view(notice=Notice.of("member_phone_invalid", "error"))
            return
        if member is None:
            self._cart_view(notice=Notice.of("member_unknown", "error"))
            return
        self._identified(member)

    def _identified(self, member: MemberIdentity) -> None:
        if self.session is None:
            self._begin(member.how)
        assert self.session is not None
        self.session.identify(member)
        self.member_provisional = member.provisional
        self._cart_view(screen=Screen.SHOPPING, notice=Notice.of(
            "member_welcome_offline" if member.provisional else "member_welcome", "ok"))

    # -- changing the cart --------------------------------------------------------------------
    def _line_change(self, change: Callable[[ShoppingSession], object]) -> None:
        self._touched()
        if self.session is None or self._view.screen is not Screen.SHOPPING:
            return
        if self.checkout.cart.frozen:
            self._cart_view(notice=Notice.of("cart_frozen", "warn"))
            return
        try:
            change(self.session)
        except Refused as exc:
            self._cart_view(notice=_refused(exc))
            return
        except KeyError:
            return  # the line went (a double tap on remove): nothing to do
        self._cart_view(notice=None)

    def plus(self, line_id: int) -> None:
        self._line_change(lambda s: s.set_quantity(
            line_id, self.checkout.cart.line(line_id).quantity + 1))

    def minus(self, line_id: int) -> None:
        def less(s: ShoppingSession) -> object:
            line = self.checkout.cart.line(line_id)
            if line.quantity <= 1:
                return s.remove(line_id)
            return s.set_quantity(line_id, line.quantity - 1)
        self._line_change(less)

    def remove(self, line_id: int) -> None:
        self._line_change(lambda s: s.remove(line_id))

    def approve_age(self, staff: str) -> None:
        """Staff checked the shopper's age: every waiting line is approved."""
        if self.session is None:
            return
        for line in self.checkout.cart.pending_age_checks():
            self.session.approve_age(line.line_id, staff)
        self._touched()
        # From staff mode the screen to change is the one staff mode returns to.
        under = self._view.back_to if self._view.screen is Screen.STAFF else self._view.screen
        screen = Screen.SHOPPING if under is Screen.AGE_CHECK else under
        self._cart_view(screen=screen, notice=Notice.of("age_approved", "ok"))

    def call_staff(self) -> None:
        """Recorded every time (at most once a minute): as an event in a session, and
        always as a staff alert, so "staff are on their way" is true."""
        self._touched()
        now = self.clock.now()
        if self._help_at is not None and now - self._help_at < HELP_REPEAT:
            return
        self._help_at = now
        where = self._view.screen.value
        if self.session is not None:
            self.session.request_help(where)
        self.p.outbox.alert("help", f"{self.p.lane_id}: a shopper asked for help ({where})", now)
        self._show(help_requested=True)

    def back(self) -> None:
        """Age check or error screen, "Back": to the cart."""
        self._touched()
        if self._view.screen in (Screen.AGE_CHECK, Screen.ERROR, Screen.MEMBER):
            target = Screen.SHOPPING if self.session is not None else self._home()
            self._cart_view(screen=target, notice=None)

    # -- paying -------------------------------------------------------------------------------
    def pay(self) -> None:
        """Shopping screen, "Pay"."""
        self._touched()
        if self.session is None or self._view.screen is not Screen.SHOPPING:
            return
        if not self.checkout.lines():
            self._cart_view(notice=Notice.of("cart_empty", "warn"))
            return
        if self.checkout.cart.pending_age_checks():
            self._cart_view(screen=Screen.AGE_CHECK, notice=None)
            return
        self._cart_view(screen=Screen.PAY, checking_printer=True, payment=None,
                        printer_notice=None, wallets=self.p.wallets, notice=None)
        self._receipt_notice = self.p.receipt_notice()
        self._show(checking_printer=False, printer_notice=self._receipt_notice)
        if len(self.p.wallets) <= 1:
            self.choose_wallet(self.p.wallets[0] if self.p.wallets else "")

    def choose_wallet(self, wallet: str) -> None:
        self._touched()
        if self.session is None or self._view.screen is not Screen.PAY or self._view.payment:
            return
        if self.p.wallets and wallet not in self.p.wallets:
            return
        priced = price_cart(self.checkout.lines(), self._promotions,
                            member=self.session.member_id is not None, tax=self.p.tax,
                            currency=self.p.currency)
        draft = self._sale_draft(priced, exit_audit=bool(self._audit_reasons(priced)))
        what = f"{self.p.store_name_en} {priced.item_count} items"
        payment = self.checkout.start_payment(self.p.desk, draft, what)
        self._wallet = wallet
        self._after_payment(payment)

    def _audit_reasons(self, priced: PricedCart) -> list[str]:
        """Whether this sale gets an exit check, decided once per session (paying again
        after a cancel does not roll the dice again)."""
        assert self.session is not None
        sid = self.session.session_id
        if self._roll is None or self._roll[0] != sid:
            self._roll = (sid, self.p.roll())  # the dice, once per session
        removals = manual = 0
        for kind, payload in self.p.db.execute(
                "SELECT type, payload FROM outbox WHERE session_id = ? AND type IN "
                "('item_removed', 'item_scanned')", [sid]):
            if kind == "item_removed":
                removals += 1
            elif json.loads(payload).get("how") == "manual":
                manual += 1
        # The risk rules are checked on the cart as it is now, at every attempt to pay.
        self._exit_audit = (sid, exit_audit_reasons(
            self.p.exit_audit, total=priced.total, removals=removals, manual_entries=manual,
            roll=self._roll[1]))
        return self._exit_audit[1]

    def _sale_draft(self, priced: PricedCart, exit_audit: bool = False) -> PaidSale:
        # The order id, method and paid time are filled in when the payment completes.
        return sale_from_cart(
            priced, order_id="pending", lane_id=self.p.lane_id,
            store_name_zh=self.p.store_name_zh, store_name_en=self.p.store_name_en,
            paid_at=self.clock.now(), payment_method="", provider_ref="",
            member_id=self.session.member_id if self.session else None,
            points_earned=points_for(priced.total, member=bool(self.session and
                                                                self.session.member_id),
                                     points_per_unit=self.p.points_per_unit),
            exit_audit=exit_audit)

    def _after_payment(self, payment: Payment) -> None:
        """Show what a payment step left: still open, paid, or ended without money."""
        self.checkout.payment_changed(payment)
        if payment.state is PaymentState.PAID:
            self._finish_paid(payment)
        elif payment.open:
            self._show_payment(payment)
        else:
            key = {PaymentState.CANCELLED: "payment_cancelled",
                   PaymentState.EXPIRED: "payment_expired"}.get(payment.state, "payment_failed")
            self._next_poll = None
            self._touched()  # the idle timer starts again from the cart
            self._cart_view(screen=Screen.SHOPPING, payment=None,
                            notice=Notice.of(key, "warn" if key != "payment_failed" else "error"))

    def _show_payment(self, payment: Payment) -> None:
        if self._next_poll is None:
            self._next_poll = self.clock.now() + self.p.timings.poll
        view = PaymentView(payment.out_trade_no, payment.qr_payload,
                           Money(payment.amount_minor, payment.currency), payment.method,
                           self._wallet, payment.expires_at,
                           payment.state.value, payment.closing)
        notice = None
        if not payment.qr_payload and not payment.closing:
            notice = Notice.of("payment_connecting", "warn")
        elif payment.closing:
            notice = Notice.of("payment_closing", "warn")
        self._cart_view(screen=Screen.PAY, payment=view, notice=notice,
                        printer_notice=self._receipt_notice, checking_printer=False)

    def cancel_payment(self) -> None:
        """Pay screen, "Cancel": close the provider's order (after checking it was not paid)."""
        self._touched()
        if self._view.screen is not Screen.PAY:
            return
        if self._view.payment is None:
            self._cart_view(screen=Screen.SHOPPING, notice=None, payment=None)
            return
        self._after_payment(self.p.desk.cancel(self._view.payment.out_trade_no))

    def payment_completed(self, done: Completed) -> None:
        """The desk completed a sale (by a poll, a close that found it paid, a notification)."""
        if self.session is None or done.payment.cart_id != self.session.session_id:
            # Paid after the shopper left (the close had failed): a sale all the same. Its
            # session is recorded as paid, not abandoned, and the receipt prints for staff.
            log.warning("payment %s completed for a cart no longer on screen; its receipt "
                        "prints", done.payment.out_trade_no)
            ShoppingSession(self.p.db, self.p.outbox, self.checkout, self.p.lane_id,
                            done.payment.cart_id).end(done.sale.order_id, done.sale.total.minor,
                                                      done.sale.item_count)
            self.p.wake_printer()
            return
        self._finish_paid(done.payment, done)

    def _finish_paid(self, payment: Payment, done: Completed | None = None) -> None:
        if self.session is None:
            return
        if done is not None:
            sale, exit_pass, job_id = done.sale, done.exit_pass, done.job_id
        else:  # restarted after the payment completed: the sale and its job are on disk
            row = self.p.db.execute(
                "SELECT sale, exit_pass, job_id FROM print_jobs WHERE order_id = ? "
                "ORDER BY job_id LIMIT 1", [payment.out_trade_no]).fetchone()
            if row is None:  # pragma: no cover - paid, sale and job are one transaction
                raise RuntimeError(f"paid payment {payment.out_trade_no} has no receipt job")
            sale, exit_pass, job_id = PaidSale.from_dict(json.loads(row[0])), row[1], row[2]
        if sale.exit_audit:
            reasons = self._exit_audit[1] if self._exit_audit and \
                self._exit_audit[0] == self.session.session_id else ["decided before a restart"]
            self.session.record(EventType.EXIT_AUDIT_FLAGGED, order_id=sale.order_id,
                                reasons=reasons)
        self.session.end(sale.order_id, sale.total.minor, sale.item_count)
        self.session = None
        self._next_poll = None
        self._receipt_job = job_id
        show_pass = self._receipt_notice is not None
        receipt = ReceiptView(sale.order_id, sale.total, sale.item_count, exit_pass,
                              None, show_pass, sale.exit_audit, sale.member_id,
                              sale.points_earned)
        self.p.wake_printer()
        self._show(screen=Screen.RECEIPT, receipt=receipt, payment=None, notice=None,
                   deadline=self._receipt_deadline(show_pass), help_requested=False,
                   frozen=True)

    def _receipt_deadline(self, show_pass: bool) -> datetime:
        t = self.p.timings
        return self.clock.now() + (t.receipt_on_screen if show_pass else t.receipt)

    def receipt_outcome(self, job_id: int, order_id: str, printed: bool, detail: str) -> None:
        """The printer's word on a receipt job; a failure puts the exit pass on screen."""
        session_id = self.p.db.execute("SELECT session_id FROM sessions WHERE order_id = ?",
                                       [order_id]).fetchone()
        kind = EventType.RECEIPT_PRINTED if printed else EventType.RECEIPT_FAILED
        payload: dict[str, Any] = {"order_id": order_id, "job_id": job_id}
        if not printed:
            payload["reason"] = detail or "not printed"
        self.p.outbox.record(new_event(kind, occurred_at=self.clock.now(),
                                       session_id=session_id[0] if session_id else "",
                                       payload=payload))
        receipt = self._view.receipt
        if self._view.screen is not Screen.RECEIPT or receipt is None or \
                receipt.order_id != order_id:
            return
        show = receipt.show_pass or not printed
        self._show(receipt=replace(receipt, printed=printed, show_pass=show),
                   deadline=self._receipt_deadline(show) if show != receipt.show_pass
                   else self._view.deadline)

    def done(self) -> None:
        """Receipt screen, "Done": ready for the next shopper."""
        if self._view.screen is Screen.RECEIPT:
            self._wipe()

    # -- timers -------------------------------------------------------------------------------
    def tick(self) -> None:
        """Call a few times a second: inactivity, the receipt screen's end, payment polling."""
        now = self.clock.now()
        view = self._view
        if self.staff is not None:
            self.staff.publish_audit_head()
        if view.screen is Screen.STAFF:
            if self.staff is not None:
                self.staff.tick()
            self._settle_stray_payments(now)
            return
        idle = now - self._last_activity >= self.p.timings.idle and \
            not (self._help_at and now - self._help_at < HELP_WAIT)
        # A cancel the provider could not hear yet: the shopper may walk away from it.
        stuck_closing = view.screen is Screen.PAY and view.payment is not None and \
            view.payment.closing
        if stuck_closing and idle:
            self._show(screen=Screen.STILL_THERE, back_to=view.screen,
                       deadline=now + self.p.timings.still_there)
        elif view.screen is Screen.PAY and view.payment is not None and \
                self._next_poll is not None and now >= self._next_poll:
            self._next_poll = now + self.p.timings.poll
            out = view.payment.out_trade_no
            payment = self.p.desk.poll(out)
            if payment.open and (payment.expires_at <= now or payment.closing):
                payment = self.p.desk.settle(payment, payment.close_reason or "timeout")
            if self._view.screen is Screen.PAY:  # a completion may have moved on already
                self._after_payment(payment)
        elif view.screen is Screen.PAY and view.payment is None and not view.checking_printer \
                and now - self._last_activity >= self.p.timings.idle:
            self.cancel_payment()  # walked away at the wallet choice
        elif view.screen in _IDLE_WATCHED and idle:
            self._show(screen=Screen.STILL_THERE, back_to=view.screen,
                       deadline=now + self.p.timings.still_there)
        elif view.screen is Screen.STILL_THERE and view.deadline and now >= view.deadline:
            self.abandon("timeout")
        elif view.screen is Screen.RECEIPT and view.deadline and now >= view.deadline:
            receipt = view.receipt
            if receipt is not None and receipt.printed is None and not receipt.show_pass:
                # The printer has not said yet: the shopper must not leave with nothing.
                self._show(receipt=replace(receipt, show_pass=True),
                           deadline=now + self.p.timings.receipt_on_screen)
            else:
                self._wipe()
        elif view.screen is Screen.ERROR and now - self._last_activity >= self.p.timings.idle:
            self.abandon("error")  # nobody came back: the next shopper starts clean

        elif view.screen in (Screen.ATTRACT, Screen.OUT_OF_ORDER) and \
                self._home() is not view.screen:
            self._show(screen=self._home())
        if self._view.screen is Screen.ATTRACT and self._view.notice is not None and \
                now - self._notice_at >= ATTRACT_NOTICE:
            self._show(notice=None)  # the last shopper's message is not the next one's
        if view.screen is not Screen.PAY:
            self._settle_stray_payments(now)

    def _settle_stray_payments(self, now: datetime) -> None:
        # Payments left open by a crash, or whose close failed (network), are retried here
        # until the provider answers, each with its own backoff so a dead provider does
        # not make every tick (and so every touch) wait for its timeouts.
        for p in self.p.desk.repo.all_open():
            due = p.expires_at <= now or p.closing or p.out_trade_no in self._recover
            on_screen = self.session is not None and p.cart_id == self.session.session_id \
                and self._view.screen is Screen.PAY
            if not due or on_screen or now < self._retry_at.get(p.out_trade_no, now):
                continue
            after = self.p.desk.settle(p, p.close_reason or "timeout")
            if after.open:
                wait = min(RETRY_MAX_S, self._retry_wait.get(p.out_trade_no, 1.0) * 2)
                self._retry_wait[p.out_trade_no] = wait
                self._retry_at[p.out_trade_no] = now + timedelta(seconds=wait)
                continue
            self._recover.discard(p.out_trade_no)
            self._retry_at.pop(p.out_trade_no, None)
            self._retry_wait.pop(p.out_trade_no, None)
            if self.session is not None and after.cart_id == self.session.session_id:
                self.checkout.payment_changed(after)

    def still_here(self) -> None:
        if self._view.screen is Screen.STILL_THERE:
            self._touched()
            self._show(screen=self._view.back_to or Screen.SHOPPING, deadline=None, back_to=None)

    def abandon(self, reason: str) -> None:
        """The shopper left (or staff reset the lane): resolve any payment, record, wipe."""
        if self.session is not None:
            pending = self.p.desk.repo.open_for_cart(self.session.session_id)
            if pending is not None:
                after = self.p.desk.settle(pending, "cancel")
                if after.state is PaymentState.PAID:  # paid at the last moment: a sale
                    self._finish_paid(after)
                    return
            self.session.abandon(reason)
        self._wipe()

    def _wipe(self) -> None:
        self._help_at = None
        self.session = None
        self.checkout = self.p.new_checkout()
        self.member_provisional = False
        self._receipt_job = None
        self._next_poll = None
        self._receipt_notice = None
        staff = self._view.staff if self._view.screen is Screen.STAFF else None
        self._view = LaneView(Screen.STAFF if staff else Screen.ATTRACT,
                              version=self._view.version, camera_ok=self._view.camera_ok,
                              manual_entry=self._view.manual_entry, staff=staff)
        self._show(screen=self._home())

    # -- the lane itself ----------------------------------------------------------------------
    def camera_health(self, state: str) -> None:
        """The camera is "ok" or "lost"; a lost camera offers the keypad, then out of order."""
        ok = state == "ok"
        if ok:
            self._camera_lost_since = None
        elif self._camera_lost_since is None:
            self._camera_lost_since = self.clock.now()
        if ok != self._view.camera_ok:
            current = self._view.notice
            keep = current if current is None or current.key != "camera_lost" else None
            notice = keep if ok else Notice.of("camera_lost", "warn")
            self._show(camera_ok=ok, manual_entry=not ok, notice=notice)
        if ok and self._view.screen is Screen.OUT_OF_ORDER:
            self._show(screen=self._home())

    @property
    def is_open(self) -> bool:
        return self._open

    def _stored_open(self) -> bool:
        row = self.p.db.execute("SELECT value FROM lane_state WHERE key = 'open'").fetchone()
        return row is None or row[0] == "1"

    def set_open(self, is_open: bool) -> None:
        """Staff open or close the lane (kept across restarts); a shopper mid-session
        finishes first."""
        with write_transaction(self.p.db):
            self.p.db.execute("INSERT OR REPLACE INTO lane_state (key, value) VALUES "
                              "('open', ?)", ["1" if is_open else "0"])
        self._open = is_open
        if self._view.screen in (Screen.ATTRACT, Screen.CLOSED, Screen.OUT_OF_ORDER):
            self._show(screen=self._home())

    # -- staff mode (app.services.staff drives these) --------------------------------------------
    def enter_staff(self, view: StaffView) -> None:
        current = self._view.screen
        if current is Screen.STAFF:
            self._show(staff=view)
            return
        back = self._view.back_to if current is Screen.STILL_THERE else current
        self._show(screen=Screen.STAFF, staff=view, back_to=back or Screen.ATTRACT)

    def show_staff(self, view: StaffView) -> None:
        if self._view.screen is Screen.STAFF:
            self._show(staff=view)

    def leave_staff(self) -> None:
        if self._view.screen is not Screen.STAFF:
            return
        target = self._view.back_to or self._home()
        if self.session is None and target in (*_IDLE_WATCHED, Screen.PAY, Screen.STILL_THERE):
            target = self._home()
        if target in (Screen.ATTRACT, Screen.CLOSED, Screen.OUT_OF_ORDER):
            target = self._home()  # staff may have opened or closed the lane
        self._touched()  # the shopper gets a fresh idle time
        self._leaving = True
        try:
            if self.session is not None and target in (*_IDLE_WATCHED, Screen.PAY):
                self._cart_view(screen=target, staff=None, back_to=None)
            else:
                self._show(screen=target, staff=None, back_to=None)
        finally:
            self._leaving = False

    def refresh(self) -> None:
        """Show the cart again after staff changed it."""
        self._cart_view()

    def failed(self, error: BaseException) -> None:
        """A command raised: show the error screen (what to do next) instead of freezing."""
        log.error("lane command failed", exc_info=error)
        if self._view.screen is Screen.STAFF and self._view.staff is not None:
            self._show(staff=replace(self._view.staff, message=f"Failed: {error}",
                                     level="error"))
            return
        back = self._view.screen if self._view.screen is not Screen.ERROR else self._view.back_to
        self._show(screen=Screen.ERROR, back_to=back,
                   notice=Notice.of("error_generic", "error"))

    def recover_from_error(self) -> None:
        """Error screen, "Back": the cart as the database has it."""
        if self._view.screen is not Screen.ERROR:
            return
        self.checkout = self.p.new_checkout()
        self.session = None
        self._view = LaneView(Screen.ATTRACT, version=self._view.version,
                              camera_ok=self._view.camera_ok,
                              manual_entry=self._view.manual_entry)
        self.boot()


__all__ = ["Lane", "LaneParts", "LaneTimings", "LaneView", "Notice", "PaymentView",
           "ReceiptView", "Screen"]
