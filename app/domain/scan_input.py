"""Untrusted scanner input -> clean text, or a refusal.

Anything a camera decoder, keyboard-wedge or serial scanner hands over passes
through ``clean_scan`` first. A code the kiosk acts on is printable ASCII (GS1
Digital Link URIs are percent-encoded ASCII too); the single exception is the
ASCII group separator (0x1D), which scanners send in place of FNC1 between
GS1-128 fields. Control and escape characters, invalid UTF-8, invisible Unicode
and over-long strings are refused with a reason; the raw input is never stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.domain.exit_pass import PREFIX as EXIT_PASS_PREFIX
from app.domain.member_code import PREFIX as MEMBER_CODE_PREFIX
from app.domain.payment_code import DEFAULT_CODE_RANGES, CodeRange, wallet_of
from app.domain.rejections import refuse

GROUP_SEPARATOR = "\x1d"
# AIM symbology identifiers whose data is GS1 (AIM ISO/IEC 15424 modifiers: GS1-128 ]C1,
# GS1 DataBar ]e0, GS1 QR ]Q3, GS1 DataMatrix ]d2, GS1 DotCode ]J1).
GS1_SYMBOLOGIES = frozenset({"]C1", "]e0", "]Q3", "]d2", "]J1"})
DEFAULT_MAX_LENGTH = 512  # a Digital Link URI with a few attributes fits easily


@dataclass(frozen=True, slots=True)
class CleanScan:
    """Scanner text that passed the checks, with the AIM symbology identifier split off."""

    text: str
    symbology: str | None = None  # e.g. "]C1" (GS1-128), "]E0" (EAN/UPC), "]Q3" (GS1 QR)


def clean_scan(raw: str | bytes, max_length: int = DEFAULT_MAX_LENGTH) -> CleanScan:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise refuse(
                "invalid_utf8",
                "The scanner sent unreadable data. Scan the item again or type its code.",
                "扫码数据无法识别。请重新扫描，或手动输入条码。",
                raw,
            ) from None
    else:
        text = raw
    # Scanners end each read with CR, LF or CRLF; that suffix is framing, not data.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith(("\r", "\n")):
        text = text[:-1]
    text = text.strip(" ")
    if not text:
        raise refuse(
            "empty",
            "Nothing was read. Hold the barcode inside the box and try again.",
            "未读到条码。请把条码放在扫描框内重试。",
        )
    if len(text) > max_length:
        raise refuse(
            "too_long",
            f"That code is too long ({len(text)} characters). Scan the item's barcode instead.",
            f"条码过长（{len(text)} 个字符）。请扫描商品条码。",
            text,
        )
    for ch in text:
        if " " <= ch <= "~" or ch == GROUP_SEPARATOR:
            continue
        if ch == "\x1b":
            raise refuse(
                "escape_character",
                "That code contains an escape character and was refused. Please call staff.",
                "条码含有转义字符，已拒绝。请呼叫店员。",
                text,
            )
        if ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) < 0xA0:
            raise refuse(
                "control_character",
                "That code contains control characters and was refused. Please call staff.",
                "条码含有控制字符，已拒绝。请呼叫店员。",
                text,
            )
        raise refuse(
            "not_ascii",
            "That is not a product code. Scan the barcode on the item or type it in.",
            "这不是商品条码。请扫描商品上的条码或手动输入。",
            text,
        )
    symbology = None
    # AIM symbology identifiers: "]" + code letter + modifier digit.
    if len(text) >= 3 and text[0] == "]" and text[1].isalpha() and text[2].isalnum():
        symbology, text = text[:3], text[3:]
        if not text:
            raise refuse(
                "empty",
                "Nothing was read. Hold the barcode inside the box and try again.",
                "未读到条码。请把条码放在扫描框内重试。",
            )
    return CleanScan(text, symbology)


STAFF_BADGE_PREFIX = "KSTAFF:"  # what a staff badge QR holds: this + a random id


class ScanKind(StrEnum):
    """What a cleaned scan is, before any screen decides what it means."""

    GOODS = "goods"  # a product code of any form (GTIN, RCN, PLU, GS1, Digital Link)...
    MEMBER = "member"  # the membership app's member QR (app.domain.member_code)
    STAFF_BADGE = "staff_badge"  # a staff badge (app.storage.staff_book issues them)
    EXIT_PASS = "exit_pass"  # a receipt's exit pass (app.domain.exit_pass)
    PAYMENT_CODE = "payment_code"  # a wallet's payment code (app.domain.payment_code)


def classify(scan: CleanScan,
             code_ranges: Iterable[CodeRange] = DEFAULT_CODE_RANGES) -> ScanKind:
    """The one place that tells a scan's kind, by its prefix. Anything that is not a
    member QR, a staff badge, an exit pass or a wallet's payment code (by the wallets'
    published prefixes and lengths, ``code_ranges``) is taken for goods: the catalogue
    lookup then says what it is or why it is refused. A scan whose symbology says GS1 or
    EAN/UPC is never a payment code, whatever its digits (``_may_be_payment_code``). A new
    kind of scanned code is added here (and given a row in the lane's routing table,
    app.lane.scanning.SCAN_ROUTES)."""
    text = scan.text
    if _may_be_payment_code(scan) and wallet_of(text, code_ranges) is not None:
        return ScanKind.PAYMENT_CODE
    if text.startswith(STAFF_BADGE_PREFIX):
        return ScanKind.STAFF_BADGE
    if text.startswith(MEMBER_CODE_PREFIX):
        return ScanKind.MEMBER
    if text.upper().startswith(EXIT_PASS_PREFIX):  # passes are base32: either case reads
        return ScanKind.EXIT_PASS
    return ScanKind.GOODS


def _may_be_payment_code(scan: CleanScan) -> bool:
    """Whether the symbology a scan came in could carry a wallet's payment code. WeChat Pay,
    Alipay and UnionPay show a Code 128 without FNC1 (]C0) and a plain QR, never GS1 data
    nor an EAN/UPC; so a GS1-128 label whose element string happens to be all digits of a
    wallet's length and prefix (e.g. (11)260101(10)12345678: 18 digits beginning 11, a
    WeChat code's shape) or an EAN-13 with its 5-digit add-on (]E3, 18 digits) is goods,
    never sent to a wallet. A scan with no identifier (most wedges) goes by its digits."""
    symbology = scan.symbology
    if symbology is None:
        return True
    return symbology not in GS1_SYMBOLOGIES and not symbology.startswith("]E")
