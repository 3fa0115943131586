"""The promotions a store runs, as data: what each one is and which items it covers.

Kinds (``kind`` in the store's promotions file):

* ``multi_buy``   buy ``buy`` pay ``pay`` (3 for 2): in each group of ``buy``
                  units, the cheapest ``buy - pay`` are free.
* ``n_for_x``     ``buy`` units for ``price`` (2 for ¥10).
* ``percent_off`` ``percent`` off each covered unit or weighed line.
* ``amount_off``  ``amount`` off each covered unit (never below zero).
* ``spend_threshold`` 满减: when covered lines add up to ``threshold``, save
                  ``amount`` (every full ``threshold`` when ``repeat``).

A promotion covers the products listed in ``products`` and every product of the
``departments`` listed; both empty means the whole store. Covering several
products makes a mix-and-match group: any 3 of these drinks for ¥10.
How they combine is ``pricing``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from app.domain.catalogue import Product
from app.domain.gtin import catalogue_keys
from app.domain.money import Money

ITEM_KINDS = ("multi_buy", "n_for_x", "percent_off", "amount_off")


class PromoKind(StrEnum):
    MULTI_BUY = "multi_buy"
    N_FOR_X = "n_for_x"
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    SPEND_THRESHOLD = "spend_threshold"


@dataclass(frozen=True, slots=True)
class Promotion:
    promo_id: str
    kind: PromoKind
    name_zh: str
    name_en: str
    products: frozenset[str] = field(default_factory=frozenset)
    departments: frozenset[str] = field(default_factory=frozenset)
    buy: int = 0
    pay: int = 0
    price: Money | None = None
    percent: int = 0
    amount: Money | None = None
    threshold: Money | None = None
    repeat: bool = False
    member_only: bool = False
    priority: int = 100  # lower applies first; ties broken by promo_id

    def __post_init__(self) -> None:
        where = f"promotion {self.promo_id!r} ({self.kind})"
        if not self.promo_id:
            raise ValueError("a promotion needs a promo_id")
        if self.kind is PromoKind.MULTI_BUY and not 0 <= self.pay < self.buy:
            raise ValueError(f"{where}: needs buy > pay >= 0, e.g. buy=3 pay=2")
        if self.kind is PromoKind.N_FOR_X and (self.buy < 2 or self.price is None):
            raise ValueError(f"{where}: needs buy >= 2 and a price")
        if self.kind is PromoKind.PERCENT_OFF and not 0 < self.percent <= 100:
            raise ValueError(f"{where}: percent must be 1-100")
        if self.kind is PromoKind.AMOUNT_OFF and (self.amount is None or self.amount.minor <= 0):
            raise ValueError(f"{where}: needs a positive amount")
        if self.kind is PromoKind.SPEND_THRESHOLD and (
            self.threshold is None
            or self.amount is None
            or self.threshold.minor <= 0
            or not 0 < self.amount.minor <= self.threshold.minor
        ):
            raise ValueError(f"{where}: needs threshold > 0 and 0 < amount <= threshold")
        for money in (self.price, self.amount, self.threshold):
            if money is not None and money.minor < 0:
                raise ValueError(f"{where}: amounts cannot be negative")

    def covers(self, product: Product) -> bool:
        if not self.products and not self.departments:
            return True
        return product.code in self.products or product.department in self.departments

    def applies_to(self, member: bool) -> bool:
        return member or not self.member_only

    def order_key(self) -> tuple[int, str]:
        return (self.priority, self.promo_id)

    def name(self, language: str) -> str:
        return self.name_zh if language.startswith("zh") else self.name_en


_MONEY_FIELDS = ("price", "amount", "threshold")
_KNOWN_FIELDS = {
    "promo_id",
    "kind",
    "name_zh",
    "name_en",
    "products",
    "departments",
    "buy",
    "pay",
    "percent",
    "repeat",
    "member_only",
    "priority",
    *_MONEY_FIELDS,
}


def promotion_from_dict(data: dict[str, object], currency: str) -> Promotion:
    """Build a Promotion from the store's promotions file (amounts as "12.50" strings).

    Unknown keys are an error, so a typo such as ``treshold`` is caught at import.
    """
    unknown = set(data) - _KNOWN_FIELDS
    where = f"promotion {data.get('promo_id', '?')!r}"
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        kind = PromoKind(str(data["kind"]))
    except (KeyError, ValueError):
        raise ValueError(
            f"{where}: kind must be one of {', '.join(k.value for k in PromoKind)}"
        ) from None
    money: dict[str, Money | None] = {}
    for name in _MONEY_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f'{where}: {name} must be a string like "10.00", not {value!r}')
        money[name] = Money.parse(value, currency) if value is not None else None

    def ints(name: str, default: int) -> int:
        value = data.get(name, default)
        if type(value) is not int:
            raise ValueError(f"{where}: {name} must be a whole number")
        return value

    def strings(name: str) -> list[str]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: {name} must be a list of strings")
        return value

    try:
        # Every key the code is stored under (a UPC-E that is also an EAN-8 has two),
        # so the promotion covers the product whichever path found it.
        products = frozenset(
            key for code in strings("products") for key in catalogue_keys(code)
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None

    return Promotion(
        promo_id=str(data.get("promo_id", "")),
        kind=kind,
        name_zh=str(data.get("name_zh", "")),
        name_en=str(data.get("name_en", "")),
        products=products,
        departments=frozenset(strings("departments")),
        buy=ints("buy", 0),
        pay=ints("pay", 0),
        percent=ints("percent", 0),
        repeat=bool(data.get("repeat", False)),
        member_only=bool(data.get("member_only", False)),
        priority=ints("priority", 100),
        **money,
    )


def promotion_to_dict(promo: Promotion) -> dict[str, object]:
    data: dict[str, object] = {
        "promo_id": promo.promo_id,
        "kind": promo.kind.value,
        "name_zh": promo.name_zh,
        "name_en": promo.name_en,
        "products": sorted(promo.products),
        "departments": sorted(promo.departments),
        "buy": promo.buy,
        "pay": promo.pay,
        "percent": promo.percent,
        "repeat": promo.repeat,
        "member_only": promo.member_only,
        "priority": promo.priority,
    }
    for name in _MONEY_FIELDS:
        value = getattr(promo, name)
        if value is not None:
            data[name] = value.to_decimal_string()
    return data
