"""What a scanned code means to the store: which product, and any weight, price or date in it.

``interpret`` turns cleaned scanner text (see ``scan_input``) into a ``ScannedCode``
with the catalogue keys to try, best first. It understands:

* GTIN-8/12/13/14 and UPC-E (expanded to UPC-A), check digits validated; the
  keys come from ``gtin.gtin_keys``, the same function the catalogue import
  stores rows under, so every form of one code finds one row;
* restricted-circulation numbers (02, 20-29) through the store's ``RcnLayout``s;
* GS1-128 / DataBar element strings, bare (FNC1 as GS) or in HRI form
  ``(01)...(3103)...``: AIs 01, 10, 17, 310n (net weight), 392n (price);
* GS1 Digital Link URIs in pack QR codes, on id.gs1.org or a brand's domain;
* 4-5 digit PLU codes typed for produce.

GS1 element strings and Digital Link URIs are parsed by biip, which implements
the GS1 General Specification; this module maps its result onto the shop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message

from app.domain.gtin import (
    check_digit,
    gtin_keys,
    is_valid_gtin,
    to_key,
    upce_to_upca_payload,
)
from app.domain.money import exponent_of, round_half_away
from app.domain.rcn import RcnLayout, read_rcn
from app.domain.rejections import refuse
from app.domain.scan_input import GROUP_SEPARATOR, GS1_SYMBOLOGIES, CleanScan

PLU_PREFIX = "PLU:"
# GS1_SYMBOLOGIES (app.domain.scan_input): AIM identifiers whose payload is a GS1 element
# string (GS1-128, DataBar, GS1 QR/DataMatrix); re-exported here for its readers.


class CodeKind(StrEnum):
    GTIN = "gtin"
    VARIABLE_MEASURE = "rcn"
    GS1 = "gs1"
    DIGITAL_LINK = "digital_link"
    PLU = "plu"


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """A product code understood: where to look it up and what it carries."""

    kind: CodeKind
    candidates: tuple[str, ...]  # catalogue keys to try, best first
    weight_g: int | None = None
    price_minor: int | None = None
    count: int | None = None
    expiry: date | None = None
    batch: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BarcodeRules:
    """The store's reading rules: its currency and variable-measure layouts by prefix."""

    currency: str
    rcn_layouts: dict[str, RcnLayout]


def _not_product(text: str) -> Exception:
    return refuse(
        "not_a_product_code",
        "That code is not a product we sell. Scan the item's barcode or type it in.",
        "这不是本店的商品条码。请扫描商品条码或手动输入。",
        text,
    )


def _bad_check_digit(text: str) -> Exception:
    return refuse(
        "bad_check_digit",
        "That barcode did not read correctly. Scan it again, or type the numbers under it.",
        "条码读取有误（校验位不符）。请重新扫描，或输入条码下方的数字。",
        text,
    )


def interpret(scan: CleanScan, rules: BarcodeRules) -> ScannedCode:
    text = scan.text
    if text.startswith(("https://", "http://", "HTTPS://", "HTTP://")):
        return _digital_link(text, rules)
    if text.startswith("("):
        return _gs1_message(text, rules, hri=True)
    if scan.symbology in GS1_SYMBOLOGIES or GROUP_SEPARATOR in text:
        return _gs1_message(text, rules, hri=False)
    if len(text) >= 16 and text.startswith("01") and text[2:16].isdigit():
        # A GS1-128 / DataBar string sent without a symbology identifier.
        return _gs1_message(text, rules, hri=False)
    if not text.isdigit():
        raise _not_product(text)
    n = len(text)
    if n in (4, 5):
        return ScannedCode(CodeKind.PLU, (PLU_PREFIX + text,))
    if n in (6, 7):
        # UPC-E without number system and/or check digit: biip knows these forms.
        return _short_upce(text)
    if n == 8:
        return _eight_digits(text)
    if n in (12, 13, 14):
        if not is_valid_gtin(text):
            raise _bad_check_digit(text)
        gtin13 = text[-13:] if n == 14 and text[0] == "0" else text.zfill(13)
        if len(gtin13) == 13:
            layout = rules.rcn_layouts.get(gtin13[:2])
            if layout is not None:
                reading = read_rcn(gtin13, layout, rules.currency)
                return ScannedCode(
                    CodeKind.VARIABLE_MEASURE,
                    (to_key(reading.lookup_gtin13),),
                    weight_g=reading.weight_g,
                    price_minor=reading.price_minor,
                    count=reading.count,
                )
        return ScannedCode(CodeKind.GTIN, gtin_keys(text))
    raise _not_product(text)


