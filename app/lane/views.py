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
from app.services.catalogue import ProduceGrid
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
class Confirm:
    """A question on screen before an irreversible step: ``kind`` "remove" (the "-" at
    quantity 1: take line ``line_id``, named ``name_zh``/``name_en``, off the cart) or
    "start_over" (empty the cart and end the session)."""

    kind: str
    line_id: int | None = None
    name_zh: str = ""
    name_en: str = ""


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
    savings: Money | None = None  # what promotions and member prices took off (0: none)


@dataclass(frozen=True)
class LaneView:
    """Everything the screen shows, as one immutable snapshot."""

    screen: Screen
    version: int = 0
    priced: PricedCart | None = None
    member_id: str | None = None
    member_provisional: bool = False
    notice: Notice | None = None
    last_line_id: int | None = None  # the line the last scan or +/- touched (highlighted)
    # Lines whose "+" cannot succeed (app.domain.cart.Cart.room_for_one_more): disabled.
    full_lines: tuple[int, ...] = ()
    confirm: Confirm | None = None  # a question waiting for the shopper's answer
    # A member identified by phone: the number with its middle digits masked
    # (138****5678), shown wherever the member is named; '' otherwise.
    member_masked: str = ""
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
    # A serial or keyboard-wedge scanner is fitted (works without the camera): a lost
    # camera's words offer it (LaneParts.other_scanners).
    hand_scanner: bool = False
    staff: StaffView | None = None  # staff mode's page, while it is open
    produce: ProduceGrid | None = None  # the "Find produce" grid, while it is open
    # How many times this lane has ended a session and wiped the screen (done, abandoned,
    # timed out, reset by staff): the screen puts the shopper's language, large text and
    # high contrast back to the store's when it changes, so they never carry over.
    sessions_ended: int = 0


def refused_notice(exc: Refused) -> Notice:
    """A refusal carries its own words in both languages, saying what to do next."""
    r = exc.refusal
    return Notice.of("refused", "error", code=r.code, message_zh=r.message_zh,
                     message_en=r.message_en)


# A typed code the lookup refused, by refusal code: what was wrong with the digits typed
# and what to do next. A refusal's own words tell a scanning shopper to "type the code",
# which a shopper who just typed it cannot act on (issue 19).
TYPED_REFUSALS = {
    "unknown_product": "typed_unknown",
    "bad_check_digit": "typed_check_digit",
    "not_a_product_code": "typed_not_a_code",
    "not_ascii": "typed_not_a_code",
    "too_long": "typed_not_a_code",
    "invalid_utf8": "typed_not_a_code",
    "empty": "typed_not_a_code",
}


def typed_notice(exc: Refused) -> Notice:
    """The notice for a code typed on the keypad and refused: one of ``TYPED_REFUSALS``'
    string ids, or the refusal's own words where they do not ask to type the code
    (expired, needs weighing, a damaged scale label: app.domain.barcodes, catalogue)."""
    key = TYPED_REFUSALS.get(exc.refusal.code)
    if key is None:
        return refused_notice(exc)
    return Notice.of(key, "error", code=exc.refusal.code)


__all__ = ["IDLE_WATCHED", "TYPED_REFUSALS", "Confirm", "LaneView", "Notice", "PaymentView",
           "ReceiptView", "Screen", "refused_notice", "typed_notice"]
