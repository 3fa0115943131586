"""The payment state machine: what the kiosk believes about one payment, and why.

A payment is in one of two modes. ``qr``: the kiosk shows the provider's QR and the
shopper's phone pays it. ``code``: the shopper shows the wallet's payment code and
the kiosk charges it (customer-presented). The states and rules are the same; in
code mode "create" is the charge itself (``code_submitted`` is written before the
call, so a kiosk killed mid-charge knows to query and reverse, and never sends a
code twice: a code is single use, and so is an order id), and closing an open
charge is the provider's reverse (WeChat Pay) or cancel (Alipay).

    created ──create ok──▶ pending ──provider: paid──▶ paid
       │                     │  └──provider: closed/declined──▶ failed
       └─create lost──▶ unknown ──(query)──▶ pending | paid | failed
    pending/unknown ──timeout/cancel: query, close, query──▶ expired/cancelled (or paid, late)

The rules the machine enforces:

- The order id (``out_trade_no``) exists before the first network call and is
  reused on every retry, so a retry after a crash or a lost response never
  creates a second provider order.
- Only the provider's word moves a payment to ``paid``: a query or a verified
  notification that says paid. Nothing else does, and nothing moves a paid
  payment anywhere else.
- ``expired`` and ``cancelled`` are reached only after the provider confirmed
  the order closed (or said it never existed). Until then the payment stays
  open (``unknown``), so a shopper who pays at the last second is found.
- Money that arrives for the wrong amount, or after the shopper left, is
  still recorded as paid (it was taken) and flagged for staff.
- A payment the provider refunded or reversed (``provider_refunded``: Alipay's
  cancel of a trade paid a moment before) is closed for good: no later "paid"
  view makes it a sale; at most staff get a note. A "paid" view of a payment
  the kiosk gave up on (closing or ended) counts only once a fresh query agrees
  (``paid_view_needs_query``, ``checked_claim``).

Pure functions over frozen values: the service persists every step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class PaymentState(StrEnum):
    CREATED = "created"  # order id written; provider not asked yet
    PENDING = "pending"  # provider order exists, QR shown
    UNKNOWN = "unknown"  # outcome of the last provider call not learned yet
    PAID = "paid"
    FAILED = "failed"  # declined, or the provider closed it
    CANCELLED = "cancelled"  # shopper cancelled; provider confirmed closed
    EXPIRED = "expired"  # timed out; provider confirmed closed


OPEN = frozenset({PaymentState.CREATED, PaymentState.PENDING, PaymentState.UNKNOWN})
FINAL = frozenset({PaymentState.PAID, PaymentState.FAILED, PaymentState.CANCELLED,
                   PaymentState.EXPIRED})


class ProviderStatus(StrEnum):
    """What a provider says about an order, in the kiosk's words."""

    NOT_FOUND = "not_found"  # no such order (yet): Alipay before the shopper scans
    WAITING = "waiting"  # created, not paid (WeChat NOTPAY, Alipay WAIT_BUYER_PAY)
    PAYING = "paying"  # the shopper is entering a PIN (WeChat USERPAYING)
    PAID = "paid"
    CLOSED = "closed"  # closed or cancelled, unpaid
    DECLINED = "declined"  # the payment failed at the provider
    REFUNDED = "refunded"  # paid, then refunded (Alipay cancel after payment)


@dataclass(frozen=True, slots=True)
class ProviderView:
    status: ProviderStatus
    paid_minor: int | None = None
    provider_ref: str = ""
    # Why a payment-code charge was declined (one of app.domain.payment_code.DECLINES),
    # when the status is DECLINED and the provider said why.
    decline: str = ""


class PaymentError(Exception):
    """A provider call failed. ``maybe_done``: it may have taken effect (timeout, lost reply).

    ``code``: the provider's own error code when it gave one (WeChat Pay ``code``, Alipay
    ``sub_code``); ``setting``: the kiosk setting a misconfiguration points to (e.g.
    ``payment.options.serial_no``), for the integrator who must change it."""

    def __init__(self, message: str, *, maybe_done: bool = True, code: str = "",
                 setting: str = "") -> None:
        super().__init__(message)
        self.maybe_done = maybe_done
        self.code = code
        self.setting = setting


