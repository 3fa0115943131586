from datetime import date

import pytest

from app.domain.barcodes import BarcodeRules, CodeKind, interpret
from app.domain.gtin import check_digit
from app.domain.rcn import RcnLayout, layouts_for
from app.domain.rejections import Refused
from app.domain.scan_input import clean_scan

CN = BarcodeRules("CNY", layouts_for("cn"))
US = BarcodeRules("USD", layouts_for("us"))


def read(text, rules=CN):
    return interpret(clean_scan(text), rules)


def with_check(payload: str) -> str:
    return payload + str(check_digit(payload))


def test_ean13_upca_ean8_itf14_meet_in_one_key_form():
    assert read("6900000000083").candidates == ("06900000000083",)
    assert read("036000291452").candidates == ("00036000291452",)
    assert read("00036000291452").candidates == ("00036000291452",)
    assert read("96385074").candidates == ("00000096385074",)


def test_eight_digits_valid_as_both_ean8_and_upce_tries_both():
    # The UPC-E's GTIN-12 first (issue 17): it is the key a camera read of the same
    # label gives, so every path meets the same catalogue row (was EAN-8 first).
    assert read("01234565").candidates == ("00012345000065", "00000001234565")


def test_upce_is_expanded():
    assert read("04252614").candidates == ("00042100005264",)
    assert read("0425261").candidates == ("00042100005264",)


def test_bad_check_digit_is_refused():
    with pytest.raises(Refused) as info:
        read("6900000000084")
    assert info.value.refusal.code == "bad_check_digit"


def test_cn_weight_label():
    code = read(with_check("210010101234"))
    assert code.kind is CodeKind.VARIABLE_MEASURE
    assert code.weight_g == 1234
    assert code.candidates == (with_check("210010100000").zfill(14),)


def test_cn_price_label():
    code = read(with_check("200020001599"))
    assert code.price_minor == 1599
    assert code.candidates == (with_check("200020000000").zfill(14),)


def test_price_check_digit_validated():
    # prefix 22 layout PPIIIICVVVVVX: C is the 5-digit price check digit (GS1 7.9.3)
    from biip.checksums import gs1_price_weight_check_digit

    value = "01599"
    good = with_check("220001" + str(gs1_price_weight_check_digit(value)) + value)
    assert read(good).price_minor == 1599
    bad_c = (gs1_price_weight_check_digit(value) + 1) % 10
    with pytest.raises(Refused) as info:
        read(with_check("220001" + str(bad_c) + value))
    assert info.value.refusal.code == "bad_price_check_digit"


def test_us_variable_price_upca():
    from biip.checksums import gs1_price_weight_check_digit

    price = "0349"
    upca = with_check("212345" + str(gs1_price_weight_check_digit(price)) + price)
    code = read(upca, US)
    assert code.price_minor == 349
    assert code.candidates == (with_check("021234500000").zfill(14),)


def test_custom_layout_overrides_region():
    rules = BarcodeRules("CNY", layouts_for("cn", (RcnLayout("21", "PPIIIIVVVVVVX", "weight", 3),)))
    assert read(with_check("210001001500"), rules).weight_g == 1500


def test_rcn_prefix_without_layout_is_an_opaque_code():
    code = read(with_check("290000000123"))
    assert code.kind is CodeKind.GTIN


@pytest.mark.parametrize(
    "text",
    [
        "(01)06900000000083(3103)000150(10)ABC(17)271231",
        "]C1010690000000008331030001501727123110ABC",
        "010690000000008331030001501727123110ABC",
        "0106900000000083\x1d3103000150\x1d17271231\x1d10ABC",
    ],
)
def test_gs1_element_strings(text):
    code = read(text)
    assert code.kind is CodeKind.GS1
    assert code.candidates == ("06900000000083",)
    assert code.weight_g == 150
    assert code.batch == "ABC"
    assert code.expiry == date(2027, 12, 31)


def test_gs1_price_ai_3922():
    code = read("(01)06900000000083(3922)1299")
    assert code.price_minor == 1299


def test_gs1_price_with_more_decimals_than_currency_refused():
    with pytest.raises(Refused):
        read("(01)06900000000083(3923)1299")


@pytest.mark.parametrize(
    "uri",
    [
        "https://id.gs1.org/01/06900000000083",
        "https://id.gs1.org/01/06900000000083/10/ABC?17=271231",
        "https://brand.example.cn/products/01/06900000000083?3103=000500",
    ],
)
def test_digital_link(uri):
    code = read(uri)
    assert code.kind is CodeKind.DIGITAL_LINK
    assert code.candidates == ("06900000000083",)


def test_digital_link_weight():
    assert read("https://id.gs1.org/01/06900000000083?3103=000500").weight_g == 500


@pytest.mark.parametrize(
    "text", ["https://example.com/hello", "HELLO-WORLD", "12345678901234567", "123", "(99)ABC"]
)
def test_non_product_codes_refused(text):
    with pytest.raises(Refused) as info:
        read(text)
    assert info.value.refusal.code in ("not_a_product_code", "bad_gs1_data", "bad_check_digit")


def test_plu():
    assert read("4011").candidates == ("PLU:4011",)
    assert read("94011").kind is CodeKind.PLU


def test_layout_validation_names_the_problem():
    with pytest.raises(ValueError, match="02 and 20-29"):
        RcnLayout("30", "PPIIIIIVVVVVX", "weight", 3)
    with pytest.raises(ValueError, match="4 or 5 V"):
        RcnLayout("21", "PPIIICVVVVVVX", "weight", 3)
    with pytest.raises(ValueError, match="unknown RCN region"):
        layouts_for("xx")
