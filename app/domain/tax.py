"""Sales tax / VAT: tax-inclusive stores (China, EU) and tax-exclusive stores (US).

Rates are exact fractions parsed from decimal strings (``"0.13"``), never floats.
Rounding rule: tax is computed once per tax class on the sum of that class's
line totals after discounts, rounded half away from zero (see ``money``). Per-
class rounding is what fiscal receipts print, and it keeps the receipt's tax
lines adding up to its tax total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from app.domain.money import Money


class TaxMode(StrEnum):
    INCLUSIVE = "inclusive"  # shelf prices already include tax (China, EU)
    EXCLUSIVE = "exclusive"  # tax is added at the till (US)


def parse_rate(text: str) -> Fraction:
    """``"0.13"`` or ``"13%"`` -> Fraction(13, 100); rejects floats and nonsense."""
    raw = text.strip()
    percent = raw.endswith("%")
    if percent:
        raw = raw[:-1].strip()
    try:
        rate = Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"tax rate {text!r} is not a number like 0.13 or 13%") from None
    if percent:
        rate /= 100
    if not 0 <= rate < 1:
        raise ValueError(f"tax rate {text!r} must be at least 0 and below 100%")
    return rate


@dataclass(frozen=True, slots=True)
class TaxLine:
    """Tax of one class on a receipt: the taxed amount and the tax in it."""

    tax_class: str
    rate: Fraction
    base: Money  # what the class's lines add up to (gross if inclusive, net if exclusive)
    tax: Money


@dataclass(frozen=True, slots=True)
class TaxPolicy:
    """The store's tax mode and its classes (class code -> rate)."""

    mode: TaxMode
    rates: Mapping[str, Fraction]

    def rate_of(self, tax_class: str) -> Fraction:
        try:
            return self.rates[tax_class]
        except KeyError:
            raise ValueError(
                f"unknown tax class {tax_class!r}; known: {', '.join(sorted(self.rates))}"
            ) from None

    def compute(self, amounts_by_class: Iterable[tuple[str, Money]]) -> list[TaxLine]:
        """Tax per class for (tax class, line total after discounts) pairs."""
        sums: dict[str, Money] = {}
        for tax_class, amount in amounts_by_class:
            sums[tax_class] = sums[tax_class] + amount if tax_class in sums else amount
        lines = []
        for tax_class in sorted(sums):
            base = sums[tax_class]
            rate = self.rate_of(tax_class)
            if self.mode is TaxMode.INCLUSIVE:
                tax = base.times(rate / (1 + rate))
            else:
                tax = base.times(rate)
            lines.append(TaxLine(tax_class, rate, base, tax))
        return lines
