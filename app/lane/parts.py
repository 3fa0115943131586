"""What a lane is built from (``LaneParts``) and its timings, wired by the composition root."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import sqlite_utils

from app.domain.clock import EARLIEST_PLAUSIBLE, Clock
from app.domain.exit_audit import ExitAuditRules
from app.domain.payment_code import DEFAULT_CODE_RANGES, CodeRange
from app.domain.promotions import Promotion
from app.domain.tax import TaxPolicy
from app.services.catalogue import ProduceGrid
from app.services.checkout import Checkout
from app.services.members import MemberCodes
from app.services.payments import PaymentDesk
from app.storage.disk_reserve import DiskReserve
from app.storage.outbox import Outbox

HELP_REPEAT = timedelta(minutes=1)  # "Call staff" again within this is the same call
ATTRACT_NOTICE = timedelta(seconds=10)  # a message on the attract screen, then clear it
RETRY_MAX_S = 60.0  # the longest wait between tries to settle a stray payment


class BetweenShoppers(Protocol):
    """Store data head office sent, applied by the lane between shoppers
    (``app.services.store_data.StoreData`` over the lane's connection; docs/store-sync.md)."""

    def due(self, now: datetime) -> bool:
        """A staged version's ``effective_at`` has come."""
        ...

    def apply_due(self, now: datetime) -> list[tuple[str, int]]:
        """Apply every due version in one transaction; (kind, version) applied."""
        ...


@dataclass
class LaneTimings:
    idle: timedelta = timedelta(seconds=90)  # no touch or scan: ask "still there?"
    # The same while staff are called (the banner is up): a longer grace, never none, so a
    # shopper who called staff and left does not block the lane (issue 19).
    idle_help: timedelta = timedelta(seconds=180)
    still_there: timedelta = timedelta(seconds=30)  # the countdown before abandoning
    receipt: timedelta = timedelta(seconds=15)  # receipt screen, receipt printed
    receipt_on_screen: timedelta = timedelta(seconds=60)  # exit pass on screen
    poll: timedelta = timedelta(milliseconds=1500)  # ask the provider about an open payment
    out_of_order_after: timedelta = timedelta(seconds=30)  # camera lost, no other scanner
    # A payment-code charge waiting for the shopper's password: then it is reversed.
    code_deadline: timedelta = timedelta(seconds=60)


@dataclass
class LaneParts:
    """What a lane works with; ``app.bootstrap.build_lane`` wires the real ones."""

    db: sqlite_utils.Database
    outbox: Outbox
    new_checkout: Callable[[], Checkout]
    desk: PaymentDesk
    clock: Clock
    lane_id: str
    store_name_zh: str
    store_name_en: str
    currency: str
    tax: TaxPolicy
    promotions: Callable[[], list[Promotion]]
    # What to tell the shopper before paying about the receipt, or None if it will
    # print. May block (it asks the printer), which is why a lane has its own thread.
    receipt_notice: Callable[[], tuple[str, str] | None]
    wake_printer: Callable[[], None] = lambda: None
    member_codes: MemberCodes | None = None
    phone_lookup: Callable[[str], str | None] | None = None
    phone_secret: str = ""
    wallets: tuple[str, ...] = ()
    # payment.aggregated_qr: one QR serves every wallet, so no wallet choice (only when the
    # adapter says its QR is aggregated too: ``Paying._one_qr``).
    aggregated_qr: bool = False
    # Which wallet a payment code belongs to (payment.code_ranges; the published ranges).
    code_ranges: tuple[CodeRange, ...] = DEFAULT_CODE_RANGES
    points_per_unit: int = 1
    exit_audit: ExitAuditRules = field(default_factory=lambda: ExitAuditRules(share=0.0))
    roll: Callable[[], float] = random.random  # bootstrap passes SystemRandom's
    max_length: int = 512  # barcodes.max_length: longer scanner input is refused
    # The "Find produce" grid: (department, search) -> PLU items to pick by picture
    # (app.services.catalogue.produce_grid); None: the lane offers no grid.
    produce: Callable[[str, str], ProduceGrid] | None = None
    other_scanners: bool = False  # a serial or wedge scanner works without the camera
    # Bytes free where the database lives (shutil.disk_usage(data_dir).free), or None if
    # unknown; below min_free_bytes no payment QR is shown (payment.min_free_mb).
    free_bytes: Callable[[], int | None] = lambda: None
    min_free_bytes: int = 0
    # Space kept back in the data directory (payment.reserve_mb), released when the disk
    # fills on the money path so a paid sale is still written; None: no reserve.
    reserve: DiskReserve | None = None
    timings: LaneTimings = field(default_factory=LaneTimings)
    # Seconds that never step: every wait and deadline of the lane is measured on it; the
    # wall clock (``clock``) only for what is shown, signed or sent (issue 16, fault 3).
    monotonic: Callable[[], float] = time.monotonic
    # A wall clock earlier than this is wrong: the lane is out of order until it is set
    # (app.domain.clock.EARLIEST_PLAUSIBLE; tests move it instead of the machine's clock).
    clock_floor: datetime = EARLIEST_PLAUSIBLE
    # Head office's store data, applied at the home screen when no session and no payment
    # is open (docs/store-sync.md, "The lane"); None: this lane does not follow head office.
    store_data: BetweenShoppers | None = None


__all__ = ["ATTRACT_NOTICE", "BetweenShoppers", "HELP_REPEAT", "LaneParts", "LaneTimings",
           "RETRY_MAX_S"]
