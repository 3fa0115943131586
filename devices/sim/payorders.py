"""The payment simulator's orders and the rules they follow, whatever protocol asked.

One ``Provider`` holds every order in memory behind one lock; the gateway
contract (devices/sim/payprovider.py) and the WeChat Pay v3 and Alipay wire
formats (devices/sim/payprotocols.py) all create, query, pay, close and
refund through it, so a scripted outcome behaves the same in each. This
module imports neither of them: both build on it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.payment_code import DEFAULT_CODE_RANGES, CodeRange, wallet_of
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
    # A payment-code charge (see "the wallets' payment codes" below): the code's scripted
    # behaviour, when it was charged (the wallets' clock) and why it was declined.
    charge: CodeUse | None = None
    decline: str = ""
    charge_calls: int = 0  # how many charge calls named this order (never charged twice)
    reverses: int = 0  # how many reverse calls named it
    lose_charge_reply: bool = False  # the code was issued so: charged, the reply dropped


class Provider:
    """The simulated provider's orders and rules, shared by every protocol it speaks."""

    def __init__(self, secret: str = SIMULATOR_SECRET) -> None:
        self.secret = secret
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}
        self.scripts: dict[str, Script] = {}
        self.default = Script()
        self.charges: dict[str, int] = {}  # out_trade_no -> times the shopper was charged
        self.wallets = Wallets()  # the shoppers' phones: payment codes (issue 18)

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
        if order.charge is not None:
            return self.advance_code(order)
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
            # A declined code charge is final (the code was refused); a declined QR order
            # is still open to another try. "paying": the shopper's password was accepted.
            if order.status not in ("waiting", "declined", "paying") or (
                    order.charge is not None and order.status == "declined"):
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

    # -- payment-code charges (issue 18; the wallets' codes are below, in Wallets) ---------
    def charge_code(self, no: str, amount: int, currency: str, description: str,
                    wallet: str, auth_code: str) -> tuple[Order, bool]:
        """Charge a payment code once per ``no``: (the order, True if this call charged it).

        A repeat with the same ``no`` (a kiosk that did not hear the first answer) changes
        nothing and returns the order as it stands: its ``auth_code`` is not looked at, let
        alone used. The first call redeems the code (``Wallets.redeem``: expired, used,
        unknown or another wallet's -> declined at once, with ``decline`` code_expired /
        code_used / code_invalid) and starts its scripted behaviour: approve -> paid;
        insufficient -> declined (insufficient_funds); password/decline/never -> paying,
        then paid / declined ("declined") after the behaviour's seconds, or never.
        Raises ``ValueError`` if ``no`` names an order of another amount or currency, or a
        QR order (the gateway's ORDER_MISMATCH).
        """
        with self.lock:
            order = self.orders.get(no)
            if order is not None:
                if order.charge is None or (order.amount_minor, order.currency) != (amount,
                                                                                    currency):
                    raise ValueError(f"order {no} exists for {order.amount_minor} "
                                     f"{order.currency}" + ("" if order.charge else
                                                            " as a QR order"))
                order.charge_calls += 1
                self.advance(order)
                return order, False
            use = self.wallets.redeem(auth_code, no, wallet)
            now = time.time()
            order = Order(no, amount, currency, description, now, now + 120,
                          script=self.script_for(no), charge=use, charge_calls=1)
            order.scanned = True
            order.lose_charge_reply = use.lose_reply and not use.refused
            self.orders[no] = order
            if use.refused:
                order.status, order.decline = "declined", use.refused
            elif use.behaviour.then == "approve":
                self.pay(order)
            elif use.behaviour.then == "insufficient":
                order.status, order.decline = "declined", "insufficient_funds"
            else:
                order.status = "paying"  # the phone asks for the password
            return order, True

    def advance_code(self, order: Order) -> None:
        """A code charge's password prompt as time passes (the wallets' clock): approved
        (password) or given up (decline) after the behaviour's seconds; never: not at all.
        A reverse asked while the prompt was open withdraws it (the charge closes)."""
        use = order.charge
        if use is None or order.status != "paying":
            return
        age = self.wallets.clock() - use.at
        then, seconds = use.behaviour.then, use.behaviour.seconds
        if then == "password" and age >= seconds:
            self.pay(order)
        elif then == "decline" and age >= seconds:
            order.status, order.decline = "declined", "declined"
        elif use.withdrawn:
            order.status = "closed"

    def reverse(self, order: Order) -> bool:
        """Reverse a code charge (WeChat Pay reverse, Alipay cancel, the gateway's reverse):
        unpaid -> closed, paid -> refunded in full. Returns False, changing nothing but
        withdrawing the wallet's password prompt, when the shopper is mid-password: the
        caller answers "ask again" (WeChat USERPAYING) and the next reverse closes it.
        Idempotent: a closed or refunded charge stays so."""
        with self.lock:
            order.reverses += 1
            self.advance(order)
            if order.status == "paying":
                if order.charge is not None and not order.charge.withdrawn:
                    order.charge.withdrawn = True
                    return False
                order.status = "closed"
            if order.status == "paid":
                order.refunds.append({"refund_no": "reverse", "amount_minor":
                                      order.paid_minor or 0, "status": "succeeded",
                                      "refund_id": "SIMR" + uuid.uuid4().hex[:16].upper()})
                order.status = "refunded"
            elif order.status in ("waiting", "declined"):
                order.status = "closed"
            return True

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
        view = {"out_trade_no": order.out_trade_no, "status": order.status,
                "amount_minor": order.amount_minor, "paid_minor": order.paid_minor,
                "provider_ref": order.provider_ref}
        if order.decline:
            view["decline"] = order.decline
        return view

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


