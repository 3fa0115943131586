"""Typed kiosk settings from a TOML file and environment variables, each with a documented default.

Precedence, lowest first: the defaults below, the TOML file (``--config``,
``KIOSK_CONFIG``, or ``<data dir>/kiosk.toml`` when it exists), environment
variables ``KIOSK_<SECTION>__<NAME>`` (e.g. ``KIOSK_STORE__CURRENCY=USD``), then
command-line flags. ``KIOSK_DATA_DIR`` / ``--data-dir`` choose the data directory.
Nothing here runs at import time: call ``load_settings``.

Every setting's documentation is the ``doc`` in its field metadata; the
settings guide (docs/settings.md) and seeds/kiosk.example.toml are generated
from it (``kiosk config docs`` / ``kiosk config example``) and a test checks
they are current.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain.money import CURRENCY_EXPONENTS
from app.domain.payment_code import DEFAULT_CODE_RANGES, CodeRange, code_ranges_from
from app.domain.rcn import REGIONS, RcnLayout, layouts_for
from app.domain.tax import TaxMode, TaxPolicy, parse_rate

ENV_PREFIX = "KIOSK_"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and what it accepts."""


def _doc(text: str, default: Any) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass
class StoreSettings:
    name_zh: str = _doc("Store name shown on the screen and receipt (Chinese).", "扫码购示范店")
    name_en: str = _doc(
        "Store name shown on the screen and receipt (English).", "Scan & Go Demo Store"
    )
    currency: str = _doc("ISO 4217 currency of all prices.", "CNY")
    tax_mode: str = _doc(
        "'inclusive' (shelf prices include tax: China, EU) or 'exclusive' (tax added: US).",
        "inclusive",
    )
    tax_classes: dict[str, str] = _doc(
        "Tax class code -> rate ('0.13' or '13%'). Every product names one of these.",
        {"standard": "0.13", "food": "0.09", "zero": "0"},
    )
    time_zone: str = _doc(
        "The store's time zone, an IANA name ('Asia/Shanghai', 'Europe/Berlin', 'UTC'): "
        "receipts, reports, the exit-pass check and staff screens show the store's local "
        "time in it. What is stored, signed and sent stays in UTC / Unix seconds.",
        "Asia/Shanghai",
    )

    def validate(self) -> None:
        self.zone()
        if self.currency not in CURRENCY_EXPONENTS:
            raise SettingsError(
                f"store.currency {self.currency!r} is not a supported ISO 4217 code "
                f"({', '.join(sorted(CURRENCY_EXPONENTS))})"
            )
        if self.tax_mode not in {m.value for m in TaxMode}:
            raise SettingsError("store.tax_mode must be 'inclusive' or 'exclusive'")
        for code, rate in self.tax_classes.items():
            try:
                parse_rate(str(rate))
            except ValueError as exc:
                raise SettingsError(f"store.tax_classes.{code}: {exc}") from None

    def zone(self) -> ZoneInfo:
        """``time_zone`` as a ``ZoneInfo`` (the system's tz database, or the tzdata package);
        raises ``SettingsError`` naming the setting for a name the database does not know."""
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"store.time_zone {self.time_zone!r} is not an IANA time zone name this "
                "system knows: use a name such as 'Asia/Shanghai', 'Europe/Berlin' or 'UTC' "
                "(`ls /usr/share/zoneinfo`)"
            ) from None

    def tax_policy(self) -> TaxPolicy:
        rates = {code: parse_rate(str(rate)) for code, rate in self.tax_classes.items()}
        return TaxPolicy(TaxMode(self.tax_mode), rates)


