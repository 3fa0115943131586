"""Paying with the shopper's payment code (付款码) on the lane, headless (issue 18).

Real SQLite in a temp dir and the real lane, desk and repositories; the kiosk's clock is
moved by hand. The provider is the payment simulator (`kiosk sim pay`, a real HTTP server
on 127.0.0.1) behind the simulator adapter, and the shoppers' phones are its wallets
(``devices.sim.payorders.Wallets``: codes with the real prefixes and lengths, used once,
expiring, with a scripted password), whose clock the test moves too (``SimWallet``).
Two cases keep ``WalletFake``, an in-process provider, and say why in their docstrings.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

import pytest

from app import bootstrap
from app.domain.payment import PaymentError, ProviderRefused, ProviderStatus, ProviderView
from app.domain.scan_input import clean_scan
from app.lane import InlineLane, Screen
from app.runtime import Router
from devices.camera import Camera, GeneratedSource
from devices.decoder import Decoder, FrameDecoder
from devices.scanner import CameraScanner, KeyboardWedge, ReadAcceptor, SerialScanner
from devices.sim.serial_scanner import VirtualSerialScanner

MILK = "6900000000014"  # 6.50
WECHAT_CODE = "134567890123456789"  # 18 digits, prefix 13: WeChat Pay
WECHAT_CODE_2 = "104567890123456780"
ALIPAY_CODE = "2845678901234567"  # 16 digits, prefix 28: Alipay
UNIONPAY_CODE = "6212345678901234567"  # 19 digits, 62: UnionPay


class WalletFake:
    """An in-process payment provider with a wallet behind it, for the two cases the
    simulator cannot produce (each says why), scripted per charge:
    ``next`` is what the wallet does with the next code ("paid", "paying", "insufficient_funds",
    "code_expired", "code_used", "lost": the reply is lost after the charge was taken).
    ``reverse_refusals``: how many reverses are refused (the shopper is mid-password)."""

    name = "wallet-fake"

    def __init__(self) -> None:
        self.code_wallets = frozenset({"wechat", "alipay"})
        self.orders: dict[str, dict] = {}
        self.charges: list[str] = []  # order ids charged, in order
        self.codes: list[str] = []  # the digits received (the fake is the provider)
        self.calls: list[tuple[str, str]] = []
        self.next = "paid"
        self.reverse_refusals = 0
        self.close_fails = False  # the QR order's close cannot reach the provider

    def create(self, order) -> str:
        self.calls.append(("create", order.out_trade_no))
        self.orders.setdefault(order.out_trade_no, {"status": "waiting",
                                                    "amount": order.amount_minor})
        return f"wxp://fake/{order.out_trade_no}"

    def query(self, no: str) -> ProviderView:
        self.calls.append(("query", no))
        o = self.orders.get(no)
        if o is None:
            return ProviderView(ProviderStatus.NOT_FOUND)
        status = {"waiting": ProviderStatus.WAITING, "paying": ProviderStatus.PAYING,
                  "paid": ProviderStatus.PAID, "closed": ProviderStatus.CLOSED,
                  "declined": ProviderStatus.DECLINED}[o["status"]]
        return ProviderView(status, o["amount"] if status is ProviderStatus.PAID else None,
                            "T" + no, o.get("decline", ""))

    def close(self, no: str) -> ProviderView | None:
        self.calls.append(("close", no))
        if self.close_fails:
            raise PaymentError("connection refused", maybe_done=False)
        o = self.orders.get(no)
        if o is not None and o["status"] == "waiting":
            o["status"] = "closed"
        return None

    def charge_code(self, charge) -> ProviderView:
        no = charge.out_trade_no
        self.calls.append(("charge", no))
        assert no not in self.charges, f"order {no} charged twice"
        digits = charge.code.reveal()
        assert digits not in self.codes, "a payment code sent twice"
        self.charges.append(no)
        self.codes.append(digits)
        what, self.next = self.next, "paid"
        o = {"amount": charge.amount_minor}
        self.orders[no] = o
        if what in ("paid", "paying"):
            o["status"] = what
        elif what == "lost":
            o["status"] = "paid"
            raise PaymentError("read timed out", maybe_done=True)
        elif what == "adapter_bug":  # taken, then the adapter chokes on the reply
            o["status"] = "paying"
            raise KeyError(f"trade_state missing for auth_code {digits}")
        elif what == "echo_refused":  # a gateway whose 4xx error quotes the request
            del self.orders[no]
            raise ProviderRefused(f"auth_code {digits} is not a valid code", maybe_done=False,
                                  code="INVALID_REQUEST")
        elif what == "echo_unknown":  # ... and whose 5xx does
            o["status"] = "closed"
            raise PaymentError(f"upstream failed for auth_code={digits}", maybe_done=True)
        else:
            o["status"], o["decline"] = "declined", what
        return self.query(no)

    def reverse(self, no: str) -> ProviderView | None:
        self.calls.append(("reverse", no))
        o = self.orders.get(no)
        if o is not None and o["status"] == "paying" and self.reverse_refusals:
            self.reverse_refusals -= 1
            raise PaymentError("USERPAYING: the shopper is entering the password",
                               maybe_done=False)
        if o is not None and o["status"] == "paid":
            o["status"] = "closed"
            return ProviderView(ProviderStatus.REFUNDED)
        if o is not None:
            o["status"] = "closed"
        return None

    def refund(self, no, refund_no, amount_minor, total_minor, reason) -> str:
        raise PaymentError("no refunds in this fake", maybe_done=False)

    def parse_notification(self, headers, body):
        raise NotImplementedError


class SimWallet:
    """The payment simulator ``server`` (a ``PayServer`` on 127.0.0.1) seen from a test: the
    kiosk's provider is ``adapter`` (the simulator adapter over HTTP, taking ``code_wallets``'
    codes); ``code`` asks a simulated phone for a payment code; ``phone_time`` moves the
    wallets' clock (a password typed, or given up, after its seconds)."""

    def __init__(self, server, code_wallets=("wechat", "alipay")) -> None:
        from devices.payment.gateway import SimulatorAdapter

        self.server, self.provider = server, server.provider
        self.now = 1000.0
        self.provider.wallets.clock = lambda: self.now
        self.adapter = SimulatorAdapter.from_options(
            {"base_url": server.url, "read_timeout_s": 2.0, "code_wallets": list(code_wallets)},
            "lane-01")

    def code(self, wallet: str = "wechat", then: str = "approve", **kw) -> str:
        """A fresh code from ``wallet``'s phone (``code=`` a fixed one, ``age_s=``, ...)."""
        return self.provider.wallets.issue(wallet, then, **kw).code

    def phone_time(self, seconds: float) -> None:
        self.now += seconds

    @property
    def charges(self) -> list[str]:
        """The orders charged by code (paid or not), oldest first."""
        with self.provider.lock:
            return [no for no, o in self.provider.orders.items() if o.charge is not None]

    def order(self, no: str):
        return self.provider.orders[no]

    def paid(self) -> int:
        """Times money was taken, over every order."""
        return sum(self.provider.charges.values())


