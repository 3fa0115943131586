"""The flow between a lane's screens: start, member, back, help, done, abandon, errors, open/closed.

Boot brings a lane back to where a crash or restart left it: the same cart and
the same open payment (``app.services.session`` and the payment desk keep both
on disk before anything else happens).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from app.domain.payment import Payment, PaymentState
from app.lane.core import LaneCore
from app.lane.parts import HELP_REPEAT
from app.lane.views import Confirm, LaneView, Notice, Screen
from app.services.session import ShoppingSession
from app.storage.db import is_disk_full
from app.storage.lane_state import LaneState
from app.storage.sessions_repo import Sessions

log = logging.getLogger(__name__)


class ScreenFlow(LaneCore):
    def boot(self) -> None:
        """Come back to where a crash or restart left this lane, or to the attract screen."""
        session = ShoppingSession.resume(self.p.db, self.p.outbox, self.checkout, self.p.lane_id,
                                         self.p.promotions())
        mine: Payment | None = None
        if session is not None:
            self.session = session
            self._promotions = session.promotions  # as it started, not as imported since
            self.member_provisional = Sessions(self.p.db).member_provisional(
                session.session_id)
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
        self._last_activity = self.mono()
        if mine is not None:
            self.checkout.cart.frozen = True
            self._show_payment(mine)
            return
        self._cart_view(screen=Screen.SHOPPING, notice=Notice.of("welcome_back"))

    def start(self) -> None:
        """Attract screen, "Start": the member screen comes first."""
        if self._view.screen is not Screen.ATTRACT or not self._may_start():
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

    def still_here(self) -> None:
        if self._view.screen is Screen.STILL_THERE:
            self._touched()
            self._deadline_at = None
            if self._view.back_to is Screen.PAY and self.session is not None:
                # Back to the payment as it is now (its QR and countdown), or to the cart
                # if it ended meanwhile.
                self._view = replace(self._view, back_to=None)
                pending = self.p.desk.repo.open_for_cart(self.session.session_id)
                if pending is not None:
                    self._show_payment(pending)
                else:
                    self._cart_view(screen=Screen.SHOPPING, payment=None, deadline=None)
                return
            self._show(screen=self._view.back_to or Screen.SHOPPING, deadline=None, back_to=None)

    def back(self) -> None:
        """Age check or error screen, "Back": to the cart."""
        self._touched()
        if self._unrecorded is not None:
            return  # a paid sale not yet written: its screen stays until it is
        if self._view.screen in (Screen.AGE_CHECK, Screen.ERROR, Screen.MEMBER):
            target = Screen.SHOPPING if self.session is not None else self._home()
            self._cart_view(screen=target, notice=None)

    def ask_start_over(self) -> None:
        """Shopping screen, "Cancel and start again": asks first (``answer``)."""
        self._touched()
        if self._view.screen is Screen.SHOPPING and self.session is not None:
            self._cart_view(confirm=Confirm("start_over"))

    def answer(self, yes: bool) -> None:
        """The shopper's answer to the question on screen (``LaneView.confirm``):

        - "remove", yes: the line goes (``item_removed``, as the Remove button);
        - "start_over", yes: the cart is given up as a walk-away is (``abandon`` with
          reason "shopper_cancelled": ``session_abandoned`` with the cart), and the
          attract screen is back for a fresh start;
        - no: the question goes, nothing changes."""
        self._touched()
        asked = self._view.confirm
        if asked is None or self._view.screen is not Screen.SHOPPING:
            return
        if not yes:
            self._show(confirm=None)
        elif asked.kind == "remove" and asked.line_id is not None:
            self.remove(asked.line_id)
        elif asked.kind == "start_over":
            self.abandon("shopper_cancelled")

    def call_staff(self) -> None:
        """Recorded every time (at most once a minute): as an event in a session, and
        always as a staff alert, so "staff are on their way" is true."""
        self._touched()
        now = self.mono()
        if self._help_at is not None and now - self._help_at < HELP_REPEAT.total_seconds():
            return
        self._help_at = now
        where = self._view.screen.value
        if self.session is not None:
            self.session.request_help(where)
        self.p.outbox.alert("help", f"{self.p.lane_id}: a shopper asked for help ({where})",
                            self.clock.now())
        self._show(help_requested=True)

    def cancel_help(self) -> None:
        """The "staff are on their way" banner, "Cancel": the shopper no longer needs help.
        Staff are told (an alert beside the call), so nobody walks over for nothing."""
        self._touched()
        if not self._view.help_requested:
            return
        self._help_at = None
        self.p.outbox.alert("help", f"{self.p.lane_id}: the shopper cancelled the call for "
                            f"staff ({self._view.screen.value})", self.clock.now())
        self._show(help_requested=False)

    def done(self) -> None:
        """Receipt screen, "Done": ready for the next shopper."""
        if self._view.screen is Screen.RECEIPT:
            self._wipe()

    def abandon(self, reason: str) -> None:
        """The shopper left (or staff reset the lane): resolve any payment, record, wipe."""
        if self.session is not None:
            pending = self.p.desk.repo.open_for_cart(self.session.session_id)
            if pending is not None:
                after = self._money(lambda: self.p.desk.settle(pending, "cancel"),
                                    pending.out_trade_no)
                if after is None:  # paid, and the full disk cannot take it: on screen
                    return
                if after.state is PaymentState.PAID:  # paid at the last moment: a sale
                    self._finish_paid(after)
                    return
            self.session.abandon(reason)
        self._wipe()

    def camera_health(self, state: str) -> None:
        """The camera is "ok" or "lost"; a lost camera offers the keypad, then out of order."""
        ok = state == "ok"
        if ok:
            self._camera_lost_since = None
        elif self._camera_lost_since is None:
            self._camera_lost_since = self.mono()
        if ok != self._view.camera_ok:
            current = self._view.notice
            keep = current if current is None or current.key != "camera_lost" else None
            notice = keep if ok else Notice.of("camera_lost", "warn")
            self._show(camera_ok=ok, manual_entry=not ok, notice=notice,
                       hand_scanner=self.p.other_scanners)
        if ok and self._view.screen is Screen.OUT_OF_ORDER:
            self._show(screen=self._home())

    def set_open(self, is_open: bool) -> None:
        """Staff open or close the lane (kept across restarts); a shopper mid-session
        finishes first."""
        LaneState(self.p.db).set_open(is_open)
        self._open = is_open
        if self._view.screen in (Screen.ATTRACT, Screen.CLOSED, Screen.OUT_OF_ORDER):
            self._show(screen=self._home())

    def failed(self, error: BaseException) -> None:
        """A command raised: show the error screen (what to do next) instead of freezing."""
        log.error("lane command failed", exc_info=error)
        if self._view.screen is Screen.STAFF and self._view.staff is not None:
            self._show(staff=replace(self._view.staff, message=f"Failed: {error}",
                                     level="error"))
            return
        back = self._view.screen if self._view.screen is not Screen.ERROR else self._view.back_to
        full = is_disk_full(error)
        if full:  # nothing was saved: say so, never "your cart is saved"; staff must know
            try:
                self.p.outbox.alert("disk", f"{self.p.lane_id}: the kiosk's disk is full; "
                                    "a shopper's step was not saved", self.clock.now())
            except Exception:  # noqa: BLE001 - the screen must still change
                log.exception("could not record the disk-full staff alert")
        self._show(screen=Screen.ERROR, back_to=back,
                   notice=Notice.of("error_disk_full" if full else "error_generic", "error"))

    def recover_from_error(self) -> None:
        """Error screen, "Back": the cart as the database has it."""
        if self._view.screen is not Screen.ERROR or self._unrecorded is not None:
            return
        self.checkout = self.p.new_checkout()
        self.session = None
        self._view = LaneView(Screen.ATTRACT, version=self._view.version,
                              camera_ok=self._view.camera_ok,
                              manual_entry=self._view.manual_entry,
                              hand_scanner=self._view.hand_scanner)
        self.boot()


__all__ = ["ScreenFlow"]
