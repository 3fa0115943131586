"""Small builders for domain objects used across unit tests."""

from __future__ import annotations

from fractions import Fraction

from app.domain.catalogue import Product, Unit
from app.domain.gtin import check_digit
from app.domain.money import Money
from app.domain.tax import TaxMode, TaxPolicy

TAX = TaxPolicy(TaxMode.INCLUSIVE, {"standard": Fraction(13, 100), "food": Fraction(9, 100)})


def gtin(n: int) -> str:
    payload = f"690000{n:06d}"
    return (payload + str(check_digit(payload))).zfill(14)


def cny(minor: int) -> Money:
    return Money(minor, "CNY")


def product(
    n: int,
    price: int,
    *,
    member: int | None = None,
    unit: Unit = Unit.EACH,
    dept: str = "grocery",
    min_age: int = 0,
    limit: int | None = None,
    tax_class: str = "standard",
) -> Product:
    return Product(
        gtin(n),
        f"商品{n}",
        f"Item {n}",
        cny(price),
        unit,
        tax_class,
        cny(member) if member is not None else None,
        min_age,
        limit,
        dept,
    )


def paid_sale(*, exit_audit: bool = True, member: bool = True, weighed: bool = True):
    """A fixed sale for receipt tests: two lines with savings, a weighed line, two tax classes."""
    from datetime import datetime, timedelta, timezone

    from app.domain.sale import PaidSale, SaleLine, SaleTax, Saving

    lines = [
        SaleLine("纯牛奶 250ml", "Whole Milk 250ml", 2, None, cny(650), cny(1300),
                 (Saving("会员价", "Member price", cny(120)),
                  Saving("第二件半价", "2nd at half price", cny(295))), cny(885)),
        SaleLine("有机燕麦片 超大家庭装 1.5kg 原味", "Organic rolled oats, family size 1.5kg",
                 1, None, cny(4590), cny(4590), (), cny(4590)),
    ]
    if weighed:
        lines.append(SaleLine("香蕉", "Bananas", 1, 1234, cny(698), cny(861),
                              (Saving("会员价", "Member price", cny(123)),), cny(738)))
    total = sum(ln.total.minor for ln in lines)
    return PaidSale(
        order_id="K20261125L01-000123",
        lane_id="lane-01",
        store_name_zh="扫码购示范店",
        store_name_en="Scan & Go Demo Store",
        paid_at=datetime(2026, 11, 25, 10, 30, 5, tzinfo=timezone(timedelta(hours=8))),
        lines=tuple(lines),
        subtotal=cny(sum(ln.regular.minor for ln in lines)),
        savings=cny(sum(ln.regular.minor - ln.total.minor for ln in lines)),
        tax_mode=TaxMode.INCLUSIVE,
        taxes=(SaleTax("food", Fraction(9, 100), cny(total), cny(total * 9 // 109)),),
        tax_total=cny(total * 9 // 109),
        total=cny(total),
        item_count=sum(ln.quantity for ln in lines),
        payment_method="wechat",
        provider_ref="4200001234202611250000000001",
        member_id="M000001" if member else None,
        points_earned=62 if member else 0,
        exit_audit=exit_audit,
    )