@dataclass
class KioskSettings:
    lane_id: str = _doc(
        "This kiosk's lane name, unique in the store; goes on receipts and events.", "lane-01"
    )
    language: str = _doc("Language the attract screen starts in: 'zh' or 'en'.", "zh")
    backups_keep: int = _doc(
        "How many rolling database backups <data dir>/backups keeps (the oldest go).", 7
    )
    backup_every_h: float = _doc(
        "At start-up, take a backup if the newest is older than this (hours); every Z "
        "report takes one too.", 24.0
    )
    log_level: str = _doc(
        "Lowest level written to the log (stderr; the journal under systemd: `journalctl -u "
        "kiosk`): 'debug', 'info', 'warning' or 'error'.", "info"
    )
    restart_limit: int = _doc(
        "After this many starts in a row that followed an unclean end (a crash, a kill, the "
        "watchdog) within kiosk.restart_window_min, the kiosk starts in the out-of-order "
        "screen ('restarting repeatedly') instead of trying again; staff clear it with "
        "`kiosk restarts clear` (the held kiosk then ends and its service starts it afresh). "
        "Keep it below the unit's StartLimitBurst=, or systemd gives up (a dark screen) "
        "before the kiosk can hold.", 3
    )
    restart_window_min: int = _doc(
        "The window for kiosk.restart_limit, in minutes (wall clock: starts are counted "
        "across reboots).", 10
    )

    def validate(self) -> None:
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError("kiosk.log_level must be 'debug', 'info', 'warning' or 'error'")
        if not 2 <= self.restart_limit <= 100:
            raise SettingsError("kiosk.restart_limit must be between 2 and 100")
        if not 1 <= self.restart_window_min <= 24 * 60:
            raise SettingsError("kiosk.restart_window_min must be between 1 and 1440")
        if self.language not in ("zh", "en"):
            raise SettingsError("kiosk.language must be 'zh' or 'en'")
        if not 1 <= self.backups_keep <= 365:
            raise SettingsError("kiosk.backups_keep must be between 1 and 365")
        if not 0 <= self.backup_every_h <= 24 * 365:
            raise SettingsError("kiosk.backup_every_h must be between 0 and 8760")
        plain = self.lane_id.replace("-", "").replace("_", "")
        if not (0 < len(self.lane_id) <= 32 and plain.isascii() and plain.isalnum()):
            raise SettingsError(
                "kiosk.lane_id must be 1-32 ASCII letters, digits, '-' or '_' (it goes into "
                "order ids and exit passes)"
            )


@dataclass
class BarcodeSettings:
    rcn_region: str = _doc(
        "Built-in variable-measure (weight/price) label layouts: "
        + ", ".join(f"'{r}'" for r in sorted(REGIONS))
        + ".",
        "cn",
    )
    rcn_layouts: list[dict[str, Any]] = _doc(
        "Extra or overriding label layouts, e.g. "
        "[{prefix='24', pattern='PPIIIIIVVVVVX', measure='weight', decimals=3}]. "
        "Pattern letters: P prefix, I item, V value, C price check digit, X GTIN check digit.",
        [],
    )
    max_length: int = _doc("Longest scanner input accepted, in characters.", 512)
    refuse_expired: bool = _doc("Refuse items whose GS1 expiry date (AI 17) has passed.", True)

    def validate(self) -> None:
        try:
            self.layouts()
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"barcodes: {exc}") from None
        if not 32 <= self.max_length <= 4096:
            raise SettingsError("barcodes.max_length must be between 32 and 4096")

    def layouts(self) -> dict[str, RcnLayout]:
        extra = tuple(RcnLayout(**layout) for layout in self.rcn_layouts)
        return layouts_for(self.rcn_region, extra)


@dataclass
class CatalogueSettings:
    seed_csv: str = _doc(
        "Catalogue CSV the demo imports when the catalogue is empty ('' = none).",
        "seeds/catalogue.csv",
    )
    seed_promotions: str = _doc(
        "Promotions TOML the demo imports when there are none ('' = none).",
        "seeds/promotions.toml",
    )
    images_dir: str = _doc(
        "Folder of the catalogue's item pictures: the `image` column holds a path relative "
        "to it (e.g. 'produce/4046.png'; PNG or JPEG). '' = <data dir>/images. A picture "
        "that is missing, unreadable or outside this folder is not shown (the produce grid "
        "shows a plain tile with the item's initials) and is logged once.",
        "",
    )


@dataclass
class UiSettings:
    fullscreen: bool = _doc("Run full screen (a store kiosk) or in a window (a laptop).", False)
    width: int = _doc("Window width in pixels when not full screen.", 1280)
    height: int = _doc("Window height in pixels when not full screen.", 800)
    font: str = _doc(
        "Font file with Chinese glyphs; '' searches the system (Noto Sans CJK, WenQuanYi).", ""
    )
    dpi: int = _doc(
        "The screen's pixels per inch, so touch targets come out at least 15 mm wide on the "
        "glass; 96 for a 15.6-inch 1366x768 panel.",
        96,
    )
    idle_s: int = _doc("No touch or scan for this long mid-session: ask 'Still there?'.", 90)
    still_there_s: int = _doc(
        "The 'Still there?' countdown; then the cart is abandoned and the screen wiped.", 30
    )
    help_idle_s: int = _doc(
        "ui.idle_s while the shopper has called staff (the banner is up): a longer grace, "
        "never none, so a shopper who called staff and left does not block the lane. Staff "
        "signing in at the lane, or the shopper's Cancel, ends the call.",
        180,
    )
    receipt_s: int = _doc("The receipt screen's time when the receipt printed.", 15)
    receipt_on_screen_s: int = _doc(
        "The receipt screen's time when the exit pass is shown on screen instead.", 60
    )
    sounds: bool = _doc("Play the scan, reject and paid sounds.", True)
    camera_preview: bool = _doc("Show the live camera picture with the scan box.", True)
    demo_shelf: bool = _doc(
        "Show the demo shelf (products to 'hold under the camera' with a click, and the "
        "simulated phone's Pay button). `kiosk demo` turns it on.",
        False,
    )

    def validate(self) -> None:
        if not (320 <= self.width <= 7680 and 240 <= self.height <= 4320):
            raise SettingsError("ui.width/ui.height must be a real screen size in pixels")
        if not 48 <= self.dpi <= 600:
            raise SettingsError("ui.dpi must be between 48 and 600")
        if not 10 <= self.idle_s <= 3600 or not 5 <= self.still_there_s <= 600:
            raise SettingsError("ui.idle_s must be 10-3600 and ui.still_there_s 5-600")
        if not self.idle_s <= self.help_idle_s <= 3600:
            raise SettingsError("ui.help_idle_s must be at least ui.idle_s and at most 3600")
        if not 3 <= self.receipt_s <= 600 or not 3 <= self.receipt_on_screen_s <= 600:
            raise SettingsError("ui.receipt_s and ui.receipt_on_screen_s must be 3-600")


