"""Paying for a cart: the payment use cases over the state machine, the repository and a provider.

``PaymentProvider`` is the port every adapter implements (devices/payment/:
the simulator, the store gateway, WeChat Pay, Alipay); it lives in
``app.services.payment_port`` and is re-exported here. ``PaymentDesk`` drives
one lane's payments and writes every step before acting on it:

- ``start``: at most one open payment per cart; the order id is written before
  the provider is called, and reused by every retry;
- ``poll`` (the default way to learn the outcome: a kiosk behind NAT gets no
  notifications) and ``notify`` (verified notifications relayed by a store
  backend; a replay has no second effect);
- ``timeout``/``cancel`` and ``recover`` (every start-up): query first, and
  if paid complete the sale (paid late is still paid); otherwise close the
  provider order and query again to confirm it is closed;
- a payment that turns out paid completes the sale: the payment, the sale and
  its receipt job are written in one transaction;
- a payment the provider refunded or reversed is closed for good: a later
  "paid" (a notification Alipay retries for a day, a stale query, a close that
  "found it paid") never completes a sale. A "paid" view of any payment the
  kiosk gave up on is checked by a fresh query first; the query decides.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.domain.clock import Clock
from app.domain.payment import (
    SOLD_THEN_REFUNDED_FLAG,
    Payment,
    PaymentError,
    PaymentState,
    ProviderRefused,
    ProviderStatus,
    ProviderView,
    ask_to_close,
    call_failed,
    checked_claim,
    code_sent,
    create_refused,
    created,
    error_text,
    new_code_payment,
    new_payment,
    observed,
    paid_view_needs_query,
    refused_for_clock,
)
from app.domain.payment_code import PaymentCode
from app.domain.sale import PaidSale
from app.services.exit_pass import PassSigner
from app.services.payment_port import (
    CodeCharge,
    InvalidNotification,
    Notification,
    OrderRequest,
    PaymentProvider,
)
from app.services.receipts import exit_pass_for
from app.storage.payments_repo import OpenPaymentExists, PaymentsRepo

log = logging.getLogger(__name__)


def new_order_id(lane_id: str, now: datetime) -> str:
    """A fresh out_trade_no: lane, time, randomness; within WeChat's 6-32 [A-Za-z0-9_-]."""
    lane = "".join(c for c in lane_id if c.isalnum())[-8:] or "K"
    return f"{lane}{now.strftime('%y%m%d%H%M%S')}{secrets.token_hex(4)}"


@dataclass
class Completed:
    """A payment that completed a sale: what the screen and printer need."""

    payment: Payment
    sale: PaidSale
    exit_pass: str
    job_id: int


