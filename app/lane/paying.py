"""Paying: the printer check, the wallet, the provider's order, polling, the sale and receipt.

Every step goes through the payment desk, which persists the payment's state
before each provider call; the lane only decides what the shopper sees. A
payment that completes for a cart no longer on screen is a sale all the same.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from app.domain.events import EventType, new_event
from app.domain.exit_audit import exit_audit_reasons
from app.domain.money import Money
from app.domain.payment import Payment, PaymentError, PaymentState, ProviderStatus
from app.domain.payment_code import payment_code
from app.domain.points import points_for
from app.domain.pricing import PricedCart, price_cart
from app.domain.sale import PaidSale, sale_from_cart
from app.lane.core import LaneCore
from app.lane.parts import RETRY_MAX_S
from app.lane.views import Notice, PaymentView, ReceiptView, Screen
from app.services.payments import Completed
from app.services.session import ShoppingSession
from app.storage.db import is_disk_full
from app.storage.print_jobs import PrintJobs
from app.storage.sessions_repo import Sessions

log = logging.getLogger(__name__)
T = TypeVar("T")
MB = 1024 * 1024


class Paying(LaneCore):
    def pay(self) -> None:
        """Shopping screen, "Pay"."""
        self._touched()
        if self.session is None or self._view.screen is not Screen.SHOPPING:
            return
        if not self.checkout.lines():
            self._cart_view(notice=Notice.of("cart_empty", "warn"))
            return
        if self.checkout.cart.pending_age_checks():
            self._cart_view(screen=Screen.AGE_CHECK, notice=None)
            # The screen says staff are on their way: they are called, as by "Call staff"
            # (an alert and the banner; signing in at the lane answers it), issue 19.
            self._age_call = not self._view.help_requested
            self.call_staff()
            return
        self._cart_view(screen=Screen.PAY, checking_printer=True, payment=None,
                        printer_notice=None, wallets=self.p.wallets, notice=None,
                        takes_codes=self._takes_codes())
        self._receipt_notice = self.p.receipt_notice()
        self._show(checking_printer=False, printer_notice=self._receipt_notice)
        if self._no_wallet_choice():
            self.choose_wallet(self._only_wallet())

    def _one_qr(self) -> bool:
        """One aggregated QR serves every wallet in ``payment.wallets``: the setting
        (``payment.aggregated_qr``) says so and the adapter agrees (``aggregated_qr``: the
        gateway and the simulator; not WeChat Pay's or Alipay's own QR, nor a plugin that
        does not say). Then choosing a wallet changes nothing and is not asked."""
        return self.p.aggregated_qr and bool(getattr(self.p.desk.provider, "aggregated_qr",
                                                     False))

    def _no_wallet_choice(self) -> bool:
        return len(self.p.wallets) <= 1 or self._one_qr()

    def _only_wallet(self) -> str:
        """The wallet recorded when there is no choice: the one configured, or '' (any)."""
        return self.p.wallets[0] if len(self.p.wallets) == 1 else ""

    def choose_wallet(self, wallet: str) -> None:
        self._touched()
        if self.session is None or self._view.screen is not Screen.PAY or self._view.payment:
            return
        if self.p.wallets and wallet not in self.p.wallets and \
                not (wallet == "" and self._one_qr()):
            return
        ready = self._ready_to_pay()
        if ready is None:
            return
        draft, what = ready
        # The wallet chosen goes with the sale, so the receipt names it (not the provider).
        payment = self.checkout.start_payment(self.p.desk, replace(draft, wallet=wallet), what)
        self._wallet = wallet
        self._after_payment(payment)

    def _ready_to_pay(self) -> tuple[PaidSale, str] | None:
        """The sale draft and the provider's description for the cart on screen, or None
        when no payment may start (the shopper is told why, the cart stays as it is): a
        total no wallet can charge, too little disk (``_room_to_pay``), or a wrong clock
        (``_clock_right_to_pay``). Both ways to pay, the QR and the payment code, pass here,
        so they charge the same amount under the same checks."""
        assert self.session is not None
        priced = price_cart(self.checkout.lines(), self._promotions,
                            member=self.session.member_id is not None, tax=self.p.tax,
                            currency=self.p.currency)
        if priced.total.minor <= 0:
            # Nothing a wallet can charge (a 0.00 label, a price override to zero): staff
            # settle it; the cart stays as it is, not frozen behind a payment that cannot be.
            self._cart_view(screen=Screen.SHOPPING, payment=None,
                            notice=Notice.of("nothing_to_pay", "warn"))
            return None
        if not self._room_to_pay() or not self._clock_right_to_pay():
            return None
        draft = self._sale_draft(priced, exit_audit=bool(self._audit_reasons(priced)))
        return draft, f"{self.p.store_name_en} {priced.item_count} items"

    def _code_wallets(self) -> frozenset[str]:
        """The wallets whose payment codes the adapter charges; none for an adapter (a
        plugin written before payment codes) that does not say."""
        return frozenset(getattr(self.p.desk.provider, "code_wallets", ()) or ())

    def _takes_codes(self) -> bool:
        return bool(self._code_wallets())

    def pay_by_code(self, text: str, how: str) -> None:
        """Pay screen: the shopper showed a wallet's payment code (read by the camera, a
        scanner or typed); charge exactly the amount on screen. The only path by which a
        scan starts a charge (app.lane.scanning.scan_route). ``text`` is the code's digits:
        from here on it lives only inside a ``PaymentCode``, which never shows them."""
        self._touched()
        code = payment_code(text, self.p.code_ranges)
        del text
        if code is None or self.session is None or self._view.screen is not Screen.PAY:
            return
        if self._view.payment is not None and self._view.payment.mode == "code":
            return  # a charge is under way: one at a time, the new code is dropped
        if code.wallet not in self._code_wallets():
            self._show(notice=Notice.of("payment_code_not_taken", "warn",
                                        wallet=code.wallet))
            return
        sent = hmac.digest(self._code_key, code.reveal().encode(), "sha256")
        if sent in self._codes_sent:
            # Sent once already: a code is single use, so it is never sent again.
            self._show(notice=Notice.of("declined_code_used", "warn"))
            return
        ready = self._ready_to_pay()
        if ready is None:
            return
        draft, what = ready
        draft = replace(draft, wallet=code.wallet)
        self._wallet = code.wallet
        before = self.p.desk.repo.open_for_cart(self.checkout.cart_id)
        payment = self.checkout.charge_code(self.p.desk, draft, what, code,
                                            self.p.timings.code_deadline)
        if payment.by_code and payment.code_submitted and (
                before is None or before.out_trade_no != payment.out_trade_no):
            # Sent (not held back because an open QR order could not be closed).
            self._codes_sent[sent] = None
            while len(self._codes_sent) > 64:
                del self._codes_sent[next(iter(self._codes_sent))]
        self._after_payment(payment)

    def _room_to_pay(self) -> bool:
        """Whether the data directory has ``payment.min_free_mb`` free, checked before any
        QR is shown: a shopper must never pay for a sale the kiosk cannot write (issue 16,
        fault 5). If not, staff are alerted and the shopper is told the truth: this lane
        cannot take payment now; the cart stays as it is (already on disk, scan by scan)."""
        free = self.p.free_bytes()
        reserve = self.p.reserve
        if reserve is not None and not reserve.held:
            # The reserve was spent on a paid sale (or could not be made at start): no
            # new payment until there is room to make it again (issue 16, fault 5).
            room = free is None or free >= self.p.min_free_bytes + reserve.size_bytes
            if not (room and reserve.ensure()):
                log.error("payment refused: the disk reserve %s is not in place", reserve.path)
                self._alert_disk(
                    f"{self.p.lane_id}: the disk reserve ({reserve.size_bytes // MB} MB, "
                    f"payment.reserve_mb) is used up; this lane takes no payments until "
                    f"payment.min_free_mb plus the reserve is free in the kiosk's data "
                    "directory")
                self._cart_view(screen=Screen.SHOPPING, payment=None,
                                notice=Notice.of("disk_full", "error"))
                return False
            log.warning("the disk reserve %s is in place again", reserve.path)
            free = self.p.free_bytes()
        if free is None or free >= self.p.min_free_bytes:
            return True
        mb = self.p.min_free_bytes // (1024 * 1024)
        log.error("payment refused: %d bytes free in the data directory, under %d MB",
                  free, mb)
        self._alert_disk(f"{self.p.lane_id}: too little free disk space to take payments "
                         f"(under payment.min_free_mb = {mb} MB); free space in the kiosk's "
                         "data directory")
        self._cart_view(screen=Screen.SHOPPING, payment=None,
                        notice=Notice.of("disk_full", "error"))
        return False

    def _money(self, step: Callable[[], T], out_trade_no: str) -> T | None:
        """Run ``step``, a payment step that may record a paid sale (a poll, a close, a
        cancel, with what the screen does after it), for the payment ``out_trade_no``.

        A write refused for want of space (``is_disk_full``: SQLITE_FULL, ENOSPC) is tried
        once more after the disk reserve is released (``payment.reserve_mb``; staff are
        alerted, and no new payment is taken until the reserve is made again). If it
        still fails and the provider says the order is paid, the shopper is told the
        truth (paid; staff will help; the order number) instead of an error or "payment
        failed", the lane keeps trying to record the sale, and None is returned. Other
        errors, and a disk-full error for an order not paid, are raised (issue 16,
        fault 5)."""
        try:
            return step()
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            failure: Exception = exc
        freed = self.p.reserve.release() if self.p.reserve is not None else 0
        if freed:
            try:
                done = step()
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                failure = exc
            else:
                free = self.p.free_bytes()
                self._alert_disk(
                    f"{self.p.lane_id}: disk full: the {freed // MB} MB reserve was used to "
                    f"record a payment; free space now "
                    f"{'unknown' if free is None else f'{free / MB:.1f} MB'}; this lane "
                    "takes no payments until space is freed in the kiosk's data directory")
                return done
        if not self._provider_says_paid(out_trade_no):
            raise failure
        self._paid_not_recorded(out_trade_no)
        return None

    def _provider_says_paid(self, out_trade_no: str) -> bool:
        try:
            return self.p.desk.provider.query(out_trade_no).status is ProviderStatus.PAID
        except PaymentError:
            log.exception("payment %s: the provider could not be asked", out_trade_no)
            return False

    def _paid_not_recorded(self, out_trade_no: str) -> None:
        """The shopper paid ``out_trade_no`` and the disk cannot take the sale: the truth
        on screen, with the order number; ``_retry_unrecorded`` keeps trying."""
        if self._unrecorded == out_trade_no:
            return  # already on screen and told: the next try comes at the next poll
        log.critical("payment %s is paid but the sale cannot be written: the disk is full",
                     out_trade_no)
        self._alert_disk(f"{self.p.lane_id}: disk full: order {out_trade_no} is PAID but "
                         "its sale could not be recorded; free space in the kiosk's data "
                         "directory, the lane records it then")
        self._unrecorded = out_trade_no
        self._next_poll = self.mono() + self.p.timings.poll.total_seconds()
        self._show(screen=Screen.ERROR, back_to=None, payment=None, help_requested=True,
                   notice=Notice.of("paid_not_recorded", "error", order_id=out_trade_no))

    def _retry_unrecorded(self, now: float) -> None:
        """Error screen of a paid sale the disk could not take: try to record it every
        poll interval; once written, the receipt screen and the exit pass."""
        no = self._unrecorded
        if no is None or self._next_poll is None or now < self._next_poll:
            return
        self._next_poll = now + self.p.timings.poll.total_seconds()

        def record() -> None:
            payment = self.p.desk.poll(no)
            if self._view.screen is Screen.ERROR and payment.state is PaymentState.PAID:
                self._finish_paid(payment)
                self._alert_disk(f"{self.p.lane_id}: order {no} was paid while the disk was "
                                 "full; its sale was recorded once space was freed")

        self._money(record, no)

    def _clock_right_to_pay(self) -> bool:
        """No QR while the kiosk's clock is wrong (``_wrong_clock``: staff are alerted
        there): the provider would refuse the request, and the exit pass would be dated
        1970. The shopper is told this lane cannot take payment; the cart stays."""
        if not self._wrong_clock():
            return True
        self._cart_view(screen=Screen.SHOPPING, payment=None,
                        notice=Notice.of("clock_wrong", "error"))
        return False

    def _alert_disk(self, message: str) -> None:
        """A ``disk`` staff alert, at most once while unresolved; if even that cannot be
        written (the disk is that full), it is logged."""
        try:
            self.p.outbox.alert("disk", message, self.clock.now())
        except Exception:  # noqa: BLE001 - the shopper must still be told
            log.exception("could not record the staff alert: %s", message)

    def _audit_reasons(self, priced: PricedCart) -> list[str]:
        """Whether this sale gets an exit check, decided once per session (paying again
        after a cancel does not roll the dice again)."""
        assert self.session is not None
        sid = self.session.session_id
        if self._roll is None or self._roll[0] != sid:
            self._roll = (sid, self.p.roll())  # the dice, once per session
        removals = manual = 0
        for kind, payload in self.p.outbox.session_events(
                sid, [EventType.ITEM_REMOVED, EventType.ITEM_SCANNED]):
            if kind == EventType.ITEM_REMOVED:
                removals += 1
            elif payload.get("how") == "manual":
                manual += 1
        # The risk rules are checked on the cart as it is now, at every attempt to pay.
        self._exit_audit = (sid, exit_audit_reasons(
            self.p.exit_audit, total=priced.total, removals=removals, manual_entries=manual,
            roll=self._roll[1]))
        return self._exit_audit[1]

    def _sale_draft(self, priced: PricedCart, exit_audit: bool = False) -> PaidSale:
        # The order id, method and paid time are filled in when the payment completes.
        return sale_from_cart(
            priced, order_id="pending", lane_id=self.p.lane_id,
            store_name_zh=self.p.store_name_zh, store_name_en=self.p.store_name_en,
            paid_at=self.clock.now(), payment_method="", provider_ref="",
            member_id=self.session.member_id if self.session else None,
            points_earned=points_for(priced.total, member=bool(self.session and
                                                                self.session.member_id),
                                     points_per_unit=self.p.points_per_unit),
            exit_audit=exit_audit)

    def _after_payment(self, payment: Payment) -> None:
        """Show what a payment step left: still open, paid, or ended without money."""
        self.checkout.payment_changed(payment)
        if payment.state is PaymentState.PAID:
            self._finish_paid(payment)
        elif payment.open:
            self._show_payment(payment)
        else:
            key = {PaymentState.CANCELLED: "payment_cancelled",
                   PaymentState.EXPIRED: "payment_expired"}.get(payment.state, "payment_failed")
            if payment.state is PaymentState.FAILED and payment.decline:
                key = f"declined_{payment.decline}"  # the wallet's reason, in the shopper's words
            self._next_poll = None
            self.p.desk.forget(payment.out_trade_no)
            self._touched()  # the idle timer starts again from the cart
            if payment.by_code and self.session is not None:
                self._code_ended(payment, key)
                return
            self._cart_view(screen=Screen.SHOPPING, payment=None, deadline=None,
                            notice=Notice.of(key, "warn" if key != "payment_failed" else "error"))

    def _code_ended(self, payment: Payment, key: str) -> None:
        """A payment-code charge ended without money (declined, reversed at the deadline or
        on Cancel, each confirmed by the provider): back to the pay screen with the reason,
        where the shopper can show a fresh code or scan the QR (started again at once when
        there is no wallet to choose)."""
        if payment.state is PaymentState.CANCELLED:
            key = "payment_code_cancelled"
        elif payment.state is PaymentState.EXPIRED:
            key = "payment_code_timeout"
        notice = Notice.of(key, "error" if key == "payment_failed" else "warn")
        self._cart_view(screen=Screen.PAY, payment=None, wallets=self.p.wallets,
                        takes_codes=self._takes_codes(), notice=notice,
                        printer_notice=self._receipt_notice, checking_printer=False)
        if self._no_wallet_choice():
            self.choose_wallet(self._only_wallet())
            if self._view.screen is Screen.PAY and self._view.payment is not None:
                self._show(notice=notice)  # the reason stays beside the new QR

    def _show_payment(self, payment: Payment) -> None:
        if self._next_poll is None:
            self._next_poll = self.mono() + self.p.timings.poll.total_seconds()
        view = PaymentView(payment.out_trade_no, payment.qr_payload,
                           Money(payment.amount_minor, payment.currency), payment.method,
                           payment.wallet if payment.by_code else self._wallet,
                           payment.expires_at, payment.state.value, payment.closing,
                           payment.mode, self._code_deadline_shown(payment))
        notice = None
        if payment.by_code:
            # Cancel or the deadline asked for a reverse; until the provider confirms it
            # the screen says so (a reverse refused while the shopper types the password,
            # or unanswered, is tried again at every poll), never "cancelled".
            if payment.closing:
                notice = Notice.of("payment_code_reversing" if payment.last_error
                                   else "payment_code_cancelling", "warn")
        elif not payment.qr_payload and not payment.closing:
            notice = Notice.of("payment_connecting", "warn")
        elif payment.closing:
            notice = Notice.of("payment_closing", "warn")
        self._cart_view(screen=Screen.PAY, payment=view, notice=notice,
                        printer_notice=self._receipt_notice, checking_printer=False,
                        takes_codes=self._takes_codes(), deadline=self._pay_deadline(payment))

    def _code_deadline_shown(self, payment: Payment) -> datetime | None:
        """The wall-clock time to show for a code charge's deadline (``payment.code_deadline_s``
        on the desk's monotonic clock, as seen from now); None for a QR payment."""
        return self._pay_deadline(payment) if payment.by_code else None

    def cancel_payment(self) -> None:
        """Pay screen, "Cancel": close the provider's order (after checking it was not paid)."""
        self._touched()
        if self._view.screen is not Screen.PAY:
            return
        if self._view.payment is None:
            self._cart_view(screen=Screen.SHOPPING, notice=None, payment=None)
            return
        no = self._view.payment.out_trade_no
        self._money(lambda: self._after_payment(self.p.desk.cancel(no)), no)

    def payment_completed(self, done: Completed) -> None:
        """The desk completed a sale (by a poll, a close that found it paid, a notification)."""
        if self.session is None or done.payment.cart_id != self.session.session_id:
            # Paid after the shopper left (the close had failed): a sale all the same. Its
            # session is recorded as paid, not abandoned, and the receipt prints for staff.
            log.warning("payment %s completed for a cart no longer on screen; its receipt "
                        "prints", done.payment.out_trade_no)
            ShoppingSession(self.p.db, self.p.outbox, self.checkout, self.p.lane_id,
                            done.payment.cart_id, done.sale.member_id).end(
                done.sale.order_id, done.sale.total.minor, done.sale.item_count,
                done.sale.points_earned)
            self.p.wake_printer()
            return
        self._finish_paid(done.payment, done)

    def _finish_paid(self, payment: Payment, done: Completed | None = None) -> None:
        if self.session is None:
            return
        self._unrecorded = None
        if done is not None:
            sale, exit_pass, job_id = done.sale, done.exit_pass, done.job_id
        else:  # restarted after the payment completed: the sale and its job are on disk
            job = PrintJobs(self.p.db).first_for(payment.out_trade_no)
            if job is None or job.sale is None:  # pragma: no cover - one transaction
                raise RuntimeError(f"paid payment {payment.out_trade_no} has no receipt job")
            sale, exit_pass, job_id = job.sale, job.exit_pass, job.job_id
        if sale.exit_audit:
            reasons = self._exit_audit[1] if self._exit_audit and \
                self._exit_audit[0] == self.session.session_id else ["decided before a restart"]
            self.session.record(EventType.EXIT_AUDIT_FLAGGED, order_id=sale.order_id,
                                reasons=reasons)
        self.session.end(sale.order_id, sale.total.minor, sale.item_count, sale.points_earned)
        self.session = None
        self._next_poll = None
        self._receipt_job = job_id
        show_pass = self._receipt_notice is not None
        receipt = ReceiptView(sale.order_id, sale.total, sale.item_count, exit_pass,
                              None, show_pass, sale.exit_audit, sale.member_id,
                              sale.points_earned, sale.savings)
        self.p.wake_printer()
        self._show(screen=Screen.RECEIPT, receipt=receipt, payment=None, notice=None,
                   deadline=self._receipt_deadline(show_pass), help_requested=False,
                   frozen=True)

    def _receipt_deadline(self, show_pass: bool) -> datetime:
        t = self.p.timings
        return self._deadline_in(t.receipt_on_screen if show_pass else t.receipt)

    def receipt_outcome(self, job_id: int, order_id: str, printed: bool, detail: str) -> None:
        """The printer's word on a receipt job; a failure puts the exit pass on screen."""
        session_id = Sessions(self.p.db).session_for_order(order_id)
        kind = EventType.RECEIPT_PRINTED if printed else EventType.RECEIPT_FAILED
        payload: dict[str, Any] = {"order_id": order_id, "job_id": job_id}
        if not printed:
            payload["reason"] = detail or "not printed"
        self.p.outbox.record(new_event(kind, occurred_at=self.clock.now(),
                                       session_id=session_id or "",
                                       payload=payload))
        receipt = self._view.receipt
        if self._view.screen is not Screen.RECEIPT or receipt is None or \
                receipt.order_id != order_id:
            return
        show = receipt.show_pass or not printed
        self._show(receipt=replace(receipt, printed=printed, show_pass=show),
                   deadline=self._receipt_deadline(show) if show != receipt.show_pass
                   else self._view.deadline)

    def _settle_stray_payments(self, now: float) -> None:
        # Payments left open by a crash, or whose close failed (network), are retried here
        # until the provider answers, each with its own backoff so a dead provider does
        # not make every tick (and so every touch) wait for its timeouts.
        for p in self.p.desk.repo.all_open():
            due = p.closing or p.out_trade_no in self._recover or self._payment_expired(p)
            on_screen = self.session is not None and p.cart_id == self.session.session_id \
                and (self._view.screen is Screen.PAY or (
                    self._view.screen is Screen.STILL_THERE and self._view.back_to is Screen.PAY))
            if not due or on_screen or p.out_trade_no == self._unrecorded or \
                    now < self._retry_at.get(p.out_trade_no, now):
                continue  # the unrecorded paid order is _retry_unrecorded's
            try:
                after = self.p.desk.settle(p, p.close_reason or "timeout")
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                # No shopper waits on it: a full disk is retried with the backoff below
                # (the shopper on screen is not shown an error for it).
                log.error("payment %s could not be settled: the disk is full", p.out_trade_no)
                after = p
            if after.open:
                wait = min(RETRY_MAX_S, self._retry_wait.get(p.out_trade_no, 1.0) * 2)
                self._retry_wait[p.out_trade_no] = wait
                self._retry_at[p.out_trade_no] = now + wait
                continue
            self._recover.discard(p.out_trade_no)
            self._retry_at.pop(p.out_trade_no, None)
            self._retry_wait.pop(p.out_trade_no, None)
            self.p.desk.forget(p.out_trade_no)
            if self.session is not None and after.cart_id == self.session.session_id:
                self.checkout.payment_changed(after)


__all__ = ["Paying"]
