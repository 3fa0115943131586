"""One product, whatever the path (issue 17, part 1): the catalogue key and the scan key
are the same function of the code (``gtin.gtin_keys``), whatever form the code came in.

The property tests generate GTINs, write each one the ways a catalogue file lists it
and the ways a camera, a scanner, a keyboard or the keypad sends it, and check that
every scan finds the one catalogue row. biip (which implements the GS1 General
Specification) is the independent oracle for UPC-E <-> UPC-A.
"""

from __future__ import annotations

import pytest
from biip.upc import Upc
from hypothesis import assume, given
from hypothesis import strategies as st

from app.domain.barcodes import BarcodeRules, interpret
from app.domain.catalogue import Product, Unit, find_item
from app.domain.gtin import catalogue_key, catalogue_keys, check_digit, gtin_keys
from app.domain.money import Money
from app.domain.rcn import layouts_for
from app.domain.rejections import Refused
from app.domain.scan_input import clean_scan

CN = BarcodeRules("CNY", layouts_for("cn"))
US = BarcodeRules("USD", layouts_for("us"))


class DictCatalogue:
    """A catalogue loaded the way the import loads one: a row under every key, each row
    carrying its own key as the product's code (as the products table does). A scan
    must find the product's own (first) key, or the cart would hold one product under
    two codes (two lines, two quantity limits)."""

    def __init__(self, listed: str) -> None:
        keys = catalogue_keys(listed)
        self.code = keys[0]
        self.rows = {key: self._product(key) for key in keys}

    @staticmethod
    def _product(code: str) -> Product:
        return Product(code, "口香糖", "Gum", Money(350, "CNY"), Unit.EACH)

    def get(self, key: str) -> Product | None:
        return self.rows.get(key)


def found(catalogue: DictCatalogue, sent: str, rules: BarcodeRules = CN) -> str:
    return find_item(interpret(clean_scan(sent), rules), catalogue, None).product.code


def with_check(payload: str) -> str:
    return payload + str(check_digit(payload))


digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def upce_codes(draw: st.DrawFn) -> str:
    """An 8-digit UPC-E: number system 0 or 1, six digits, the check digit of its UPC-A."""
    six = "".join(draw(st.lists(digits, min_size=6, max_size=6)))
    # biip adds the check digit: that of the UPC-A the UPC-E stands for.
    upce = str(Upc.parse(draw(st.sampled_from("01")) + six).as_upc_e())
    # A UPC-A starting 0000 is, zero-filled to 14 digits, the very number of an EAN-8
    # (GTIN-8s are written as 12 digits that way): test_the_0000_corner covers it.
    assume(not Upc.parse(upce).as_upc_a().startswith("0000"))
    return upce


@st.composite
def gtins(draw: st.DrawFn, length: int) -> str:
    payload = "".join(draw(st.lists(digits, min_size=length - 1, max_size=length - 1)))
    return with_check(payload)


def sent_forms(gtin14: str) -> list[str]:
    """How the GTIN ``gtin14`` reaches the kiosk as text, by every path but the camera."""
    forms = [
        gtin14,
        "]E0" + gtin14[1:] if gtin14[0] == "0" else gtin14,  # scanner, EAN-13 form
        "(01)" + gtin14,  # GS1 element string, human-readable form (typed, or a scanner)
        "]C1" + "01" + gtin14,  # GS1-128 with its AIM identifier
        "01" + gtin14 + "\x1d10LOT7",  # GS1 string without identifier, FNC1 as GS
        "]Q3" + "01" + gtin14 + "17991231",  # GS1 QR
        f"https://id.gs1.org/01/{gtin14}",  # GS1 Digital Link, GS1's resolver
        f"https://shop.example.cn/p/01/{gtin14}/10/LOT7",  # a brand's own domain
    ]
    if gtin14.startswith("00"):
        forms += [gtin14[2:], "]E0" + gtin14[2:]]  # UPC-A, 12 digits
    if gtin14.startswith("000000"):
        forms += [gtin14[6:], "]E4" + gtin14[6:]]  # EAN-8
    return forms


@given(upce_codes())
def test_every_representation_of_a_upce_finds_the_one_row(upce):
    upca = Upc.parse(upce).as_upc_a()  # biip: the GTIN-12 the UPC-E carries
    gtin14 = upca.zfill(14)
    scans = [
        upce,  # serial / wedge / keypad: the printed 8 digits
        "]E0" + upce,  # a scanner that sends the AIM identifier
        upce[:7],  # a scanner set to drop the check digit
        "0" + upca,  # the camera (zxing-cpp, zbar): expanded, 13 digits
        "]E0" + "0" + upca,  # the camera's read as a hardware scanner would send it
        *sent_forms(gtin14),
    ]
    if upce[0] == "0":
        scans.append(upce[1:7])  # number system and check digit dropped
    # However the catalogue file lists it: as printed, as UPC-A, as EAN-13, as GTIN-14.
    for listed in (upce, upca, "0" + upca, gtin14):
        catalogue = DictCatalogue(listed)
        assert catalogue.code == gtin14, listed
        for sent in scans:
            assert found(catalogue, sent) == gtin14, (listed, sent)


