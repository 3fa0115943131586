"""What a scan does on each screen, and the shopper's changes to the cart.

A code from the camera, a serial or keyboard-wedge scanner or the keypad
arrives here already cleaned and classified (``app.domain.scan_input``); the
screen decides what it means: a staff badge opens staff mode anywhere, a member
QR identifies the shopper, anything else is looked up as goods.
"""

from __future__ import annotations

from collections.abc import Callable

from app.domain.member_code import CodeInvalid
from app.domain.rejections import Refused
from app.domain.scan_input import CleanScan, ScanKind, classify, clean_scan
from app.lane.core import LaneCore
from app.lane.views import Confirm, Notice, Screen, refused_notice, typed_notice
from app.services.members import MemberIdentity, identify_by_phone, mask_phone
from app.services.session import ShoppingSession

# Screens with no cart to add to: a payment QR or an exit pass under the camera is not a buy.
_NO_CART = (Screen.CLOSED, Screen.OUT_OF_ORDER, Screen.ERROR, Screen.RECEIPT, Screen.PAY)


def scan_route(kind: ScanKind, screen: Screen) -> str:
    """What a scan of ``kind`` does on ``screen`` (the one routing table):

    - ``staff``: staff mode is on screen and reads every scan (badge, exit pass);
    - ``badge``: a staff badge opens staff mode's PIN pad, on any screen;
    - ``ignore``: nothing (no cart on this screen);
    - ``member``: the member QR identifies the shopper;
    - ``goods``: looked up in the catalogue (an exit pass or anything unknown is refused
      there, with the lookup's words, and recorded);
    - ``charge``: a wallet's payment code on the pay screen charges the amount on screen
      (the only way a scan starts a charge);
    - ``code_not_now``: a payment code anywhere else is never sent nor kept: the shopper
      is told to show it on the pay screen (on a screen with no cart, it is ignored)."""
    if kind is ScanKind.PAYMENT_CODE:
        # Before staff mode and the goods path: a payment code is a credential, never
        # handed to code that logs or records what it reads.
        if screen is Screen.PAY:
            return "charge"
        if screen in _NO_CART or screen is Screen.STAFF:
            return "ignore"
        return "code_not_now"
    if screen is Screen.STAFF:
        return "staff"
    if kind is ScanKind.STAFF_BADGE:
        return "badge"
    if screen in _NO_CART:
        return "ignore"
    if kind is ScanKind.MEMBER:
        return "member"
    return "goods"


SCAN_ROUTES = {(kind, screen): scan_route(kind, screen) for kind in ScanKind for screen in Screen}


