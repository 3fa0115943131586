"""Restricted-circulation numbers (GS1 prefixes 02 and 20-29): weight or price in the barcode.

Scales in the store print labels whose GTIN-13 carries an item reference and a
variable weight or price. Which digits mean what differs by region and even by
store, so a layout is a 13-character pattern over the GTIN-13:

    P  prefix digits        I  item reference      V  variable value
    C  price/weight check digit over V (GS1 GenSpec 7.9.2-7.9.4)
    X  the GTIN check digit (always last)

``measure`` says what V is (``weight`` in kg, ``price`` in major units, or
``count``) and ``decimals`` how many decimals V has. The product is found by
zeroing V and C and recomputing X, which is how stores key such items.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from biip.checksums import gs1_price_weight_check_digit

from app.domain.gtin import check_digit
from app.domain.money import exponent_of, round_half_away
from app.domain.rejections import refuse

MEASURES = ("weight", "price", "count")


@dataclass(frozen=True, slots=True)
class RcnLayout:
    prefix: str
    pattern: str
    measure: str
    decimals: int = 0

    def __post_init__(self) -> None:
        where = f"RCN layout for prefix {self.prefix!r}"
        if not (len(self.prefix) == 2 and self.prefix.isdigit()):
            raise ValueError(f"{where}: prefix must be two digits such as '21' or '02'")
        if self.prefix != "02" and not "20" <= self.prefix <= "29":
            raise ValueError(f"{where}: GS1 reserves only 02 and 20-29 for variable measures")
        if len(self.pattern) != 13 or set(self.pattern) - set("PIVCX"):
            raise ValueError(f"{where}: pattern must be 13 of the letters P I V C X")
        if not self.pattern.startswith("PP") or self.pattern[-1] != "X":
            raise ValueError(f"{where}: pattern must start with PP and end with X")
        value = self._span("V")
        if value is None or self.pattern.count("V") != value[1] - value[0]:
            raise ValueError(f"{where}: the V digits must be one contiguous run")
        if "C" in self.pattern:
            if self.pattern.count("C") != 1 or value[1] - value[0] not in (4, 5):
                raise ValueError(f"{where}: a check digit C needs exactly 4 or 5 V digits")
        if self.measure not in MEASURES:
            raise ValueError(f"{where}: measure must be one of {', '.join(MEASURES)}")
        if not 0 <= self.decimals <= 5:
            raise ValueError(f"{where}: decimals must be between 0 and 5")

    def _span(self, letter: str) -> tuple[int, int] | None:
        if letter not in self.pattern:
            return None
        return self.pattern.index(letter), self.pattern.rindex(letter) + 1


@dataclass(frozen=True, slots=True)
class RcnReading:
    """What a variable-measure label says."""

    lookup_gtin13: str
    weight_g: int | None = None
    price_minor: int | None = None
    count: int | None = None


# Built-in layouts. "cn": the default label formats of the electronic scales
# common in Chinese supermarkets (2 + flag, 5-digit PLU, 5-digit value), plus a
# price-check-digit variant. "us": UPC-A number system 2 (02 + 5-digit item +
# price check digit + 4-digit price).
REGIONS: dict[str, tuple[RcnLayout, ...]] = {
    "cn": (
        RcnLayout("20", "PPIIIIIVVVVVX", "price", 2),
        RcnLayout("21", "PPIIIIIVVVVVX", "weight", 3),
        RcnLayout("22", "PPIIIICVVVVVX", "price", 2),
        RcnLayout("23", "PPIIIICVVVVVX", "weight", 3),
    ),
    "us": (RcnLayout("02", "PPIIIIICVVVVX", "price", 2),),
    "none": (),
}


def layouts_for(region: str, extra: tuple[RcnLayout, ...] = ()) -> dict[str, RcnLayout]:
    """The region's layouts by prefix, with store-specific ``extra`` layouts winning."""
    if region not in REGIONS:
        raise ValueError(
            f"unknown RCN region {region!r} (barcodes.rcn_region); "
            f"known: {', '.join(sorted(REGIONS))}, or add barcodes.rcn_layouts"
        )
    table = {layout.prefix: layout for layout in REGIONS[region]}
    table.update({layout.prefix: layout for layout in extra})
    return table


def read_rcn(gtin13: str, layout: RcnLayout, currency: str) -> RcnReading:
    """Read a variable-measure GTIN-13 (check digit already valid) with ``layout``."""
    v0, v1 = layout._span("V") or (0, 0)
    value = gtin13[v0:v1]
    c = layout._span("C")
    if c is not None:
        expected = gs1_price_weight_check_digit(value)
        if int(gtin13[c[0]]) != expected:
            raise refuse(
                "bad_price_check_digit",
                "This scale label is damaged or misprinted. Please ask staff to reweigh the item.",
                "秤签价格校验错误（标签损坏或打印错误）。请请店员重新称重。",
                gtin13,
            )
    zeroed = "".join(
        "0" if letter in "VC" else digit
        for letter, digit in zip(layout.pattern[:12], gtin13[:12], strict=True)
    )
    lookup = zeroed + str(check_digit(zeroed))
    amount = int(value)
    if layout.measure == "weight":
        grams = round_half_away(Fraction(amount * 1000, 10**layout.decimals))
        return RcnReading(lookup, weight_g=grams)
    if layout.measure == "count":
        return RcnReading(lookup, count=amount)
    minor = Fraction(amount * 10 ** exponent_of(currency), 10**layout.decimals)
    if minor.denominator != 1:
        raise ValueError(
            f"RCN layout {layout.prefix} has {layout.decimals} price decimals, "
            f"more than {currency} has; fix barcodes.rcn_layouts"
        )
    return RcnReading(lookup, price_minor=int(minor))
