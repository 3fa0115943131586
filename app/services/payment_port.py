"""The port a payment adapter implements, and what passes through it.

Kept apart from ``app.services.payments`` (the desk, which writes through
storage) so that adapters in ``devices/payment`` depend on the port alone and
never, even indirectly, on the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.domain.payment import ProviderView
from app.domain.payment_code import PaymentCode


@dataclass(frozen=True)
class OrderRequest:
    out_trade_no: str
    amount_minor: int
    currency: str
    description: str
    expires_at: datetime


@dataclass(frozen=True)
class CodeCharge:
    """A charge of the shopper's payment code (customer-presented payment). ``code`` shows
    as ``PaymentCode(wallet, n digits)`` in any repr: the adapter calls ``reveal()`` only
    to build its request, and never logs the request body."""

    out_trade_no: str
    amount_minor: int
    currency: str
    description: str
    code: PaymentCode


@dataclass(frozen=True)
class Notification:
    notification_id: str
    out_trade_no: str
    view: ProviderView


@dataclass(frozen=True)
class CredentialCheck:
    """What a harmless signed request told about the adapter's set-up (``kiosk doctor``).

    ``reached``: the provider answered at all. ``accepted``: it accepted the kiosk's
    credentials and its reply verified with the keys the kiosk holds (a query for an order
    that does not exist answered "no such order", signed). ``detail``: what happened, for
    a technician; ``setting``: the setting a refusal points to ('' if none).
    ``server_date``: the reply's HTTP ``Date`` header ('' if none), for the clock check;
    ``sent_at``/``received_at``: the kiosk's wall-clock seconds (``time.time()``) just
    before the request and just after its reply."""

    reached: bool
    accepted: bool
    detail: str
    setting: str = ""
    server_date: str = ""
    sent_at: float = 0.0
    received_at: float = 0.0


class InvalidNotification(ValueError):
    """A notification that failed verification: forged, altered, stale or malformed."""


class PaymentProvider(Protocol):
    """The port a payment adapter implements. Every call raises ``PaymentError`` on failure."""

    name: str

    def create(self, order: OrderRequest) -> str:
        """Create (or, for the same out_trade_no, find again) the order; return the QR payload."""
        ...

    def query(self, out_trade_no: str) -> ProviderView: ...

    def close(self, out_trade_no: str) -> ProviderView | None:
        """Close an unpaid order. Returns what the provider said if that was more than "ok"
        (e.g. it was already paid, or was refunded instead)."""
        ...

    # Payment-code charges -----------------------------------------------------------------
    # The wallets (app.domain.payment_code) whose payment codes this adapter can charge;
    # empty for an adapter without customer-presented payment.
    code_wallets: frozenset[str]

    def charge_code(self, charge: CodeCharge) -> ProviderView:
        """Charge ``charge.code`` for ``charge.amount_minor``, once: never called twice for
        one out_trade_no (a retry after a lost reply is ``query``). Returns

        - PAID: the money is taken;
        - PAYING: the wallet asks the shopper for a password or fingerprint (WeChat Pay
          ``USERPAYING``, Alipay ``10003``): poll ``query`` until a final state;
        - DECLINED with ``decline`` set: refused at once (insufficient balance, expired or
          used code); no money moved.

        Raises ``PaymentError`` (``maybe_done`` True: the outcome is unknown, query it) for
        a timeout, a lost reply or a system error; ``ProviderRefused`` with ``maybe_done``
        False when the request itself was refused (a key, a merchant id, an amount)."""
        ...

    def reverse(self, out_trade_no: str) -> ProviderView | None:
        """Give up a payment-code charge: WeChat Pay's reverse, Alipay's alipay.trade.cancel,
        the gateway's reverse. The provider closes it if unpaid and refunds it if paid.
        Returns what the provider said when more than "done" (e.g. REFUNDED). Raises
        ``PaymentError`` when it must be asked again (the shopper is entering a password:
        a reverse is refused until the charge ends; a lost reply)."""
        ...

    def refund(self, out_trade_no: str, refund_no: str, amount_minor: int,
               total_minor: int, reason: str) -> str: ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify and read a notification, or raise ``InvalidNotification``."""
        ...

    def check_credentials(self) -> CredentialCheck:
        """A harmless signed request (a query for an order that cannot exist) to tell
        whether the provider is reachable and accepts the kiosk's credentials; never
        raises for what the provider answers. For ``kiosk doctor``."""
        ...


__all__ = ["CodeCharge", "CredentialCheck", "InvalidNotification", "Notification",
           "OrderRequest", "PaymentProvider"]
