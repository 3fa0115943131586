"""A payment the provider refunded or reversed is closed for good (issue 15, fault 1).

Alipay's ``alipay.trade.cancel`` refunds a trade the shopper paid a moment
before the kiosk gave up (the reply says ``action: refund``), and Alipay keeps
retrying the TRADE_SUCCESS notification of the earlier moment for about a day.
Every way a payment can reach "paid" is tried here against such a payment: a
relayed notification, a poll, a stale query view applied late (a second desk),
a late settle or close (the lane's stray-payment settling, ``recover`` at boot).
None may record a sale, a receipt or an exit pass; at most staff get a note.

A "paid" view of a payment the kiosk had given up on (closing, or closed) is
checked by a fresh query before it completes anything: the query's word decides.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from app import bootstrap
from app.domain.payment import (
    FINAL,
    Payment,
    PaymentError,
    PaymentState,
    ProviderStatus,
    ProviderView,
    ask_to_close,
    observed,
    paid_view_needs_query,
)
from app.services.payments import InvalidNotification, Notification, OrderRequest
from tests.unit.factories import paid_sale


class AlipayLike:
    """An in-memory provider with Alipay's cancel: a paid trade is refunded, not closed.

    ``refunded_reads_as``: what a query says of a refunded trade. Alipay says
    TRADE_CLOSED (closed); ``PAID`` stands for a provider (or a stale answer) that still
    says paid after the refund. (WeChat Pay's REFUND state is read as refunded.)
    """

    name = "alipaylike"

    def __init__(self, refunded_reads_as: ProviderStatus = ProviderStatus.CLOSED) -> None:
        self.orders: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.pay_on_close = False  # the shopper pays just before the cancel arrives
        self.lose_close_reply = False  # the cancel takes effect; its reply is lost
        self.fail_queries = False
        self.refunded_reads_as = refunded_reads_as
        self.ids = itertools.count(1)

    def create(self, order: OrderRequest) -> str:
        self.orders.setdefault(order.out_trade_no, {"status": "waiting",
                                                    "amount": order.amount_minor})
        return f"qr:{order.out_trade_no}"

    def pay(self, no: str) -> None:
        self.orders[no]["status"] = "paid"

    def _view(self, no: str) -> ProviderView:
        o = self.orders.get(no)
        if o is None:
            return ProviderView(ProviderStatus.NOT_FOUND)
        if o["status"] == "refunded":
            if self.refunded_reads_as is ProviderStatus.PAID:
                return ProviderView(ProviderStatus.PAID, o["amount"], "T" + no)
            return ProviderView(self.refunded_reads_as, None, "T" + no)
        status = {"waiting": ProviderStatus.WAITING, "paid": ProviderStatus.PAID,
                  "closed": ProviderStatus.CLOSED}[o["status"]]
        return ProviderView(status, o["amount"] if o["status"] == "paid" else None, "T" + no)

    def query(self, no: str) -> ProviderView:
        self.calls.append(("query", no))
        if self.fail_queries:
            raise PaymentError("query timed out", maybe_done=True)
        return self._view(no)

    def close(self, no: str) -> ProviderView | None:
        self.calls.append(("close", no))
        o = self.orders[no]
        if self.pay_on_close and o["status"] == "waiting":
            o["status"] = "paid"
        if o["status"] == "paid":
            o["status"] = "refunded"  # Alipay: cancel of a paid trade refunds it
            answer: ProviderView | None = ProviderView(ProviderStatus.REFUNDED)
        else:
            o["status"] = "closed"
            answer = ProviderView(ProviderStatus.CLOSED)
        if self.lose_close_reply:
            raise PaymentError("cancel reply lost", maybe_done=True)
        return answer

    def refund(self, *args: object) -> str:
        return "R"

    def paid_notification(self, no: str) -> tuple[dict[str, str], bytes]:
        """The genuine TRADE_SUCCESS notification of the moment the trade was paid."""
        return {"sig": "good"}, f"{no}|paid|n{next(self.ids)}".encode()

    def parse_notification(self, headers, body: bytes) -> Notification:
        if headers.get("sig") != "good":
            raise InvalidNotification("bad signature")
        no, status, nid = body.decode().split("|")
        assert status == "paid"
        return Notification(nid, no, ProviderView(ProviderStatus.PAID,
                                                  self.orders[no]["amount"], "T" + no))


@pytest.fixture
def provider() -> AlipayLike:
    return AlipayLike()


@pytest.fixture
def desk(kiosk, provider):
    return bootstrap.build_payment_desk(kiosk, provider)


def receipts(desk) -> int:
    return int(desk.repo.db.execute("SELECT count(*) FROM print_jobs").fetchone()[0])


def cancelled_with_refund(desk, provider) -> tuple[Payment, Payment]:
    """A payment the shopper paid a moment before the kiosk's cancel, which refunded it.
    Returns (the payment as first shown, the payment after the cancel)."""
    shown = desk.start("cart-1", paid_sale(), "test")
    provider.pay_on_close = True
    after = desk.cancel(shown.out_trade_no)
    assert provider.orders[shown.out_trade_no]["status"] == "refunded"
    assert after.state is PaymentState.CANCELLED and after.provider_refunded
    return shown, after


def no_sale(desk, no: str) -> None:
    p = desk.repo.get(no)
    assert p.state is not PaymentState.PAID and not p.open and p.provider_refunded, p
    assert desk.repo.count_sales(no) == 0
    assert receipts(desk) == 0


# -- the domain ------------------------------------------------------------------------------
def test_the_state_machine_never_moves_a_refunded_payment_to_paid(clock):
    from app.domain.payment import new_payment

    p = new_payment("K1", "cart", 100, "CNY", "x", clock.now(), clock.now() + timedelta(1))
    refunded = observed(p, ProviderView(ProviderStatus.REFUNDED), clock.now())
    assert refunded.provider_refunded and refunded.state in FINAL
    late = observed(refunded, ProviderView(ProviderStatus.PAID, 100, "T1"), clock.now())
    assert late.state is refunded.state and late.paid_at is None
    assert "refunded" in late.staff_flag  # at most, a note for staff


def test_a_refund_learned_after_the_payment_ended_still_marks_it(clock):
    from dataclasses import replace

    from app.domain.payment import new_payment

    p = new_payment("K1", "cart", 100, "CNY", "x", clock.now(), clock.now() + timedelta(1))
    ended = replace(p, state=PaymentState.CANCELLED, close_reason="cancel")
    after = observed(ended, ProviderView(ProviderStatus.REFUNDED), clock.now())
    assert after.state is PaymentState.CANCELLED and after.provider_refunded


def test_which_paid_views_need_a_query_first(clock):
    from dataclasses import replace

    from app.domain.payment import new_payment

    p = new_payment("K1", "cart", 100, "CNY", "x", clock.now(), clock.now() + timedelta(1))
    paid = ProviderView(ProviderStatus.PAID, 100, "T1")
    pending = replace(p, state=PaymentState.PENDING, qr_payload="qr")
    assert not paid_view_needs_query(pending, paid, fresh=False)  # the shopper is paying
    closing = replace(pending, closing=True, close_reason="cancel")
    assert paid_view_needs_query(closing, paid, fresh=False)  # the cancel may have refunded
    assert not paid_view_needs_query(closing, paid, fresh=True)  # a query is the check
    for state in (PaymentState.CANCELLED, PaymentState.EXPIRED, PaymentState.FAILED):
        assert paid_view_needs_query(replace(closing, state=state), paid, fresh=False)
    assert not paid_view_needs_query(closing, ProviderView(ProviderStatus.CLOSED), fresh=False)


# -- every path to "paid", against a refunded payment ------------------------------------------
def test_a_genuine_late_paid_notification_records_no_sale(desk, provider):
    shown, _ = cancelled_with_refund(desk, provider)
    after = desk.notify(*provider.paid_notification(shown.out_trade_no))
    assert after.state is PaymentState.CANCELLED
    no_sale(desk, shown.out_trade_no)
    assert any(ref == shown.out_trade_no and "refunded" in msg
               for ref, msg in desk.repo.alerts())  # staff are told


def test_a_late_notification_after_a_lost_cancel_reply_is_checked_by_a_query(desk, provider):
    # The cancel refunded the trade but its reply was lost: the kiosk does not know of the
    # refund. The "paid" notification must be checked: Alipay now calls the trade closed.
    p = desk.start("cart-1", paid_sale(), "test")
    provider.pay_on_close = provider.lose_close_reply = True
    closing = desk.cancel(p.out_trade_no)
    assert closing.open and closing.closing
    before = len(provider.calls)
    after = desk.notify(*provider.paid_notification(p.out_trade_no))
    assert ("query", p.out_trade_no) in provider.calls[before:]
    assert after.state is PaymentState.CANCELLED and "refunded" in after.staff_flag
    no_sale(desk, p.out_trade_no)


def test_a_paid_notification_whose_check_query_fails_is_not_taken(desk, provider):
    p = desk.start("cart-1", paid_sale(), "test")
    provider.pay_on_close = provider.lose_close_reply = True
    desk.cancel(p.out_trade_no)
    provider.fail_queries = True
    headers, body = provider.paid_notification(p.out_trade_no)
    with pytest.raises(PaymentError):
        desk.notify(headers, body)  # the relay answers an error: the provider sends it again
    assert desk.repo.count_sales(p.out_trade_no) == 0
    provider.fail_queries = False
    after = desk.notify(headers, body)  # the same notification again: now checked, applied
    assert after.state is PaymentState.CANCELLED
    no_sale(desk, p.out_trade_no)


def test_a_late_poll_does_not_revive_a_refunded_payment(desk, provider):
    shown, _ = cancelled_with_refund(desk, provider)
    provider.refunded_reads_as = ProviderStatus.PAID  # an answer still saying paid
    assert desk.poll(shown.out_trade_no).state is PaymentState.CANCELLED
    no_sale(desk, shown.out_trade_no)


@pytest.mark.parametrize("reads_as", [ProviderStatus.CLOSED, ProviderStatus.PAID])
def test_a_late_settle_with_a_stale_view_does_not_revive_it(desk, provider, reads_as):
    # The lane's stray-payment settling and abandon() hand settle() the payment they hold;
    # one read before the cancel still looks open.
    shown, _ = cancelled_with_refund(desk, provider)
    provider.refunded_reads_as = reads_as
    before = len(provider.calls)
    assert desk.settle(shown, "timeout").state is PaymentState.CANCELLED
    assert provider.calls[before:] == []  # closed for good: nothing asked, nothing closed
    no_sale(desk, shown.out_trade_no)


@pytest.mark.parametrize("reads_as", [ProviderStatus.CLOSED, ProviderStatus.PAID])
def test_recover_at_boot_leaves_a_refunded_payment_alone(kiosk, desk, provider, reads_as):
    shown, _ = cancelled_with_refund(desk, provider)
    provider.refunded_reads_as = reads_as
    again = bootstrap.build_payment_desk(kiosk, provider)
    assert again.recover() == []
    no_sale(desk, shown.out_trade_no)


@pytest.mark.parametrize("reads_as", [ProviderStatus.CLOSED, ProviderStatus.PAID])
def test_a_stale_paid_query_view_applied_late_records_no_sale(desk, provider, reads_as):
    # A second desk on the same file queried while the trade was paid, and applies its
    # view after this desk's cancel refunded it.
    shown, _ = cancelled_with_refund(desk, provider)
    provider.refunded_reads_as = reads_as
    stale_view = ProviderView(ProviderStatus.PAID, shown.amount_minor, "T" + shown.out_trade_no)
    desk._apply(shown, stale_view, "query")
    desk._apply(desk.repo.get(shown.out_trade_no), stale_view, "query", fresh=True)
    no_sale(desk, shown.out_trade_no)


def test_a_close_reply_that_says_paid_is_checked_by_a_query(desk, provider):
    # A close that "found it paid" is not a query: while the kiosk is closing, the
    # provider's query decides (here it has refunded the trade meanwhile).
    p = desk.start("cart-1", paid_sale(), "test")
    real_close = provider.close

    def close_says_paid(no: str) -> ProviderView:
        provider.orders[no]["status"] = "refunded"
        real_close(no)
        return ProviderView(ProviderStatus.PAID, p.amount_minor, "T" + no)

    provider.close = close_says_paid
    after = desk.cancel(p.out_trade_no)
    assert after.state is PaymentState.CANCELLED
    no_sale(desk, p.out_trade_no)


# -- a payment given up on but not refunded: paid late is still paid, once a query says so ---
def test_a_late_paid_notification_for_an_expired_payment_is_a_sale_if_the_query_agrees(
        desk, provider, clock):
    p = desk.start("cart-1", paid_sale(), "test")
    clock.advance(minutes=5)
    assert desk.expire_due()[0].state is PaymentState.EXPIRED
    provider.pay(p.out_trade_no)  # the provider took the money after all
    after = desk.notify(*provider.paid_notification(p.out_trade_no))
    assert after.state is PaymentState.PAID and "paid after the kiosk gave up" in after.staff_flag
    assert desk.repo.count_sales(p.out_trade_no) == 1


def test_a_late_paid_notification_the_query_contradicts_is_no_sale(desk, provider, clock):
    p = desk.start("cart-1", paid_sale(), "test")
    clock.advance(minutes=5)
    desk.expire_due()
    after = desk.notify(*provider.paid_notification(p.out_trade_no))
    assert after.state is PaymentState.EXPIRED and after.staff_flag
    assert desk.repo.count_sales(p.out_trade_no) == 0 and receipts(desk) == 0


# -- the repository: the mark is written, kept, and refuses a sale ------------------------------
def test_the_repository_keeps_the_mark_and_refuses_a_sale(desk, provider):
    shown, after = cancelled_with_refund(desk, provider)
    assert desk.repo.get(shown.out_trade_no).provider_refunded
    assert not desk.repo.save(shown, desk.clock.now(), "stale")  # a stale view cannot undo it
    assert desk.repo.get(shown.out_trade_no).provider_refunded
    from dataclasses import replace

    forced = replace(after, state=PaymentState.PAID, provider_refunded=False)
    sale = paid_sale()
    assert desk.repo.complete_sale(forced, sale, "pass", desk.clock.now()) is None
    no_sale(desk, shown.out_trade_no)


# -- two writers: a sale recorded by one desk while the other's cancel refunds it -----------------
@pytest.mark.parametrize("second", ["poll", "notification"])
def test_a_sale_recorded_while_another_desks_cancel_refunds_it_is_not_left_silent(
        kiosk, provider, second):
    # Two writers on one database (the lane and `kiosk pay cancel`, or a relayed
    # notification): the canceller queried (waiting), then the shopper paid, then the other
    # desk saw "paid" (a fresh query) and recorded the sale, then the cancel reached Alipay,
    # which refunded the trade. The money went back after the sale was written: staff must
    # be told (the sale voided), not a paid sale with a receipt and no word of the refund.
    canceller = bootstrap.build_payment_desk(kiosk, provider)
    other = bootstrap.build_payment_desk(kiosk, provider)
    p = canceller.start("cart-1", paid_sale(), "test")
    no = p.out_trade_no
    real_close = provider.close

    def close_after_the_other_desk_saw_it_paid(order: str) -> ProviderView | None:
        provider.pay(order)  # between the canceller's query and its cancel
        if second == "poll":
            other.poll(order)
        else:
            other.notify(*provider.paid_notification(order))
        assert other.repo.get(order).state is PaymentState.PAID  # the sale is recorded
        return real_close(order)  # Alipay's cancel of a paid trade: refunded

    provider.close = close_after_the_other_desk_saw_it_paid
    canceller.cancel(no)
    assert provider.orders[no]["status"] == "refunded"
    after = canceller.repo.get(no)
    assert after.state is PaymentState.PAID  # the sale was recorded: paid stays final
    assert after.provider_refunded and "void the sale" in after.staff_flag
    assert any(ref == no and "void the sale" in message
               for ref, message in canceller.repo.alerts()), canceller.repo.alerts()
    with pytest.raises(ValueError, match="refunded by the provider"):
        canceller.refund(no)  # the money is back already: no second refund


def test_a_notification_never_queries_the_provider_inside_its_write_transaction(
        desk, provider, kiosk):
    # Between reading the payment and taking the write lock, another writer (the lane, or
    # `kiosk pay cancel`) gives up on it. The check query must run outside the lock (a
    # network call holding SQLite's write lock stalls every writer for its timeout), and
    # nothing may be recorded half way: the notification is applied once, on fresh reads.
    p = desk.start("cart-race", paid_sale(), "Scan & Go")
    provider.pay(p.out_trade_no)
    in_lock: list[bool] = []
    real_query = provider.query

    def query(no: str) -> ProviderView:
        in_lock.append(kiosk.db.conn.in_transaction)
        return real_query(no)

    provider.query = query  # type: ignore[method-assign]
    real_get = desk.repo.get
    reads = itertools.count()

    def get(no: str):  # noqa: ANN202
        found = real_get(no)
        if next(reads) == 0 and found is not None:  # the first read, before the lock:
            desk.repo.save(ask_to_close(found, "cancel"), desk.clock.now(), "another writer")
        return found

    desk.repo.get = get  # type: ignore[method-assign]
    after = desk.notify(*provider.paid_notification(p.out_trade_no))
    assert in_lock and not any(in_lock), in_lock  # the check query ran, outside the lock
    assert after.state is PaymentState.PAID  # the query says paid: a sale, exactly once
    assert desk.repo.count_sales(p.out_trade_no) == 1
