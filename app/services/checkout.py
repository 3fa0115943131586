"""The shopping cart as a use case: scans in, cart lines out.

This is the seam between every scanner (camera, keyboard wedge, serial,
manual entry) and the cart: whatever the source, a scan is validated and
interpreted by the domain, looked up in the catalogue, and added. Sessions,
members and behaviour events build on it in their own issues.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.domain.barcodes import BarcodeRules, interpret
from app.domain.cart import Cart, CartLine
from app.domain.catalogue import Catalogue, find_item
from app.domain.clock import Clock
from app.domain.scan_input import CleanScan, clean_scan

if TYPE_CHECKING:
    from datetime import timedelta

    from app.domain.payment import Payment
    from app.domain.payment_code import PaymentCode
    from app.domain.sale import PaidSale
    from app.services.payments import PaymentDesk


@dataclass
class Checkout:
    """One shopper's cart.

    Call it from the thread that owns the kiosk's database (the UI thread, or
    the scenario runner's loop): scanners run on their own threads and hand
    scans over through the UI bridge or a queue, never by calling in directly.
    """

    catalogue: Catalogue
    rules: BarcodeRules
    clock: Clock
    refuse_expired: bool = True
    max_length: int = 512
    cart: Cart = field(default_factory=Cart)
    cart_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def add_scan(self, scan: CleanScan | str) -> CartLine:
        """Add the product a scan names; raises ``Refused`` with the reason when it cannot.

        ``scan``: what a scanner already cleaned (``clean_scan``: used as it is), or raw
        text (typed, or from a caller that did not clean it: cleaned here, once)."""
        clean = scan if isinstance(scan, CleanScan) else clean_scan(scan, self.max_length)
        code = interpret(clean, self.rules)
        today = self.clock.now().date() if self.refuse_expired else None
        item = find_item(code, self.catalogue, today)
        return self.cart.add(item)

    def lines(self) -> list[CartLine]:
        return list(self.cart.lines)

    def start_payment(self, desk: PaymentDesk, sale: PaidSale, description: str) -> Payment:
        """Freeze the cart and start (or resume) its one payment.

        While a payment is open the cart cannot change: the amount the provider
        was asked for is the amount of this cart, line for line.
        """
        self.cart.frozen = True
        payment = desk.start(self.cart_id, sale, description)
        self.payment_changed(payment)
        return payment

    def charge_code(self, desk: PaymentDesk, sale: PaidSale, description: str,
                    code: PaymentCode, deadline: timedelta) -> Payment:
        """Freeze the cart and charge the shopper's payment ``code`` for it (the desk's
        ``charge_code``: one charge per cart, never two; the code is never stored)."""
        self.cart.frozen = True
        payment = desk.charge_code(self.cart_id, sale, description, code, deadline)
        self.payment_changed(payment)
        return payment

    def payment_changed(self, payment: Payment) -> None:
        """Unfreeze the cart when its payment ended without money (failed, cancelled,
        expired): the shopper may change it and pay again. Paid carts stay frozen."""
        from app.domain.payment import PaymentState

        if not payment.open and payment.state is not PaymentState.PAID:
            self.cart.frozen = False
