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


@dataclass(frozen=True)
class OrderRequest:
    out_trade_no: str
    amount_minor: int
    currency: str
    description: str
    expires_at: datetime


@dataclass(frozen=True)
class Notification:
    notification_id: str
    out_trade_no: str
    view: ProviderView


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

    def refund(self, out_trade_no: str, refund_no: str, amount_minor: int,
               total_minor: int, reason: str) -> str: ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify and read a notification, or raise ``InvalidNotification``."""
        ...


__all__ = ["InvalidNotification", "Notification", "OrderRequest", "PaymentProvider"]