CAMERA_SOURCES = ("opencv", "folder", "video", "generated", "none")
SYMBOLOGIES = ("EAN-13", "EAN-8", "UPC-A", "UPC-E", "Code 128", "QR Code", "DataBar",
               "DataBar Expanded", "Code 39", "ITF", "DataMatrix", "PDF417")
SERIAL_SUFFIXES = ("CR", "LF", "CRLF", "TAB")
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


@dataclass
class CameraSettings:
    source: str = _doc(
        "Where frames come from: 'opencv' (a real camera), 'folder' (images), 'video' (a file), "
        "'generated' (rendered codes on a cluttered scene), 'none' (no camera: scanners only).",
        "opencv",
    )
    device: str = _doc(
        "OpenCV camera: a device index ('0') or a path or URL (/dev/video2, rtsp://...).", "0"
    )
    width: int = _doc("Requested frame width in pixels (the driver may choose another).", 1280)
    height: int = _doc("Requested frame height in pixels.", 720)
    fps: int = _doc("Requested frames per second; also the rate of simulated sources.", 30)
    exposure: float = _doc(
        "Manual exposure in the driver's units; 0 leaves exposure automatic.", 0.0
    )
    folder: str = _doc("Folder of images for source 'folder' (shown in name order).", "")
    video: str = _doc("Video file for source 'video' (played in a loop).", "")
    codes: list[str] = _doc(
        "Codes source 'generated' shows in turn, each held for about half a second.", []
    )
    lost_after_ms: int = _doc(
        "No new frame for this long means the camera is lost: it is reopened and the "
        "shopper is offered manual entry.",
        2000,
    )
    reopen_backoff_max_ms: int = _doc(
        "Longest wait between attempts to reopen a lost camera (the wait doubles up to this).",
        10000,
    )
    guide_width: float = _doc(
        "Width of the guide box the shopper holds codes in, as a share of the frame; only "
        "the box is decoded.",
        0.6,
    )
    guide_height: float = _doc("Height of the guide box, as a share of the frame.", 0.7)

    def validate(self) -> None:
        if self.source not in CAMERA_SOURCES:
            raise SettingsError(f"camera.source must be one of {', '.join(CAMERA_SOURCES)}")
        if self.source == "folder" and not self.folder:
            raise SettingsError("camera.folder must name a folder when camera.source = 'folder'")
        if self.source == "video" and not self.video:
            raise SettingsError("camera.video must name a file when camera.source = 'video'")
        if not (1 <= self.fps <= 240):
            raise SettingsError("camera.fps must be between 1 and 240")
        if not (160 <= self.width <= 7680 and 120 <= self.height <= 4320):
            raise SettingsError("camera.width/camera.height must be a real frame size")
        if self.lost_after_ms < 200:
            raise SettingsError("camera.lost_after_ms must be at least 200")
        if self.reopen_backoff_max_ms < 100:
            raise SettingsError("camera.reopen_backoff_max_ms must be at least 100")
        for name in ("guide_width", "guide_height"):
            if not 0.1 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"camera.{name} must be between 0.1 and 1.0")


