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
