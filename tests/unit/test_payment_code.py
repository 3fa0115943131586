"""Payment codes (付款码): which wallet by prefix and length, and never shown."""

from __future__ import annotations

import logging
import pickle

import pytest

from app.domain.payment_code import (
    DEFAULT_CODE_RANGES,
    PaymentCode,
    code_ranges_from,
    payment_code,
    wallet_of,
)
from app.domain.scan_input import CleanScan, ScanKind, classify
from app.lane.scanning import scan_route
from app.lane.views import Screen


@pytest.mark.parametrize(("code", "wallet"), [
    ("134567890123456789", "wechat"),   # 18 digits, 10-15
    ("101234567890123456", "wechat"),
    ("151234567890123456", "wechat"),
    ("2812345678901234", "alipay"),      # 16 digits, 25-30
    ("251234567890123456789012", "alipay"),  # 24
    ("301234567890123456", "alipay"),    # 18 digits beginning 30: Alipay, not WeChat
    ("6212345678901234567", "unionpay"),  # 19 digits, 62
])
def test_published_ranges(code, wallet):
    assert wallet_of(code) == wallet
    assert classify(CleanScan(code)) is ScanKind.PAYMENT_CODE


@pytest.mark.parametrize("code", [
    "161234567890123456",     # 18 digits but 16: no wallet
    "13456789012345678",      # 17 digits beginning 13
    "2412345678901234",       # 24 is not Alipay's
    "281234567890123",        # 15 digits
    "2812345678901234567890123",  # 25 digits
    "6212345678901234",       # 62 but 16 digits
    "4006381333931",          # a GTIN-13
    "00012345600012",         # a GTIN-14
    "13456789012345678a",
    "１３４５６７８９０１２３４５６７８９",  # full-width digits are not digits here
])
def test_not_a_payment_code(code):
    assert wallet_of(code) is None
    if code.isascii():
        assert classify(CleanScan(code)) is not ScanKind.PAYMENT_CODE


def test_no_gtin_length_is_a_payment_code():
    for r in DEFAULT_CODE_RANGES:
        assert min(r.lengths) > 14


def test_a_store_can_add_a_range_and_order_decides():
    ranges = code_ranges_from({"mywallet": {"prefixes": ["99"], "lengths": ["16-17"]},
                               "wechat": {"prefixes": ["13"], "lengths": [18]}})
    assert wallet_of("9912345678901234", ranges) == "mywallet"
    assert wallet_of("99123456789012345", ranges) == "mywallet"
    assert wallet_of("101234567890123456", ranges) is None  # narrowed to 13
    with pytest.raises(ValueError, match="mywallet"):
        code_ranges_from({"mywallet": {"prefixes": ["9x"], "lengths": [16]}})
    with pytest.raises(ValueError, match="w"):
        code_ranges_from({"w": {"prefixes": ["99"]}})


def test_a_payment_code_never_shows_its_digits(caplog):
    digits = "134567890123456789"
    code = payment_code(digits)
    assert code is not None and code.wallet == "wechat"
    assert code.reveal() == digits
    for shown in (str(code), repr(code), f"{code}", f"{code!r}", f"{code:>40}", "{}".format(code),  # noqa: UP032
                  repr([code]), repr({"code": code})):
        assert digits not in shown and "18 digits" in shown
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("t").info("charging %s", code)
        logging.getLogger("t").info("charging %r", code)
    assert digits not in caplog.text
    with pytest.raises(TypeError):
        pickle.dumps(code)
    with pytest.raises(ValueError):
        PaymentCode("12ab", "wechat")


def test_only_the_pay_screen_charges_a_code():
    routes = {screen: scan_route(ScanKind.PAYMENT_CODE, screen) for screen in Screen}
    assert [s for s, r in routes.items() if r == "charge"] == [Screen.PAY]
    assert routes[Screen.SHOPPING] == "code_not_now"
    assert routes[Screen.STAFF] == "ignore"  # staff mode never reads (nor logs) a code
    assert "goods" not in routes.values() and "member" not in routes.values()


@pytest.mark.parametrize(("text", "symbology"), [
    ("112601011012345678", "]C1"),   # GS1-128 (11)260101(10)12345678: 18 digits from 11
    ("132601011012345678", "]C1"),   # (13) packaging date + (10) batch
    ("152612311012345678", "]d2"),   # (15) best before, GS1 DataMatrix
    ("101234567890123456", "]C1"),   # (10) a 16-digit batch alone
    ("2550614141000415", "]C1"),     # (255) a GS1 coupon number: 16 digits from 25
    ("101234567890123456", "]Q3"),   # GS1 QR
    ("101234567890123456", "]e0"),   # GS1 DataBar
    ("123456789012812345", "]E3"),   # an EAN-13 from 12 with its 5-digit add-on
])
def test_gs1_and_ean_symbologies_are_never_payment_codes(text, symbology):
    """The digits have a wallet's shape, but the symbology says GS1 or EAN/UPC: wallets show
    plain Code 128 or QR, so this is goods (the catalogue says what it is), never charged."""
    assert wallet_of(text) is not None
    assert classify(CleanScan(text, symbology)) is ScanKind.GOODS
    # The same digits as plain Code 128 or with no identifier are a payment code.
    assert classify(CleanScan(text, "]C0")) is ScanKind.PAYMENT_CODE
    assert classify(CleanScan(text)) is ScanKind.PAYMENT_CODE
