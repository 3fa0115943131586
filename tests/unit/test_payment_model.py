"""The payment rules, checked by hypothesis against a model of the provider.

``FakeProvider`` implements the ``PaymentProvider`` port in memory and holds
the truth: which orders exist and which the shopper paid. It can fail the
next call in the two ways networks fail: refused (nothing happened) or lost
(it happened, the reply did not arrive). The state machine creates, polls,
pays, notifies, times out, cancels, crashes (a new desk on the same SQLite
file, then ``recover``) and injects faults in any order, and checks:

- the kiosk says paid only if the provider says paid;
- never two open provider orders for one cart, never two paid;
- a sale and its receipt are recorded once per paid payment;
- once the network is back and the kiosk settles, every order the shopper
  paid is a paid sale on the kiosk (no paid sale lost);
- payment codes (customer-presented): the shopper's code is charged once at most per
  order id, whatever faults and crashes come; a charge waiting for the shopper's
  password is queried and, at the deadline or on cancel, reversed (a reverse refused
  while the shopper is mid-password is retried); trades left waiting at the end: 0;
  never two charges for one cart (a QR order is closed before a code is charged);
- sales recorded for refunded payments: 0. Half the runs the provider cancels
  as Alipay does (``alipay.trade.cancel`` refunds a trade paid a moment before,
  and a query then says closed); the genuine "paid" notification of the earlier
  moment is relayed late, and stale "paid" views are applied late, in any order.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from app.domain.clock import FixedClock
from app.domain.payment import PaymentError, PaymentState, ProviderStatus, ProviderView
from app.domain.payment_code import PaymentCode
from app.services.exit_pass import PassSigner
from app.services.payments import InvalidNotification, Notification, OrderRequest, PaymentDesk
from app.storage.db import open_database
from app.storage.payments_repo import PaymentsRepo
from tests.unit.factories import paid_sale

START = datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=8)))
KEY = None


class Died(BaseException):
    """The kiosk process died while a provider call was on its way (the call arrived)."""


class FakeProvider:
    name = "fake"
    code_wallets = frozenset({"wechat"})

    def __init__(self) -> None:
        self.orders: dict[str, dict] = {}
        self.fail: str | None = None  # "refused" or "lost", for the next call only
        self.notice_ids = itertools.count()
        # Alipay: a cancel of a paid trade refunds it ("action": "refund"), and a query
        # then says TRADE_CLOSED. Otherwise (WeChat Pay) a paid order cannot be closed.
        self.refund_on_close = False
        self.charged: dict[str, int] = {}  # order id -> code charges received
        self.codes_seen: set[str] = set()
        self.next_charge = "paid"  # what the shopper's wallet does with the next code
        self.reverse_refused_while_paying = True  # WeChat Pay: USERPAYING until it ends

    def _maybe_fail(self, before: bool) -> None:
        if self.fail == "refused" and before:
            self.fail = None
            raise PaymentError("connection refused", maybe_done=False)
        if self.fail == "lost" and not before:
            self.fail = None
            raise PaymentError("reply lost", maybe_done=True)

    def create(self, order: OrderRequest) -> str:
        self._maybe_fail(True)
        self.orders.setdefault(order.out_trade_no, {"status": "waiting",
                                                    "amount": order.amount_minor})
        self._maybe_fail(False)
        return f"qr:{order.out_trade_no}"

    def _view(self, no: str) -> ProviderView:
        o = self.orders.get(no)
        if o is None:
            return ProviderView(ProviderStatus.NOT_FOUND)
        status = {"waiting": ProviderStatus.WAITING, "paid": ProviderStatus.PAID,
                  "closed": ProviderStatus.CLOSED, "refunded": ProviderStatus.CLOSED,
                  "declined": ProviderStatus.DECLINED,
                  "paying": ProviderStatus.PAYING}[o["status"]]
        decline = "insufficient_funds" if o["status"] == "declined" and o.get("code") else ""
        return ProviderView(status, o["amount"] if o["status"] == "paid" else None, "T" + no,
                            decline)

    def charge_code(self, charge) -> ProviderView:
        self._maybe_fail(True)
        no, digits = charge.out_trade_no, charge.code.reveal()
        self.charged[no] = self.charged.get(no, 0) + 1
        assert self.charged[no] == 1, f"order {no} charged twice"
        assert digits not in self.codes_seen, "a payment code sent twice"
        self.codes_seen.add(digits)
        status = self.next_charge
        self.orders[no] = {"status": status, "amount": charge.amount_minor, "code": True}
        if status == "paid":
            self.orders[no]["was_paid"] = True
        if self.fail == "die_mid_call":
            self.fail = None
            raise Died
        self._maybe_fail(False)
        return self._view(no)

    def reverse(self, no: str) -> ProviderView | None:
        self._maybe_fail(True)
        o = self.orders.get(no)
        assert o is None or o.get("code"), f"reverse called on QR order {no}"
        if o is not None and o["status"] == "paying" and self.reverse_refused_while_paying:
            raise PaymentError("USERPAYING: the shopper is entering the password",
                               maybe_done=False)
        if o is not None and o["status"] in ("waiting", "declined", "paying"):
            o["status"] = "closed"
        elif o is not None and o["status"] == "paid":
            o["status"] = "refunded"  # a reverse refunds a paid charge (both platforms)
            self._maybe_fail(False)
            return ProviderView(ProviderStatus.REFUNDED)
        self._maybe_fail(False)
        return None

    def shopper_finishes(self, no: str, approve: bool) -> None:
        o = self.orders.get(no)
        if o is not None and o["status"] == "paying":
            o["status"] = "paid" if approve else "declined"
            o["was_paid"] = o.get("was_paid", False) or approve

    def query(self, no: str) -> ProviderView:
        self._maybe_fail(True)
        view = self._view(no)
        self._maybe_fail(False)
        return view

    def close(self, no: str) -> ProviderView | None:
        self._maybe_fail(True)
        o = self.orders.get(no)
        # A payment-code charge is reversed, never closed (WeChat Pay: the close API is for
        # orders a shopper pays by scanning; codepay orders have reverse).
        assert o is None or not o.get("code"), f"close called on code charge {no}"
        if self.fail == "pay_on_close":
            self.fail = None  # the shopper pays between the kiosk's last query and its close
            self.pay(no)
        if self.fail == "close_ignored":
            self.fail = None  # the provider says ok, but the order stays payable
        elif o is not None and o["status"] in ("waiting", "declined"):
            o["status"] = "closed"
        elif o is not None and o["status"] == "paid" and self.refund_on_close:
            o["status"] = "refunded"  # the money goes back to the shopper
            self._maybe_fail(False)
            return ProviderView(ProviderStatus.REFUNDED)
        self._maybe_fail(False)
        return self._view(no) if o is not None and o["status"] == "paid" else None

    def decline(self, no: str) -> None:
        o = self.orders.get(no)
        if o is not None and o["status"] == "waiting":
            o["status"] = "declined"  # the payment failed; the order is still open

    def refund(self, *args: object) -> str:
        return "R"

    def parse_notification(self, headers, body: bytes) -> Notification:
        if headers.get("sig") != "good":
            raise InvalidNotification("bad signature")
        no, nid, moment = body.decode().split("|")
        if moment == "paid":  # the notification of the moment it was paid, relayed late
            o = self.orders[no]
            return Notification(nid, no, ProviderView(ProviderStatus.PAID, o["amount"],
                                                      "T" + no))
        return Notification(nid, no, self._view(no))

    def pay(self, no: str) -> bool:
        o = self.orders.get(no)
        # a retry may succeed; a code charge is paid only by its own wallet
        if o is not None and not o.get("code") and o["status"] in ("waiting", "declined"):
            o["status"] = "paid"
            o["was_paid"] = True
            return True
        return False


class Payments(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "kiosk.db"
        self.clock = FixedClock(START)
        self.provider = FakeProvider()
        self.signer = PassSigner(Ed25519PrivateKey.generate())
        self.carts = ["cart-a", "cart-b"]
        self.notices: list[tuple[dict, bytes]] = []
        self.ids = itertools.count(1)  # deterministic ids: hypothesis replays examples
        self._new_desk()

    @initialize(alipay=st.booleans())
    def which_provider(self, alipay: bool) -> None:
        self.provider.refund_on_close = alipay

    def _new_desk(self) -> None:
        self.db = open_database(self.path)
        self.repo = PaymentsRepo(self.db)
        self.desk = PaymentDesk(self.repo, self.provider, self.signer, self.clock, "lane-01",
                                expire_after=timedelta(minutes=2),
                                order_ids=lambda lane, now: f"K{next(self.ids):06d}")

    def teardown(self) -> None:
        # The network is back and the kiosk settles: nothing the shopper paid is lost.
        self.provider.fail = None
        for no in list(self.provider.orders):
            self.provider.shopper_finishes(no, approve=False)  # the phone is put away
        self.clock.advance(minutes=10)
        for _ in range(3):
            self.desk.recover()
        for no, o in self.provider.orders.items():
            p = self.repo.get(no)
            assert p is not None
            if o["status"] == "paid":
                assert p.state is PaymentState.PAID, (no, p)
                assert self.repo.count_sales(no) == 1
            else:
                assert p.state is not PaymentState.PAID and not p.open, (no, p)
                assert o["status"] in ("closed", "refunded"), (no, o)  # nothing left payable
        self.sales_recorded_for_refunded_payments_is_0()
        self.db.close()
        self.tmp.cleanup()

    def _open_orders(self) -> list[str]:
        return [p.out_trade_no for p in self.repo.all_open()]

    # -- rules -------------------------------------------------------------------------------
    @rule(cart=st.sampled_from(["cart-a", "cart-b"]))
    def start(self, cart: str) -> None:
        self.desk.start(cart, paid_sale(), "test")

    @rule(cart=st.sampled_from(["cart-a", "cart-b"]),
          wallet_does=st.sampled_from(["paid", "paying", "declined"]))
    def shopper_shows_payment_code(self, cart: str, wallet_does: str) -> None:
        self.provider.next_charge = wallet_does
        digits = f"13{next(self.ids):016d}"
        try:
            self.desk.charge_code(cart, paid_sale(), "test", PaymentCode(digits, "wechat"),
                                  timedelta(seconds=60))
        except Died:
            self.crash_and_restart()  # killed with the charge sent: restart, query, settle

    @precondition(lambda self: any(o["status"] == "paying"
                                   for o in self.provider.orders.values()))
    @rule(data=st.data(), approve=st.booleans())
    def shopper_enters_password(self, data, approve: bool) -> None:
        paying = sorted(n for n, o in self.provider.orders.items() if o["status"] == "paying")
        self.provider.shopper_finishes(data.draw(st.sampled_from(paying)), approve)

    @precondition(lambda self: self.repo.all_open())
    @rule(data=st.data())
    def poll(self, data) -> None:
        no = data.draw(st.sampled_from(self._open_orders()))
        self.desk.poll(no)

    @precondition(lambda self: self.provider.orders)
    @rule(data=st.data())
    def shopper_pays(self, data) -> None:
        no = data.draw(st.sampled_from(sorted(self.provider.orders)))
        self.provider.pay(no)

    @precondition(lambda self: self.provider.orders)
    @rule(data=st.data(), replay=st.booleans(), forged=st.booleans())
    def notification(self, data, replay: bool, forged: bool) -> None:
        no = data.draw(st.sampled_from(sorted(self.provider.orders)))
        if replay and self.notices:
            headers, body = data.draw(st.sampled_from(self.notices))
        else:
            headers = {"sig": "bad" if forged else "good"}
            body = f"{no}|n{next(self.provider.notice_ids)}|now".encode()
            if not forged:
                self.notices.append((headers, body))
        before = self.repo.get(no)
        try:
            self.desk.notify(headers, body)
        except InvalidNotification:
            assert headers["sig"] == "bad"
            assert self.repo.get(no) == before  # a forged notice changes nothing
        except PaymentError:
            # A "paid" for a payment the kiosk gave up on is checked by a query first; that
            # query failed (an injected fault): nothing is taken, the provider sends it again.
            assert headers["sig"] == "good"
            assert self.repo.get(no) == before

    def _ever_paid(self) -> list[str]:
        return sorted(no for no, o in self.provider.orders.items() if o.get("was_paid"))

    @precondition(lambda self: self._ever_paid())
    @rule(data=st.data())
    def late_paid_notification(self, data) -> None:
        # The genuine notification of the moment the shopper paid, relayed late: Alipay
        # retries it for about a day, also after its cancel refunded the trade.
        no = data.draw(st.sampled_from(self._ever_paid()))
        body = f"{no}|n{next(self.provider.notice_ids)}|paid".encode()
        self.notices.append(({"sig": "good"}, body))
        try:
            self.desk.notify({"sig": "good"}, body)
        except PaymentError:
            pass  # the check query failed: not taken; the provider sends it again

    @precondition(lambda self: self._ever_paid())
    @rule(data=st.data(), says=st.sampled_from(["paid", "refunded"]))
    def late_poll(self, data, says: str) -> None:
        # A query answered a while ago, applied now (a poller that was slow, a second desk):
        # "paid" if the trade was paid then, "refunded" if it is refunded now.
        no = data.draw(st.sampled_from(self._ever_paid()))
        p = self.repo.get(no)
        if p is None:
            return
        o = self.provider.orders[no]
        if says == "paid":
            view = ProviderView(ProviderStatus.PAID, o["amount"], "T" + no)
        elif o["status"] == "refunded":
            view = ProviderView(ProviderStatus.REFUNDED)
        else:
            return
        self.desk._apply(p, view, "late poll")
        self.desk.poll(no)

    @rule(minutes=st.integers(1, 5))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        self.desk.expire_due()

    @precondition(lambda self: self.repo.all_open())
    @rule(data=st.data())
    def cancel(self, data) -> None:
        self.desk.cancel(data.draw(st.sampled_from(self._open_orders())))

    @rule(kind=st.sampled_from(["refused", "lost", "close_ignored", "pay_on_close",
                                "die_mid_call"]))
    def network_fault(self, kind: str) -> None:
        self.provider.fail = kind

    @precondition(lambda self: self.provider.orders)
    @rule(data=st.data())
    def payment_declined(self, data) -> None:
        self.provider.decline(data.draw(st.sampled_from(sorted(self.provider.orders))))

    @rule()
    def a_second_desk_on_the_same_file(self) -> None:
        # Two desks (a notification handler and the poller, say) on one database: each
        # applies what it sees; the sale must still be completed exactly once.
        other = PaymentDesk(PaymentsRepo(open_database(self.path)), self.provider, self.signer,
                            self.clock, "lane-01", order_ids=lambda lane, now: "unused")
        stale = self.repo.all_open()
        for p in stale:
            other.poll(p.out_trade_no)
        for p in stale:
            self.desk._apply(p, self.provider._view(p.out_trade_no), "stale poll")
        other.repo.db.close()

    @rule()
    def crash_and_restart(self) -> None:
        self.db.close()  # the process dies; only what was committed survives
        self._new_desk()
        self.desk.recover()

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def paid_only_if_the_provider_says_paid(self) -> None:
        for no in self.provider.orders:
            p = self.repo.get(no)
            if p is not None and p.state is PaymentState.PAID:
                assert self.provider.orders[no]["status"] == "paid"
                assert self.repo.count_sales(no) == 1

    @invariant()
    def at_most_one_open_and_one_paid_order_per_cart(self) -> None:
        for cart in self.carts:
            rows = self.db.execute("SELECT out_trade_no FROM payments WHERE cart_id = ?",
                                   [cart]).fetchall()
            mine = [r[0] for r in rows if r[0] in self.provider.orders]
            waiting = [n for n in mine if self.provider.orders[n]["status"] in (
                "waiting", "declined", "paying")]
            paid = [n for n in mine if self.provider.orders[n]["status"] == "paid"]
            assert len(waiting) <= 1, waiting
            assert len(paid) <= 1, paid
            assert len([p for p in self.repo.all_open() if p.cart_id == cart]) <= 1

    @invariant()
    def sales_recorded_for_refunded_payments_is_0(self) -> None:
        refunded = [no for no, o in self.provider.orders.items() if o["status"] == "refunded"]
        sales = sum(self.repo.count_sales(no) for no in refunded)
        receipts = sum(int(self.db.execute("SELECT count(*) FROM print_jobs WHERE order_id = ?",
                                           [no]).fetchone()[0]) for no in refunded)
        assert (sales, receipts) == (0, 0), refunded
        for no in refunded:
            p = self.repo.get(no)
            assert p is not None and p.state is not PaymentState.PAID, (no, p)

    @invariant()
    def a_code_is_charged_once_and_never_stored(self) -> None:
        assert all(n == 1 for n in self.provider.charged.values())
        if self.provider.codes_seen:
            dump = "\n".join(self.db.conn.iterdump())
            assert not any(code in dump for code in self.provider.codes_seen)

    @invariant()
    def one_receipt_per_paid_sale(self) -> None:
        rows = self.db.execute("SELECT order_id, count(*) FROM print_jobs GROUP BY order_id "
                               "HAVING count(*) > 1").fetchall()
        assert rows == []


class TestPayments(Payments.TestCase):  # type: ignore[name-defined,misc]
    settings = settings(max_examples=25, stateful_step_count=25, deadline=None)


@pytest.mark.slow
class TestPaymentsLonger(Payments.TestCase):  # type: ignore[name-defined,misc]
    """The same machine, many more and longer runs (CI runs the slow marker)."""

    settings = settings(max_examples=250, stateful_step_count=40, deadline=None)