class ProviderRefused(PaymentError):
    """The provider answered, with a refusal of its own: its code and message.

    Platforms leave some refusals unsigned (WeChat Pay's 4xx/5xx error bodies, some of
    Alipay's), so an unsigned refusal is not a forgery; it is never read as "paid" or
    "not paid" either. ``maybe_done`` says whether the refused call may still have taken
    effect (a 5xx or 429 after the request was accepted: yes; a 400/401/403: no)."""


# How every adapter's ``setting`` begins when the provider refused the kiosk's time:
# WeChat Pay APIv3 refuses a request signed more than 5 minutes off its clock
# (``INVALID_REQUEST``/``SIGN_ERROR`` naming the timestamp), Alipay's open API
# ``isv.invalid-timestamp``, the store gateway ``TIMESTAMP_EXPIRED`` (300 s).
CLOCK_SETTING = "the kiosk's clock"


def refused_for_clock(exc: PaymentError) -> bool:
    """True when ``exc`` is the provider refusing the kiosk's clock (its ``setting``
    names the clock, see ``CLOCK_SETTING``): fixing the clock, not a key, is the cure."""
    return isinstance(exc, ProviderRefused) and exc.setting.startswith(CLOCK_SETTING)


@dataclass(frozen=True, slots=True)
class Payment:
    out_trade_no: str
    cart_id: str
    amount_minor: int
    currency: str
    method: str  # the adapter's name
    state: PaymentState
    created_at: datetime
    expires_at: datetime
    qr_payload: str = ""
    provider_ref: str = ""
    paid_minor: int | None = None
    paid_at: datetime | None = None
    closing: bool = False  # timeout or cancel asked; waiting for the provider to confirm
    close_reason: str = ""  # "timeout" or "cancel"
    staff_flag: str = ""  # why staff must look: paid late, amount mismatch, refunded
    last_error: str = ""
    # The provider refunded or reversed it (Alipay's cancel of a trade paid a moment
    # before): closed for good, whatever any later view says.
    provider_refunded: bool = False
    mode: str = "qr"  # "qr": the shopper scans the kiosk's QR; "code": the kiosk charges
    wallet: str = ""  # code mode: the wallet whose payment code was charged
    # Code mode: the charge was (about to be) sent. Written before the call: from then on
    # the code is never sent again; the payment is only queried and, unpaid, reversed.
    code_submitted: bool = False
    decline: str = ""  # code mode: why the wallet declined (app.domain.payment_code)

    @property
    def open(self) -> bool:
        return self.state in OPEN

    @property
    def by_code(self) -> bool:
        return self.mode == "code"


def new_payment(out_trade_no: str, cart_id: str, amount_minor: int, currency: str,
                method: str, now: datetime, expires_at: datetime) -> Payment:
    if amount_minor <= 0:
        raise ValueError("a payment is for a positive amount")
    if now.tzinfo is None or expires_at <= now:
        raise ValueError("times carry their offset, and a payment expires after it starts")
    return Payment(out_trade_no, cart_id, amount_minor, currency, method,
                   PaymentState.CREATED, now, expires_at)


def new_code_payment(out_trade_no: str, cart_id: str, amount_minor: int, currency: str,
                     method: str, wallet: str, now: datetime, deadline: datetime) -> Payment:
    """A payment-code charge about to be made; ``deadline``: when the kiosk stops waiting
    for the shopper (password, fingerprint) and reverses it."""
    return replace(new_payment(out_trade_no, cart_id, amount_minor, currency, method, now,
                               deadline), mode="code", wallet=wallet)


def code_sent(p: Payment) -> Payment:
    """The charge is about to be sent: persisted before the call, so that whatever
    happens next the payment is queried and, unpaid, reversed, never charged again."""
    if not p.by_code or p.state is not PaymentState.CREATED:
        raise ValueError(f"payment {p.out_trade_no} is not a code charge waiting to be sent")
    return replace(p, code_submitted=True, state=PaymentState.UNKNOWN)


