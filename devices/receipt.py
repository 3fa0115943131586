"""The receipt layout: a paid sale -> the ESC/POS bytes a receipt printer prints.

A pure function of the sale, the exit pass and the paper: the same sale
always gives the same bytes (the golden tests hold them byte for byte), and
a reprint marked COPY is the same receipt with a banner.

Commands (initialise, alignment, emphasis, sizes, QR, raster images, feed and
cut) come from python-escpos, collected by its ``Dummy`` printer. Text is
encoded here: python-escpos picks single-byte code pages from its printer
profiles and has none for Chinese, whereas Chinese-model printers take
two-byte GBK after ``FS &`` (Chinese character mode). ``printer.encoding =
"gb18030"`` names that mode, but only GB18030's one- and two-byte part is
ever sent: every text is first folded (``app.domain.printer_text.fold``) to
characters the printer's GBK font has, since its four-byte sequences print as
junk. Lines are wrapped and aligned on the folded text, so the columns are
those of what is sent. For an English-only printer (``printer.encoding =
"ascii"``) the receipt is printed in English alone, from each product's
English name, folded to ASCII, never sent as bytes the printer would turn
into garbage.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, tzinfo

from escpos.constants import QR_ECLEVEL_M
from escpos.printer import Dummy

from app.domain import printer_text
from app.domain.money import Money
from app.domain.sale import PaidSale, SaleLine
from app.domain.tax import TaxMode

FS_CHINESE_ON = b"\x1c\x26"  # FS &: two-byte (GBK) character mode
COLUMNS = {58: 32, 80: 48}  # Font A (12x24) characters per line
DOTS = {58: 384, 80: 576}  # printable width in dots at 203 dpi
# Wallets (PaidSale.wallet) and payment adapters (PaidSale.payment_method), as printed.
WALLET_NAMES = {
    "wechat": ("微信支付", "WeChat Pay"),
    "alipay": ("支付宝", "Alipay"),
    "unionpay": ("云闪付", "UnionPay"),
}
PAYMENT_NAMES = {
    **WALLET_NAMES,
    "wechatpay": ("微信支付", "WeChat Pay"),
    "simulator": ("模拟支付", "Payment simulator"),
    "gateway": ("聚合支付", "Store payment gateway"),
}


@dataclass(frozen=True)
class ReceiptStyle:
    """The printer's paper and character set, and the store's footer."""

    paper_mm: int = 80
    encoding: str = "gb18030"  # Chinese mode, GBK two-byte font; "ascii": English-only
    native_qr: bool = True  # False: the QR goes as a raster image (printers without GS ( k)
    profile: str = "default"  # python-escpos printer profile
    footer_zh: str = "谢谢惠顾，欢迎再来"
    footer_en: str = "Thank you for shopping with us"
    # The store's time zone (store.time_zone): the paid time prints as the store's local
    # time; None prints it with the offset the sale carries (UTC for a kiosk's clock).
    time_zone: tzinfo | None = None

    def __post_init__(self) -> None:
        if self.paper_mm not in COLUMNS:
            raise ValueError("printer.paper_mm must be 58 or 80")
        if self.encoding not in ("gb18030", "ascii"):
            raise ValueError("printer.encoding must be 'gb18030' or 'ascii'")

    @property
    def chinese(self) -> bool:
        return self.encoding == "gb18030"

    @property
    def charset(self) -> printer_text.Charset:
        """The characters the printer's font has: two-byte GBK in Chinese mode, else ASCII."""
        return "gbk" if self.chinese else "ascii"

    @property
    def columns(self) -> int:
        return COLUMNS[self.paper_mm]

    def local(self, at: datetime) -> datetime:
        """``at`` (aware) as the store's clock on the wall reads it."""
        return at.astimezone(self.time_zone) if self.time_zone is not None else at


def width(text: str) -> int:
    """Columns folded ``text`` takes on the printer (``app.domain.printer_text.width``).

    In Chinese mode the printer prints every two-byte character double width:
    Chinese, but also ×, ·, —, é. Only ASCII takes one column. Measure text
    after folding it: ``®`` goes out as ``(R)``, three columns.
    """
    return printer_text.width(text)


def _cut_to(text: str, columns: int) -> str:
    out, used = "", 0
    for c in text:
        w = width(c)
        if used + w > columns:
            break
        out, used = out + c, used + w
    return out