class Expiring(Protocol):
    """What a deadline needs of a payment (a ``Payment``, or the lane's view of one)."""

    @property
    def out_trade_no(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...


class _ChangedMeanwhile(Exception):
    """The payment changed between reading it and the notification's transaction."""


class PaymentDesk:
    """One lane's payments. Call from one thread (the kiosk's main or checkout thread)."""

    def __init__(self, repo: PaymentsRepo, provider: PaymentProvider, signer: PassSigner,
                 clock: Clock, lane_id: str, *, expire_after: timedelta = timedelta(minutes=2),
                 on_completed: Callable[[Completed], None] | None = None,
                 order_ids: Callable[[str, datetime], str] = new_order_id,
                 on_clock_refused: Callable[[str], None] | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.repo, self.provider, self.signer = repo, provider, signer
        self.order_ids = order_ids
        self.clock, self.lane_id = clock, lane_id
        # Seconds that never step (the clock's own ``monotonic`` when it has one, so a
        # test's FixedClock.advance moves both): every payment's deadline is measured on it.
        self.monotonic: Callable[[], float] = (
            monotonic if monotonic is not None else getattr(clock, "monotonic", time.monotonic))
        # out_trade_no -> when it expires on ``monotonic``: set when this desk starts the
        # payment, or (a payment found open at start-up) worked out from its wall-clock
        # expires_at the first time this process looks at it. A wall clock stepped
        # afterwards neither ends a payment early nor keeps its QR up late (issue 16,
        # fault 3); expires_at itself stays wall-clock, because it is sent (time_expire).
        self._deadlines: dict[str, float] = {}
        self.expire_after = expire_after
        self.on_completed = on_completed
        # Told (with a message for staff) when the provider refuses the kiosk's clock.
        self.on_clock_refused = on_clock_refused

    def _failed(self, exc: PaymentError) -> None:
        """A provider call failed: a refusal of the kiosk's clock is told to staff (the
        same message each time, so one alert while it lasts), naming the clock."""
        if self.on_clock_refused is not None and refused_for_clock(exc):
            self.on_clock_refused(
                f"{self.lane_id}: the payment provider refuses this kiosk's time, so no "
                f"payment can go through; set {exc.setting}")

    # -- starting ----------------------------------------------------------------------------
    def start(self, cart_id: str, sale: PaidSale, description: str) -> Payment:
        """The cart's open payment, or a new one for ``sale.total``; asks the provider for a QR."""
        existing = self.repo.open_for_cart(cart_id)
        if existing is not None:
            return self._ensure_created(existing, description)
        paid = self.repo.paid_for_cart(cart_id)
        if paid is not None:
            return paid  # this cart is paid: never a second charge for it
        now = self.clock.now()
        payment = new_payment(self.order_ids(self.lane_id, now), cart_id, sale.total.minor,
                              sale.currency, self.provider.name, now, now + self.expire_after)
        self._deadlines[payment.out_trade_no] = \
            self.monotonic() + self.expire_after.total_seconds()
        try:
            self.repo.add(payment, sale.to_dict(), now)
        except OpenPaymentExists:
            found = self.repo.open_for_cart(cart_id) or self.repo.paid_for_cart(cart_id)
            if found is None:  # pragma: no cover - the index refused, then the row went
                raise
            payment = found
        return self._ensure_created(payment, description)

    def charge_code(self, cart_id: str, sale: PaidSale, description: str, code: PaymentCode,
                    deadline: timedelta = timedelta(seconds=60)) -> Payment:
        """Charge the shopper's payment ``code`` for ``sale.total`` (customer-presented).

        The cart's payment afterwards: PAID (the sale is complete), open (the shopper is
        confirming on the phone, or the answer was lost: ``poll`` until ``deadline``, then
        ``cancel``/``settle`` reverses it), or ended (declined: ``decline`` says why).

        One charge per cart at a time, never two: an open QR payment of the cart is closed
        first (query, close, query: if the shopper paid it meanwhile, that payment is the
        sale and the code is not charged; if its close cannot be confirmed, the code is not
        charged and the open payment is returned). A code charge already under way is
        returned as it is and the new code is dropped. The payment and the fact that the
        code is being sent are written before the call; the code itself never is, and is
        sent at most once (``code_sent``): after that the payment is only queried and,
        unpaid, reversed. Raises ``ValueError`` if this adapter takes no payment codes of
        ``code.wallet``.
        """
        if code.wallet not in self.provider.code_wallets:
            raise ValueError(f"the {self.provider.name} adapter takes no {code.wallet} "
                             "payment codes")
        existing = self.repo.open_for_cart(cart_id)
        if existing is not None:
            if existing.by_code:
                return existing  # a charge is under way: one at a time
            closed = self._close(existing, "cancel")
            if closed.open or closed.state is PaymentState.PAID:
                return closed
        paid = self.repo.paid_for_cart(cart_id)
        if paid is not None:
            return paid  # this cart is paid: never a second charge for it
        now = self.clock.now()
        payment = new_code_payment(self.order_ids(self.lane_id, now), cart_id, sale.total.minor,
                                   sale.currency, self.provider.name, code.wallet, now,
                                   now + deadline)
        try:
            self.repo.add(payment, sale.to_dict(), now)
        except OpenPaymentExists:
            return self.repo.open_for_cart(cart_id) or self.repo.paid_for_cart(cart_id) \
                or payment
        payment = code_sent(payment)
        if not self.repo.save(payment, self.clock.now(), f"sending the {code.wallet} "
                                                          "payment code"):
            return self.repo.get(payment.out_trade_no) or payment
        charge = CodeCharge(payment.out_trade_no, payment.amount_minor, payment.currency,
                            description or f"{self.lane_id} {payment.out_trade_no}", code)
        del code  # from here on the code exists only in the request being sent
        try:
            try:
                view = self.provider.charge_code(charge)
            except PaymentError:
                raise
            except Exception as bug:  # noqa: BLE001 - the code was sent: the outcome is unknown
                # An adapter that fails on the reply (a bug, a reply it cannot parse) may
                # have had the charge taken: treat it as a lost reply, so the lane polls and
                # reverses instead of leaving the trade waiting. Its message may quote the
                # request, so only its type is kept.
                log.error("the %s adapter raised %s charging a payment code: outcome "
                          "unknown, querying", self.provider.name, type(bug).__name__)
                raise PaymentError(f"the adapter failed ({type(bug).__name__})",
                                   maybe_done=True) from None
        except PaymentError as raised:
            exc = _without_code(raised, charge.code)
            self._failed(exc)
            if isinstance(exc, ProviderRefused) and not exc.maybe_done:
                # Refused before it was taken: no charge exists; nothing to reverse.
                failed = replace(payment, state=PaymentState.FAILED, last_error=error_text(exc))
                self.repo.save(failed, self.clock.now(), f"charge refused: {error_text(exc)}")
                return self.repo.get(payment.out_trade_no) or failed
            p = call_failed(payment, error_text(exc), True)
            self.repo.save(p, self.clock.now(), f"charge: no answer ({error_text(exc)})")
            return p  # unknown: the lane polls; at the deadline it reverses
        return self._apply(payment, view, "charge", fresh=True)

    def _ensure_created(self, p: Payment, description: str = "") -> Payment:
        if p.by_code:
            return p  # a code charge is never sent again: only queried or reversed
        if p.qr_payload or p.closing or p.state not in (PaymentState.CREATED,
                                                        PaymentState.UNKNOWN):
            return p
        order = OrderRequest(p.out_trade_no, p.amount_minor, p.currency,
                             description or f"{self.lane_id} {p.out_trade_no}", p.expires_at)
        try:
            p = created(p, self.provider.create(order))
            note = "provider order created"
        except PaymentError as exc:
            self._failed(exc)
            p = create_refused(p, exc, error_text(exc))
            note = (f"create refused: {error_text(exc)}" if p.state is PaymentState.FAILED
                    else f"create failed: {error_text(exc)}")
        self.repo.save(p, self.clock.now(), note)
        return p

    # -- learning the outcome ----------------------------------------------------------------
    def poll(self, out_trade_no: str) -> Payment:
        p = self._get(out_trade_no)
        if not p.open:
            return p
        if p.by_code and not p.code_submitted:
            return self._close(p, p.close_reason or "cancel")  # never sent: nothing to ask
        if not p.by_code and p.state is not PaymentState.PENDING and not p.qr_payload \
                and not p.closing:
            return self._ensure_created(p)  # the create's reply was lost: ask again, same id
        try:
            view = self.provider.query(out_trade_no)
        except PaymentError as exc:
            self._failed(exc)
            p2 = replace(p, last_error=error_text(exc))
            self.repo.save(p2, self.clock.now(), f"query failed: {error_text(exc)}")
            return p2
        return self._apply(p, view, "query", fresh=True)

    def notify(self, headers: Mapping[str, str], body: bytes) -> Payment | None:
        """A provider notification relayed to the kiosk. Raises ``InvalidNotification``.

        The notification id is recorded in the same transaction as the change it
        makes: a notification that failed half way is applied when the provider
        sends it again, and one that was applied is never applied twice.

        A "paid" notification for a payment the kiosk gave up on (closing, or ended)
        is checked by a query first, and the query's answer is what is applied: the
        kiosk's cancel may have refunded the trade (Alipay) while the provider still
        retries the notification of the earlier moment. Raises ``PaymentError`` if
        that query fails: nothing is recorded, so the provider's retry is applied.
        """
        note = self.provider.parse_notification(headers, body)
        done: list[Completed] = []
        for _attempt in range(3):
            p = self.repo.get(note.out_trade_no)
            if p is None:
                raise InvalidNotification(f"no payment {note.out_trade_no!r} on this kiosk")
            view, fresh, source = note.view, False, "notification"
            if paid_view_needs_query(p, view, fresh=False):
                view = checked_claim(view, self.provider.query(p.out_trade_no))
                fresh, source = True, "notification, checked by a query"
            try:
                with self.repo.transaction():
                    if self.repo.seen_notification(note.notification_id, note.out_trade_no,
                                                   self.clock.now()):
                        return self.repo.get(note.out_trade_no)  # a replay: no second effect
                    current = self.repo.get(note.out_trade_no) or p
                    if not fresh and paid_view_needs_query(current, view, fresh=False):
                        # Another writer gave up on the payment since it was read: the
                        # check query runs outside the write lock, then all is read again.
                        raise _ChangedMeanwhile
                    after = self._apply(current, view, source, settle=False, completed=done,
                                        fresh=fresh)
                break
            except _ChangedMeanwhile:
                continue  # rolled back: nothing recorded, not even the notification's id
        else:
            raise PaymentError(f"payment {note.out_trade_no} kept changing while a "
                               "notification was applied; the provider's retry will be")
        self._announce(done)
        if after.open and after.closing:
            after = self._close(after, after.close_reason)
        return after

    def _apply(self, p: Payment, view: ProviderView, source: str, *,
               closed_confirmed: bool = False, settle: bool = True,
               completed: list[Completed] | None = None, fresh: bool = False) -> Payment:
        """Apply a provider ``view`` to ``p``, writing the change (and completing the sale).

        ``fresh``: ``view`` answers a query just made about ``p`` as just read. A "paid"
        view is applied to the payment as it is on disk now (another desk may have ended
        it since ``p`` was read); if the kiosk had given up on it and the view is not
        fresh, a query checks it first (``paid_view_needs_query``). A refunded payment
        never completes a sale: ``observed`` keeps it as it is, with a note for staff.
        """
        if view.status is ProviderStatus.PAID:
            p = self.repo.get(p.out_trade_no) or p
            if paid_view_needs_query(p, view, fresh=fresh):
                try:
                    answer = self.provider.query(p.out_trade_no)
                except PaymentError as exc:
                    self._failed(exc)
                    self.repo.log(p, self.clock.now(), f"{source}: paid, not confirmed by a "
                                                       f"query ({exc}): nothing completed")
                    return p
                return self._apply(p, checked_claim(view, answer),
                                   f"{source}, checked by a query",
                                   closed_confirmed=closed_confirmed, settle=settle,
                                   completed=completed, fresh=True)
        after = observed(p, view, self.clock.now(), closed_confirmed=closed_confirmed)
        if after.state is PaymentState.PAID and p.state is not PaymentState.PAID:
            done = self._complete(after)
            if done is None:  # another desk (or a notification) completed it first
                return self.repo.get(p.out_trade_no) or after
            if completed is None:
                self._announce([done])
            else:
                completed.append(done)
        elif after != p and not self.repo.save(after, self.clock.now(),
                                                f"{source}: {view.status.value}"):
            return self.repo.get(p.out_trade_no) or p  # another desk ended it: as on disk
        if settle and after.open and after.closing and not p.closing:
            return self._close(after, after.close_reason)  # declined: close before anything
        return after

    def _announce(self, done: list[Completed]) -> None:
        for item in done:
            if self.on_completed:
                self.on_completed(item)

    def _complete(self, p: Payment) -> Completed | None:
        draft = self.repo.sale_draft(p.out_trade_no)
        paid_at = p.paid_at or self.clock.now()
        sale = PaidSale.from_dict(draft | {
            "order_id": p.out_trade_no, "payment_method": p.method,
            "provider_ref": p.provider_ref, "paid_at": paid_at.isoformat(),
            "wallet": paid_with(p, draft.get("wallet", ""))})
        exit_pass = self.signer.sign(exit_pass_for(sale))
        job_id = self.repo.complete_sale(p, sale, exit_pass, self.clock.now())
        if job_id is None:
            return None
        return Completed(p, sale, exit_pass, job_id)

    # -- giving up ---------------------------------------------------------------------------
    def cancel(self, out_trade_no: str) -> Payment:
        """The shopper pressed Cancel."""
        return self._close(self._get(out_trade_no), "cancel")

    def settle(self, p: Payment, reason: str) -> Payment:
        """Close an open payment for ``reason`` (timeout, cancel, reset), querying first."""
        return self._close(p, reason)

    def seconds_left(self, p: Expiring) -> float:
        """Seconds until ``p`` expires (negative: past), on the monotonic clock: from when
        this desk started it, or, for a payment this process did not start (found open at
        start-up, started by another process), from its wall-clock ``expires_at`` as read
        the first time it is asked about, then never from the wall clock again."""
        mono = self.monotonic()
        at = self._deadlines.get(p.out_trade_no)
        if at is None:
            at = mono + (p.expires_at - self.clock.now()).total_seconds()
            self._deadlines[p.out_trade_no] = at
        return at - mono

    def expired(self, p: Expiring) -> bool:
        """Whether ``p`` is past its expiry (``seconds_left`` <= 0)."""
        return self.seconds_left(p) <= 0

    def forget(self, out_trade_no: str) -> None:
        """Drop the deadline of a payment that has ended (no effect if there is none)."""
        self._deadlines.pop(out_trade_no, None)

    def expire_due(self) -> list[Payment]:
        """Close every open payment past its expiry on the monotonic clock
        (``seconds_left``), or asked to close (call every second or so). Returns them as
        they are after the attempt (still open if the provider could not be reached)."""
        due = [p for p in self.repo.all_open() if p.closing or self.expired(p)]
        done = [self._close(p, "timeout") for p in due]
        for p in done:
            if not p.open:
                self.forget(p.out_trade_no)
        return done

    def recover(self) -> list[Payment]:
        """At start-up: settle every payment left open by a crash or power cut."""
        return [self._close(p, p.close_reason or "timeout") for p in self.repo.all_open()]

    def _close(self, p: Payment, reason: str) -> Payment:
        # As it is on disk: the caller's copy may predate a cancel that ended (or refunded)
        # it, and a stale open copy written back would reopen a payment closed for good.
        p = self.repo.get(p.out_trade_no) or p
        if not p.open:
            return p
        p = ask_to_close(p, reason)
        if not self.repo.save(p, self.clock.now(), f"closing: {reason}"):
            return self.repo.get(p.out_trade_no) or p  # another desk ended it meanwhile
        if p.by_code and not p.code_submitted:
            # Killed between writing the payment and sending the code: nothing was sent, so
            # there is nothing at the provider to ask about or reverse.
            ended = replace(p, state=PaymentState.CANCELLED if p.close_reason == "cancel"
                            else PaymentState.EXPIRED, last_error="")
            if not self.repo.save(ended, self.clock.now(), "the code was never sent"):
                return self.repo.get(p.out_trade_no) or p
            return ended
        try:
            first = self.provider.query(p.out_trade_no)  # query first: paid late is paid
            p = self._apply(p, first, "query before close", settle=False, fresh=True)
            if not p.open:
                return p
            # A code charge is reversed (WeChat Pay reverse, Alipay cancel): it closes an
            # unpaid charge and refunds one paid a moment before; a QR order is closed.
            said = self.provider.reverse(p.out_trade_no) if p.by_code \
                else self.provider.close(p.out_trade_no)
            if said is not None and said.status is ProviderStatus.REFUNDED:
                sold = self._refunded_after_its_sale(p.out_trade_no)
                if sold is not None:
                    return sold
            if said is not None:
                p = self._apply(p, said, "close", settle=False)
                if not p.open:
                    return p
            confirm = self.provider.query(p.out_trade_no)
            return self._apply(p, confirm, "query after close", closed_confirmed=True,
                               settle=False, fresh=True)
        except PaymentError as exc:
            self._failed(exc)
            # Still open: the next expire_due() or recover() tries again.
            p = call_failed(p, error_text(exc), True) if p.open else p
            if not self.repo.save(p, self.clock.now(), f"close failed: {error_text(exc)}"):
                return self.repo.get(p.out_trade_no) or p
            return p

    def _refunded_after_its_sale(self, out_trade_no: str) -> Payment | None:
        """The kiosk's close (Alipay's cancel) refunded a trade that another writer (the
        lane's poller, a relayed notification, a second process) recorded as a sale while
        the close was on its way: paid stays final, but the payment is marked refunded by
        the provider and staff are told to void the sale. None if the row is not paid."""
        on_disk = self.repo.get(out_trade_no)
        if on_disk is None or on_disk.state is not PaymentState.PAID or \
                on_disk.provider_refunded:
            return on_disk if on_disk is not None and on_disk.provider_refunded else None
        flag = "; ".join(f for f in (on_disk.staff_flag, SOLD_THEN_REFUNDED_FLAG) if f)
        flagged = replace(on_disk, provider_refunded=True, staff_flag=flag)
        self.repo.save(flagged, self.clock.now(), "close: refunded by the provider after "
                                                  "the sale was recorded")
        return flagged

    def refund(self, out_trade_no: str, amount_minor: int | None = None,
               reason: str = "", actor: str = "kiosk") -> str:
        """Refund a paid sale (staff, manager). Returns the provider's refund id."""
        p = self._get(out_trade_no)
        if p.state is not PaymentState.PAID:
            raise ValueError(f"payment {out_trade_no} is {p.state.value}, not paid")
        if p.provider_refunded:
            raise ValueError(f"payment {out_trade_no} was refunded by the provider already")
        amount = amount_minor if amount_minor is not None else (p.paid_minor or p.amount_minor)
        # One refund number per refund, reused if this one is retried after a failure:
        # the number counts only the refunds that succeeded.
        done = sum(1 for _, note in self.repo.steps(out_trade_no) if note.startswith("refunded"))
        refund_no = f"R{done + 1}{out_trade_no}"[:32]
        refund_id = self.provider.refund(out_trade_no, refund_no, amount,
                                         p.paid_minor or p.amount_minor,
                                         reason or "refund at the kiosk")
        self.repo.refunded(p, self.clock.now(), amount, refund_no, refund_id, actor)
        return refund_id

    def _get(self, out_trade_no: str) -> Payment:
        p = self.repo.get(out_trade_no)
        if p is None:
            raise KeyError(f"no payment {out_trade_no!r}")
        return p

    def describe(self, out_trade_no: str) -> dict[str, Any]:
        p = self._get(out_trade_no)
        return {"out_trade_no": p.out_trade_no, "state": p.state.value,
                "amount_minor": p.amount_minor, "paid_minor": p.paid_minor,
                "staff_flag": p.staff_flag, "last_error": p.last_error,
                "steps": self.repo.steps(out_trade_no)}


__all__ = ["Completed", "Expiring", "InvalidNotification", "Notification", "OrderRequest",
           "PaymentDesk", "PaymentError", "PaymentProvider", "ProviderStatus", "ProviderView",
           "new_order_id"]


# Adapters that are one wallet's own (app.domain.payment_code wallet names).
WALLET_OF_ADAPTER = {"wechatpay": "wechat", "alipay": "alipay"}


def paid_with(p: Payment, chosen: str) -> str:
    """The wallet a payment was made with, for the receipt: a payment code's wallet, the
    wallet of an adapter that is one wallet's own, else the one the shopper chose for the
    QR (``chosen``, kept in the sale draft; "" when there was no choice)."""
    if p.by_code and p.wallet:
        return p.wallet
    return WALLET_OF_ADAPTER.get(p.method, chosen)


def _without_code(exc: PaymentError, code: PaymentCode) -> PaymentError:
    """``exc`` with the payment code's digits in its message or provider code replaced by
    ``PaymentCode(wallet, N digits)``: a provider (a store gateway, a proxy) whose error
    quotes the request would otherwise put the code in the payment's last error (the
    database) and the logs (issue 18: the code is a credential, in no row or log)."""
    digits = code.reveal()
    if digits not in str(exc) and digits not in exc.code:
        return exc
    kind = ProviderRefused if isinstance(exc, ProviderRefused) else PaymentError
    return kind(str(exc).replace(digits, repr(code)), maybe_done=exc.maybe_done,
                code=exc.code.replace(digits, repr(code)), setting=exc.setting)