def created(p: Payment, qr_payload: str) -> Payment:
    """The provider created the order and gave the QR payload."""
    if p.state in FINAL:
        return p
    return replace(p, state=PaymentState.PENDING, qr_payload=qr_payload, last_error="")


def call_failed(p: Payment, error: str, maybe_done: bool) -> Payment:
    """A provider call failed. If it may have worked, the outcome is unknown until a query."""
    if p.state in FINAL:
        return p
    state = PaymentState.UNKNOWN if maybe_done or p.state is not PaymentState.CREATED \
        else p.state
    return replace(p, state=state, last_error=error)


def create_refused(p: Payment, exc: PaymentError, error: str) -> Payment:
    """The provider answered the create with a refusal that did not take effect
    (``ProviderRefused``, ``maybe_done`` False: a wrong key or merchant id, an amount out
    of the platform's range, a contract rule). If no earlier create may have worked (the
    payment is still CREATED), no provider order exists and asking again with the same
    order would be refused the same way: the payment fails now, so the shopper is told at
    once instead of waiting for the QR to expire. Otherwise as ``call_failed``."""
    if isinstance(exc, ProviderRefused) and not exc.maybe_done and \
            p.state is PaymentState.CREATED:
        return replace(p, state=PaymentState.FAILED, last_error=error)
    return call_failed(p, error, exc.maybe_done)


def ask_to_close(p: Payment, reason: str) -> Payment:
    """Timeout or shopper cancel: from now on the kiosk is closing the order."""
    if p.state in FINAL:
        return p
    return replace(p, closing=True, close_reason=p.close_reason or reason)


REFUNDED_FLAG = "paid, then refunded by the provider"
SOLD_THEN_REFUNDED_FLAG = ("sale recorded, then refunded by the provider (the kiosk's cancel "
                           "reached a trade paid a moment before, after another writer "
                           "recorded the sale): void the sale, the shopper has the money back")
LATE_PAID_FLAG = ("paid, then refunded by the provider; a later 'paid' from the provider "
                  "was not taken: no sale, the shopper has the money back")


def paid_view_needs_query(p: Payment, view: ProviderView, *, fresh: bool) -> bool:
    """Whether a "paid" ``view`` must be confirmed by a new query before it completes a sale.

    ``fresh``: ``view`` is the answer to a query this desk has just made, about ``p`` as
    read just before it. Any other view (a relayed notification, a close's reply, a
    query answered before the payment last changed) needs the check once the kiosk
    has given up on the payment (closing, or ended): the kiosk's cancel may have had
    the provider refund the trade (Alipay ``alipay.trade.cancel`` answers ``action:
    refund`` for a paid trade; Alipay open API, alipay.trade.cancel) while Alipay keeps
    retrying the earlier TRADE_SUCCESS notification for about 25 hours (Alipay open
    API, 异步通知). A payment already refunded needs none: it is never a sale.
    """
    if view.status is not ProviderStatus.PAID or p.state is PaymentState.PAID or fresh:
        return False
    if p.provider_refunded:
        return False
    return p.closing or p.state in FINAL


def checked_claim(claim: ProviderView, answer: ProviderView) -> ProviderView:
    """What a "paid" ``claim`` comes to once a fresh query gave ``answer``: the answer,
    except that a trade the provider now calls closed, after a genuine "paid", has been
    refunded or reversed. Alipay reports a trade fully refunded (a cancel after payment
    included) as TRADE_CLOSED (Alipay open API, alipay.trade.query, trade_status)."""
    if claim.status is ProviderStatus.PAID and answer.status in (ProviderStatus.CLOSED,
                                                                 ProviderStatus.REFUNDED):
        return ProviderView(ProviderStatus.REFUNDED, None,
                            answer.provider_ref or claim.provider_ref)
    return answer


_ENDS = {"cancel": PaymentState.CANCELLED, "declined": PaymentState.FAILED}


