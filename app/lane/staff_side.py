"""The lane's side of staff mode: what staff may do to a lane (``LaneControl``).

Staff mode (``app.services.staff``) reaches the lane only through the methods
here, declared by ``app.services.staff_port.LaneControl``; the lane reaches staff
mode only through ``StaffDesk``. Neither imports the other.
"""

from __future__ import annotations

from app.domain.cart import CartLine
from app.domain.money import Money
from app.lane.core import LaneCore
from app.lane.views import IDLE_WATCHED, Screen
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

    def cart_lines(self) -> list[CartLine]:
        return self.checkout.lines() if self.session is not None else []

    def pending_age_lines(self) -> list[CartLine]:
        return list(self.checkout.cart.pending_age_checks()) if self.session else []

    def void_line(self, line_id: int, staff: str) -> CartLine:
        if self.session is None:
            raise KeyError("no shopper session")
        line = self.session.void(line_id, staff)
        self.refresh()
        return line

    def override_price(self, line_id: int, total: Money, staff: str) -> CartLine:
        if self.session is None:
            raise KeyError("no shopper session")
        line = self.session.override_price(line_id, total, staff)
        self.refresh()
        return line


__all__ = ["StaffSide"]
