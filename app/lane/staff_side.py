"""The lane's side of staff mode: what staff may do to a lane (``LaneControl``).

Staff mode (``app.services.staff``) reaches the lane only through the methods
here, declared by ``app.services.staff_port.LaneControl``; the lane reaches staff
mode only through ``StaffDesk``. Neither imports the other.
"""

from __future__ import annotations

from app.domain.cart import CartLine
from app.domain.money import Money
from app.lane.core import LaneCore
from app.lane.views import IDLE_WATCHED, Notice, Screen
from app.services.staff_port import (
    Bilingual,
    LaneLine,
    LaneState,
    OpenPayment,
    SessionRef,
    StaffView,
)


class StaffSide(LaneCore):
    def enter_staff(self, view: StaffView) -> None:
        current = self._view.screen
        if current is Screen.STAFF:
            self._show(staff=view, **self._staff_arrived(view))
            return
        back = self._view.back_to if current is Screen.STILL_THERE else current
        self._show(screen=Screen.STAFF, staff=view, back_to=back or Screen.ATTRACT,
                   **self._staff_arrived(view))

    def show_staff(self, view: StaffView) -> None:
        if self._view.screen is Screen.STAFF:
            self._show(staff=view, **self._staff_arrived(view))

    def _staff_arrived(self, view: StaffView) -> dict[str, bool]:
        """A member of staff signed in at this lane (``view.name``): the shopper's call for
        staff is answered, so its banner goes (and its longer idle grace with it)."""
        if not view.name or not self._view.help_requested:
            return {}
        self._help_at = None
        return {"help_requested": False}

    def leave_staff(self) -> None:
        if self._view.screen is not Screen.STAFF:
            return
        target = self._view.back_to or self._home()
        if self.session is None and target in (*IDLE_WATCHED, Screen.PAY, Screen.STILL_THERE):
            target = self._home()
        if target in (Screen.ATTRACT, Screen.CLOSED, Screen.OUT_OF_ORDER):
            target = self._home()  # staff may have opened or closed the lane
        self._touched()  # the shopper gets a fresh idle time
        self._leaving = True
        try:
            if self.session is not None and target in (*IDLE_WATCHED, Screen.PAY):
                self._cart_view(screen=target, staff=None, back_to=None)
            else:
                self._show(screen=target, staff=None, back_to=None)
        finally:
            self._leaving = False
        go_pay, self._pay_after_staff = self._pay_after_staff, False
        if go_pay and target is Screen.SHOPPING and self.session is not None:
            self.pay()  # the age check the shopper waited on is done: on to paying

    def refresh(self) -> None:
        """Show the cart again after staff changed it."""
        self._cart_view()

    def staff_view(self) -> StaffView | None:
        return self._view.staff if self._view.screen is Screen.STAFF else None

    def shopper_session(self) -> SessionRef | None:
        s = self.session
        return SessionRef(s.session_id, s.member_id) if s is not None else None

    def lane_state(self) -> LaneState:
        screen = self._view.screen
        if screen is Screen.STAFF and self._view.back_to is not None:
            screen = self._view.back_to
        if self.session is None:
            return LaneState(screen.value)
        priced = self._view.priced
        lines = tuple(LaneLine(Bilingual(pl.line.product.name_zh, pl.line.product.name_en),
                               pl.line.quantity, pl.line.weight_g, pl.total)
                      for pl in (priced.lines if priced else ()))
        open_payment = self.p.desk.repo.open_for_cart(self.checkout.cart_id)
        payment = OpenPayment(open_payment.method, open_payment.wallet or self._wallet,
                              open_payment.mode,
                              Money(open_payment.amount_minor, open_payment.currency),
                              open_payment.created_at, open_payment.state.value) \
            if open_payment is not None else None
        return LaneState(
            screen.value, lines, priced.item_count if priced else 0,
            priced.total if priced else Money(0, self.p.currency), self.session.member_id,
            payment, tuple(Bilingual(ln.product.name_zh, ln.product.name_en)
                           for ln in self.checkout.cart.pending_age_checks()))

    def shopper_busy(self) -> str | None:
        # Any open payment counts, not only this cart's: a stray one (a crash, a reset)
        # is still a shopper's money in flight until the lane has settled it.
        if self.p.desk.repo.all_open():
            return "payment"
        return "session" if self.session is not None else None

    def cart_lines(self) -> list[CartLine]:
        return self.checkout.lines() if self.session is not None else []

    def pending_age_lines(self) -> list[CartLine]:
        return list(self.checkout.cart.pending_age_checks()) if self.session else []

    def void_line(self, line_id: int, staff: str) -> CartLine:
        if self.session is None:
            raise KeyError("no shopper session")
        line = self.session.void(line_id, staff)
        # What just happened, not the last scan's "Added: ..." (issue 19).
        self._cart_view(last_line_id=None, notice=Notice.of(
            "removed_by_staff", "info", name_zh=line.product.name_zh,
            name_en=line.product.name_en))
        return line

    def override_price(self, line_id: int, total: Money, staff: str) -> CartLine:
        if self.session is None:
            raise KeyError("no shopper session")
        line = self.session.override_price(line_id, total, staff)
        self._cart_view(last_line_id=line.line_id, notice=Notice.of(
            "price_changed_by_staff", "info", name_zh=line.product.name_zh,
            name_en=line.product.name_en))
        return line


__all__ = ["StaffSide"]
