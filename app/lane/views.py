"""What a lane shows: its screens and the immutable view each change publishes.

The touch UI renders a ``LaneView`` and the scenario runner reads it; neither
reaches into the lane for anything else. Pure data, no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain.money import Money
from app.domain.pricing import PricedCart
from app.domain.rejections import Refused
from app.services.staff_port import StaffView


class Screen(StrEnum):
    ATTRACT = "attract"
    MEMBER = "member"
    SHOPPING = "shopping"
    AGE_CHECK = "age_check"
    PAY = "pay"
    RECEIPT = "receipt"
    STILL_THERE = "still_there"
    CLOSED = "closed"
    OUT_OF_ORDER = "out_of_order"
    ERROR = "error"
    STAFF = "staff"


# Screens where a shopper is in the middle of something and may walk away.
IDLE_WATCHED = (Screen.MEMBER, Screen.SHOPPING, Screen.AGE_CHECK)


@dataclass(frozen=True)
class Notice:
    """A message for the shopper: a string id (translated by the UI) and its values."""

    key: str
    level: str = "info"  # info, ok, warn, error
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, key: str, level: str = "info", **values: object) -> Notice:
        return cls(key, level, tuple((k, str(v)) for k, v in values.items()))


@dataclass(frozen=True)
class PaymentView:
    out_trade_no: str
    qr_payload: str
    amount: Money
    provider: str
    wallet: str
    expires_at: datetime
    state: str
    closing: bool
    mode: str = "qr"  # "code": the shopper's payment code is being charged
    # Code mode: when the kiosk stops waiting for the shopper's confirmation on the phone
    # (shown only: the lane counts on the monotonic clock and re-aligns this if the wall
    # clock steps); None for a QR payment.
    deadline: datetime | None = None


@dataclass(frozen=True)
class ReceiptView:
    order_id: str
    total: Money
    item_count: int
    exit_pass: str
    printed: bool | None  # None: still printing
    show_pass: bool  # the exit pass is on screen (no printer, or it failed)
    exit_audit: bool
    member_id: str | None
    points: int


@dataclass(frozen=True)
class LaneView:
    """Everything the screen shows, as one immutable snapshot."""

    screen: Screen
    version: int = 0
    priced: PricedCart | None = None
    member_id: str | None = None
    member_provisional: bool = False
    notice: Notice | None = None
    last_line_id: int | None = None  # the line the last scan touched (highlighted)
    frozen: bool = False
    age_lines: tuple[tuple[int, str, str, int], ...] = ()  # line id, zh, en, minimum age
    checking_printer: bool = False
    printer_notice: tuple[str, str] | None = None  # (zh, en) before taking money
    wallets: tuple[str, ...] = ()
    # The adapter charges wallets' payment codes: the pay screen also offers "show your
    # payment code to the camera" (``desk.provider.code_wallets`` is not empty).
    takes_codes: bool = False
    payment: PaymentView | None = None
    receipt: ReceiptView | None = None
    # "still there?" countdown, the receipt screen's end, or the QR's expiry on the pay
    # screen: display only, the wall clock now plus the time left on a monotonic deadline
    deadline: datetime | None = None
    back_to: Screen | None = None  # where "I'm still here" or "Back" returns
    # On the out-of-order screen: what the kiosk's wall clock reads ("1970-01-01 00:00")
    # when it is too early to be true (app.domain.clock.implausible); '' otherwise.
    wrong_clock: str = ""
    help_requested: bool = False
    manual_entry: bool = False  # the camera is lost: typing the code is offered first
    camera_ok: bool = True
    staff: StaffView | None = None  # staff mode's page, while it is open
    # How many times this lane has ended a session and wiped the screen (done, abandoned,
    # timed out, reset by staff): the screen puts the shopper's language, large text and
    # high contrast back to the store's when it changes, so they never carry over.
    sessions_ended: int = 0


def refused_notice(exc: Refused) -> Notice:
    """A refusal carries its own words in both languages, saying what to do next."""
    r = exc.refusal
    return Notice.of("refused", "error", code=r.code, message_zh=r.message_zh,
                     message_en=r.message_en)


__all__ = ["IDLE_WATCHED", "LaneView", "Notice", "PaymentView", "ReceiptView", "Screen",
           "refused_notice"]