@dataclass
class DecoderSettings:
    pipeline: str = _doc(
        "'combined' (zxing-cpp, then pyzbar and preprocessed retries: reads the most), "
        "'zxing' or 'zbar' (one library alone).",
        "combined",
    )
    symbologies: list[str] = _doc(
        "Symbologies read; retail ones by default. Also: " + ", ".join(SYMBOLOGIES[8:]) + ".",
        list(SYMBOLOGIES[:8]),
    )
    retry_budget: float = _doc(
        "Share of one core the camera may spend on retry passes (pyzbar, contrast, upscale, "
        "blur, 45 degrees) when the first pass reads nothing.",
        0.04,
    )
    recheck_ms: int = _doc(
        "An unchanged, empty view is decoded again at least this often.", 1000
    )

    def validate(self) -> None:
        if self.pipeline not in ("combined", "zxing", "zbar"):
            raise SettingsError("decoder.pipeline must be 'combined', 'zxing' or 'zbar'")
        unknown = [s for s in self.symbologies if s not in SYMBOLOGIES]
        if unknown or not self.symbologies:
            raise SettingsError(
                f"decoder.symbologies: unknown {', '.join(unknown) or '(empty list)'}; "
                f"known: {', '.join(SYMBOLOGIES)}"
            )
        if not 0.0 <= self.retry_budget <= 1.0:
            raise SettingsError("decoder.retry_budget must be between 0 and 1")
        if not 100 <= self.recheck_ms <= 60_000:
            raise SettingsError("decoder.recheck_ms must be between 100 and 60000")


@dataclass
class ScannerSettings:
    confirm_reads: int = _doc(
        "A camera read enters the cart after this many identical reads in consecutive frames.",
        2,
    )
    rescan_after_ms: int = _doc(
        "A code still under the camera is not added again; once unread this long, showing it "
        "again adds another unit.",
        800,
    )
    wedge_max_gap_ms: int = _doc(
        "Keyboard-wedge scanner: keys at most this far apart (and ending in Enter) are a scan; "
        "slower keys are a person typing.",
        40,
    )
    wedge_min_length: int = _doc("Keyboard-wedge scanner: shortest code, in characters.", 6)
    serial_port: str = _doc(
        "Serial scanner port or pyserial URL ('' = none), e.g. /dev/ttyACM0 or "
        "/dev/serial/by-id/...",
        "",
    )
    serial_baudrate: int = _doc("Serial scanner baud rate.", 9600)
    serial_suffix: str = _doc(
        "What the serial scanner sends after each code: " + ", ".join(SERIAL_SUFFIXES) + ".",
        "CR",
    )
    serial_rtscts: bool = _doc("Serial scanner: RTS/CTS hardware flow control.", False)
    serial_xonxoff: bool = _doc("Serial scanner: XON/XOFF software flow control.", False)
    reject_burst: int = _doc(
        "Refused scanner inputs reported per second; more are counted but not shown or "
        "logged (a scanner flooding garbage).",
        5,
    )

    def validate(self) -> None:
        if not 1 <= self.confirm_reads <= 5:
            raise SettingsError("scanner.confirm_reads must be between 1 and 5")
        if not 100 <= self.rescan_after_ms <= 10_000:
            raise SettingsError("scanner.rescan_after_ms must be between 100 and 10000")
        if not 1 <= self.reject_burst <= 1000:
            raise SettingsError("scanner.reject_burst must be between 1 and 1000")
        if self.serial_suffix not in SERIAL_SUFFIXES:
            raise SettingsError(
                f"scanner.serial_suffix must be one of {', '.join(SERIAL_SUFFIXES)}"
            )
        if not 5 <= self.wedge_max_gap_ms <= 200:
            raise SettingsError("scanner.wedge_max_gap_ms must be between 5 and 200")
        if not 2 <= self.wedge_min_length <= 64:
            raise SettingsError("scanner.wedge_min_length must be between 2 and 64")
        if self.serial_baudrate not in BAUD_RATES:
            raise SettingsError("scanner.serial_baudrate must be a standard rate, e.g. 9600")


@dataclass
class PrinterSettings:
    port: str = _doc(
        "Receipt printer serial port or pyserial URL ('' = no printer: every exit pass is "
        "shown on screen), e.g. /dev/ttyUSB0 or /dev/serial/by-id/...",
        "",
    )
    baudrate: int = _doc("Printer baud rate (the printer's self-test page shows it).", 9600)
    rtscts: bool = _doc("RTS/CTS hardware flow control.", False)
    dsrdtr: bool = _doc("DSR/DTR hardware flow control (many Epson printers).", False)
    xonxoff: bool = _doc("XON/XOFF software flow control.", False)
    paper_mm: int = _doc("Paper width: 58 or 80 (mm).", 80)
    encoding: str = _doc(
        "'gb18030' for Chinese-model printers (Chinese and English), 'ascii' for English-only "
        "printers (English names only).",
        "gb18030",
    )
    native_qr: bool = _doc(
        "Print the exit-pass QR with the printer's own QR command; false sends it as an "
        "image (printers without GS ( k).",
        True,
    )
    profile: str = _doc("python-escpos printer profile (capabilities), e.g. 'TM-T88V'.",
                        "default")
    confirm_printed: bool = _doc(
        "After each receipt, wait for the printer to confirm it has printed it all (GS ( H). "
        "Set false for printers without that command; receipts are then confirmed by the "
        "status right after sending.",
        True,
    )
    status_timeout_ms: int = _doc(
        "How long to wait for each status reply (DLE EOT) before calling the state unknown.",
        300,
    )
    reopen_backoff_max_ms: int = _doc(
        "Longest wait between attempts to reopen a vanished printer port.", 10000
    )
    footer_zh: str = _doc("Last line of the receipt (Chinese).", "谢谢惠顾，欢迎再来")
    footer_en: str = _doc("Last line of the receipt (English).", "Thank you for shopping with us")

    def validate(self) -> None:
        if self.paper_mm not in (58, 80):
            raise SettingsError("printer.paper_mm must be 58 or 80")
        if self.encoding not in ("gb18030", "ascii"):
            raise SettingsError("printer.encoding must be 'gb18030' or 'ascii'")
        if self.baudrate not in BAUD_RATES:
            raise SettingsError("printer.baudrate must be a standard rate, e.g. 9600")
        if not 20 <= self.status_timeout_ms <= 5000:
            raise SettingsError("printer.status_timeout_ms must be between 20 and 5000")
        if self.rtscts and self.dsrdtr:
            raise SettingsError("printer.rtscts and printer.dsrdtr: choose one flow control")