@given(gtins(8))
def test_every_representation_of_an_ean8_finds_the_one_row(ean8):
    gtin14 = ean8.zfill(14)
    own = gtin_keys(ean8)[0]  # the UPC-E reading's GTIN-12 first, when the digits are one
    scans = [ean8, "]E4" + ean8, *sent_forms(gtin14)]
    for listed in (ean8, "0" * 5 + ean8, gtin14):
        catalogue = DictCatalogue(listed)
        assert catalogue.code == own
        for sent in scans:
            assert found(catalogue, sent) == own, (listed, sent)


@given(st.one_of(gtins(12), gtins(13), gtins(14)))
def test_every_representation_of_a_gtin_finds_the_one_row(gtin):
    gtin14 = gtin.zfill(14)
    if gtin14[1:3] in {"02", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29"}:
        return  # a scale-label prefix: its own lookup rule (test_barcodes)
    catalogue = DictCatalogue(gtin)
    own = catalogue.code
    for sent in sent_forms(gtin14):
        assert found(catalogue, sent) == own, sent


@given(upce_codes())
def test_the_key_agrees_with_biip(upce):
    assert gtin_keys(upce)[0] == Upc.parse(upce).as_upc_a().zfill(14)


def test_a_upce_that_is_also_an_ean8_has_two_keys_the_gtin12_first():
    assert catalogue_keys("01234565") == ("00012345000065", "00000001234565")
    assert catalogue_key("01234565") == "00012345000065"
    # The same digits in GTIN-14 form (a GS1 string, a 14-digit catalogue code).
    assert catalogue_keys("00000001234565") == ("00012345000065", "00000001234565")


def test_a_upce_that_is_not_an_ean8_is_stored_under_its_gtin12():
    # Was refused at import as "wrong check digit": only the EAN-8 check was tried.
    assert catalogue_keys("04252614") == ("00042100005264",)


def test_an_ean8_that_is_no_upce_keeps_its_own_key():
    assert catalogue_keys("96385074") == ("00000096385074",)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("01234567", "neither a valid EAN-8 (its check digit would be 5) "
                     "nor a valid UPC-E (its check digit would be 5)"),
        ("04252615", "neither a valid EAN-8 (its check digit would be 0) "
                     "nor a valid UPC-E (its check digit would be 4)"),
        ("96385075", "looks like an EAN-8 but has a wrong check digit (expected 4); "
                     "it cannot be a UPC-E"),
        ("036000291453", "looks like a UPC-A (GTIN-12) but has a wrong check digit (expected 2)"),
        ("6900000000084", "looks like an EAN-13 (GTIN-13) but has a wrong check digit "
                          "(expected 3)"),
    ],
)
def test_a_code_that_fits_no_reading_is_refused_saying_what_it_looks_like(code, reason):
    with pytest.raises(ValueError) as info:
        catalogue_keys(code)
    assert code in str(info.value) and reason in str(info.value)


def test_a_camera_read_of_a_upce_label_is_the_printed_codes_product():
    # The case: the catalogue lists the printed 8 digits; the camera's decoder
    # sends the 13-digit expansion. It was refused as unknown.
    catalogue = DictCatalogue("01234565")
    assert found(catalogue, "0012345000065") == found(catalogue, "01234565")
    assert found(catalogue, "]E00012345000065", US) == "00012345000065"


def test_a_scan_that_matches_nothing_is_unknown_not_a_wrong_row():
    catalogue = DictCatalogue("04252614")
    with pytest.raises(Refused) as info:
        found(catalogue, "96385074")
    assert info.value.refusal.code == "unknown_product"


def test_the_0000_corner_is_one_function_too():
    # UPC-E 00000154 stands for UPC-A 000001000054, whose GTIN-14 00000001000054 is
    # also EAN-8 01000054, which is in turn the UPC-E of 010000000054. The kiosk does
    # not guess: the key is a function of the GTIN-14, and a scan tries every reading
    # the catalogue may have stored, so each listing is still found by every path
    # (GS1 issues no U.P.C. company prefix 0000, so real labels stay out of this; here
    # a scan may meet the product's second key: docs/barcodes.md says so).
    assert gtin_keys("00000154") == ("00000001000054", "00000000000154")
    assert gtin_keys("000001000054") == ("00010000000054", "00000001000054")
    for listed in ("00000154", "000001000054"):
        catalogue = DictCatalogue(listed)
        for sent in ("00000154", "0000001000054", "]E0" + "0000001000054"):
            assert found(catalogue, sent) in catalogue.rows, (listed, sent)


@pytest.mark.parametrize("listed", ["01234565", "012345000065", "00000001234565"])
def test_a_promotion_covers_the_product_however_its_file_writes_the_code(listed):
    from app.domain.promotions import promotion_from_dict, promotion_to_dict

    promo = promotion_from_dict(
        {"promo_id": "GUM", "kind": "percent_off", "percent": 10, "products": [listed]}, "CNY"
    )
    catalogue = DictCatalogue("01234565")
    for sent in ("0012345000065", "01234565", "(01)00000001234565"):
        product = find_item(interpret(clean_scan(sent), CN), catalogue, None).product
        assert promo.covers(product), (listed, sent)
    # Stored and read back (the promotions table), it covers the same products.
    again = promotion_from_dict(promotion_to_dict(promo), "CNY")
    assert again.products == promo.products
