"""The lane's state and how it publishes what it shows; the base every part of the lane shares.

``LaneCore`` holds one lane's state (the checkout, the session, the view) and
the few moves every part of the flow makes: show a new view, show the cart,
pick the home screen, start and wipe a session. The parts that decide what a
touch, a scan, a payment or a timer does are mixins over it (``flow``,
``scanning``, ``paying``, ``timers``, ``staff_side``), put together in
``app.lane.lane.Lane``. A method one part calls on another is declared here.

Not thread-safe by design: one thread owns a lane (``LaneWorker`` in the UI,
inline when headless). Device threads post to that thread.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from app.domain.clock import implausible
from app.domain.payment import Payment
from app.domain.pricing import price_cart
from app.domain.promotions import Promotion
from app.lane.parts import LaneParts
from app.lane.views import LaneView, PaymentView, Screen
from app.services.payments import Completed
from app.services.session import ShoppingSession
from app.services.staff_port import StaffDesk
from app.storage.lane_state import LaneState

log = logging.getLogger(__name__)
T = TypeVar("T")


class LaneCore:
    def __init__(self, parts: LaneParts) -> None:
        self.p = parts
        self.clock = parts.clock
        self.mono = parts.monotonic  # seconds for every wait; ``clock`` for what is shown
        self.checkout = parts.new_checkout()
        self.session: ShoppingSession | None = None
        self.member_provisional = False
        self._member_masked = ""  # a phone member's number, masked (LaneView.member_masked)
        self._promotions: list[Promotion] = []
        self._view = LaneView(Screen.ATTRACT)
        self._listeners: list[Callable[[LaneView], None]] = []
        self._leaving = False
        self._last_activity = self.mono()
        self._next_poll: float | None = None
        self._deadline_at: float | None = None  # view.deadline, on the monotonic clock
        self._receipt_job: int | None = None
        self._open = True
        self._camera_lost_since: float | None = None
        self._receipt_notice: tuple[str, str] | None = None
        self._wallet = ""
        # Payment codes this lane has sent, as keyed digests (the key lives in memory only,
        # so no digest can be checked against a code elsewhere): a code is single use, and
        # one read again (a second scanner, the phone shown again after a decline or a
        # Cancel) is never sent a second time (issue 18). The last 64 are kept.
        self._code_key = secrets.token_bytes(32)
        self._codes_sent: dict[bytes, None] = {}
        self._help_at: float | None = None
        self._notice_at = self.mono()
        # Payments whose close failed (provider unreachable): retried with backoff.
        self._retry_at: dict[str, float] = {}
        self._retry_wait: dict[str, float] = {}
        self._recover: set[str] = set()  # left open by a crash: settle at the next ticks
        self._clock_alerted = False  # one staff alert per spell of a wrong clock
        self.staff: StaffDesk | None = None  # staff mode, introduced by the composition root
        self._open = self._stored_open()
        self._exit_audit: tuple[str, list[str]] | None = None  # the last decision's reasons
        self._roll: tuple[str, float] | None = None  # the random draw, once per session
        # A paid order whose sale the full disk could not take: its error screen stays
        # (no Back, no abandon) and the lane keeps trying to record it (issue 16, fault 5).
        self._unrecorded: str | None = None
        # Staff approved an age check the shopper was waiting on, from staff mode: the
        # shopper goes straight on to paying when staff mode closes (issue 19).
        self._pay_after_staff = False
        self._age_call = False  # staff were called by the age check (not by the shopper)
        self._data_retry_at: float | None = None  # store data failed to apply: not before

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
        # The out-of-order screen names a wrong clock and the time it reads (kept current).
        shown = changes.get("screen", self._view.screen)
        changes["wrong_clock"] = self._wrong_clock() if shown is Screen.OUT_OF_ORDER else ""
        if "notice" in changes and changes["notice"] is not self._view.notice:
            self._notice_at = self.mono()
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
        cart = self.checkout.cart
        full = tuple(ln.line_id for ln in lines if not cart.room_for_one_more(ln.line_id))
        # A question on screen is about the cart as it was: any change to what is shown
        # takes it away unless the change asks it (a scan while "remove?" is up, say).
        changes.setdefault("confirm", None)
        self._show(priced=priced, member_id=self.session.member_id if self.session else None,
                   member_provisional=self.member_provisional, frozen=cart.frozen,
                   age_lines=ages, full_lines=full, member_masked=self._member_masked,
                   **changes)

    def _home(self) -> Screen:
        if not self._open:
            return Screen.CLOSED
        if self._wrong_clock() or self._out_of_order():
            return Screen.OUT_OF_ORDER
        return Screen.ATTRACT

    def _wrong_clock(self) -> str:
        """What the kiosk's wall clock reads ("1970-01-01 00:00") if it is too early to be
        true (before ``LaneParts.clock_floor``, app.domain.clock.implausible), else ''.
        No sale starts then: an exit pass or a signed request dated 1970 is worthless. The
        first reading of a spell raises one ``clock`` staff alert; asked on every tick of
        the home screens, so the lane recovers by itself once the clock is set."""
        now = self.clock.now()
        if not implausible(now, self.p.clock_floor):
            self._clock_alerted = False
            return ""
        if not self._clock_alerted:
            self._clock_alerted = True
            message = (f"{self.p.lane_id}: the kiosk's clock says {now:%Y-%m-%d}, before "
                       f"{self.p.clock_floor:%Y-%m-%d} (the earliest it can be), so this lane "
                       "is out of order and sells nothing; set the date and time (NTP, or "
                       "the BIOS clock and its battery)")
            log.error("%s", message)
            try:
                self.p.outbox.alert("clock", message, now)
            except Exception:  # noqa: BLE001 - the lane must still say it is out of order
                log.exception("could not record the staff alert: %s", message)
        return f"{now:%Y-%m-%d %H:%M}"

    def _may_start(self) -> bool:
        """Whether a session may begin now; if the clock is wrong, the out-of-order screen
        instead (a scan or touch between two ticks must not start a sale)."""
        if self._wrong_clock():
            self._show(screen=self._home())
            return False
        return True

    def _out_of_order(self) -> bool:
        lost = self._camera_lost_since
        return (lost is not None and not self.p.other_scanners
                and self.mono() - lost >= self.p.timings.out_of_order_after.total_seconds())

    def _begin(self, how: str) -> None:
        self.checkout = self.p.new_checkout()
        # The promotions in force now are this session's until it ends (docs/pricing.md).
        self.session = ShoppingSession.start(self.p.db, self.p.outbox, self.checkout,
                                             self.p.lane_id, how, self.p.promotions(),
                                             self.p.currency)
        self._promotions = self.session.promotions
        self.member_provisional = False
        self._member_masked = ""
        self._help_at = None
        self._show(help_requested=False)
        self._touched()

    def _touched(self) -> None:
        self._last_activity = self.mono()

    def _deadline_in(self, after: timedelta) -> datetime:
        """Arm the screen's deadline ``after`` from now on the monotonic clock; returns the
        wall-clock time to show for it (``LaneView.deadline``, display only)."""
        self._deadline_at = self.mono() + after.total_seconds()
        return self.clock.now() + after

    def _payment_expired(self, p: Payment) -> bool:
        """Has ``p`` expired? On the desk's monotonic deadline (``PaymentDesk.seconds_left``:
        from when it was started, or from the first time this process saw it): a wall
        clock stepped afterwards changes nothing."""
        return self.p.desk.expired(p)

    def _pay_deadline(self, p: Payment | PaymentView) -> datetime:
        """When the QR's countdown ends, to show (``LaneView.deadline`` on the pay screen):
        the wall clock now plus the seconds left on the payment's monotonic deadline, so the
        seconds the shopper sees are the real ones whatever the wall clock did."""
        return self.clock.now() + timedelta(seconds=max(0.0, self.p.desk.seconds_left(p)))

    def touch(self) -> None:
        """Any touch on the screen: the shopper is still there."""
        self._touched()

    def _wipe(self) -> None:
        self._help_at = None
        self._pay_after_staff = False
        self._age_call = False
        self._unrecorded = None
        self.session = None
        self.checkout = self.p.new_checkout()
        self.member_provisional = False
        self._member_masked = ""
        self._receipt_job = None
        self._next_poll = None
        self._deadline_at = None
        self._receipt_notice = None
        staff = self._view.staff if self._view.screen is Screen.STAFF else None
        self._view = LaneView(Screen.STAFF if staff else Screen.ATTRACT,
                              version=self._view.version, camera_ok=self._view.camera_ok,
                              manual_entry=self._view.manual_entry,
                              hand_scanner=self._view.hand_scanner, staff=staff,
                              sessions_ended=self._view.sessions_ended + 1)
        self._show(screen=self._home())

    @property
    def is_open(self) -> bool:
        return self._open

    def _stored_open(self) -> bool:
        return LaneState(self.p.db).is_open()

    # -- implemented by the parts (declared here so each part can call the others) --------------
    def still_here(self) -> None:
        raise NotImplementedError  # app.lane.flow

    def abandon(self, reason: str) -> None:
        raise NotImplementedError  # app.lane.flow

    def cancel_payment(self) -> None:
        raise NotImplementedError  # app.lane.paying

    def remove(self, line_id: int) -> None:
        raise NotImplementedError  # app.lane.scanning

    def pay_by_code(self, text: str, how: str) -> None:
        raise NotImplementedError  # app.lane.paying

    def pay(self) -> None:
        raise NotImplementedError  # app.lane.paying

    def call_staff(self) -> None:
        raise NotImplementedError  # app.lane.flow

    def cancel_help(self) -> None:
        raise NotImplementedError  # app.lane.flow

    def _after_payment(self, payment: Payment) -> None:
        raise NotImplementedError  # app.lane.paying

    def _show_payment(self, payment: Payment) -> None:
        raise NotImplementedError  # app.lane.paying

    def _finish_paid(self, payment: Payment, done: Completed | None = None) -> None:
        raise NotImplementedError  # app.lane.paying

    def _settle_stray_payments(self, now: float) -> None:
        raise NotImplementedError  # app.lane.paying

    def _money(self, step: Callable[[], T], out_trade_no: str) -> T | None:
        raise NotImplementedError  # app.lane.paying

    def _retry_unrecorded(self, now: float) -> None:
        raise NotImplementedError  # app.lane.paying


__all__ = ["LaneCore"]
