"""The two small ports between a lane and staff mode, so neither imports the other.

``LaneControl`` is what staff mode may do to a lane (the lane in ``app.lane``
implements it); ``StaffDesk`` is what a lane asks of staff mode (``StaffMode``
in ``app.services.staff`` implements it). ``StaffView`` is staff mode's page,
which the lane carries in its view while staff mode is open. The composition
root builds both and introduces them; tests can put a ``Fake*`` on either side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from app.domain.cart import CartLine
from app.domain.money import Money
from app.domain.scan_input import ScanKind

if TYPE_CHECKING:
    from app.services.store_data import DataStatus


@dataclass(frozen=True)
class Said:
    """A line of a staff page before it is put into words: a key of ``app/ui/strings.py``
    and its values, worded by the screen in its language (staff mode, in ``app.services``,
    cannot import the UI's strings). Values: ``Money`` (formatted as money), ``datetime``
    (the store's local time), ``Elapsed`` (how long ago, from the screen's clock),
    ``Bilingual`` (the language's half), a ``Said`` (worded in turn), a tuple of those
    (joined), anything else as ``str``. ``fallback``: shown when the key has no words
    (a state or kind the strings do not know yet)."""

    key: str
    values: tuple[tuple[str, object], ...] = ()
    fallback: str = ""

    @classmethod
    def of(cls, key: str, fallback: str = "", **values: object) -> Said:
        return cls(key, tuple(values.items()), fallback)


@dataclass(frozen=True)
class Elapsed:
    """Shown as the time since ``since`` (wall clock: this is only shown, never timed)."""

    since: datetime


@dataclass(frozen=True)
class Bilingual:
    """A text that comes in both languages (a product's name)."""

    zh: str
    en: str


@dataclass(frozen=True)
class OpenPayment:
    """The open payment on a lane, as staff see it."""

    provider: str  # the adapter's name
    wallet: str  # the wallet chosen or whose code is charged; "" for none
    mode: str  # "qr" or "code"
    amount: Money
    started_at: datetime
    state: str  # app.domain.payment.PaymentState's value


@dataclass(frozen=True)
class LaneLine:
    name: Bilingual
    quantity: int
    weight_g: int | None
    total: Money


@dataclass(frozen=True)
class LaneState:
    """What is going on at a lane, for the staff menu and the reset confirmation."""

    screen: str  # app.lane.views.Screen's value (the screen staff mode was opened over)
    lines: tuple[LaneLine, ...] = ()
    item_count: int = 0
    total: Money | None = None  # the cart's total; None without a session
    member_id: str | None = None
    payment: OpenPayment | None = None
    age_pending: tuple[Bilingual, ...] = ()

    @property
    def in_session(self) -> bool:
        return self.total is not None


@dataclass(frozen=True)
class StaffView:
    page: str  # pin, menu, lines, sales, amount, verify, text
    name: str = ""
    role: str = ""
    badge_name: str = ""  # the PIN pad after a badge scan: whose PIN is asked for
    purpose: str = ""  # what the picker or keypad is for: void, override, refund, reprint
    message: str = ""  # the last action's outcome (English and Chinese, staff read both)
    level: str = "info"
    title: str = ""  # the text page's heading
    text: str = ""  # report, audit log, device health, pass verdict
    choices: tuple[tuple[str, str], ...] = ()  # (id, label) for the pickers
    chosen: str = ""  # the line or order an amount is for
    lane_open: bool = True
    locked_until: str = ""
    # In words for the screen's language (Said): the text page's heading and lines (device
    # health, audit log, reports, the reset confirmation), and the lane's state on the menu.
    heading: Said | None = None
    lines: tuple[Said, ...] = ()
    state: tuple[Said, ...] = ()
    # The last action's outcome in words (shown instead of ``message`` when set): the
    # store data page's refusals and results, in the screen's one language.
    notice: Said | None = None
    # Buttons a page offers, in words: (choice, label); the store data page's "Roll back
    # the catalogue to version 41", one per kind that has a version to go back to.
    offers: tuple[tuple[str, Said], ...] = ()


@dataclass(frozen=True)
class SessionRef:
    """The shopper session on the lane, as staff mode may know it."""

    session_id: str
    member_id: str | None


class LaneControl(Protocol):
    """What staff mode may do to a lane. Called on the lane's thread only."""

    @property
    def is_open(self) -> bool: ...

    def staff_view(self) -> StaffView | None:
        """Staff mode's page as the lane shows it now; None when staff mode is not up."""

    def enter_staff(self, view: StaffView) -> None:
        """Put staff mode on screen (over whatever the shopper had), showing ``view``."""

    def show_staff(self, view: StaffView) -> None:
        """Show another staff page; nothing if staff mode is not on screen."""

    def leave_staff(self) -> None:
        """Back to the screen staff mode was opened over (or home)."""

    def shopper_session(self) -> SessionRef | None:
        """The open shopper session, if any."""

    def cart_lines(self) -> list[CartLine]:
        """The open cart's lines (empty without a session)."""

    def pending_age_lines(self) -> list[CartLine]:
        """Lines waiting for an age check."""

    def void_line(self, line_id: int, staff: str) -> CartLine:
        """Remove a line for staff (recorded in the session); raises KeyError if gone."""

    def override_price(self, line_id: int, total: Money, staff: str) -> CartLine:
        """Set a line's total for staff; raises Refused/KeyError as the session does."""

    def approve_age(self, staff: str) -> None:
        """Every line waiting for an age check is approved by ``staff``."""

    def lane_state(self) -> LaneState:
        """What is going on at the lane now: the cart, the open payment, age checks."""

    def abandon(self, reason: str) -> None:
        """End the shopper's session (any open payment is settled first) and wipe."""

    def set_open(self, is_open: bool) -> None:
        """Open or close the lane (kept across restarts)."""

    def shopper_busy(self) -> str | None:
        """What a shopper has open at this lane: ``"payment"`` (a payment not yet settled,
        with or without a session), ``"session"`` (a cart), or None between shoppers.
        Store data may change only between shoppers (docs/store-sync.md, "The lane")."""


class StoreDataDesk(Protocol):
    """What staff mode reads and does of the lane's store data (versions from head office):
    ``app.services.store_data.StoreData`` implements it."""

    def status(self) -> DataStatus:
        """Versions applied, staged and set aside per kind; when head office was reached."""

    def rollback(self, kind: str, staff: str) -> tuple[int, int]:
        """Back to the version before the applied one of ``kind``, as ``staff`` (audited);
        (from, to). ValueError with the reason when there is none to go back to."""


class StaffDesk(Protocol):
    """What a lane asks of staff mode. Called on the lane's thread only."""

    def open_pin_pad(self, badge: str | None = None) -> None:
        """The hidden gesture, or a staff badge scanned on any screen."""

    def scanned(self, text: str, kind: ScanKind) -> None:
        """A code scanned while staff mode is on screen, and its kind
        (``app.domain.scan_input.classify``)."""

    def tick(self) -> None:
        """Staff mode's own timer (sign-out when idle)."""

    def publish_audit_head(self) -> None:
        """Carry the audit log's head off the database every few seconds."""


__all__ = ["Bilingual", "Elapsed", "LaneControl", "LaneLine", "LaneState", "OpenPayment", "Said",
           "SessionRef", "StaffDesk", "StaffView", "StoreDataDesk"]
