"""One product, whatever the path (issue 17, part 1), end to end.

A catalogue CSV imported into a real SQLite catalogue lists UPC-E codes as printed
(8 digits). The same labels then reach one cart by every path a store has: a
generated UPC-E image through the real decoders (zxing-cpp and zbar), a serial
scanner on a real pty (with and without AIM identifier, sending the 8 digits or
its UPC-A expansion), a keyboard-wedge scanner, the keypad, a GS1 element string
and a GS1 Digital Link. Each must land on the same cart line: one product, one
code, one quantity limit.
"""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp
from biip.upc import Upc

from app import bootstrap
from app.services.catalogue import CatalogueImportError, import_catalogue
from bench.photo_set import load_samples, samples_dir
from devices.decoder import Decoder, load_image
from devices.scanner import KeyboardWedge, Scan, SerialScanner, accept_input
from devices.sim.serial_scanner import VirtualSerialScanner
from tests.helpers import wait_for

HEADER = "code,name_zh,name_en,price,member_price,unit,tax_class,min_age,quantity_limit,department,image\n"  # noqa: E501
TAX = frozenset({"standard", "food", "zero"})

GUM = "01234565"  # UPC-E of UPC-A 012345000065; the 8 digits also pass the EAN-8 check
GUM_UPCA = "012345000065"
GUM_KEY = "0" + "0" + GUM_UPCA  # GTIN-14
MINTS = "04252614"  # UPC-E of UPC-A 042100005264; NOT a valid EAN-8
MINTS_UPCA = "042100005264"
MINTS_KEY = "00" + MINTS_UPCA


@pytest.fixture
def store(kiosk, tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text(
        HEADER
        + f"{GUM},口香糖,Gum,3.50,,each,food,0,,snacks,\n"
        + f"{MINTS},薄荷糖,Mints,5.00,,each,food,0,,snacks,\n"
        + "6900000000083,奶,Milk,6.50,,each,food,0,,dairy,\n",
        encoding="utf-8",
    )
    assert import_catalogue(kiosk.catalogue, csv, tax_classes=TAX, replace=True) == 3
    return kiosk


def upce_image(code: str) -> np.ndarray:
    """A UPC-E symbol as a camera would see it: zxing-cpp draws it (with quiet zones)."""
    symbol = zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.UPCE)
    return np.array(zxingcpp.write_barcode_to_image(symbol, scale=4))


def only_line(checkout):
    (line,) = checkout.lines()
    return line.product.code, line.quantity


def test_the_import_stores_a_upce_under_its_gtin12_and_its_ean8(store):
    # Both keys of the ambiguous code, and the UPC-E that is no EAN-8 (it was refused
    # at import as "wrong check digit"); the count is of products, not keys.
    assert store.catalogue.get(GUM_KEY).name_en == "Gum"
    assert store.catalogue.get(GUM.zfill(14)).name_en == "Gum"
    assert store.catalogue.get(MINTS_KEY).name_en == "Mints"
    assert store.catalogue.get(MINTS.zfill(14)) is None
    assert store.catalogue.count() == 3  # GUM's two rows are one product


