"""A paid sale: everything a receipt prints, frozen at the moment the payment succeeded.

The receipt and any later copy are printed from this record, never from the
live cart or today's prices, so a reprint a week later says exactly what the
shopper paid. ``to_dict``/``from_dict`` give the JSON the print queue keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from app.domain.money import Money
from app.domain.pricing import PricedCart
from app.domain.tax import TaxMode


@dataclass(frozen=True, slots=True)
class Saving:
    """A member price or promotion on one line, as printed under it."""

    name_zh: str
    name_en: str
    amount: Money  # positive: what the shopper saved


@dataclass(frozen=True, slots=True)
class SaleLine:
    name_zh: str
    name_en: str
    quantity: int
    weight_g: int | None  # weighed items: the weight; quantity is then 1
    unit_price: Money  # per piece, or per kg for weighed items
    regular: Money  # the line at the regular price
    savings: tuple[Saving, ...]
    total: Money


@dataclass(frozen=True, slots=True)
class SaleTax:
    tax_class: str
    rate: Fraction
    base: Money
    tax: Money

    @property
    def percent(self) -> str:
        """The rate as a receipt prints it: 13%, 9%, 6.5%."""
        value = self.rate * 100
        return f"{value.numerator // value.denominator}%" if value.denominator == 1 \
            else f"{float(value):g}%"


@dataclass(frozen=True, slots=True)
class PaidSale:
    order_id: str  # the payment's out_trade_no; unique per sale
    lane_id: str
    store_name_zh: str
    store_name_en: str
    paid_at: datetime  # with its UTC offset
    lines: tuple[SaleLine, ...]
    subtotal: Money
    savings: Money
    tax_mode: TaxMode
    taxes: tuple[SaleTax, ...]
    tax_total: Money
    total: Money
    item_count: int
    payment_method: str  # "wechat", "alipay", "simulator", ...
    provider_ref: str  # the provider's transaction id
    member_id: str | None = None
    points_earned: int = 0
    exit_audit: bool = False  # picked for an exit check
    # The wallet the shopper paid with ("wechat", "alipay", "unionpay"): the one chosen for
    # the QR, or whose payment code was charged; "" when unknown (one QR for every wallet
    # and no choice). ``payment_method`` is then the provider (acquirer) that took it.
    wallet: str = ""

    @property
    def currency(self) -> str:
        return self.total.currency

    def to_dict(self) -> dict[str, Any]:
        def money(m: Money) -> int:
            return m.minor

        return {
            "order_id": self.order_id,
            "lane_id": self.lane_id,
            "store_name_zh": self.store_name_zh,
            "store_name_en": self.store_name_en,
            "paid_at": self.paid_at.isoformat(),
            "currency": self.currency,
            "lines": [
                {
                    "name_zh": ln.name_zh, "name_en": ln.name_en, "quantity": ln.quantity,
                    "weight_g": ln.weight_g, "unit_price": money(ln.unit_price),
                    "regular": money(ln.regular), "total": money(ln.total),
                    "savings": [[s.name_zh, s.name_en, money(s.amount)] for s in ln.savings],
                }
                for ln in self.lines
            ],
            "subtotal": money(self.subtotal),
            "savings": money(self.savings),
            "tax_mode": self.tax_mode.value,
            "taxes": [[t.tax_class, str(t.rate), money(t.base), money(t.tax)]
                      for t in self.taxes],
            "tax_total": money(self.tax_total),
            "total": money(self.total),
            "item_count": self.item_count,
            "payment_method": self.payment_method,
            "provider_ref": self.provider_ref,
            "member_id": self.member_id,
            "points_earned": self.points_earned,
            "exit_audit": self.exit_audit,
            "wallet": self.wallet,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaidSale:
        cur = d["currency"]

        def money(minor: int) -> Money:
            return Money(int(minor), cur)

        return cls(
            order_id=d["order_id"],
            lane_id=d["lane_id"],
            store_name_zh=d["store_name_zh"],
            store_name_en=d["store_name_en"],
            paid_at=datetime.fromisoformat(d["paid_at"]),
            lines=tuple(
                SaleLine(
                    ln["name_zh"], ln["name_en"], ln["quantity"], ln["weight_g"],
                    money(ln["unit_price"]), money(ln["regular"]),
                    tuple(Saving(z, e, money(a)) for z, e, a in ln["savings"]),
                    money(ln["total"]),
                )
                for ln in d["lines"]
            ),
            subtotal=money(d["subtotal"]),
            savings=money(d["savings"]),
            tax_mode=TaxMode(d["tax_mode"]),
            taxes=tuple(SaleTax(c, Fraction(r), money(b), money(t))
                        for c, r, b, t in d["taxes"]),
            tax_total=money(d["tax_total"]),
            total=money(d["total"]),
            item_count=d["item_count"],
            payment_method=d["payment_method"],
            provider_ref=d["provider_ref"],
            member_id=d["member_id"],
            points_earned=d["points_earned"],
            exit_audit=d["exit_audit"],
            wallet=d.get("wallet", ""),  # sales kept before the wallet was recorded
        )


def sale_from_cart(
    priced: PricedCart,
    *,
    order_id: str,
    lane_id: str,
    store_name_zh: str,
    store_name_en: str,
    paid_at: datetime,
    payment_method: str,
    provider_ref: str,
    member_id: str | None = None,
    points_earned: int = 0,
    exit_audit: bool = False,
) -> PaidSale:
    """Freeze a priced cart into the sale its receipt prints."""
    if paid_at.tzinfo is None:
        raise ValueError("paid_at must carry its UTC offset")
    lines = tuple(
        SaleLine(
            name_zh=pl.line.product.name_zh,
            name_en=pl.line.product.name_en,
            quantity=pl.line.quantity,
            weight_g=pl.line.weight_g,
            unit_price=pl.unit_price,
            regular=pl.regular,
            savings=tuple(Saving(a.name_zh, a.name_en, a.saving) for a in pl.adjustments),
            total=pl.total,
        )
        for pl in priced.lines
    )
    return PaidSale(
        order_id=order_id,
        lane_id=lane_id,
        store_name_zh=store_name_zh,
        store_name_en=store_name_en,
        paid_at=paid_at,
        lines=lines,
        subtotal=priced.subtotal,
        savings=priced.savings,
        tax_mode=priced.tax_mode,
        taxes=tuple(SaleTax(t.tax_class, t.rate, t.base, t.tax) for t in priced.tax),
        tax_total=priced.tax_total,
        total=priced.total,
        item_count=priced.item_count,
        payment_method=payment_method,
        provider_ref=provider_ref,
        member_id=member_id,
        points_earned=points_earned,
        exit_audit=exit_audit,
    )
