"""The payment simulator's orders and the rules they follow, whatever protocol asked.

One ``Provider`` holds every order in memory behind one lock; the gateway
contract (devices/sim/payprovider.py) and the WeChat Pay v3 and Alipay wire
formats (devices/sim/payprotocols.py) all create, query, pay, close and
refund through it, so a scripted outcome behaves the same in each. This
module imports neither of them: both build on it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devices.payment.gateway import SIMULATOR_SECRET, sign

OUTCOMES = ("approve", "decline", "pay_late", "pay_on_close", "never_answer", "slow",
            "bad_signature", "wrong_amount", "manual")


@dataclass
class Script:
    outcome: str = "manual"
    seconds: float = 0.0
    amount: int | None = None


@dataclass
class Order:
    out_trade_no: str
    amount_minor: int
    currency: str
    description: str
    created: float
    expires: float
    status: str = "waiting"  # waiting, paid, closed, declined, refunded
    scanned: bool = False  # Alipay: a precreated trade exists only once the shopper scans
    paid_minor: int | None = None
    provider_ref: str = ""
    paid_at: float | None = None  # Unix seconds (Alipay's gmt_payment)
    script: Script = field(default_factory=Script)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    creates: int = 0  # how many create calls named this order (idempotency is tested)
    queries: int = 0  # how many status queries asked about it (a kiosk is polling)
    # Payment-code charges (issue 18): status "paying" while the shopper is asked for a
    # password (until password_ends, on the provider's clock; None: never answers) and
    # "reversed" once the kiosk gave it up unpaid. by_code marks such an order.
    by_code: bool = False
    password_ends: float | None = None
    password_outcome: str = ""  # what the shopper does at password_ends: approve, decline
    reverses: int = 0
    lose_charge_reply: bool = False  # the charge is made but its reply never arrives


class Provider:
    """The simulated provider's orders and rules, shared by every protocol it speaks."""

    def __init__(self, secret: str = SIMULATOR_SECRET) -> None:
        self.secret = secret
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}
        self.scripts: dict[str, Script] = {}
        self.default = Script()
        self.charges: dict[str, int] = {}  # out_trade_no -> times the shopper was charged
        # Payment codes (the section at the end of this class): the provider's own clock,
        # injectable so tests can age a code past its minute without sleeping.
        self.clock: Callable[[], float] = time.time
        self.code_rules: dict[str, CodeRule] = {}
        self.used_codes: dict[str, str] = {}  # auth_code -> the out_trade_no it paid for

    # -- rules -------------------------------------------------------------------------------
    def script_for(self, no: str) -> Script:
        return self.scripts.get(no, self.default)

    def create(self, no: str, amount: int, currency: str, description: str,
               expires: float) -> Order:
        with self.lock:
            order = self.orders.get(no)
            if order is None:
                order = Order(no, amount, currency, description, time.time(), expires,
                              script=self.script_for(no))
                self.orders[no] = order
            order.creates += 1
            return order

    def advance(self, order: Order) -> None:
        """Apply the order's script as time passes (called on every look at the order)."""
        s = order.script
        if order.status == "paying" and order.password_ends is not None \
                and self.clock() >= order.password_ends:
            order.status = "waiting"  # the shopper answered the password prompt
            if order.password_outcome == "approve":
                self.pay(order)
            else:
                order.status = "declined"
            return
        if order.status != "waiting" or order.by_code:
            return
        age = time.time() - order.created
        if s.outcome == "approve" and age >= s.seconds:
            self.pay(order)
        elif s.outcome == "decline" and age >= s.seconds:
            order.status = "declined"
        elif s.outcome == "wrong_amount" and age >= s.seconds:
            self.pay(order, s.amount if s.amount is not None else order.amount_minor + 1)
        elif s.outcome == "pay_late" and time.time() >= order.expires + s.seconds:
            self.pay(order)

    def pay(self, order: Order, amount: int | None = None) -> bool:
        with self.lock:
            if order.status not in ("waiting", "declined"):
                return False  # a closed or paid order cannot be paid (again); a declined
                # attempt can be retried by the shopper until the order is closed
            order.status = "paid"
            order.scanned = True
            order.paid_minor = order.amount_minor if amount is None else amount
            order.provider_ref = "SIM" + uuid.uuid4().hex[:20].upper()
            order.paid_at = time.time()
            self.charges[order.out_trade_no] = self.charges.get(order.out_trade_no, 0) + 1
            return True

    def close(self, order: Order) -> None:
        with self.lock:
            if order.script.outcome == "pay_on_close" and order.status == "waiting":
                self.pay(order)  # the shopper's payment lands just before the close
            if order.status in ("waiting", "declined"):  # a declined order is still open
                order.status = "closed"

    def refund(self, order: Order, refund_no: str, amount: int) -> dict[str, Any]:
        with self.lock:
            for r in order.refunds:
                if r["refund_no"] == refund_no:
                    return r  # idempotent
            if order.status not in ("paid", "refunded"):
                raise ValueError("only a paid order can be refunded")
            done = sum(r["amount_minor"] for r in order.refunds)
            if done + amount > (order.paid_minor or 0):
                raise ValueError("refund exceeds the amount paid")
            r = {"refund_no": refund_no, "refund_id": "SIMR" + uuid.uuid4().hex[:16].upper(),
                 "amount_minor": amount, "status": "succeeded"}
            order.refunds.append(r)
            if done + amount == order.paid_minor:
                order.status = "refunded"
            return r

    # -- Payment codes: what the WeChat Pay and Alipay wire twins need (issue 18) -----------
    # Kept small and separate so the store-gateway/`kiosk sim pay` wallet model (which issues
    # codes) can build on it: a code's behaviour is a CodeRule looked up by the code's digits;
    # a code nobody scripted is a fresh code (seen now) that pays at once.
    def script_code(self, auth_code: str, rule: CodeRule) -> None:
        """How the wallet behind ``auth_code`` will answer a charge (tests, the phone)."""
        with self.lock:
            self.code_rules[auth_code] = rule

    def charge_code(self, no: str, amount: int, description: str, auth_code: str) -> Order:
        """Charge a payment code for order ``no``: the order, paid, paying (the shopper is
        asked for a password) or declined. Raises ``CodeRefused`` (the order, declined, is
        kept: WeChat Pay and Alipay both record the failed attempt under its out_trade_no)
        with the reason: ``code_used`` (a code pays once), ``code_expired`` (about a minute
        after the wallet showed it: ``CODE_LIFETIME_S``), ``insufficient_funds``.
        Raises ``KeyError`` if ``no`` was charged before (the caller's duplicate rule)."""
        with self.lock:
            if no in self.orders:
                raise KeyError(no)
            now = self.clock()
            rule = self.code_rules.setdefault(auth_code, CodeRule(shown_at=now))
            if rule.shown_at is None:
                rule.shown_at = now
            order = Order(no, amount, "CNY", description, now, now + CODE_LIFETIME_S,
                          scanned=True, by_code=True, lose_charge_reply=rule.lose_reply)
            self.orders[no] = order
            order.creates += 1
            reason = ""
            if auth_code in self.used_codes:
                reason = "code_used"
            elif now - rule.shown_at > CODE_LIFETIME_S:
                reason = "code_expired"
            elif rule.outcome == "insufficient_funds" or (
                    rule.balance_minor is not None and rule.balance_minor < amount):
                reason = "insufficient_funds"
            if reason:
                order.status = "declined"
                raise CodeRefused(reason, order)
            self.used_codes[auth_code] = no
            if rule.outcome.startswith("password"):
                order.status = "paying"
                order.password_outcome = rule.outcome.removeprefix("password_")
                order.password_ends = now + rule.seconds
                if rule.outcome == "password_never":  # the wallet's prompt lapses: failed
                    order.password_outcome, order.password_ends = "decline", \
                        now + PASSWORD_LAPSE_S
            else:
                self.pay(order)
            return order

    def reverse(self, order: Order) -> str:
        """Give up a code charge: "paying" (refused: the shopper is entering a password;
        ask again once it ends or lapses), "refunded" (it was paid: the money goes back), or
        "reversed" (unpaid: closed for good)."""
        with self.lock:
            self.advance(order)
            order.reverses += 1
            if order.status == "paying":
                return "paying"
            if order.status in ("paid", "refunded"):
                left = (order.paid_minor or 0) - sum(r["amount_minor"] for r in order.refunds)
                if left > 0:
                    self.refund(order, "reverse-" + order.out_trade_no, left)
                order.status = "refunded"
                return "refunded"
            order.status = "reversed"
            return "reversed"

    def view(self, order: Order) -> dict[str, Any]:
        return {"out_trade_no": order.out_trade_no, "status": order.status,
                "amount_minor": order.amount_minor, "paid_minor": order.paid_minor,
                "provider_ref": order.provider_ref}

    def notification(self, order: Order) -> tuple[dict[str, str], bytes]:
        body = json.dumps(self.view(order) | {"notification_id": uuid.uuid4().hex},
                          separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        return ({"X-Gateway-Timestamp": timestamp,
                 "X-Gateway-Signature": sign(self.secret, "NOTIFY", "/notify", timestamp, body)},
                body)


CODE_LIFETIME_S = 60.0  # a wallet's payment code refreshes every minute; older ones expire
# A password prompt the shopper never answers lapses in the wallet and the charge fails
# (the simulator's model; WeChat Pay's guide tells merchants to give up after about 30 s).
PASSWORD_LAPSE_S = 60.0
CODE_OUTCOMES = ("approve", "password_approve", "password_decline", "password_never",
                 "insufficient_funds")


@dataclass
class CodeRule:
    """How a wallet answers a charge of one payment code (issue 18).

    ``outcome``: one of ``CODE_OUTCOMES`` (``password_*``: the wallet asks the shopper for a
    password; after ``seconds`` they approve or decline; ``password_never``: no answer, and
    the prompt lapses after ``PASSWORD_LAPSE_S``);
    ``shown_at``: when the wallet showed the code, on ``Provider.clock`` (None: when first
    charged); ``balance_minor``: the shopper's balance (None: enough); ``lose_reply``: the
    charge is made and its reply dropped (the connection closes unanswered).
    """

    outcome: str = "approve"
    seconds: float = 0.0
    shown_at: float | None = None
    balance_minor: int | None = None
    lose_reply: bool = False  # the charge goes through; its reply is lost on the way

    def __post_init__(self) -> None:
        if self.outcome not in CODE_OUTCOMES:
            raise ValueError(f"code outcome must be one of {', '.join(CODE_OUTCOMES)}")


class CodeRefused(Exception):
    """A payment-code charge the wallet refused at once; ``reason`` in code_used,
    code_expired, insufficient_funds; ``order`` the (declined) order it left."""

    def __init__(self, reason: str, order: Order) -> None:
        super().__init__(reason)
        self.reason, self.order = reason, order


def expiry(value: Any) -> float:
    """When an order expires, in Unix seconds, from the ISO 8601 time a client sent.

    Anything unreadable (missing, malformed) means two minutes from now, as a
    provider would default it.
    """
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return time.time() + 120


def misbehave(order: Order | None) -> bool:
    """Apply never_answer / slow in the request's own thread.

    Returns True if the request must not be answered (never_answer: it hangs
    for the script's seconds, 30 by default, then is dropped); slow sleeps the
    script's seconds and returns False.
    """
    if order is None:
        return False
    s = order.script
    if s.outcome == "never_answer":
        time.sleep(s.seconds or 30)
        return True
    if s.outcome == "slow":
        time.sleep(s.seconds)
    return False