@pytest.mark.parametrize("pipeline", ["zxing", "zbar"])
@pytest.mark.parametrize(("printed", "key"), [(GUM, GUM_KEY), (MINTS, MINTS_KEY)])
def test_a_camera_read_of_a_upce_label_finds_the_printed_code(kiosk, tmp_path, pipeline,
                                                              printed, key):
    # The case: the decoder expands the UPC-E to 13 digits; the catalogue lists
    # only the 8 printed digits. It was refused as unknown (and MINTS not imported).
    csv = tmp_path / "c.csv"
    csv.write_text(HEADER + f"{printed},糖,Sweets,3.50,,each,food,0,,snacks,\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, csv, tax_classes=TAX, replace=True)
    store = kiosk
    (read,) = Decoder(pipeline).read_image(upce_image(printed)).reads
    assert (read.symbology, read.text) == ("UPC-E", "0" + key[2:])  # what the camera sends
    scan = accept_input(read.scanner_text, "camera", 0.0)
    assert isinstance(scan, Scan)
    checkout = bootstrap.build_checkout(store)
    checkout.add_scan(scan.code)
    checkout.add_scan(printed)  # the same label typed on the keypad
    assert only_line(checkout) == (key, 2)


def test_a_serial_scanner_sends_the_same_product_every_way_it_can_be_set(store):
    sent = [
        (GUM, ""),  # the printed 8 digits, no identifier
        (GUM, "]E0"),  # with the AIM identifier of EAN/UPC
        (GUM_UPCA, "]E0"),  # "expand UPC-E to UPC-A"
        ("0" + GUM_UPCA, "]E0"),  # "UPC-A as EAN-13"
        (GUM[:7], ""),  # "transmit UPC-E check digit" off
        (GUM, "]E4"),  # the same digits read as an EAN-8 symbol
    ]
    scans: list[Scan] = []
    with VirtualSerialScanner() as device:
        scanner = SerialScanner(device.port, scans.append, None, backoff_s=0.05,
                                backoff_max_s=0.2)
        scanner.start()
        try:
            assert wait_for(lambda: scanner.health().state == "ok")
            for code, aim in sent:
                device.send(code, aim=aim)
            assert wait_for(lambda: len(scans) == len(sent))
        finally:
            scanner.stop()
    checkout = bootstrap.build_checkout(store)
    for scan in scans:
        checkout.add_scan(scan.code)
    assert only_line(checkout) == (GUM_KEY, len(sent))


def test_a_keyboard_wedge_scan_and_typing_on_the_keypad_meet_the_same_line(store):
    scans: list[Scan] = []
    wedge = KeyboardWedge(scans.append, lambda _: None)
    t = 0.0
    for code in (GUM, "0" + GUM_UPCA, MINTS, MINTS_UPCA):
        for ch in code + "\r":
            t += 0.005  # a wedge scanner "types" a few ms a key
            wedge.key(ch, t)
        t += 1.0
    assert [s.text for s in scans] == [GUM, "0" + GUM_UPCA, MINTS, MINTS_UPCA]
    checkout = bootstrap.build_checkout(store)
    for scan in scans:
        checkout.add_scan(scan.code)
    for typed in (GUM, GUM_UPCA, MINTS):  # the keypad: raw text, cleaned once
        checkout.add_scan(typed)
    assert sorted((line.product.code, line.quantity) for line in checkout.lines()) == [
        (GUM_KEY, 4), (MINTS_KEY, 3),
    ]


@pytest.mark.parametrize(
    "sent",
    [
        "]C10100012345000065",  # GS1-128 / DataBar, AI 01 with the GTIN-12 as GTIN-14
        "(01)00012345000065(10)LOT1",  # human-readable GS1, typed or from a scanner
        "0100000001234565\x1d10LOT1",  # GS1 with the EAN-8 reading's GTIN-14
        "]Q30100012345000065",  # GS1 QR
        "https://id.gs1.org/01/00012345000065",  # GS1 Digital Link
        "https://brand.example.cn/01/00000001234565/10/LOT1",  # Digital Link, EAN-8 form
    ],
)
def test_gs1_strings_and_digital_links_find_the_printed_upce(store, sent):
    checkout = bootstrap.build_checkout(store)
    checkout.add_scan(GUM)
    checkout.add_scan(sent)
    assert only_line(checkout) == (GUM_KEY, 2)
    assert store.lookup(sent).item.product.code == GUM_KEY  # `kiosk catalog lookup`


def test_a_quantity_limit_holds_across_paths(kiosk, tmp_path):
    # Two keys of one product must not be two products: the limit counts them together.
    csv = tmp_path / "c.csv"
    csv.write_text(HEADER + f"{GUM},口香糖,Gum,3.50,,each,food,0,1,snacks,\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, csv, tax_classes=TAX, replace=True)
    checkout = bootstrap.build_checkout(kiosk)
    checkout.add_scan("]E0" + "0" + GUM_UPCA)  # the camera
    from app.domain.rejections import Refused

    for other in (GUM, "]E4" + GUM, "(01)00000001234565"):
        with pytest.raises(Refused):
            checkout.add_scan(other)
    assert only_line(checkout) == (GUM_KEY, 1)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("01234567", "8-digit code 01234567 is neither a valid EAN-8 (its check digit would "
                     "be 5) nor a valid UPC-E (its check digit would be 5)"),
        ("69012349", "8-digit code 69012349 looks like an EAN-8 but has a wrong check digit"),
        ("6900000000084", "looks like an EAN-13 (GTIN-13) but has a wrong check digit "
                          "(expected 3)"),
    ],
)
def test_a_code_that_fits_no_reading_is_refused_saying_what_it_looks_like(kiosk, tmp_path,
                                                                          row, reason):
    csv = tmp_path / "c.csv"
    csv.write_text(HEADER + f"{row},糖,Sweets,1.00,,each,food,0,,snacks,\n", encoding="utf-8")
    with pytest.raises(CatalogueImportError) as info:
        import_catalogue(kiosk.catalogue, csv, tax_classes=TAX, replace=True)
    assert reason in str(info.value)


def test_a_upce_and_its_upca_on_two_rows_are_one_product_twice(kiosk, tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text(HEADER + f"{GUM},口香糖,Gum,3.50,,each,food,0,,snacks,\n"
                   + f"{GUM_UPCA},口香糖,Gum,3.50,,each,food,0,,snacks,\n", encoding="utf-8")
    with pytest.raises(CatalogueImportError) as info:
        import_catalogue(kiosk.catalogue, csv, tax_classes=TAX, replace=True)
    assert f"line 3: code {GUM_UPCA} already on line 2 as {GUM} (both are GTIN {GUM_KEY})" in str(
        info.value)


UPCE_PHOTOS = [s for s in load_samples() if s.path.parent.name.startswith("upce-")]


@pytest.mark.slow
@pytest.mark.skipif(not UPCE_PHOTOS,
                    reason=f"real photo set not found at {samples_dir()} (KIOSK_BARCODE_SAMPLES)")
def test_real_upce_photos_find_the_printed_code(kiosk, tmp_path):
    # Real photos of UPC-E labels (read in place, never copied): the catalogue lists
    # what is printed under the bars (biip compresses the expected UPC-A to UPC-E).
    printed = sorted({Upc.parse(s.expected.strip()[-12:]).as_upc_e() for s in UPCE_PHOTOS})
    csv = tmp_path / "c.csv"
    csv.write_text(HEADER + "".join(f"{code},糖,Sweets {code},1.00,,each,food,0,,snacks,\n"
                                    for code in printed), encoding="utf-8")
    import_catalogue(kiosk.catalogue, csv, tax_classes=TAX, replace=True)
    decoder = Decoder()
    found = 0
    for sample in UPCE_PHOTOS:
        for read in decoder.read_image(load_image(str(sample.path))).reads:
            product = kiosk.lookup(read.scanner_text).item.product
            assert product.name_en == f"Sweets {Upc.parse(read.text[-12:]).as_upc_e()}"
            found += 1
    assert found >= len(UPCE_PHOTOS) * 3 // 4  # the decoder reads most of them
