"""Pricing a cart: member prices, promotions, totals and tax, explained line by line.

The rules, in the order they apply (and the order the receipt explains them):

1. **Base price.** A piece costs its price; a weighed line costs price per kg x
   grams / 1000, rounded half away from zero; a scale label's price is charged as
   printed. A member pays the member price where it is lower.
2. **Item promotions** (multi_buy, n_for_x, percent_off, amount_off), in
   ``priority`` order. Each unit (or weighed line) takes part in at most one item
   promotion, so discounts never stack on the same unit. Units are grouped most
   expensive first; in a 3-for-2 the cheapest of each three is free.
3. **Spend thresholds** (满减) on what the covered lines cost after step 2,
   spread over those lines in proportion, so each line shows its share.
4. **Tax** per tax class on the final line totals (see ``tax``).
5. **A member never pays more than a guest.** Member prices can take a basket
   below a spend threshold a guest would reach; when the guest price of the
   basket is lower, the member is charged that.

Everything works on lines sorted by product, never by scan order, so the same
items priced in any order give the same totals and the same line discounts.
No discount takes a line below zero.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from app.domain.cart import CartLine
from app.domain.catalogue import Unit
from app.domain.money import Money, round_half_away
from app.domain.promotions import PromoKind, Promotion
from app.domain.tax import TaxLine, TaxMode, TaxPolicy

MEMBER_PRICE = "member_price"


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One saving on one line, with the words the screen and receipt show."""

    code: str  # "member_price" or the promo_id
    name_zh: str
    name_en: str
    saving: Money  # positive: what the shopper saves

    def name(self, language: str) -> str:
        return self.name_zh if language.startswith("zh") else self.name_en


@dataclass(frozen=True, slots=True)
class PricedLine:
    line: CartLine
    unit_price: Money  # regular price per piece or per kg
    regular: Money  # what the line costs at the regular price
    adjustments: tuple[Adjustment, ...]
    total: Money

    @property
    def saving(self) -> Money:
        return self.regular - self.total


@dataclass(frozen=True, slots=True)
class PricedCart:
    lines: tuple[PricedLine, ...]  # in scan order, for display
    subtotal: Money  # regular prices before any saving
    savings: Money
    tax_mode: TaxMode
    tax: tuple[TaxLine, ...]
    tax_total: Money
    total: Money  # what the shopper pays
    item_count: int

    def savings_by_code(self) -> dict[str, Money]:
        result: dict[str, Money] = {}
        for line in self.lines:
            for adj in line.adjustments:
                result[adj.code] = (
                    result[adj.code] + adj.saving if adj.code in result else adj.saving
                )
        return result


def _line_cost(unit_price: Money, line: CartLine) -> Money:
    if line.label_price is not None:
        return line.label_price
    if line.product.unit is Unit.KG:
        return unit_price.times(Fraction(line.weight_g or 0, 1000))
    return unit_price * line.quantity


class _Work:
    """Per-line running state while pricing."""

    def __init__(self, line: CartLine, member: bool) -> None:
        product = line.product
        self.line = line
        self.regular = _line_cost(product.price, line)
        use_member = (
            member
            and product.member_price is not None
            and product.member_price < product.price
            and line.label_price is None
        )
        self.unit = product.member_price if use_member and product.member_price else product.price
        self.cost = _line_cost(self.unit, line)
        self.adjustments: list[Adjustment] = []
        if self.cost < self.regular:
            self.adjustments.append(
                Adjustment(MEMBER_PRICE, "会员价", "Member price", self.regular - self.cost)
            )
        self.free_units = 0 if line.weighed else line.quantity  # units not yet in an item promo
        self.weighed_free = line.weighed  # weighed line not yet in an item promo
        self.savings: dict[str, int] = defaultdict(int)

    @property
    def current(self) -> Money:
        return self.cost - Money(sum(self.savings.values()), self.cost.currency)


def price_cart(
    lines: list[CartLine],
    promotions: list[Promotion],
    *,
    member: bool,
    tax: TaxPolicy,
    currency: str,
) -> PricedCart:
    priced = _price(lines, promotions, member=member, tax=tax, currency=currency)
    if member:
        as_guest = _price(lines, promotions, member=False, tax=tax, currency=currency)
        if as_guest.total < priced.total:
            return as_guest
    return priced