class Scanning(LaneCore):
    def scan(self, text: str, symbology: str | None = None, how: str = "camera") -> None:
        """A code as text, not yet cleaned (the keypad, a test): cleaned here, once, then
        ``scan_code``. Input the cleaning refuses is handled as goods the lookup refused."""
        scanned: CleanScan | Refused
        try:
            scanned = clean_scan(text, self.p.max_length)
            if symbology is not None and scanned.symbology is None:
                scanned = CleanScan(scanned.text, symbology)
        except Refused as exc:
            scanned = exc
        self.scan_code(scanned, how)

    def scan_code(self, scanned: CleanScan | Refused, how: str = "camera") -> None:
        """A scan from the camera, a scanner or the keypad, cleaned (``clean_scan``) by the
        device that read it; ``how`` is camera, serial, wedge or manual."""
        self._touched()
        if self._view.screen is Screen.STILL_THERE and self._view.back_to is Screen.PAY:
            # Someone is there: back to the payment first, and the scan means what it means
            # on the pay screen (goods are not added to a cart being paid for).
            self.still_here()
        screen = self._view.screen
        kind = classify(scanned, self.p.code_ranges) if isinstance(scanned, CleanScan) \
            else ScanKind.GOODS  # the store's ranges (payment.code_ranges)
        route = scan_route(kind, screen)
        if route in ("staff", "badge") and self.staff is None:
            route = scan_route(ScanKind.GOODS, screen)  # no staff mode on this lane
        text = scanned.text if isinstance(scanned, CleanScan) else ""
        if route == "ignore":
            return
        if route == "staff":
            assert self.staff is not None
            self.staff.scanned(text, kind)
            return
        if route == "badge":
            assert self.staff is not None
            self.staff.open_pin_pad(text)
            return
        if route == "charge":
            self.pay_by_code(text, how)
            return
        if route == "code_not_now":
            self._cart_view(notice=Notice.of("payment_code_not_now", "warn"))
            return
        if screen is Screen.STILL_THERE:
            self.still_here()
        if route == "member":
            self._member_code(text)
            return
        self._goods(scanned, how)

    def _goods(self, scanned: CleanScan | Refused, how: str) -> None:
        if self.session is None:
            if not self._may_start():
                return
            self._begin(how)
        assert self.session is not None
        if self.checkout.cart.frozen:
            self._cart_view(screen=Screen.SHOPPING, notice=Notice.of("cart_frozen", "warn"))
            return
        try:
            if isinstance(scanned, Refused):
                self.session.scan_refused(scanned.refusal.code, how)
                raise scanned
            line = self.session.scan(scanned, how)
        except Refused as exc:
            # A typed code is told what was wrong with what was typed, not to "type the
            # code" (issue 19); a scan keeps the refusal's own words.
            self._cart_view(screen=Screen.SHOPPING,
                            notice=typed_notice(exc) if how == "manual" else refused_notice(exc),
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
        # Once accepted the number is only ever shown masked (the next shopper in the
        # queue can read the screen); the keypad clears when the screen changes.
        self._identified(member, masked=mask_phone(text))

    def _identified(self, member: MemberIdentity, masked: str = "") -> None:
        if self.session is None:
            if not self._may_start():
                return
            self._begin(member.how)
        assert self.session is not None
        self.session.identify(member)
        self.member_provisional = member.provisional
        self._member_masked = masked
        self._cart_view(screen=Screen.SHOPPING, notice=Notice.of(
            "member_welcome_offline" if member.provisional else "member_welcome", "ok"))

    def _line_change(self, change: Callable[[ShoppingSession], object],
                     line_id: int | None = None) -> None:
        """Apply ``change`` (which touches line ``line_id``, or removes it: None) and show
        the cart with that line as the one just changed (scrolled to, highlighted)."""
        self._touched()
        if self.session is None or self._view.screen is not Screen.SHOPPING:
            return
        if self.checkout.cart.frozen:
            self._cart_view(notice=Notice.of("cart_frozen", "warn"))
            return
        try:
            change(self.session)
        except Refused as exc:
            self._cart_view(notice=refused_notice(exc))
            return
        except KeyError:
            return  # the line went (a double tap on remove): nothing to do
        if line_id is None:
            self._cart_view(notice=None)
        else:
            self._cart_view(notice=None, last_line_id=line_id)

    def plus(self, line_id: int) -> None:
        """"+" on a line; refused with the cart's own words at the line's limit
        (``Cart.room_for_one_more``: the screen disables "+" there already)."""
        self._line_change(lambda s: s.set_quantity(
            line_id, self.checkout.cart.line(line_id).quantity + 1), line_id)

    def minus(self, line_id: int) -> None:
        """"-" on a line: one fewer; at quantity 1 the shopper is asked first (a "-"
        tapped once too often must not take a line away unasked: ``answer``)."""
        self._touched()
        if self.session is None or self._view.screen is not Screen.SHOPPING:
            return
        try:
            line = self.checkout.cart.line(line_id)
        except Refused:
            return  # already gone (a double tap): nothing to ask
        if line.quantity <= 1 and not self.checkout.cart.frozen:
            self._cart_view(confirm=Confirm("remove", line_id, line.product.name_zh,
                                            line.product.name_en))
            return
        self._line_change(lambda s: s.set_quantity(line_id, line.quantity - 1), line_id)

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
        waiting = under is Screen.AGE_CHECK
        screen = Screen.SHOPPING if waiting else under
        self._cart_view(screen=screen, notice=Notice.of("age_approved", "ok"))
        if waiting and not self.checkout.cart.pending_age_checks():
            # The shopper was waiting to pay: straight on to paying, no second tap on Pay
            # (issue 19); from staff mode, once it closes (app.lane.staff_side.leave_staff).
            if self._view.screen is Screen.STAFF:
                self._pay_after_staff = True
            else:
                self.pay()

    def remove_age_items(self) -> None:
        """Age check screen, "Remove them and pay for the rest": every line waiting for an
        age check is removed (an ``item_removed`` event each, as any removal), then on to
        paying; with nothing left, back to the (empty) cart."""
        self._touched()
        if self.session is None or self._view.screen is not Screen.AGE_CHECK:
            return
        for line in list(self.checkout.cart.pending_age_checks()):
            self.session.remove(line.line_id)
        if self._age_call and self._view.help_requested:
            self.cancel_help()  # the age check called them; nothing left for them to check
        self._age_call = False
        if not self.checkout.lines():
            self._cart_view(screen=Screen.SHOPPING, last_line_id=None,
                            notice=Notice.of("age_items_removed_empty", "info"))
            return
        self._cart_view(screen=Screen.SHOPPING, last_line_id=None,
                        notice=Notice.of("age_items_removed", "info"))
        self.pay()


__all__ = ["SCAN_ROUTES", "Scanning", "scan_route"]