def wrap(text: str, columns: int) -> list[str]:
    """Split ``text`` into printed lines of at most ``columns``, by display width."""
    if width(text) <= columns:
        return [text]
    if text.isascii():
        return textwrap.wrap(text, columns) or [""]
    lines, rest = [], text
    while width(rest) > columns:
        head = _cut_to(rest, columns)
        space = head.rfind(" ")
        if space > 0 and rest[len(head)] != " ":
            head = head[:space]  # break between words, not inside one
        lines.append(head.rstrip())
        rest = rest[len(head):].lstrip(" ")
    return lines + [rest]


def two_columns(left: str, right: str, columns: int) -> list[str]:
    """``left`` and ``right`` on one line, right-aligned amount; wraps a long left side."""
    room = columns - width(right) - 1
    parts = wrap(left, max(8, room))
    last = parts[-1]
    if width(last) <= room:
        parts[-1] = last + " " * (columns - width(last) - width(right)) + right
    else:
        parts.append(" " * (columns - width(right)) + right)
    return parts


def amount(m: Money) -> str:
    return m.to_decimal_string()


class _Writer:
    """Text onto a Dummy printer, encoded for the printer's character set."""

    def __init__(self, style: ReceiptStyle) -> None:
        self.style = style
        self.p = Dummy(profile=style.profile)

    def both(self, zh: str, en: str) -> str:
        """A bilingual label, or English alone on an English-only printer."""
        return f"{zh} {en}" if self.style.chinese else en

    def fold(self, text: str) -> str:
        return printer_text.fold(text, self.style.charset)

    def wrap(self, text: str, columns: int) -> list[str]:
        """``wrap`` on the folded text: the widths are those of what is sent."""
        return wrap(self.fold(text), columns)

    def two_columns(self, left: str, right: str, columns: int) -> list[str]:
        return two_columns(self.fold(left), self.fold(right), columns)

    def encode(self, text: str) -> bytes:
        # Folding drops control characters too: a name cannot smuggle in ESC/GS/FS.
        return printer_text.encode(text, self.style.charset)

    def line(self, text: str = "") -> None:
        self.p._raw(self.encode(text) + b"\n")

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.line(text)

    def rule(self, char: str = "-") -> None:
        self.line(char * self.style.columns)


def _quantity_text(line: SaleLine) -> str:
    if line.weight_g is not None:
        kg = f"{line.weight_g // 1000}.{line.weight_g % 1000:03d}"
        return f"  {kg} kg x {amount(line.unit_price)}/kg"
    return f"  {line.quantity} x {amount(line.unit_price)}"


