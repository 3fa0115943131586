"""The shopper's virtual cart: lines, quantities, limits and age checks.

The cart records what the shopper is buying; what it costs is ``pricing``'s
job, so the cart never holds a total that could go stale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.domain.catalogue import Product, ScannedItem, Unit
from app.domain.money import Money
from app.domain.rejections import refuse

MAX_QUANTITY = 99  # per line; a typo of 1000 must not reach payment


@dataclass(frozen=True, slots=True)
class CartLine:
    line_id: int
    product: Product
    quantity: int = 1
    weight_g: int | None = None
    label_price: Money | None = None
    age_approved: bool = False

    @property
    def weighed(self) -> bool:
        return self.product.unit is Unit.KG or self.label_price is not None

    @property
    def needs_age_check(self) -> bool:
        return self.product.age_restricted and not self.age_approved

    def sort_key(self) -> tuple[str, int, int, int, int]:
        """Order independent of scan order; line_id only breaks ties between identical lines."""
        return (
            self.product.code,
            self.weight_g or 0,
            self.label_price.minor if self.label_price else 0,
            self.quantity,
            self.line_id,
        )


def _frozen() -> Exception:
    return refuse(
        "cart_frozen",
        "The cart is locked while payment is in progress. Cancel the payment to change it.",
        "支付进行中，购物车已锁定。如需修改请先取消支付。",
    )


class Cart:
    """Lines in the order they were scanned; each change returns the line it touched."""

    def __init__(self, lines: list[CartLine] | None = None, next_line_id: int = 1) -> None:
        self._lines: dict[int, CartLine] = {line.line_id: line for line in lines or []}
        self._next_line_id = max([next_line_id, *(i + 1 for i in self._lines)])
        self.frozen = False

    @property
    def lines(self) -> list[CartLine]:
        return [self._lines[i] for i in sorted(self._lines)]

    @property
    def next_line_id(self) -> int:
        return self._next_line_id

    def line(self, line_id: int) -> CartLine:
        try:
            return self._lines[line_id]
        except KeyError:
            raise refuse(
                "no_such_line",
                "That item is no longer in the cart.",
                "该商品已不在购物车中。",
            ) from None

    def units_of(self, code: str) -> int:
        return sum(line.quantity for line in self._lines.values() if line.product.code == code)

    def room_for_one_more(self, line_id: int) -> bool:
        """Whether "+" on line ``line_id`` can succeed: not frozen, counted (not weighed or
        label-priced), under ``MAX_QUANTITY`` on the line and under the product's
        ``quantity_limit`` over all its lines (the rules ``set_quantity`` enforces).
        False for a line not in the cart."""
        line = self._lines.get(line_id)
        if line is None or self.frozen or line.weighed or line.quantity >= MAX_QUANTITY:
            return False
        limit = line.product.quantity_limit
        return limit is None or self.units_of(line.product.code) < limit

    def _check_limit(self, product: Product, extra: int) -> None:
        limit = product.quantity_limit
        if limit is not None and self.units_of(product.code) + extra > limit:
            raise refuse(
                "quantity_limit",
                f"Limit {limit} per customer for {product.name_en}.",
                f"{product.name_zh} 每位顾客限购 {limit} 件。",
                product.code,
            )

    def add(self, item: ScannedItem) -> CartLine:
        if self.frozen:
            raise _frozen()
        self._check_limit(item.product, item.quantity)
        weighed = item.product.unit is Unit.KG or item.label_price is not None
        if not weighed:
            for line in self._lines.values():
                # Only into a line of the same product as scanned now: a line keeps the
                # price it was scanned at, a re-priced product since makes a line of its own.
                if line.product == item.product and not line.weighed:
                    return self._set(line, quantity=line.quantity + item.quantity)
        if item.quantity > MAX_QUANTITY:
            raise _too_many()
        line = CartLine(
            self._next_line_id,
            item.product,
            quantity=item.quantity,
            weight_g=item.weight_g if weighed else None,
            label_price=item.label_price,
        )
        self._lines[line.line_id] = line
        self._next_line_id += 1
        return line

    def set_quantity(self, line_id: int, quantity: int) -> CartLine:
        if self.frozen:
            raise _frozen()
        line = self.line(line_id)
        if type(quantity) is not int or quantity < 1:
            raise refuse(
                "bad_quantity",
                "Quantity must be at least 1. Use Remove to take an item out.",
                "数量至少为 1。如需删除请点“移除”。",
            )
        if line.weighed and quantity != 1:
            raise refuse(
                "weighed_line_quantity",
                "Items sold by weight are counted by their label. Scan each label.",
                "称重商品按秤签计价，请逐个扫描秤签。",
            )
        self._check_limit(line.product, quantity - line.quantity)
        return self._set(line, quantity=quantity)

    def _set(self, line: CartLine, **changes: int) -> CartLine:
        if changes.get("quantity", 0) > MAX_QUANTITY:
            raise _too_many()
        updated = replace(line, **changes)  # type: ignore[arg-type]
        self._lines[line.line_id] = updated
        return updated

    def remove(self, line_id: int) -> CartLine:
        if self.frozen:
            raise _frozen()
        line = self.line(line_id)
        del self._lines[line_id]
        return line

    def override_price(self, line_id: int, line_total: Money) -> CartLine:
        """A manager sets what this line costs (a damaged item, a shelf-edge error)."""
        if self.frozen:
            raise _frozen()
        line = self.line(line_id)
        if line_total.minor < 0 or line_total.currency != line.product.price.currency:
            raise refuse("bad_price", "The new price must be zero or more, in the store's "
                         "currency.", "新价格必须大于等于零，且为本店币种。")
        updated = replace(line, label_price=line_total)
        self._lines[line_id] = updated
        return updated

    def approve_age(self, line_id: int) -> CartLine:
        line = self.line(line_id)
        updated = replace(line, age_approved=True)
        self._lines[line_id] = updated
        return updated

    def pending_age_checks(self) -> list[CartLine]:
        return [line for line in self.lines if line.needs_age_check]

    def ready_to_pay(self) -> bool:
        return bool(self._lines) and not self.pending_age_checks()

    def item_count(self) -> int:
        return sum(line.quantity for line in self._lines.values())

    def clear(self) -> None:
        self._lines.clear()
        self.frozen = False


def _too_many() -> Exception:
    return refuse(
        "quantity_too_large",
        f"At most {MAX_QUANTITY} of one item per line. Please call staff for bulk purchases.",
        f"单行最多 {MAX_QUANTITY} 件。大宗购买请呼叫店员。",
    )