def _eight_digits(text: str) -> ScannedCode:
    # An 8-digit read is a UPC-E or an EAN-8; when both check digits fit, both keys
    # are tried, the UPC-E's GTIN-12 first: the catalogue stores such a code under
    # both, and a camera reading the same UPC-E label sends the GTIN-12.
    candidates = gtin_keys(text)
    if not candidates:
        raise _bad_check_digit(text)
    return ScannedCode(CodeKind.GTIN, candidates)


def _short_upce(text: str) -> ScannedCode:
    # UPC-E sent without its check digit (7 digits) or number system too (6).
    seven = "0" + text if len(text) == 6 else text
    if seven[0] not in "01":
        raise _not_product(text)
    payload = upce_to_upca_payload(seven)
    return ScannedCode(CodeKind.GTIN, gtin_keys(payload + str(check_digit(payload))))


def _gs1_message(text: str, rules: BarcodeRules, *, hri: bool) -> ScannedCode:
    try:
        message = GS1Message.parse_hri(text) if hri else GS1Message.parse(text)
    except (ParseError, ValueError):
        raise refuse(
            "bad_gs1_data",
            "That label's data could not be read. Scan the item's main barcode or call staff.",
            "无法读取该标签的数据。请扫描商品主条码，或呼叫店员。",
            text,
        ) from None
    return _from_element_strings(list(message.element_strings), text, rules, CodeKind.GS1)


def _digital_link(text: str, rules: BarcodeRules) -> ScannedCode:
    try:
        uri = GS1DigitalLinkURI.parse(text)
    except (ParseError, ValueError):
        raise _not_product(text) from None
    return _from_element_strings(list(uri.element_strings), text, rules, CodeKind.DIGITAL_LINK)


def _from_element_strings(
    elements: list[GS1ElementString], text: str, rules: BarcodeRules, kind: CodeKind
) -> ScannedCode:
    by_ai = {es.ai.ai: es for es in elements}
    gtin_es = by_ai.get("01")
    if gtin_es is None or gtin_es.gtin is None:
        raise _not_product(text)
    gtin = gtin_es.value
    if not is_valid_gtin(gtin):
        raise _bad_check_digit(text)
    weight_g = None
    price_minor = None
    attributes: dict[str, str] = {}
    for ai, es in by_ai.items():
        if ai.startswith("310") and es.decimal is not None:
            # Net weight in kg with n decimals; grams, rounded by the store's rule.
            weight_g = round_half_away(_fraction(es.decimal) * 1000)
        elif ai.startswith("392") and es.decimal is not None:
            exact = _fraction(es.decimal) * 10 ** exponent_of(rules.currency)
            if exact.denominator != 1:
                raise refuse(
                    "bad_gs1_data",
                    "The price on this label cannot be charged. Please call staff.",
                    "该标签上的价格无法结算。请呼叫店员。",
                    text,
                )
            price_minor = int(exact)
        elif ai not in ("01", "10", "17"):
            attributes[ai] = es.value
    expiry = by_ai["17"].date if "17" in by_ai else None
    batch = by_ai["10"].value if "10" in by_ai else None
    return ScannedCode(
        kind,
        gtin_keys(gtin),
        weight_g=weight_g,
        price_minor=price_minor,
        expiry=expiry,
        batch=batch,
        attributes=attributes,
    )


def _fraction(value: Decimal) -> Fraction:
    return Fraction(value)
