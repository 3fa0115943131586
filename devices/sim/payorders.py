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


class Provider:
    """The simulated provider's orders and rules, shared by every protocol it speaks."""

    def __init__(self, secret: str = SIMULATOR_SECRET) -> None:
        self.secret = secret
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}
        self.scripts: dict[str, Script] = {}
        self.default = Script()
        self.charges: dict[str, int] = {}  # out_trade_no -> times the shopper was charged

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
        if order.status != "waiting":
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
