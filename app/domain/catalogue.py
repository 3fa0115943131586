"""Products the store sells, and turning a scanned code into something to put in the cart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from app.domain.barcodes import ScannedCode
from app.domain.money import Money
from app.domain.rejections import refuse


class Unit(StrEnum):
    EACH = "each"  # sold by the piece; quantity is a count
    KG = "kg"  # sold by weight; price is per kilogram, quantity comes from a scale label


@dataclass(frozen=True, slots=True)
class Product:
    code: str  # the lookup key: GTIN-14, or "PLU:4011" for produce without a barcode
    name_zh: str
    name_en: str
    price: Money  # per piece, or per kg when unit is KG
    unit: Unit = Unit.EACH
    tax_class: str = "standard"
    member_price: Money | None = None
    min_age: int = 0  # 0 = anyone; 18 = staff must check ID
    quantity_limit: int | None = None  # most units one shopper may buy
    department: str = ""
    image: str = ""

    def name(self, language: str) -> str:
        return self.name_zh if language.startswith("zh") else self.name_en

    @property
    def age_restricted(self) -> bool:
        return self.min_age > 0


def product_to_dict(product: Product) -> dict[str, object]:
    """A product as plain data (JSON-ready): the snapshot a cart line keeps of what was
    scanned, so a later catalogue change cannot alter an open cart (docs/pricing.md,
    "A session's prices"). Amounts are minor units; ``currency`` is the prices' currency."""
    return {
        "code": product.code, "name_zh": product.name_zh, "name_en": product.name_en,
        "currency": product.price.currency, "price": product.price.minor,
        "member_price": product.member_price.minor if product.member_price else None,
        "unit": product.unit.value, "tax_class": product.tax_class, "min_age": product.min_age,
        "quantity_limit": product.quantity_limit, "department": product.department,
        "image": product.image,
    }


def product_from_dict(data: dict[str, object]) -> Product:
    """The product ``product_to_dict`` wrote; raises KeyError/ValueError on a damaged one."""
    currency = str(data["currency"])
    member = data.get("member_price")
    limit = data.get("quantity_limit")
    return Product(
        code=str(data["code"]), name_zh=str(data["name_zh"]), name_en=str(data["name_en"]),
        price=Money(int(data["price"]), currency),  # type: ignore[call-overload]
        unit=Unit(str(data["unit"])), tax_class=str(data["tax_class"]),
        member_price=Money(int(member), currency)  # type: ignore[call-overload]
        if member is not None else None,
        min_age=int(data.get("min_age", 0)),  # type: ignore[call-overload]
        quantity_limit=int(limit) if limit is not None else None,  # type: ignore[call-overload]
        department=str(data.get("department", "")), image=str(data.get("image", "")),
    )


class Catalogue(Protocol):
    def get(self, key: str) -> Product | None:
        """The product stored under a lookup key, or None."""
        ...


@dataclass(frozen=True, slots=True)
class ScannedItem:
    """A product found for a scan, with what the code said about this one pack."""

    product: Product
    code: ScannedCode
    quantity: int = 1
    weight_g: int | None = None
    label_price: Money | None = None  # a price printed into the code is charged as-is


def find_item(code: ScannedCode, catalogue: Catalogue, today: date | None) -> ScannedItem:
    """Look a scanned code up; refuse unknown, expired or unweighed items with a reason.

    ``today`` is the store's date for the expiry check; None turns the check off.
    """
    product = None
    for key in code.candidates:
        product = catalogue.get(key)
        if product is not None:
            break
    if product is None:
        raise refuse(
            "unknown_product",
            "We could not find this item. Try scanning again, type the code, or call staff.",
            "未找到该商品。请重新扫描、手动输入条码，或呼叫店员。",
            code.candidates[0],
        )
    if today is not None and code.expiry is not None and code.expiry < today:
        raise refuse(
            "expired",
            "This item is past its use-by date and cannot be sold. Please hand it to staff.",
            "该商品已过期，不能销售。请交给店员。",
            code.candidates[0],
        )
    label_price = (
        Money(code.price_minor, product.price.currency) if code.price_minor is not None else None
    )
    if product.unit is Unit.KG:
        if label_price is None and not code.weight_g:
            raise refuse(
                "needs_weighing",
                "This item is sold by weight. Weigh it at the produce scale and scan the label.",
                "该商品按重量销售。请到称重台称重后扫描秤签。",
                code.candidates[0],
            )
        return ScannedItem(product, code, 1, code.weight_g, label_price)
    quantity = code.count if code.count else 1
    return ScannedItem(product, code, quantity, code.weight_g, label_price)