@pytest.fixture
def wallet(sim):
    return SimWallet(sim)


@pytest.fixture
def lane_of(demo_kiosk, wallet):
    def make(wallets=("wechat", "alipay"), provider=None):
        demo_kiosk.settings.payment.wallets = list(wallets)
        lane = bootstrap.build_lane(demo_kiosk, provider=provider or wallet.adapter,
                                    receipt_notice=lambda: None)
        lane.boot()
        return lane
    return make


def at_pay(lane, wallets_choice: str | None = "wechat"):
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.PAY
    if wallets_choice and lane.view.payment is None:
        lane.choose_wallet(wallets_choice)
    return lane


def poll(lane, clock, seconds: float = 1.6) -> None:
    clock.advance(seconds=seconds)
    lane.tick()


def sales(kiosk) -> int:
    return kiosk.db.execute("SELECT count(*) FROM sales").fetchone()[0]


def events(kiosk) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in kiosk.db.execute("SELECT type, payload FROM outbox "
                                                   "ORDER BY seq")]


# -- the pay screen offers both ways ---------------------------------------------------------

def test_the_pay_screen_offers_the_qr_and_the_payment_code(lane_of, wallet, sim):
    lane = at_pay(lane_of())
    assert lane.view.takes_codes and lane.view.payment.qr_payload
    lane.abandon("test")
    lane2 = lane_of(provider=SimWallet(sim, code_wallets=()).adapter)  # takes no codes
    at_pay(lane2)
    assert not lane2.view.takes_codes