# -- the wallets' payment codes (issue 18) -------------------------------------------------
# The simulated shoppers' phones: each issues payment codes with its wallet's published
# prefix and length (app.domain.payment_code.DEFAULT_CODE_RANGES), valid CODE_LIFETIME_S,
# usable once, each with a scripted behaviour. Every protocol the simulator speaks (the
# gateway contract, WeChat Pay codepay, Alipay trade.pay) charges a code through
# ``Provider.charge_code`` (which redeems it here, once) and gives it up through
# ``Provider.reverse``: there is no other record of codes. A password prompt nobody answers
# ("never") stays open until a reverse withdraws it (the reverse is refused once, "ask
# again", and the next one closes the charge), so a never-answered charge can always be
# given up.

CODE_LIFETIME_S = 60.0  # WeChat Pay and Alipay refresh the code every minute
BEHAVIOURS = ("approve", "password", "decline", "never", "insufficient")
DEFAULT_PASSWORD_S = 3.0


@dataclass(frozen=True)
class Behaviour:
    """What the shopper's phone does when its code is charged.

    approve: paid at once; password[:N]: the phone asks for the password, approved after N
    seconds (3 by default); decline[:N]: asks, and the shopper gives up after N seconds
    (declined); never: asks, and nobody ever answers; insufficient: declined at once,
    insufficient funds.
    """

    then: str = "approve"
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Behaviour:
        """``"password:3"`` -> Behaviour("password", 3.0); ValueError naming the choices."""
        then, _, seconds = text.strip().partition(":")
        if then not in BEHAVIOURS:
            raise ValueError(f"a payment code's behaviour is one of {', '.join(BEHAVIOURS)} "
                             f"(password and decline take :SECONDS), not {text!r}")
        try:
            value = float(seconds) if seconds else (
                DEFAULT_PASSWORD_S if then in ("password", "decline") else 0.0)
        except ValueError:
            raise ValueError(f"seconds must be a number, not {seconds!r}") from None
        if not 0 <= value <= 3600:
            raise ValueError("seconds must be between 0 and 3600")
        return cls(then, value)

    def __str__(self) -> str:
        return f"{self.then}:{self.seconds:g}" if self.then in ("password", "decline") \
            else self.then


@dataclass
class IssuedCode:
    """A code a simulated phone shows: ``issued``/``expires`` on the wallets' clock
    (seconds), ``expires_at`` in Unix seconds (for people), ``used_by`` the out_trade_no
    that redeemed it."""

    code: str
    wallet: str
    behaviour: Behaviour
    issued: float
    expires: float
    expires_at: float
    used_by: str = ""
    lose_reply: bool = False  # the charge goes through; its reply is lost on the way

    def public(self) -> dict[str, Any]:
        return {"code": self.code, "wallet": self.wallet, "then": str(self.behaviour),
                "expires_in_s": round(self.expires - self.issued, 3),
                "expires_at": datetime.fromtimestamp(self.expires_at).astimezone()
                .isoformat(timespec="seconds")}