@dataclass
class ExitPassSettings:
    private_key_file: str = _doc(
        "This kiosk's Ed25519 signing key (PEM), created on first use with mode 0600; '' = "
        "<data dir>/keys/exit-pass.pem. Keep it out of backups that leave the kiosk.",
        "",
    )
    public_keys_file: str = _doc(
        "The store's public keys, TOML lines 'lane-id = \"base64\"' (`kiosk pass key` prints "
        "this lane's); '' = <data dir>/keys/store-keys.toml.",
        "",
    )
    max_age_h: int = _doc(
        "Staff's exit-pass check refuses a pass issued longer ago than this (hours).", 24
    )


@dataclass
class ExitAuditSettings:
    share: float = _doc(
        "Share of sales picked at random for an exit check (0.03 = 3%); the flag is signed "
        "into the exit pass and the receipt and screen tell the shopper.",
        0.03,
    )
    high_total: str = _doc(
        "A sale of at least this total (store currency) is always checked; '' = no limit.",
        "500.00",
    )
    max_removals: int = _doc(
        "A session with more item removals than this is checked; 0 = no limit.", 4
    )
    max_manual: int = _doc(
        "A session with more typed (manual-entry) codes than this is checked; 0 = no limit.", 3
    )

    def validate(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise SettingsError("exit_audit.share must be between 0 and 1")
        if self.max_removals < 0 or self.max_manual < 0:
            raise SettingsError("exit_audit.max_removals and max_manual must be 0 or more")


@dataclass
class StaffSettings:
    idle_s: int = _doc("Staff mode signs itself out after this long without a touch.", 120)
    hold_s: float = _doc(
        "How long a screen corner must be held to open the staff PIN pad.", 3.0
    )
    secret_file: str = _doc(
        "The install secret PINs are hashed with (created 0600 on first use), kept out of the "
        "database; '' = <data dir>/keys/staff-secret.",
        "",
    )

    def validate(self) -> None:
        if not 15 <= self.idle_s <= 3600:
            raise SettingsError("staff.idle_s must be between 15 and 3600")
        if not 1.0 <= self.hold_s <= 10.0:
            raise SettingsError("staff.hold_s must be between 1 and 10")


WALLETS = ("wechat", "alipay", "unionpay")


@dataclass
class PaymentSettings:
    adapter: str = _doc(
        "Payment adapter, by its name in the 'kiosk.payment' entry-point group: 'simulator' "
        "(kiosk sim pay), 'gateway' (the store's payment backend: recommended), 'wechatpay', "
        "'alipay', or a plugin's.",
        "simulator",
    )
    options: dict[str, Any] = _doc(
        "The adapter's own settings, e.g. { base_url = 'https://pay.store.lan', secret = '...' }"
        " for the gateway; see docs/payments.md for each adapter's keys.",
        {},
    )
    expire_s: int = _doc(
        "How long the payment QR stays valid; then the kiosk closes the order (after checking "
        "it was not paid).",
        120,
    )
    poll_ms: int = _doc("How often the kiosk asks the provider about an open payment.", 1500)
    wallets: list[str] = _doc(
        "Wallets the payment QR accepts, offered as the shopper's choice ('wechat', "
        "'alipay', 'unionpay'); one QR serves them all (an aggregated QR), the choice is "
        "recorded. One entry or none: no choice screen.",
        ["wechat", "alipay"],
    )
    aggregated_qr: bool = _doc(
        "Set true when the adapter's one payment QR can be scanned by every wallet in "
        "payment.wallets (an aggregated QR: the 'gateway' and 'simulator' adapters serve "
        "one): choosing a wallet then changes nothing, so the choice screen is skipped and "
        "the QR shown at once ('scan with WeChat Pay or Alipay'). Ignored (the choice stays) "
        "for an adapter whose QR is one wallet's own ('wechatpay', 'alipay').",
        False,
    )
    min_free_mb: int = _doc(
        "Free space the data directory must have before a payment QR is shown (the paid "
        "sale, its receipt and events must be writable); below it the payment is refused "
        "before any QR, staff are alerted and the shopper told to use another lane. 0 = no "
        "check.",
        64,
    )
    reserve_mb: int = _doc(
        "Disk space kept in reserve in the data directory (the file 'disk-reserve'): if the "
        "disk fills while a QR is up, the reserve is released so the paid sale, its receipt "
        "and events can still be written; staff are alerted and no new payment is taken "
        "until there is room to make the reserve again. 0 = no reserve.",
        8,
    )

    code_deadline_s: int = _doc(
        "How long the kiosk waits for a shopper who showed a payment code and is asked by "
        "the wallet for a password or fingerprint ('confirm on your phone'); then the "
        "charge is reversed (WeChat Pay reverse, Alipay cancel) and confirmed. 30-300.",
        60,
    )
    code_ranges: dict[str, Any] = _doc(
        "Which wallet a payment code (付款码) belongs to, by its published prefixes and "
        "lengths: wallet -> { prefixes = [...], lengths = [18] or [\"16-24\"] }. A code "
        "in no range is goods, not a payment; a wallet the adapter does not take is refused "
        "on screen. See docs/payments.md.",
        {r.wallet: {"prefixes": list(r.prefixes),
                    "lengths": [f"{min(r.lengths)}-{max(r.lengths)}"]
                    if len(r.lengths) > 1 else list(r.lengths)}
         for r in DEFAULT_CODE_RANGES},
    )

    def ranges(self) -> tuple[CodeRange, ...]:
        """``code_ranges`` as ``CodeRange``s, in the order given (the first that takes a
        code wins). Raises ``SettingsError`` for a malformed entry."""
        try:
            return code_ranges_from(self.code_ranges)
        except (ValueError, AttributeError, TypeError) as exc:
            raise SettingsError(f"payment.code_ranges: {exc}") from None

    def validate(self) -> None:
        if not 30 <= self.code_deadline_s <= 300:
            raise SettingsError("payment.code_deadline_s must be between 30 and 300")
        self.ranges()
        if not 0 <= self.min_free_mb <= 100_000:
            raise SettingsError("payment.min_free_mb must be between 0 and 100000")
        if not 0 <= self.reserve_mb <= 1024:
            raise SettingsError("payment.reserve_mb must be between 0 and 1024")
        unknown = [w for w in self.wallets if w not in WALLETS]
        if unknown:
            raise SettingsError(f"payment.wallets: unknown {unknown}; known: {list(WALLETS)}")
        if not 30 <= self.expire_s <= 1800:
            raise SettingsError("payment.expire_s must be between 30 and 1800")
        if not 200 <= self.poll_ms <= 30_000:
            raise SettingsError("payment.poll_ms must be between 200 and 30000")


@dataclass
class MembershipSettings:
    base_url: str = _doc(
        "The membership backend (docs/membership-api.yaml); '' = keep events on the kiosk "
        "only. `kiosk sim backend` listens on http://127.0.0.1:8766.",
        "",
    )
    token: str = _doc("The kiosk's bearer token for the membership backend.", "")
    store_id: str = _doc("This store's id, sent with every batch of events.", "store-001")
    max_mb: int = _doc(
        "Cap on the event outbox on disk; staff are alerted as it fills (75%); at the cap "
        "the oldest unsent behaviour events are evicted (never payment, receipt, audit or "
        "staff events), a gap marker is sent in their place and staff are alerted.",
        512,
    )
    keep_days: int = _doc("Delivered events are kept this many days, then removed.", 7)
    member_key: str = _doc(
        "The backend's public member key (base64 Ed25519) that member QR codes are checked "
        "with, offline (GET /v1/keys/member on the backend).",
        "",
    )

    def validate(self) -> None:
        if not 1 <= self.max_mb <= 100_000:
            raise SettingsError("membership.max_mb must be between 1 and 100000")
        if not 0 <= self.keep_days <= 3650:
            raise SettingsError("membership.keep_days must be between 0 and 3650")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise SettingsError("membership.base_url must start with http:// or https://")


@dataclass
class SyncSettings:
    enabled: bool = _doc(
        "Follow head office's store data (catalogue, promotions, lane keys: "
        "docs/store-sync.md) and send heartbeats; off: the lane keeps what was imported "
        "by hand.",
        True,
    )
    url: str = _doc(
        "The head-office service the store data comes from; '' = the membership backend "
        "(membership.base_url), with its token (membership.token).",
        "",
    )
    hq_public_key: str = _doc(
        "Head office's publishing key, pinned at setup: base64 of the raw 32-byte Ed25519 "
        "public key (`kiosk hq key --key FILE` prints it). Every version must be signed by "
        "it; '' = no sync (device health says so).",
        "",
    )
    poll_s: int = _doc("Seconds between looks for newer versions (mostly 304 Not Modified).",
                       30)
    heartbeat_s: int = _doc("Seconds between heartbeats to head office (0 = none).", 60)
    stale_after_h: float = _doc(
        "Hours without an answer from head office after which device health says the "
        "lane's store data is stale (a store-data alert with its age); the lane sells on.",
        4.0,
    )
    max_download_mb: int = _doc(
        "Largest store-data payload the lane downloads, in MiB; a bigger one is refused.",
        512,
    )

    def validate(self) -> None:
        if not 5 <= self.poll_s <= 86_400:
            raise SettingsError("sync.poll_s must be between 5 and 86400")
        if not (self.heartbeat_s == 0 or 5 <= self.heartbeat_s <= 86_400):
            raise SettingsError("sync.heartbeat_s must be 0 or between 5 and 86400")
        if not 0 < self.stale_after_h <= 24 * 365:
            raise SettingsError("sync.stale_after_h must be above 0 and at most 8760")
        if not 1 <= self.max_download_mb <= 100_000:
            raise SettingsError("sync.max_download_mb must be between 1 and 100000")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise SettingsError("sync.url must start with http:// or https://")
        if self.hq_public_key:
            import base64
            import binascii

            try:
                raw = base64.b64decode(self.hq_public_key, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise SettingsError("sync.hq_public_key must be base64 of a 32-byte Ed25519 "
                                    "public key (`kiosk hq key --key FILE` prints it)")


@dataclass
class Settings:
    data_dir: Path
    store: StoreSettings = field(default_factory=StoreSettings)
    kiosk: KioskSettings = field(default_factory=KioskSettings)
    barcodes: BarcodeSettings = field(default_factory=BarcodeSettings)
    catalogue: CatalogueSettings = field(default_factory=CatalogueSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    scanner: ScannerSettings = field(default_factory=ScannerSettings)
    printer: PrinterSettings = field(default_factory=PrinterSettings)
    exit_pass: ExitPassSettings = field(default_factory=ExitPassSettings)
    exit_audit: ExitAuditSettings = field(default_factory=ExitAuditSettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    payment: PaymentSettings = field(default_factory=PaymentSettings)
    membership: MembershipSettings = field(default_factory=MembershipSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "kiosk.db"

    @property
    def private_key_path(self) -> Path:
        given = self.exit_pass.private_key_file
        return Path(given) if given else self.data_dir / "keys" / "exit-pass.pem"

    @property
    def staff_secret_path(self) -> Path:
        given = self.staff.secret_file
        return Path(given) if given else self.data_dir / "keys" / "staff-secret"

    @property
    def images_path(self) -> Path:
        """The folder the catalogue's ``image`` paths are relative to (catalogue.images_dir)."""
        given = self.catalogue.images_dir
        return Path(given) if given else self.data_dir / "images"

    @property
    def audit_head_path(self) -> Path:
        return self.data_dir / "audit-head"

    @property
    def public_keys_path(self) -> Path:
        given = self.exit_pass.public_keys_file
        return Path(given) if given else self.data_dir / "keys" / "store-keys.toml"

    def validate(self) -> None:
        for section in SECTIONS:
            validate = getattr(getattr(self, section), "validate", None)
            if validate:
                validate()


SECTIONS: dict[str, type] = {
    "store": StoreSettings,
    "kiosk": KioskSettings,
    "barcodes": BarcodeSettings,
    "catalogue": CatalogueSettings,
    "ui": UiSettings,
    "camera": CameraSettings,
    "decoder": DecoderSettings,
    "scanner": ScannerSettings,
    "printer": PrinterSettings,
    "exit_pass": ExitPassSettings,
    "exit_audit": ExitAuditSettings,
    "staff": StaffSettings,
    "payment": PaymentSettings,
    "membership": MembershipSettings,
    "sync": SyncSettings,
}


def default_data_dir(environ: typing.Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/scan-and-go-kiosk``, i.e. ``~/.local/share/scan-and-go-kiosk``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "scan-and-go-kiosk"


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert a TOML or environment value to the field's type, or say what was expected."""
    hint = typing.get_origin(annotation) or annotation
    from_env = isinstance(value, str)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and value.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if type(value) is int:
            return value
        if from_env and value.strip().lstrip("-").isdigit():
            return int(value)
        raise SettingsError(f"{name} must be a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
        raise SettingsError(f"{name} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{name} must be text, got {value!r}")
    if hint in (list, dict):
        if from_env:
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                raise SettingsError(
                    f"{name} must be a TOML {hint.__name__}, got {value!r}"
                ) from None
        if not isinstance(value, hint):
            raise SettingsError(f"{name} must be a {hint.__name__}, got {value!r}")
        return value
    raise SettingsError(f"{name}: unsupported setting type {annotation!r}")  # pragma: no cover


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load_settings(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Settings:
    """Read settings: defaults, then the TOML file, then ``KIOSK_*`` environment variables."""
    env = dict(os.environ if environ is None else environ)
    if data_dir is None:
        data_dir = (
            Path(env["KIOSK_DATA_DIR"]) if env.get("KIOSK_DATA_DIR") else default_data_dir(env)
        )
    if config_file is None and env.get("KIOSK_CONFIG"):
        config_file = Path(env["KIOSK_CONFIG"])
    if config_file is None and (data_dir / "kiosk.toml").is_file():
        config_file = data_dir / "kiosk.toml"
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(
                f"config file {config_file} does not exist (--config / KIOSK_CONFIG)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file} is not valid TOML: {exc}") from None
    unknown_sections = set(file_values) - set(SECTIONS)
    if unknown_sections:
        raise SettingsError(
            f"{config_file}: unknown section(s) {', '.join(sorted(unknown_sections))}; "
            f"known: {', '.join(SECTIONS)}"
        )
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        types_ = _field_types(cls)
        values: dict[str, Any] = {}
        given = file_values.get(section, {})
        if not isinstance(given, dict):
            raise SettingsError(f"[{section}] must be a table")
        for name, value in given.items():
            if name not in types_:
                raise SettingsError(
                    f"{config_file}: unknown setting {section}.{name}; known: {', '.join(types_)}"
                )
            values[name] = _coerce(value, types_[name], f"{section}.{name}")
        for name, annotation in types_.items():
            key = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
            if key in env:
                values[name] = _coerce(env[key], annotation, f"{section}.{name} (from {key})")
        sections[section] = cls(**values)
    settings = Settings(data_dir=data_dir, **sections)
    settings.validate()
    return settings


def describe() -> list[tuple[str, str, Any, str]]:
    """(section, name, default, doc) for every setting: the source of the settings guide."""
    rows = []
    for section, cls in SECTIONS.items():
        instance = cls()
        for f in dataclasses.fields(cls):
            rows.append((section, f.name, getattr(instance, f.name), f.metadata["doc"]))
    return rows


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return _inline(value)
    raise TypeError(value)  # pragma: no cover


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return _toml_value(value)


def example_toml() -> str:
    """Every setting at its default, each under its documentation: seeds/kiosk.example.toml."""
    out = [
        "# Scan & Go kiosk settings: every setting, at its default value.",
        "# Generated by `kiosk config example`; docs/settings.md explains each one.",
        "# Environment variables override this file: KIOSK_<SECTION>__<NAME>,",
        "# e.g. KIOSK_STORE__CURRENCY=USD. The data directory is --data-dir or KIOSK_DATA_DIR.",
    ]
    current = None
    for section, name, default, doc in describe():
        if section != current:
            out += ["", f"[{section}]"]
            current = section
        out.append(f"# {doc}")
        out.append(f"{name} = {_toml_value(default)}")
    return "\n".join(out) + "\n"


def settings_markdown() -> str:
    """The settings guide: one table row per setting, generated so it cannot drift."""
    out = [
        "# Settings",
        "",
        "Generated by `kiosk config docs` from `app/config.py`; do not edit by hand.",
        "",
        "Settings come from defaults, then the TOML file (`--config`, `KIOSK_CONFIG`, or",
        "`<data dir>/kiosk.toml`), then environment variables `KIOSK_<SECTION>__<NAME>`.",
        "The data directory is `--data-dir`, `KIOSK_DATA_DIR`, or",
        "`$XDG_DATA_HOME/scan-and-go-kiosk` (`~/.local/share/scan-and-go-kiosk`).",
        "A full example with every setting is `seeds/kiosk.example.toml`.",
        "",
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for section, name, default, doc in describe():
        env = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
        shown = _toml_value(default).replace("|", "\\|")
        out.append(f"| `{section}.{name}` | `{env}` | `{shown}` | {doc.replace('|', '/')} |")
    return "\n".join(out) + "\n"


def resolve_seed(path: str) -> Path | None:
    """A seed file named in settings (``catalogue.seed_csv``, a camera folder...): absolute,
    relative to the working directory, or else to the project; None for ''."""
    if not path:
        return None
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return Path(__file__).resolve().parent.parent / candidate