def _price(
    lines: list[CartLine],
    promotions: list[Promotion],
    *,
    member: bool,
    tax: TaxPolicy,
    currency: str,
) -> PricedCart:
    work = [_Work(line, member) for line in sorted(lines, key=CartLine.sort_key)]
    active = sorted((p for p in promotions if p.applies_to(member)), key=Promotion.order_key)
    by_id = {p.promo_id: p for p in active}
    for promo in active:
        if promo.kind is PromoKind.SPEND_THRESHOLD:
            continue
        _apply_item_promotion(promo, work)
    for promo in active:
        if promo.kind is PromoKind.SPEND_THRESHOLD:
            _apply_threshold(promo, work)

    priced_by_id: dict[int, PricedLine] = {}
    for w in work:
        adjustments = list(w.adjustments)
        for promo_id in sorted(w.savings, key=lambda pid: by_id[pid].order_key()):
            amount = w.savings[promo_id]
            if amount:
                p = by_id[promo_id]
                adjustments.append(
                    Adjustment(p.promo_id, p.name_zh, p.name_en, Money(amount, currency))
                )
        priced_by_id[w.line.line_id] = PricedLine(
            w.line, w.line.product.price, w.regular, tuple(adjustments), w.current
        )
    priced = tuple(priced_by_id[i] for i in sorted(priced_by_id))
    zero = Money.zero(currency)
    subtotal = sum((p.regular for p in priced), zero)
    lines_total = sum((p.total for p in priced), zero)
    tax_lines = tuple(tax.compute((p.line.product.tax_class, p.total) for p in priced))
    tax_total = sum((t.tax for t in tax_lines), zero)
    total = lines_total + tax_total if tax.mode is TaxMode.EXCLUSIVE else lines_total
    return PricedCart(
        lines=priced,
        subtotal=subtotal,
        savings=subtotal - lines_total,
        tax_mode=tax.mode,
        tax=tax_lines,
        tax_total=tax_total,
        total=total,
        item_count=sum(line.quantity for line in lines),
    )


def _units(promo: Promotion, work: list[_Work]) -> list[tuple[int, int]]:
    """(unit price, index into work) for each covered piece not yet promoted, dearest first."""
    units = []
    for index, w in enumerate(work):
        if w.free_units and promo.covers(w.line.product):
            units.extend([(w.unit.minor, index)] * w.free_units)
    # Stable sort on a list already in product order: ties stay in product order.
    units.sort(key=lambda unit: -unit[0])
    return units


def _apply_item_promotion(promo: Promotion, work: list[_Work]) -> None:
    pid = promo.promo_id
    currency = work[0].cost.currency if work else "CNY"
    if promo.kind is PromoKind.MULTI_BUY:
        units = _units(promo, work)
        for start in range(0, len(units) - promo.buy + 1, promo.buy):
            group = units[start : start + promo.buy]
            for _, index in group:
                work[index].free_units -= 1
            for price, index in group[promo.pay :]:  # cheapest (buy - pay) of the group
                work[index].savings[pid] += price
    elif promo.kind is PromoKind.N_FOR_X:
        assert promo.price is not None
        units = _units(promo, work)
        for start in range(0, len(units) - promo.buy + 1, promo.buy):
            group = units[start : start + promo.buy]
            saving = sum(price for price, _ in group) - promo.price.minor
            if saving <= 0:
                break  # dearest groups come first: later groups cannot save either
            shares = Money(saving, currency).allocate([price for price, _ in group])
            for (_, index), share in zip(group, shares, strict=True):
                work[index].free_units -= 1
                work[index].savings[pid] += share.minor
    elif promo.kind is PromoKind.PERCENT_OFF:
        rate = Fraction(promo.percent, 100)
        for w in work:
            if not promo.covers(w.line.product):
                continue
            if w.weighed_free:
                w.weighed_free = False
                w.savings[pid] += round_half_away(w.cost.minor * rate)
            elif w.free_units:
                w.savings[pid] += round_half_away(w.unit.minor * w.free_units * rate)
                w.free_units = 0
    elif promo.kind is PromoKind.AMOUNT_OFF:
        assert promo.amount is not None
        for w in work:
            if w.free_units and promo.covers(w.line.product):
                w.savings[pid] += min(promo.amount.minor, w.unit.minor) * w.free_units
                w.free_units = 0


def _apply_threshold(promo: Promotion, work: list[_Work]) -> None:
    assert promo.threshold is not None and promo.amount is not None
    covered = [w for w in work if promo.covers(w.line.product) and w.current.minor > 0]
    spend = sum(w.current.minor for w in covered)
    times = spend // promo.threshold.minor
    if times == 0:
        return
    saving = promo.amount.minor * (times if promo.repeat else 1)
    saving = min(saving, spend)
    currency = covered[0].cost.currency
    shares = Money(saving, currency).allocate([w.current.minor for w in covered])
    for w, share in zip(covered, shares, strict=True):
        w.savings[promo.promo_id] += share.minor