def _ended(p: Payment) -> PaymentState:
    return _ENDS.get(p.close_reason, PaymentState.EXPIRED)


def observed(p: Payment, view: ProviderView, now: datetime, *,
             closed_confirmed: bool = False) -> Payment:
    """Apply what the provider says (a query, or a verified notification).

    ``closed_confirmed``: the kiosk has asked the provider to close the order
    and this view comes after that. Only CLOSED confirms the close; "waiting"
    means the close has not taken effect (WeChat warns of exactly that right
    after creating an order) and the payment stays open, to be closed again.
    NOT_FOUND confirms it only when no QR was ever shown, or the QR's own
    expiry has passed (an Alipay trade exists only once scanned).
    """
    if p.state is PaymentState.PAID:
        return p  # paid is final: a replay or a late "closed" changes nothing
    if view.status is ProviderStatus.PAID and p.provider_refunded:
        # Closed for good: a late "paid" (a notification retried for a day, a query
        # answered before the refund) is never a sale; staff are told, once.
        return replace(p, staff_flag=LATE_PAID_FLAG)
    if view.status is ProviderStatus.PAID:
        flags = []
        if view.paid_minor is not None and view.paid_minor != p.amount_minor:
            flags.append(f"amount mismatch: paid {view.paid_minor}, due {p.amount_minor}")
        if p.closing or p.state in FINAL:
            flags.append("paid after the kiosk gave up: complete the sale, refund or contact")
        return replace(p, state=PaymentState.PAID, paid_minor=view.paid_minor,
                       provider_ref=view.provider_ref or p.provider_ref, paid_at=now,
                       staff_flag="; ".join(flags), last_error="")
    if view.status is ProviderStatus.REFUNDED:
        if p.provider_refunded:
            return p
        return replace(p, state=p.state if p.state in FINAL else _ended(p),
                       provider_ref=view.provider_ref or p.provider_ref,
                       provider_refunded=True, staff_flag=REFUNDED_FLAG)
    if p.state in FINAL:
        return p
    if view.status is ProviderStatus.DECLINED:
        # The payment failed, but the order may still be payable: close it before the
        # cart gets another (WeChat Pay's rule), and only then call it failed.
        return replace(p, closing=True, close_reason=p.close_reason or "declined",
                       last_error="declined by the provider",
                       # The reason the provider gave, else "declined" as such: the shopper
                       # is told the wallet declined (and that nothing was charged).
                       decline=view.decline or p.decline or "declined")
    never_shown_or_expired = not p.qr_payload or now >= p.expires_at
    if view.status is ProviderStatus.CLOSED or (
            closed_confirmed and view.status is ProviderStatus.NOT_FOUND
            and never_shown_or_expired):
        if p.closing:
            return replace(p, state=_ended(p), last_error="")
        return replace(p, state=PaymentState.FAILED, last_error="closed by the provider")
    # Waiting, paying, or not found yet: the order is open. A kiosk that had lost
    # track (unknown) now knows where it is.
    # A code charge the provider has not heard of stays unknown: it may still arrive.
    if p.state is PaymentState.UNKNOWN and (p.qr_payload or (
            p.code_submitted and view.status is not ProviderStatus.NOT_FOUND)):
        return replace(p, state=PaymentState.PENDING, last_error="")
    return p


def error_text(exc: PaymentError) -> str:
    """What staff and integrators read of a failed provider call, kept as a payment's last
    error and shown by ``kiosk pay show`` and the health page.

    A ``ProviderRefused``: ``"refused by the provider: <code> <message>; check setting
    <setting>"``; any other ``PaymentError`` with a code or setting: ``"<message> (<code>);
    check setting <setting>"``; parts the error does not carry are left out."""
    message = str(exc)
    setting = f"; check setting {exc.setting}" if exc.setting else ""
    if isinstance(exc, ProviderRefused):
        return f"refused by the provider: {exc.code + ' ' if exc.code else ''}{message}{setting}"
    return f"{message}{f' ({exc.code})' if exc.code else ''}{setting}"