@dataclass
class CodeUse:
    """What charging a code found: its wallet and behaviour, when (the wallets' clock),
    and ``refused`` (code_expired, code_used, code_invalid) when it cannot be charged."""

    wallet: str
    behaviour: Behaviour
    at: float
    refused: str = ""
    withdrawn: bool = False  # a reverse withdrew the password prompt
    lose_reply: bool = False  # the code's IssuedCode.lose_reply


class Wallets:
    """The simulated phones' payment codes. Thread-safe.

    ``clock``: seconds, monotonic (injectable for tests); ``lifetime_s``: how long a code
    may be charged after it is issued; ``ranges``: the wallets and their codes' prefixes
    and lengths.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 lifetime_s: float = CODE_LIFETIME_S,
                 ranges: tuple[CodeRange, ...] = DEFAULT_CODE_RANGES) -> None:
        self.clock, self.lifetime_s, self.ranges = clock, lifetime_s, ranges
        self.codes: dict[str, IssuedCode] = {}
        self._lock = threading.Lock()

    def issue(self, wallet: str, then: Behaviour | str = "approve", *,
              code: str | None = None, lose_reply: bool = False,
              age_s: float = 0.0) -> IssuedCode:
        """A new payment code of ``wallet`` (its published prefix and length, random digits),
        or ``code`` itself when given (a test's fixed code: it must be the wallet's).
        ``lose_reply``: the charge of this code goes through and its reply is dropped, in
        every protocol (the connection closes unanswered: the kiosk must query).
        ``age_s``: the code was issued that many seconds ago (a screenshot kept too long:
        older than ``lifetime_s``, it is expired).
        Raises ValueError for a wallet without a range, or a ``code`` not of the wallet."""
        behaviour = then if isinstance(then, Behaviour) else Behaviour.parse(then)
        found = [r for r in self.ranges if r.wallet == wallet]
        if not found:
            raise ValueError(f"no wallet {wallet!r}; one of "
                             f"{', '.join(r.wallet for r in self.ranges)}")
        with self._lock:
            if code is None:
                code = self._new_code(found[0])
            elif wallet_of(code, self.ranges) != wallet:
                raise ValueError(f"that code is not a {wallet} payment code")
            now = self.clock() - age_s
            issued = IssuedCode(code, wallet, behaviour, now, now + self.lifetime_s,
                                time.time() - age_s + self.lifetime_s, lose_reply=lose_reply)
            self.codes[code] = issued
            return issued

    def _new_code(self, r: CodeRange) -> str:
        length = 18 if 18 in r.lengths else r.lengths[0]  # Alipay's codes are mostly 18
        while True:
            prefix = secrets.choice(r.prefixes)
            code = prefix + "".join(secrets.choice("0123456789")
                                    for _ in range(length - len(prefix)))
            if code not in self.codes:
                return code

    def redeem(self, auth_code: str, out_trade_no: str, wallet: str = "") -> CodeUse:
        """Resolve ``auth_code`` to its behaviour and mark it used by ``out_trade_no``.

        The code is refused (``CodeUse.refused``) and stays as it was when it was never
        issued or is another wallet's than ``wallet`` (code_invalid), when it expired
        (code_expired) or when it was used already (code_used). This is the one call the
        protocols make per charge: a repeat of one charge is answered from the order, never
        by redeeming again.
        """
        with self._lock:
            now = self.clock()
            issued = self.codes.get(auth_code)
            if issued is None or (wallet and issued.wallet != wallet):
                return CodeUse(wallet or "unknown", Behaviour(), now, "code_invalid")
            if issued.used_by:
                return CodeUse(issued.wallet, issued.behaviour, now, "code_used")
            if now >= issued.expires:
                return CodeUse(issued.wallet, issued.behaviour, now, "code_expired")
            issued.used_by = out_trade_no
            return CodeUse(issued.wallet, issued.behaviour, now, lose_reply=issued.lose_reply)