def render_receipt(sale: PaidSale, exit_pass: str, style: ReceiptStyle,
                   copy: bool = False) -> bytes:
    """The receipt for ``sale`` as ESC/POS bytes, ending in a cut."""
    w = _Writer(style)
    p, cols = w.p, style.columns
    p.hw("INIT")
    if style.chinese:
        p._raw(FS_CHINESE_ON)
    if copy:
        p.set(align="center", bold=True)
        w.line(f"*** {w.both('副本', 'COPY')} ***")
    p.set(align="center", bold=True, double_height=True, double_width=True)
    if style.chinese:
        w.lines(w.wrap(sale.store_name_zh, cols // 2))
        p.set(align="center", normal_textsize=True, bold=False)
        w.lines(w.wrap(sale.store_name_en, cols))
    else:
        w.lines(w.wrap(sale.store_name_en, cols // 2))
        p.set(align="center", normal_textsize=True, bold=False)
    paid_at = style.local(sale.paid_at).strftime("%Y-%m-%d %H:%M:%S %z")
    w.lines(w.wrap(f"{sale.lane_id}  {paid_at}", cols))
    w.lines(w.wrap(w.both("订单", "Order") + f" {sale.order_id}", cols))
    p.set(align="left", normal_textsize=True)
    w.rule()
    for line in sale.lines:
        if style.chinese:
            w.lines(w.wrap(line.name_zh, cols))
            w.lines(w.wrap(line.name_en, cols))
        else:
            w.lines(w.wrap(line.name_en, cols))
        w.lines(w.two_columns(_quantity_text(line), amount(line.regular), cols))
        for saving in line.savings:
            label = "  " + w.both(saving.name_zh, saving.name_en)
            w.lines(w.two_columns(label, "-" + amount(saving.amount), cols))
    w.rule()
    w.lines(w.two_columns(w.both("件数", "Items"), str(sale.item_count), cols))
    w.lines(w.two_columns(w.both("小计", "Subtotal"), amount(sale.subtotal), cols))
    if sale.savings:
        w.lines(w.two_columns(w.both("共节省", "You saved"), "-" + amount(sale.savings), cols))
    for tax in sale.taxes:
        if sale.tax_mode is TaxMode.INCLUSIVE:
            label = w.both("含税", "Incl. tax") + f" {tax.percent} ({amount(tax.base)})"
        else:
            label = w.both("税", "Tax") + f" {tax.percent} ({amount(tax.base)})"
        w.lines(w.two_columns(label, amount(tax.tax), cols))
    p.set(align="left", bold=True, double_height=True)
    w.lines(w.two_columns(w.both("合计", "TOTAL"), f"{sale.currency} {amount(sale.total)}", cols))
    p.set(align="left", bold=False, normal_textsize=True)
    # Paid by: the wallet the shopper used; the provider that took the money (the acquirer:
    # a gateway, the simulator) on a line of its own when it is not that wallet's own.
    provider = PAYMENT_NAMES.get(sale.payment_method, (sale.payment_method,) * 2)
    zh, en = WALLET_NAMES.get(sale.wallet, (sale.wallet,) * 2) if sale.wallet else provider
    w.lines(w.two_columns(w.both("支付方式", "Paid by"), w.both(zh, en), cols))
    if sale.wallet and provider != (zh, en):
        w.lines(w.two_columns(w.both("收单", "Via"), w.both(*provider), cols))
    w.lines(w.wrap(w.both("交易号", "Ref") + f" {sale.provider_ref}", cols))
    if sale.member_id:
        w.lines(w.two_columns(w.both("会员", "Member") + f" {sale.member_id}",
                            w.both("积分", "Points") + f" +{sale.points_earned}", cols))
    w.rule()
    p.set(align="center", bold=True)
    w.line(w.both("出口凭证", "EXIT PASS") + (f" ({w.both('副本', 'COPY')})" if copy else ""))
    p.set(align="center", bold=False)
    # The QR is centred by ESC a, which both GS ( k and raster images obey.
    p.qr(exit_pass, ec=QR_ECLEVEL_M, size=5 if style.paper_mm == 58 else 6,
         native=style.native_qr)
    if sale.exit_audit:
        p.set(align="center", bold=True)
        w.lines(w.wrap(w.both("请在出口出示本小票接受抽检", "Please show this receipt at the exit "
                                                        "check"), cols))
        p.set(align="center", bold=False)
    w.lines(w.wrap(style.footer_zh, cols) if style.chinese else [])
    w.lines(w.wrap(style.footer_en, cols))
    p.cut()
    return bytes(p.output)


def _started(style: ReceiptStyle) -> _Writer:
    """A writer on a freshly initialised printer, in two-byte mode for Chinese printers."""
    w = _Writer(style)
    w.p.hw("INIT")
    if style.chinese:
        w.p._raw(FS_CHINESE_ON)
    return w


def render_document(text: str, style: ReceiptStyle) -> bytes:
    """A plain text document (a staff X or Z report): its lines wrapped to the paper."""
    w = _started(style)
    p, cols = w.p, style.columns
    p.set(align="left")
    for line in text.splitlines():
        w.lines(w.wrap(line, cols) if line else [""])
    p.cut()
    return bytes(p.output)


def render_test_page(style: ReceiptStyle, qr_text: str) -> bytes:
    """``kiosk printer test``: both languages, sizes, alignment and a QR."""
    w = _started(style)
    p, cols = w.p, style.columns
    p.set(align="center", bold=True, double_height=True, double_width=True)
    w.line(w.both("打印测试", "TEST"))
    p.set(align="center", normal_textsize=True, bold=False)
    w.line("Printer test page")
    p.set(align="left")
    w.rule()
    # The yuan sign as the shop writes it (U+00A5): folded to the full-width ￥ (A3 A4).
    w.lines(w.wrap(w.both("中文：扫码购自助收银机 ¥12.30", "English: Scan & Go kiosk"), cols))
    w.lines(w.two_columns(w.both("左对齐", "left"), w.both("右对齐", "right"), cols))
    w.line("0123456789" * (cols // 10))
    w.rule("=")
    p.set(align="center")
    p.qr(qr_text, ec=QR_ECLEVEL_M, size=6, native=style.native_qr)
    w.line(qr_text)
    p.cut()
    return bytes(p.output)
