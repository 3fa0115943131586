"""The receipt layout, byte for byte (python-escpos Dummy), and its text rules.

Golden files live in tests/golden/. After an intended layout change,
regenerate them with ``KIOSK_UPDATE_GOLDEN=1 pytest tests/unit/test_receipt_layout.py``
and look at the diff (and at a receipt from ``kiosk sim printer``) before committing.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from app.domain.sale import PaidSale
from devices.receipt import ReceiptStyle, render_receipt, render_test_page, two_columns, width
from devices.receipt import wrap as wrap_text
from tests.unit.factories import paid_sale

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PASS = "EP1:TESTPASS"


def check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("KIOSK_UPDATE_GOLDEN") == "1":
        path.write_bytes(data)
    assert path.is_file(), f"{path} missing: run with KIOSK_UPDATE_GOLDEN=1 once"
    assert data == path.read_bytes(), f"{name} changed; see the module docstring"


@pytest.mark.parametrize(
    ("name", "style", "copy"),
    [
        ("receipt-80mm-gb18030-native-qr.bin", ReceiptStyle(), False),
        ("receipt-80mm-gb18030-copy.bin", ReceiptStyle(), True),
        ("receipt-58mm-ascii-raster-qr.bin",
         ReceiptStyle(paper_mm=58, encoding="ascii", native_qr=False), False),
    ],
)
def test_receipt_bytes_match_the_golden_files(name, style, copy):
    check_golden(name, render_receipt(paid_sale(), PASS, style, copy=copy))


def test_the_test_page_matches_its_golden_file():
    check_golden("test-page-80mm.bin", render_test_page(ReceiptStyle(), "lane-01 printer test"))


def test_chinese_printers_get_gb18030_in_chinese_mode():
    data = render_receipt(paid_sale(), PASS, ReceiptStyle())
    assert data.startswith(b"\x1b@\x1c&")  # ESC @ (init), FS & (Chinese mode)
    assert "纯牛奶 250ml".encode("gb18030") in data
    assert "会员价 Member price".encode("gb18030") in data
    assert b"\x1d(k" in data  # native QR: GS ( k
    assert PASS.encode() in data
    assert data.endswith(b"\x1dV\x00")  # feed, then a full cut


def without_raster_images(data: bytes) -> bytes:
    """The stream with every GS v 0 block (header and image bytes) cut out."""
    out, pos = bytearray(), 0
    while (start := data.find(b"\x1dv0", pos)) >= 0:
        out += data[pos:start]
        x_bytes = data[start + 4] | data[start + 5] << 8
        rows = data[start + 6] | data[start + 7] << 8
        pos = start + 8 + x_bytes * rows
    return bytes(out + data[pos:])


def test_english_only_printers_get_english_and_no_stray_bytes():
    data = render_receipt(paid_sale(), PASS, ReceiptStyle(encoding="ascii", native_qr=False))
    assert b"Whole Milk 250ml" in data and b"Member price" in data
    assert "纯牛奶".encode("gb18030") not in data and b"\x1c&" not in data
    assert b"\x1dv0" in data and b"\x1d(k" not in data  # the QR as a raster image
    text = without_raster_images(data)
    assert max(text) < 0x80  # nothing outside the image that the printer could garble


def test_a_copy_says_so_at_the_top_and_by_the_exit_pass():
    data = render_receipt(paid_sale(), PASS, ReceiptStyle(), copy=True)
    assert data.count("副本".encode("gb18030")) == 2 and data.count(b"COPY") == 2


def test_the_exit_audit_message_is_printed_only_when_picked():
    picked = render_receipt(paid_sale(exit_audit=True), PASS, ReceiptStyle())
    not_picked = render_receipt(paid_sale(exit_audit=False), PASS, ReceiptStyle())
    assert b"exit check" in picked and b"exit check" not in not_picked


def test_member_and_points_only_for_members():
    assert b"Points +62" in render_receipt(paid_sale(member=True), PASS, ReceiptStyle())
    assert b"Points" not in render_receipt(paid_sale(member=False), PASS, ReceiptStyle())


def test_a_sale_survives_its_json_round_trip():
    sale = paid_sale()
    assert PaidSale.from_dict(sale.to_dict()) == sale


@pytest.mark.parametrize("paper", [58, 80])
@pytest.mark.parametrize("encoding", ["gb18030", "ascii"])
def test_every_printed_line_fits_the_paper(paper, encoding):
    from devices.sim.printer import Interpreter, PrinterFlags

    sale = paid_sale()
    long_name = "可口可乐 330ml×6罐 · 经典口味 Coca-Cola 330ml×6 cans · classic — très bon"
    lines = (*sale.lines, replace(sale.lines[1], name_zh=long_name, name_en=long_name))
    data = render_receipt(replace(sale, lines=lines), PASS,
                          ReceiptStyle(paper_mm=paper, encoding=encoding))
    # Read the bytes back as a printer would, sizes included, and measure each line.
    printer = Interpreter(paper, PrinterFlags())
    printer.feed(data)
    (blocks, complete), = printer.receipts
    assert complete
    columns = printer.columns
    for block in blocks:
        used = sum(width(run.text) * run.width for run in block.runs)
        assert used <= columns, "".join(r.text for r in block.runs)


def test_wrapping_and_columns_count_chinese_as_two():
    assert width("香蕉 Bananas") == 12
    assert wrap_text("请在出口出示本小票接受抽检 Please show this receipt", 30) == [
        "请在出口出示本小票接受抽检", "Please show this receipt"]
    line = two_columns("香蕉", "8.61", 20)
    assert line == ["香蕉" + " " * 12 + "8.61"] and width(line[0]) == 20


def test_a_bad_paper_or_encoding_names_the_setting():
    with pytest.raises(ValueError, match="printer.paper_mm"):
        ReceiptStyle(paper_mm=76)
    with pytest.raises(ValueError, match="printer.encoding"):
        ReceiptStyle(encoding="big5")


def test_the_virtual_printer_reads_a_receipt_the_same_in_any_chunks():
    from devices.sim.printer import Interpreter, PrinterFlags, receipt_text

    data = render_receipt(paid_sale(), PASS, ReceiptStyle()) + render_test_page(
        ReceiptStyle(), "¥ 4-byte and 2-byte GB18030: 扫码 ¥12.30")
    whole = Interpreter(80, PrinterFlags())
    whole.feed(data)
    for size in (1, 2, 3, 7):
        split = Interpreter(80, PrinterFlags())
        for i in range(0, len(data), size):
            split.feed(data[i:i + size])
        assert [receipt_text(b, 48) for b, _ in split.receipts] == \
            [receipt_text(b, 48) for b, _ in whole.receipts], size
    assert "扫码购自助收银机 ￥12.30" in receipt_text(whole.receipts[1][0], 48)  # folded, 2 bytes
