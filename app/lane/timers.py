"""The lane's timers: inactivity, "still there?", payment polling, the receipt screen's end.

Every interval and deadline here is measured on the lane's monotonic clock
(``LaneParts.monotonic``, seconds): a wall clock stepped back or forward (NTP, a
dead RTC battery, someone at the settings) neither delays a poll nor skips or
hastens "still there?", the receipt screen's end or a payment's expiry. The wall
clock is only shown, signed or sent.

``tick`` runs a few times a second on the lane's thread. Each screen has one
handler (``_TICKS``); what every tick does whatever the screen (publishing the
audit head, clearing an old notice on the attract screen, settling payments a
crash or a failed close left open) runs around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from app.domain.payment import PaymentState
from app.lane.core import LaneCore
from app.lane.parts import ATTRACT_NOTICE
from app.lane.views import IDLE_WATCHED, LaneView, Screen

log = logging.getLogger(__name__)


class Timers(LaneCore):
    def tick(self) -> None:
        """Call a few times a second: inactivity, the receipt screen's end, payment polling."""
        now = self.mono()  # seconds: every timer here is monotonic, never the wall clock
        view = self._view
        if self.staff is not None:
            self.staff.publish_audit_head()
        if view.screen is Screen.STAFF:
            if self.staff is not None:
                self.staff.tick()
            self._settle_stray_payments(now)
            return
        handler = _TICKS.get(view.screen)
        if handler is not None:
            handler(self, view, now)
        if self._view.screen is Screen.ATTRACT and self._view.notice is not None and \
                now - self._notice_at >= ATTRACT_NOTICE.total_seconds():
            self._show(notice=None)  # the last shopper's message is not the next one's
        if view.screen is not Screen.PAY:
            self._settle_stray_payments(now)

    def _idle(self, now: float) -> bool:
        """No touch or scan for ``timings.idle``; for ``timings.idle_help`` while the "staff
        are on their way" banner is up (a longer grace, never none: a shopper who called
        staff and walked away must not block the lane, issue 19)."""
        t = self.p.timings
        limit = t.idle_help if self._view.help_requested else t.idle
        return now - self._last_activity >= limit.total_seconds()

    def _idle_for(self, now: float) -> bool:
        return self._idle(now)

    def _due(self, now: float) -> bool:
        return self._deadline_at is not None and now >= self._deadline_at

    def _ask_still_there(self, view: LaneView, now: float) -> None:
        self._show(screen=Screen.STILL_THERE, back_to=view.screen,
                   deadline=self._deadline_in(self.p.timings.still_there))

    def _tick_pay(self, view: LaneView, now: float) -> None:
        if view.payment is None:
            if not view.checking_printer and \
                    self._idle_for(now):
                self.cancel_payment()  # walked away at the wallet choice
            return
        code_waiting = view.payment.mode == "code" and \
            not self.p.desk.expired(view.payment)
        if self._idle(now) and not code_waiting and not (
                self.p.desk.expired(view.payment) and not view.payment.closing):
            # The shopper walked away from the QR (or from a cancel the provider could not
            # hear yet): "still there?", then abandon, which resolves the order (queried,
            # then closed: app.lane.flow.abandon) instead of blocking the lane until the QR
            # expires (issue 19). Not while a payment-code charge is within its deadline:
            # the shopper is confirming on the phone, not idle, and the deadline ends it.
            # An expired QR is settled first (below): the cart comes back with its reason.
            self._ask_still_there(view, now)
        elif self._next_poll is not None and now >= self._next_poll:
            self._next_poll = now + self.p.timings.poll.total_seconds()
            no = view.payment.out_trade_no

            def poll() -> None:  # retried once on a full disk (the reserve): see _money
                payment = self.p.desk.poll(no)
                if payment.open and (payment.closing or self._payment_expired(payment)):
                    payment = self.p.desk.settle(payment, payment.close_reason or "timeout")
                if self._view.screen is Screen.PAY:  # a completion may have moved on already
                    self._after_payment(payment)

            self._money(poll, no)
        self._resync_pay_deadline()

    def _resync_pay_deadline(self) -> None:
        """The countdown as shown (the QR's, or "confirm on your phone"'s): put right after a
        wall-clock step (when it ends is the payment's monotonic deadline,
        ``PaymentDesk.seconds_left``)."""
        view = self._view
        if view.screen is not Screen.PAY or view.payment is None or view.payment.closing:
            return
        shown = self._pay_deadline(view.payment)
        changes: dict[str, object] = {}
        if view.deadline is None or abs((view.deadline - shown).total_seconds()) > 1.0:
            changes["deadline"] = shown
        pay = view.payment
        if pay.deadline is not None and abs((pay.deadline - shown).total_seconds()) > 1.0:
            changes["payment"] = replace(pay, deadline=shown)
        if changes:
            self._show(**changes)

    def _tick_shopping(self, view: LaneView, now: float) -> None:
        if self._idle(now):
            self._ask_still_there(view, now)

    def _tick_still_there(self, view: LaneView, now: float) -> None:
        if view.back_to is Screen.PAY and view.payment is not None and \
                self._next_poll is not None and now >= self._next_poll:
            # The QR is behind the question: a shopper paying on the phone right now
            # gets the receipt, not "still there?".
            self._next_poll = now + self.p.timings.poll.total_seconds()
            no = view.payment.out_trade_no

            def poll() -> None:
                payment = self.p.desk.poll(no)
                if payment.state is PaymentState.PAID and \
                        self._view.screen is Screen.STILL_THERE:
                    self._after_payment(payment)

            self._money(poll, no)
            if self._view.screen is not Screen.STILL_THERE:
                return
        if self._due(now):
            self.abandon("timeout")
        else:
            self._resync_deadline(view, now)

    def _resync_deadline(self, view: LaneView, now: float) -> None:
        """The wall clock was stepped while a countdown is up: show the same remaining
        time against the new wall clock (when it ends is the monotonic deadline's)."""
        if view.deadline is None or self._deadline_at is None:
            return
        shown = self.clock.now() + timedelta(seconds=self._deadline_at - now)
        if abs((view.deadline - shown).total_seconds()) > 1.0:
            self._show(deadline=shown)

    def _tick_receipt(self, view: LaneView, now: float) -> None:
        if not self._due(now):
            self._resync_deadline(view, now)
            return
        receipt = view.receipt
        if receipt is not None and receipt.printed is None and not receipt.show_pass:
            # The printer has not said yet: the shopper must not leave with nothing.
            self._show(receipt=replace(receipt, show_pass=True),
                       deadline=self._deadline_in(self.p.timings.receipt_on_screen))
        else:
            self._wipe()

    def _tick_error(self, view: LaneView, now: float) -> None:
        if self._unrecorded is not None:  # paid, not yet written: never abandoned
            self._retry_unrecorded(now)
        elif self._idle_for(now):
            self.abandon("error")  # nobody came back: the next shopper starts clean

    def _tick_home(self, view: LaneView, now: float) -> None:
        self._apply_store_data(now)
        home = self._home()  # asks the wall clock too: a clock set right ends out of order
        if home is not view.screen or \
                (home is Screen.OUT_OF_ORDER and view.wrong_clock != self._wrong_clock()):
            self._show(screen=home)

    def _apply_store_data(self, now: float) -> None:
        """Between shoppers: apply the store data head office sent whose time has come
        (docs/store-sync.md, "The lane"). Only here, on the home screen, with no session
        and no payment open, so a cart keeps the prices it was scanned with
        (docs/pricing.md): a shopper who scanned before ``effective_at`` pays those prices,
        and the next shopper gets the new version. A failure is logged and tried again a
        minute later (monotonic), never on every tick."""
        data = self.p.store_data
        if data is None or self.session is not None or (
                self._data_retry_at is not None and now < self._data_retry_at):
            return
        wall = self.clock.now()
        try:
            if not data.due(wall) or self.p.desk.repo.all_open():
                return
            applied = data.apply_due(wall)
        except Exception:  # noqa: BLE001 - the lane sells on its last whole version
            log.exception("store data: applying the due versions failed; trying again later")
            self._data_retry_at = now + 60.0
            return
        if applied:
            log.info("store data applied between shoppers: %s",
                     ", ".join(f"{kind} {version}" for kind, version in applied))


_Tick = Callable[[Timers, LaneView, float], None]
_TICKS: dict[Screen, _Tick] = {
    Screen.PAY: Timers._tick_pay,
    **{screen: Timers._tick_shopping for screen in IDLE_WATCHED},
    Screen.STILL_THERE: Timers._tick_still_there,
    Screen.RECEIPT: Timers._tick_receipt,
    Screen.ERROR: Timers._tick_error,
    Screen.ATTRACT: Timers._tick_home,
    Screen.OUT_OF_ORDER: Timers._tick_home,
}  # CLOSED waits for staff; STAFF is staff mode's own (above)


__all__ = ["Timers"]
