"""Money as integer minor units (fen, cents) tagged with an ISO 4217 currency.

A float never becomes Money: the constructor refuses anything but ``int``.
Rounding rule, used everywhere money is divided or multiplied by a fraction:
**round half away from zero to the currency's minor unit** (四舍五入), the rule
Chinese, EU and US retail receipts follow. It lives in ``round_half_away``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

# ISO 4217 minor-unit exponents for the currencies a store may run in.
CURRENCY_EXPONENTS: dict[str, int] = {
    "CNY": 2,
    "HKD": 2,
    "TWD": 2,
    "MOP": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "SGD": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "KWD": 3,
    "BHD": 3,
}

CURRENCY_SYMBOLS: dict[str, str] = {
    "CNY": "¥",
    "JPY": "¥",
    "USD": "$",
    "HKD": "HK$",
    "EUR": "€",
    "GBP": "£",
    "KRW": "₩",
}


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


def round_half_away(value: Fraction) -> int:
    """Round an exact fraction of minor units half away from zero (the store's rule)."""
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole, remainder = divmod(magnitude.numerator, magnitude.denominator)
    if remainder * 2 >= magnitude.denominator:
        whole += 1
    return sign * whole


def exponent_of(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise ValueError(
            f"unknown currency {currency!r}: use an ISO 4217 code such as CNY, USD or EUR"
        ) from None


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of ``currency``; immutable and exact."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True yuan is a bug, not a price.
        if type(self.minor) is not int:
            raise TypeError(f"Money needs an int of minor units, got {type(self.minor).__name__}")
        exponent_of(self.currency)

    # construction -------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a decimal string such as ``"12.50"`` exactly; more decimals than
        the currency has are an error, never rounded away silently."""
        exponent = exponent_of(currency)
        raw = text.strip()
        negative = raw.startswith("-")
        if negative or raw.startswith("+"):
            raw = raw[1:]
        whole, dot, frac = raw.partition(".")
        if not whole and not frac:
            raise ValueError(f"{text!r} is not an amount like 12.50")
        if not whole:
            whole = "0"
        if (
            not whole.isdigit()
            or not whole.isascii()
            or (dot and (not frac or not frac.isdigit() or not frac.isascii()))
        ):
            raise ValueError(f"{text!r} is not an amount like 12.50")
        if len(frac) > exponent:
            raise ValueError(f"{text!r} has more than {exponent} decimals for {currency}")
        minor = int(whole) * 10**exponent + (int(frac.ljust(exponent, "0")) if exponent else 0)
        return cls(-minor if negative else minor, currency)

    # arithmetic ---------------------------------------------------------
    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} do not mix")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise TypeError("multiply Money by an int; use .times() for fractions")
        return Money(self.minor * factor, self.currency)

    __rmul__ = __mul__

    def times(self, factor: Fraction) -> Money:
        """Multiply by an exact fraction, rounding half away from zero."""
        if not isinstance(factor, Fraction | int) or isinstance(factor, bool):
            raise TypeError("times() takes an int or a Fraction, never a float")
        return Money(round_half_away(Fraction(self.minor) * factor), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def __bool__(self) -> bool:
        return self.minor != 0

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split this amount across ``weights`` in proportion, exactly.

        Largest-remainder method: the parts always add up to the whole, and
        equal weights get amounts at most one minor unit apart (earlier ones
        first), so results depend only on the order of ``weights``.
        """
        if not weights:
            raise ValueError("allocate needs at least one weight")
        if any(type(w) is not int or w < 0 for w in weights):
            raise ValueError("weights must be non-negative ints")
        total_weight = sum(weights)
        if total_weight == 0:
            weights = [1] * len(weights)
            total_weight = len(weights)
        sign = -1 if self.minor < 0 else 1
        amount = abs(self.minor)
        shares = [amount * w // total_weight for w in weights]
        remainders = [amount * w % total_weight for w in weights]
        left = amount - sum(shares)
        order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for i in order[:left]:
            shares[i] += 1
        return [Money(sign * s, self.currency) for s in shares]

    # presentation -------------------------------------------------------
    def to_decimal_string(self) -> str:
        """``"12.50"``: the amount with the currency's decimals, no symbol."""
        exponent = exponent_of(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**exponent)
        return f"{sign}{whole}.{frac:0{exponent}d}" if exponent else f"{sign}{whole}"

    def format(self, locale: str = "zh_CN") -> str:
        """Shopper-facing text such as ``¥12.50`` or ``-$3.00``.

        Chinese and English receipts both put the symbol first (``locale`` is
        kept for currencies whose placement differs); an unknown symbol falls
        back to the ISO code so the amount is never ambiguous.
        """
        symbol = CURRENCY_SYMBOLS.get(self.currency)
        body = self.to_decimal_string().lstrip("-")
        sign = "-" if self.minor < 0 else ""
        if symbol is None:
            return f"{sign}{self.currency} {body}"
        return f"{sign}{symbol}{body}"

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"


def total(amounts: Iterable[Money], currency: str) -> Money:
    """Sum amounts of one currency; an empty sum is zero in ``currency``."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