# -- each outcome on screen ------------------------------------------------------------------

def test_a_code_paid_at_once_goes_to_the_receipt(lane_of, wallet, demo_kiosk):
    lane = at_pay(lane_of())
    qr_order = lane.view.payment.out_trade_no
    lane.scan(wallet.code("wechat"), how="camera")
    assert lane.view.screen is Screen.RECEIPT
    assert len(wallet.charges) == 1 and wallet.order(qr_order).status == "closed"
    assert wallet.paid() == 1 and sales(demo_kiosk) == 1
    started = [p for t, p in events(demo_kiosk) if t == "payment_started"]
    assert started and '"code"' in started[-1] and "wechat" in started[-1]


def test_password_then_paid(lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    lane.scan(wallet.code("wechat", "password:5"))
    view = lane.view
    assert view.screen is Screen.PAY and view.payment.mode == "code"
    assert view.payment.wallet == "wechat" and not view.payment.qr_payload
    assert view.payment.deadline is not None and view.notice is None
    assert (view.payment.deadline - clock.now()).total_seconds() == pytest.approx(60, abs=1)
    poll(lane, clock)
    assert lane.view.payment.mode == "code"  # still confirming
    wallet.phone_time(5)  # the password typed
    poll(lane, clock)
    assert lane.view.screen is Screen.RECEIPT and sales(demo_kiosk) == 1
    assert wallet.order(wallet.charges[0]).charge_calls == 1  # queried, never sent again


def test_password_then_declined_goes_back_to_the_pay_screen(lane_of, wallet, clock,
                                                            demo_kiosk):
    lane = at_pay(lane_of())
    lane.scan(wallet.code("wechat", "decline:5"))
    wallet.phone_time(5)  # the shopper gives up at the password
    poll(lane, clock)
    view = lane.view
    assert view.screen is Screen.PAY and view.payment is None
    assert view.notice.key == "declined_declined" and view.takes_codes
    assert not lane.checkout.cart.frozen and sales(demo_kiosk) == 0
    # A fresh code is taken at once.
    lane.scan(wallet.code("alipay"))
    assert lane.view.screen is Screen.RECEIPT and len(wallet.charges) == 2
    assert wallet.paid() == 1


@pytest.mark.parametrize("decline", ["insufficient_funds", "code_expired", "code_used"])
def test_a_code_declined_at_once_says_why_on_the_pay_screen(lane_of, wallet, decline,
                                                           demo_kiosk):
    lane = at_pay(lane_of(wallets=("wechat",)))
    code = wallet.code("wechat", "insufficient" if decline == "insufficient_funds"
                       else "approve", age_s=90 if decline == "code_expired" else 0)
    if decline == "code_used":
        wallet.provider.wallets.redeem(code, "an-earlier-sale")
    lane.scan(code)
    view = lane.view
    assert view.screen is Screen.PAY and view.notice.key == f"declined_{decline}"
    # One wallet: the QR is back at once beside the reason, to scan instead.
    assert view.payment is not None and view.payment.mode == "qr" and view.payment.qr_payload
    assert sales(demo_kiosk) == 0 and wallet.paid() == 0
    charged = wallet.order(wallet.charges[0])
    assert charged.reverses >= 1 and charged.status == "closed"  # never left waiting


def test_the_deadline_reverses_and_confirms(lane_of, wallet, clock, demo_kiosk):
    demo_kiosk.settings.payment.code_deadline_s = 30
    lane = lane_of()
    assert lane.p.timings.code_deadline.total_seconds() == 30  # payment.code_deadline_s
    at_pay(lane)
    lane.scan(wallet.code("wechat", "never"))
    no = wallet.charges[0]
    for _ in range(17):  # 27 s: within the deadline, no "still there?" either
        poll(lane, clock)
        assert lane.view.screen is Screen.PAY and lane.view.payment.mode == "code"
    assert wallet.order(no).reverses == 0
    clock.advance(seconds=5)
    lane.tick()
    # The wallet refuses the first reverse while its password prompt is open (it withdraws
    # the prompt: WeChat USERPAYING): still closing, and the next poll's reverse is final.
    assert wallet.order(no).reverses >= 1
    poll(lane, clock)
    view = lane.view
    assert view.screen is Screen.PAY and view.payment is None
    assert view.notice.key == "payment_code_timeout"
    assert wallet.order(no).status == "closed" and wallet.paid() == 0
    assert sales(demo_kiosk) == 0


def test_the_countdown_is_the_monotonic_deadline_whatever_the_wall_clock_does(
        lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    lane.scan(wallet.code("wechat", "never"))
    no = wallet.charges[0]
    poll(lane, clock, 10)
    clock.step(hours=-3)  # NTP or someone at the settings: no time passes
    lane.tick()
    shown = (lane.view.payment.deadline - clock.now()).total_seconds()
    assert shown == pytest.approx(50, abs=1)  # still 50 s to go on screen
    clock.step(hours=6)  # forward past the shown deadline: nothing ends early
    lane.tick()
    assert lane.view.payment is not None and wallet.order(no).reverses == 0
    poll(lane, clock, 51)  # the monotonic deadline: reversed
    assert wallet.order(no).reverses >= 1
    poll(lane, clock)
    assert lane.view.payment is None and wallet.order(no).status == "closed"


def test_no_still_there_while_the_shopper_confirms_within_the_deadline(lane_of, clock,
                                                                      demo_kiosk):
    """On ``WalletFake``: the simulator's wallet refuses a reverse once (it withdraws the
    password prompt), and this case needs a reverse refused for 48 s running, longer than
    ``ui.idle_s``, as a provider that keeps answering USERPAYING would."""
    fake = WalletFake()
    demo_kiosk.settings.ui.idle_s = 30
    lane = at_pay(lane_of(provider=fake))
    fake.next = "paying"
    lane.scan(WECHAT_CODE)
    fake.reverse_refusals = 100
    lane.cancel_payment()  # refused: mid-password, closing
    for _ in range(30):  # 48 s, idle for longer than ui.idle_s
        poll(lane, clock)
        assert lane.view.screen is Screen.PAY


def test_cancel_while_paying_is_retried_until_confirmed(lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    lane.scan(wallet.code("alipay", "password:30"))
    no = wallet.charges[0]
    lane.cancel_payment()  # refused: the shopper is typing the password
    view = lane.view
    assert view.screen is Screen.PAY and view.payment is not None and view.payment.closing
    assert view.notice.key == "payment_code_reversing"  # never "cancelled" yet
    assert wallet.order(no).reverses == 1
    poll(lane, clock)
    view = lane.view
    assert view.payment is None and view.notice.key == "payment_code_cancelled"
    # The refused reverse withdrew the prompt: the next poll's query (or reverse) finds
    # the charge closed, and only then does the screen say "cancelled".
    assert wallet.order(no).status == "closed"
    wallet.phone_time(30)  # the password typed after all: too late, nothing is taken
    assert wallet.paid() == 0 and len(wallet.charges) == 1 and sales(demo_kiosk) == 0


def test_a_code_with_the_kiosks_clock_wrong_is_never_charged(lane_of, wallet, clock,
                                                             demo_kiosk):
    # As a QR is refused while the clock reads 1970 (issue 16, fault 3): the provider would
    # refuse the signed request and the exit pass would be dated 1970. Both ways to pay go
    # through the same checks; the payment code once skipped this one.
    lane = at_pay(lane_of(wallets=("wechat",)))
    now = clock.now()
    clock.step(seconds=(datetime(1970, 1, 1, tzinfo=now.tzinfo) - now).total_seconds())
    lane.scan(wallet.code("wechat"), how="camera")
    assert wallet.charges == [] and wallet.paid() == 0
    assert lane.view.notice is not None and lane.view.notice.key == "clock_wrong"
    assert demo_kiosk.db.execute("SELECT count(*) FROM payments WHERE mode = 'code'"
                                 ).fetchone()[0] == 0


def test_a_lost_reply_is_queried_never_charged_again(lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    lane.scan(wallet.code("wechat", lose_reply=True))  # charged; the answer never arrives
    assert lane.view.payment.mode == "code"
    poll(lane, clock)
    assert lane.view.screen is Screen.RECEIPT and len(wallet.charges) == 1
    assert wallet.order(wallet.charges[0]).charge_calls == 1 and wallet.paid() == 1


# -- what starts a charge, and what does not -------------------------------------------------

def test_a_code_on_the_shopping_screen_is_neither_sent_nor_recorded(lane_of, wallet, demo_kiosk):
    lane = lane_of()
    lane.scan(MILK)
    before = events(demo_kiosk)
    code = wallet.code("wechat")
    for how in ("camera", "serial", "wedge", "manual"):
        lane.scan(code, how=how)
        assert lane.view.notice.key == "payment_code_not_now"
    lane.start()
    assert events(demo_kiosk) == before and wallet.charges == []
    assert wallet.provider.wallets.codes[code].used_by == ""
    assert len(lane.view.priced.lines) == 1


def test_a_code_read_again_after_its_charge_is_never_sent_again(lane_of, wallet, clock,
                                                                 demo_kiosk):
    """A code is single use: declined (insufficient balance), then read again -- the phone
    still in front of the camera, or the same code through the serial scanner -- the lane
    does not send it a second time; it says 'refresh the code', and a fresh code pays."""
    lane = at_pay(lane_of())
    code = wallet.code("wechat", "insufficient")
    lane.scan(code, how="serial")
    assert lane.view.notice.key == "declined_insufficient_funds"
    lane.scan(code, how="camera")
    assert lane.view.notice.key == "declined_code_used" and lane.view.screen is Screen.PAY
    assert len(wallet.charges) == 1
    lane.scan(wallet.code("wechat"), how="camera")
    assert lane.view.screen is Screen.RECEIPT and len(wallet.charges) == 2


def test_a_code_not_sent_because_the_qr_could_not_be_closed_can_be_shown_again(
        lane_of, clock, demo_kiosk):
    """On ``WalletFake`` (a provider whose close fails while its charge would work): the QR
    order cannot be closed, so the code is not charged (never two charges); it was never
    sent, so once the close goes through the same code is charged -- not refused as used."""
    fake = WalletFake()
    lane = at_pay(lane_of(provider=fake))
    fake.close_fails = True
    lane.scan(WECHAT_CODE)
    assert fake.charges == [] and lane.view.notice.key != "declined_code_used"
    fake.close_fails = False
    lane.scan(WECHAT_CODE)
    assert lane.view.screen is Screen.RECEIPT and len(fake.charges) == 1


def test_a_gs1_label_shaped_like_a_code_is_goods_never_charged(lane_of, wallet, demo_kiosk):
    """A GS1-128 label (]C1) whose element string is 18 digits from 11 -- (11)260101
    (10)12345678, a WeChat code's shape -- is goods: on the shopping screen the catalogue
    refuses it (not 'show your payment code on the pay screen'), on the pay screen it is
    not sent to any wallet."""
    lane = lane_of()
    lane.scan(MILK)
    lane.scan("]C1112601011012345678", how="serial")
    assert lane.view.notice.key != "payment_code_not_now"
    lane = at_pay(lane)
    lane.scan("]C1112601011012345678", how="serial")
    assert wallet.charges == [] and lane.view.payment.mode != "code"


def test_a_payment_code_sent_as_gs1_is_refused_as_goods_and_kept_nowhere(
        lane_of, wallet, caplog, demo_kiosk, data_dir: Path):
    """A scanner that reports every Code 128 as GS1-128 (]C1) turns a real payment code into
    goods: refused by the catalogue, and its digits reach no log, event, file or view."""
    caplog.set_level(logging.DEBUG)
    lane = lane_of()
    lane.scan(MILK)
    lane.scan("]C1" + CANARY, how="serial")
    lane.scan(CANARY, symbology="]C1", how="camera")
    assert lane.view.notice.key != "payment_code_not_now" and wallet.charges == []
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.getMessage()
    for kind, payload in events(demo_kiosk):
        assert CANARY not in payload, kind
    demo_kiosk.db.execute("PRAGMA wal_checkpoint(FULL)")
    for path in (p for p in sorted(data_dir.rglob("*")) if p.is_file()):
        assert CANARY.encode() not in path.read_bytes(), path
    assert CANARY not in repr(lane.view)


def test_a_code_while_a_qr_payment_is_open_closes_the_qr_first(lane_of, demo_kiosk):
    """On ``WalletFake``: what is asserted is the order of the provider calls (the QR's close
    before the code's charge), which only an in-process provider records; the simulator
    shows the end state only (test_a_code_paid_at_once_goes_to_the_receipt)."""
    fake = WalletFake()
    lane = at_pay(lane_of(provider=fake))
    qr_order = lane.view.payment.out_trade_no
    lane.scan(ALIPAY_CODE)
    assert fake.calls.index(("close", qr_order)) < fake.calls.index(
        ("charge", fake.charges[0]))
    assert lane.view.screen is Screen.RECEIPT and sales(demo_kiosk) == 1


def test_a_qr_paid_meanwhile_is_the_sale_and_the_code_is_not_charged(lane_of, wallet,
                                                                     demo_kiosk):
    lane = at_pay(lane_of())
    wallet.provider.pay(wallet.order(lane.view.payment.out_trade_no))  # the phone scanned
    code = wallet.code("wechat")
    lane.scan(code)
    assert lane.view.screen is Screen.RECEIPT and wallet.charges == []
    assert wallet.provider.wallets.codes[code].used_by == ""
    assert sales(demo_kiosk) == 1 and wallet.paid() == 1


def test_a_second_code_while_one_is_charged_is_dropped(lane_of, wallet, clock):
    lane = at_pay(lane_of())
    lane.scan(wallet.code("wechat", "password:30"))
    lane.scan(wallet.code("wechat"))
    lane.typed_code(wallet.code("alipay"))
    assert len(wallet.charges) == 1 and lane.view.payment.mode == "code"


def test_a_wallet_the_adapter_does_not_take_is_refused_and_never_sent(lane_of, wallet):
    lane = at_pay(lane_of())
    code = wallet.code("unionpay")  # the adapter takes wechat and alipay (code_wallets)
    lane.scan(code)
    assert lane.view.notice.key == "payment_code_not_taken" and wallet.charges == []
    assert wallet.provider.wallets.codes[code].used_by == ""


def test_the_store_code_ranges_are_the_lanes(demo_kiosk, wallet):
    """payment.code_ranges decides what is a payment code: a store that narrows WeChat's
    range makes a 13... code goods again (refused by the catalogue, never charged)."""
    demo_kiosk.settings.payment.code_ranges = {"wechat": {"prefixes": ["10"],
                                                          "lengths": [18]}}
    lane = bootstrap.build_lane(demo_kiosk, provider=wallet.adapter,
                                receipt_notice=lambda: None)
    lane.boot()
    lane.scan(MILK)
    wallet.code("wechat", code=WECHAT_CODE)
    lane.scan(WECHAT_CODE)  # 13...: not a payment code in this store: goods, refused
    assert lane.view.notice.key == "refused"
    at_pay(lane)
    lane.scan(WECHAT_CODE)
    assert wallet.charges == [] and lane.view.payment.mode == "qr"
    lane.scan(wallet.code("wechat", code=WECHAT_CODE_2))  # 10...
    assert len(wallet.charges) == 1


# -- the canary: a payment code is a credential -----------------------------------------------

CANARY = "147258369147258369"  # a WeChat payment code nobody else uses


def test_a_payment_code_never_reaches_a_log_an_event_the_db_or_the_view(
        demo_kiosk, wallet, clock, caplog, data_dir: Path):
    """The canary: a payment code read by the real camera pipeline (rendered frames, the
    real decoder, the two-read rule), a serial scanner on a real pty (whole, and cut off
    before its suffix), the keyboard wedge (whole, and without Enter) and the keypad, on
    the shopping screen (refused) and on the pay screen (charged), is found afterwards in
    no log record, outbox event, file of the data directory (db, -wal, -shm) or view.
    The simulator's wallets know the codes: each charged path's decline names the code's
    own behaviour (another code would be code_invalid), and the canary was never issued."""
    caplog.set_level(logging.DEBUG)
    executor = InlineLane(lambda: bootstrap.build_lane(demo_kiosk, provider=wallet.adapter,
                                                       receipt_notice=lambda: None))
    executor.start()
    lane = executor.lane
    router = Router()
    router.attach(executor)
    views = []
    lane.on_view(views.append)
    source = GeneratedSource([], fps=30)
    camera = Camera(lambda: source, lost_after_s=5.0, backoff_s=0.1)
    scanner = CameraScanner(camera, FrameDecoder(Decoder("combined")), ReadAcceptor(),
                            router.scan, router.scan_rejected)
    wedge = KeyboardWedge(router.scan, on_typing=lambda _t: None,
                          on_reject=router.scan_rejected)
    pty = VirtualSerialScanner().__enter__()
    serial = SerialScanner(pty.port, router.scan, router.scan_rejected, backoff_s=0.05,
                           backoff_max_s=0.2, partial_timeout=0.2)

    def pump_until(condition, what: str) -> None:
        end = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            executor.pump(0.05)

    def show_camera(code: str, then) -> None:
        source.show(code, frames=20)
        pump_until(then, f"the camera to read {len(code)} digits")
        pump_until(lambda: not scanner.acceptor.in_view(), "the code to leave the view")

    def type_wedge(code: str, unterminated: bool = False) -> None:
        t = time.monotonic()
        for ch in code:
            wedge.key(ch, t)
            t += 0.005
        if unterminated:
            wedge.tick(t + 1.0)  # no Enter: refused as "no_suffix", never typed
        else:
            wedge.key("\r", t)
        executor.pump()

    scanner.start()
    camera.start()
    serial.start()
    try:
        pump_until(lambda: serial.health().state == "ok", "the serial port")
        lane.scan(MILK)
        notices = lambda: sum(1 for v in views if v.notice and  # noqa: E731
                              v.notice.key == "payment_code_not_now")
        show_camera(CANARY, lambda: notices() >= 1)  # shopping screen: refused, not sent
        pty.send(CANARY)
        pump_until(lambda: notices() >= 2, "the serial scan")
        pty.send_raw(CANARY.encode())  # no suffix: refused as incomplete (logged)
        pump_until(lambda: any(v.notice and v.notice.key == "refused_unreadable"
                               for v in views), "the incomplete serial read")
        type_wedge(CANARY)
        type_wedge(CANARY, unterminated=True)
        lane.typed_code(CANARY)
        assert wallet.charges == [] and notices() >= 4
        lane.pay()
        lane.choose_wallet("wechat")
        codes = [CANARY[:-1] + str(d) for d in range(4)]  # fresh codes, one per path
        wallet.code("wechat", "insufficient", code=codes[0])
        wallet.code("wechat", code=codes[1])
        wallet.provider.wallets.redeem(codes[1], "an-earlier-sale")  # used already
        wallet.code("wechat", code=codes[2], age_s=90)  # expired
        wallet.code("wechat", "password:5", code=codes[3])
        show_camera(codes[0], lambda: len(wallet.charges) == 1)
        pty.send(codes[1])
        pump_until(lambda: len(wallet.charges) == 2, "the serial charge")
        type_wedge(codes[2])
        lane.typed_code(codes[3])
        wallet.phone_time(5)  # the password typed
        poll(lane, clock)
        assert lane.view.screen is Screen.RECEIPT
    finally:
        serial.stop()
        camera.stop()
        scanner.stop()
        pty.__exit__(None, None, None)
    # Each path reached the provider once, with exactly its code.
    assert [wallet.order(no).decline for no in wallet.charges] == [
        "insufficient_funds", "code_used", "code_expired", ""]
    assert all(wallet.order(no).charge_calls == 1 for no in wallet.charges)
    leaks = [CANARY, *codes, CANARY[:12], codes[0][6:]]
    for record in caplog.records:
        text = record.getMessage() + (str(record.exc_info) if record.exc_info else "")
        assert not any(code in text for code in leaks), text
    for kind, payload in events(demo_kiosk):
        assert not any(code in payload for code in leaks), kind
    files = [path for path in sorted(data_dir.rglob("*")) if path.is_file()]
    assert any(path.name.endswith("-wal") for path in files)  # the WAL is read too
    for path in files:
        blob = path.read_bytes()
        assert not any(code.encode() in blob for code in leaks), path
    for view in views:
        assert not any(code in repr(view) for code in leaks)


@pytest.mark.parametrize("answer", ["echo_refused", "echo_unknown"])
def test_a_provider_error_quoting_the_code_is_stored_and_logged_without_it(
        answer, lane_of, clock, caplog, demo_kiosk, data_dir: Path):
    """On ``WalletFake``: a store gateway whose error message quotes the request (its 4xx
    'auth_code 1472... is not a valid code', a 5xx from upstream) is a provider the simulator
    does not play. The message is kept as the payment's last error and logged for staff;
    the code in it must not be: it is written as the wallet and length only."""
    caplog.set_level(logging.DEBUG)
    fake = WalletFake()
    lane = at_pay(lane_of(provider=fake))
    fake.next = answer
    lane.scan(CANARY)
    poll(lane, clock)
    assert fake.codes == [CANARY]
    assert lane.view.screen is Screen.PAY  # nothing taken; the shopper can pay again
    for record in caplog.records:
        text = record.getMessage() + (str(record.exc_info) if record.exc_info else "")
        assert CANARY not in text, text
    demo_kiosk.db.execute("PRAGMA wal_checkpoint(FULL)")
    for path in (p for p in sorted(data_dir.rglob("*")) if p.is_file()):
        assert CANARY.encode() not in path.read_bytes(), path
    assert CANARY not in repr(lane.view)


def test_an_adapter_that_raises_after_the_code_was_sent_leaves_no_trade_waiting(
        lane_of, clock, caplog, demo_kiosk):
    """On ``WalletFake`` (an adapter bug the simulator cannot play): the charge was taken,
    the shopper is typing the password, and the adapter raises something other than a
    PaymentError on the reply. The outcome is unknown, so the lane asks for confirmation on
    the phone and polls as for a lost reply -- not the error screen, where nothing polls
    and the trade waits at the provider -- and the code reaches no log."""
    caplog.set_level(logging.DEBUG)
    fake = WalletFake()
    lane = at_pay(lane_of(provider=fake))
    fake.next = "adapter_bug"
    lane.scan(CANARY)
    assert lane.view.screen is Screen.PAY and lane.view.payment.mode == "code"
    no = fake.charges[0]
    fake.orders[no]["status"] = "paid"  # the password typed
    poll(lane, clock)
    assert lane.view.screen is Screen.RECEIPT and fake.charges == [no] and sales(demo_kiosk) == 1
    for record in caplog.records:
        text = record.getMessage() + (str(record.exc_info) if record.exc_info else "")
        assert CANARY not in text, text


def test_payment_code_settings_are_checked():
    from app.config import SettingsError, load_settings

    s = load_settings(data_dir=Path("/nonexistent"), environ={})
    assert s.payment.code_deadline_s == 60
    assert [r.wallet for r in s.payment.ranges()] == ["wechat", "alipay", "unionpay"]
    with pytest.raises(SettingsError, match="code_deadline_s"):
        load_settings(data_dir=Path("/nonexistent"),
                      environ={"KIOSK_PAYMENT__CODE_DEADLINE_S": "20"})
    with pytest.raises(SettingsError, match="code_ranges"):
        load_settings(data_dir=Path("/nonexistent"), environ={
            "KIOSK_PAYMENT__CODE_RANGES": '{ wechat = { prefixes = ["1x"], lengths = [18] } }'})
    assert clean_scan(CANARY).text == CANARY
