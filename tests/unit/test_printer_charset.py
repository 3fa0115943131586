"""Only characters the printer's font has: folding, widths, and every document the kiosk prints.

A Chinese receipt printer's font is two-byte GBK; GB18030's four-byte sequences
print as junk (issue 17, part 2). The virtual printer here has that font, as the
printers stores buy do, and counts what it cannot print: every document the
kiosk prints (receipt, copy, test page, X and Z reports) must leave the count at
zero, and print the same on a printer with the full GB18030 font.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import replace
from pathlib import Path

import pytest

import devices.receipt as receipt_module
from app.domain.printer_text import ASCII_FOLDS, FOLDS, encode, fold, sendable, width
from app.services.reports import Report
from devices.receipt import ReceiptStyle, render_document, render_receipt, render_test_page
from devices.sim.printer import Interpreter, PrinterFlags, receipt_text
from tests.unit.factories import paid_sale

ROOT = Path(__file__).resolve().parents[2]
PASS = "EP1:TESTPASS"
# Names as suppliers send them: signs, accents, fractions, currency, and some that
# have no GBK form at all (an astral CJK character, Hangul, an emoji).
HOSTILE = "Käse® ½ kg €2 off™ ©Müller ß·Œuvre ¥9.90 •µ² 𠮷野家 한국 😀 São"
HOSTILE_ZH = "瑞士奶酪® ½公斤 ¥12.30 特价€ 𠮷野家"


def hostile_sale(**kw):
    sale = paid_sale(**kw)
    lines = tuple(
        replace(line, name_zh=f"{line.name_zh} {HOSTILE_ZH}", name_en=f"{line.name_en} {HOSTILE}",
                savings=tuple(replace(s, name_zh=s.name_zh + "®½", name_en=s.name_en + " ½®")
                              for s in line.savings))
        for line in sale.lines)
    return replace(sale, lines=lines, store_name_zh="扫码购® ½店 ¥", store_name_en="Café Ünïon®",
                   payment_method="pâyé®", provider_ref="réf-½")


def hostile_report(kind: str) -> str:
    body = {"sales_count": 3, "sales_minor": 12345,
            "by_method": {"wechat": {"count": 2, "minor": 10000},
                          "pâyé® ½": {"count": 1, "minor": 2345}},
            "refunds_count": 0, "refunds_minor": 0, "net_minor": 12345, "voids": 1,
            "price_overrides": 0, "abandoned_carts": 0, "exit_audits": 1,
            "payments_flagged": 0, "audit_seq": 7, "audit_hash": "ab" * 32}
    return Report(kind, 4 if kind == "Z" else None, "2026-11-25T08:00:00+08:00",
                  "2026-11-25T20:00:00+08:00", "lane-01", "CNY", body).text()


STYLES = [ReceiptStyle(), ReceiptStyle(paper_mm=58), ReceiptStyle(native_qr=False),
          ReceiptStyle(encoding="ascii"), ReceiptStyle(paper_mm=58, encoding="ascii",
                                                       native_qr=False)]


def every_document(style: ReceiptStyle) -> dict[str, bytes]:
    """Every kind of document the kiosk prints, with hostile text wherever text goes."""
    return {
        "receipt": render_receipt(hostile_sale(), PASS, style),
        "receipt copy": render_receipt(hostile_sale(), PASS, style, copy=True),
        "receipt, no member, no audit": render_receipt(
            hostile_sale(member=False, exit_audit=False), PASS, style),
        "test page": render_test_page(style, "lane-01 ¥ printer test"),
        "X report": render_document(hostile_report("X"), style),
        "Z report": render_document(hostile_report("Z"), style),
    }


def printed(data: bytes, font_set: str, paper: int = 80) -> tuple[list[str], int]:
    printer = Interpreter(paper, PrinterFlags(), font_set)
    printer.feed(data)
    texts = [receipt_text(blocks, printer.columns) for blocks, _ in printer.receipts]
    return texts, printer.undecodable


# --- folding --------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "gbk", "ascii"), [
    ("¥12.30", "￥12.30", "CNY12.30"),
    ("Brand®", "Brand(R)", "Brand(R)"),
    ("Käse", "Kase", "Kase"),
    ("½ kg", "1/2 kg", "1/2 kg"),  # NFKD gives 1⁄2 (U+2044), itself not in GBK
    ("€5", "EUR5", "EUR5"),
    ("Cola™ ©", "ColaTM (C)", "ColaTM (C)"),
    ("Straße", "Strasse", "Strasse"),
    ("m²", "m2", "m2"),
    ("330ml×6 · — très", "330ml×6 · — très", "330mlx6 . - tres"),  # all in GBK already
    ("纯牛奶 250ml", "纯牛奶 250ml", "??? 250ml"),
    ("𠮷野家 한국", "?野家 ??", "??? ??"),  # no form at all: one '?' each
    ("a\x1bb\x1d!c\tz", "ab!c z", "ab!c z"),  # no printer commands inside a name
    # A line break inside a name, a store name or footer is a space, not glued words
    # (before: "Milk250ml", and U+2028 printed as "?").
    ("Milk\n250ml\r1\x0b2\x0c3\x854\u20285\u20296", "Milk 250ml 1 2 3 4 5 6",
     "Milk 250ml 1 2 3 4 5 6"),
])
def test_text_is_folded_to_what_the_font_has(text, gbk, ascii):
    assert fold(text, "gbk") == gbk
    assert fold(text, "ascii") == ascii


def test_every_character_folds_to_one_or_two_bytes_and_folding_is_idempotent():
    # The whole Basic Multilingual Plane and the CJK extension planes.
    for code in (*range(0x0000, 0xD800), *range(0xE000, 0x10000), *range(0x20000, 0x20100)):
        char = chr(code)
        for charset in ("gbk", "ascii"):
            out = fold(char, charset)
            assert all(sendable(c, charset) for c in out), (hex(code), charset, out)
            assert fold(out, charset) == out, hex(code)
            sent = encode(char, charset)
            assert len(sent) == sum(1 if c.isascii() else 2 for c in out) == width(out)


def test_the_tables_point_at_printable_text():
    for table in (FOLDS, ASCII_FOLDS):
        for source, target in table.items():
            assert not sendable(source, "gbk") or table is ASCII_FOLDS, source
            assert fold(target, "gbk") == target or table is ASCII_FOLDS, source
            assert fold(target, "ascii") == target or table is FOLDS, source


# --- the ¥12.30 on the test page -------------------------------------------------------------
def test_the_test_page_sends_the_yuan_sign_as_two_bytes_and_a_gbk_printer_prints_it():
    data = render_test_page(ReceiptStyle(), "lane-01 printer test")
    assert "¥".encode("gb18030") not in data  # 81 30 84 36: junk on a GBK printer
    assert "￥12.30".encode("gbk") in data
    (text,), undecodable = printed(data, "gbk")
    assert undecodable == 0 and "中文：扫码购自助收银机 ￥12.30" in text


# --- every document ---------------------------------------------------------------------------
@pytest.mark.parametrize("style", STYLES, ids=lambda s: f"{s.paper_mm}mm-{s.encoding}-"
                         f"{'qr' if s.native_qr else 'raster'}")
def test_no_document_ever_sends_a_character_the_printer_font_lacks(style):
    for name, data in every_document(style).items():
        on_gbk, undecodable = printed(data, "gbk", style.paper_mm)
        assert undecodable == 0, name
        # Only the part GBK and GB18030 share is sent: both fonts print the same.
        assert printed(data, "gb18030", style.paper_mm) == (on_gbk, 0), name
        (text,) = on_gbk
        assert "Kase(R)" in text or "Kase" not in HOSTILE, name
        if name.startswith("receipt"):
            assert "(R)" in text and "1/2" in text and "EUR2 offTM" in text, name
            assert "Ãƒ" not in text and "?0?" not in text, name


def test_every_document_kind_the_layout_makes_is_in_the_golden_test():
    # A new render_* function (a new kind of slip) must be added to every_document above.
    made = {name for name, _ in inspect.getmembers(receipt_module, inspect.isfunction)
            if name.startswith("render_")}
    assert made == {"render_receipt", "render_document", "render_test_page"}


def test_nothing_but_the_fold_encodes_printer_text():
    # Every printed byte of text goes through app.domain.printer_text.encode: no module
    # encodes text as GB18030 or GBK on its own (a second path would skip the fold).
    offenders = []
    for folder in ("app", "devices"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "printer_text.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == "encode" and node.args \
                        and isinstance(node.args[0], ast.Constant) \
                        and str(node.args[0].value).lower().replace("-", "") in (
                            "gb18030", "gbk", "cp936", "gb2312"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# --- alignment after folding -------------------------------------------------------------------
@pytest.mark.parametrize("paper", [58, 80])
@pytest.mark.parametrize("encoding", ["gb18030", "ascii"])
def test_columns_line_up_when_names_are_folded(paper, encoding):
    style = ReceiptStyle(paper_mm=paper, encoding=encoding)
    data = render_receipt(hostile_sale(), PASS, style)
    printer = Interpreter(paper, PrinterFlags())
    printer.feed(data)
    (blocks, _), = printer.receipts
    amounts = 0
    for block in blocks:
        if block.image is not None:
            continue
        text = "".join(r.text for r in block.runs)
        used = sum(width(r.text) * r.width for r in block.runs)
        assert used <= printer.columns, text
        if text.endswith(("-1.20", "-2.95", "-1.23")):
            # A saving line: its amount ends exactly at the right edge.
            assert used == printer.columns, text
            amounts += 1
    assert amounts == 3


def test_an_english_only_printer_prints_a_half_as_one_half_not_twelve():
    data = render_receipt(hostile_sale(), PASS, ReceiptStyle(encoding="ascii"))
    (text,), _ = printed(data, "gbk")
    assert "Kase(R) 1/2 kg EUR2 offTM\n(C)Muller ss.OEuvre CNY9.90" in text
    assert "Member price 1/2(R)" in text and "Paid by                                  paye(R)" \
        in text


# --- the virtual printer's font ------------------------------------------------------------------
def chinese_line(text_bytes: bytes) -> bytes:
    return b"\x1b@\x1c&" + text_bytes + b"\n\x1dV\x00"


def test_a_gbk_printer_prints_four_byte_sequences_as_junk_and_counts_them():
    # What the kiosk sent before: GB18030 ¥12.30, and GB18030's two-byte euro (A2 E3).
    data = chinese_line("¥12.30 €1 扫码".encode("gb18030"))
    (text,), undecodable = printed(data, "gbk")
    assert text.splitlines()[0] == "?0?612.30 \u30131 扫码"  # as a real GBK printer: "0 6"
    assert undecodable == 2
    (text,), undecodable = printed(data, "gb18030")  # a printer with the full font
    assert text.splitlines()[0] == "¥12.30 €1 扫码" and undecodable == 0


def test_a_four_byte_sequence_split_across_reads_is_still_one_junk_sequence():
    data = chinese_line("a¥b".encode("gb18030"))
    printer = Interpreter(80, PrinterFlags())
    for byte in data:
        printer.feed(bytes([byte]))
    assert receipt_text(printer.receipts[0][0], 48).splitlines()[0] == "a?0?6b"
    assert printer.undecodable == 1


def test_the_virtual_printer_font_is_gbk_by_default_and_checked():
    assert Interpreter(80, PrinterFlags()).font_set == "gbk"
    with pytest.raises(ValueError, match="font_set"):
        Interpreter(80, PrinterFlags(), "big5")
