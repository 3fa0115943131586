"""Paying with the shopper's payment code (付款码) on the lane, headless (issue 18).

Real SQLite in a temp dir and the real lane, desk and repositories; the clock is
moved by hand. The wallet is ``WalletFake``, an in-process provider implementing
the payment port (``code_wallets``/``charge_code``/``reverse`` beside the QR
calls): the simulator's payment-code support is built on another branch
(wt18-gwsim). Every test takes the provider from the ``wallet`` fixture, so
switching them to the simulator adapter is a change to that fixture alone.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from app import bootstrap
from app.domain.payment import PaymentError, ProviderStatus, ProviderView
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
    """An in-process payment provider with a wallet behind it, scripted per charge:
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

    # the shopper's side
    def shopper(self, no: str, approve: bool) -> None:
        o = self.orders[no]
        assert o["status"] == "paying"
        o["status"] = "paid" if approve else "declined"
        if not approve:
            o["decline"] = "declined"

    def pay_qr(self, no: str) -> None:
        self.orders[no]["status"] = "paid"


@pytest.fixture
def wallet():
    return WalletFake()


@pytest.fixture
def lane_of(demo_kiosk, wallet):
    def make(wallets=("wechat", "alipay")):
        demo_kiosk.settings.payment.wallets = list(wallets)
        lane = bootstrap.build_lane(demo_kiosk, provider=wallet, receipt_notice=lambda: None)
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

def test_the_pay_screen_offers_the_qr_and_the_payment_code(lane_of, wallet):
    lane = at_pay(lane_of())
    assert lane.view.takes_codes and lane.view.payment.qr_payload
    wallet.code_wallets = frozenset()
    lane2 = lane_of()
    lane2.abandon("test")
    at_pay(lane2)
    assert not lane2.view.takes_codes


# -- each outcome on screen ------------------------------------------------------------------

def test_a_code_paid_at_once_goes_to_the_receipt(lane_of, wallet, demo_kiosk):
    lane = at_pay(lane_of())
    qr_order = lane.view.payment.out_trade_no
    lane.scan(WECHAT_CODE, how="camera")
    assert lane.view.screen is Screen.RECEIPT
    assert len(wallet.charges) == 1 and wallet.orders[qr_order]["status"] == "closed"
    assert sales(demo_kiosk) == 1
    started = [p for t, p in events(demo_kiosk) if t == "payment_started"]
    assert started and '"code"' in started[-1] and "wechat" in started[-1]


def test_password_then_paid(lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    view = lane.view
    assert view.screen is Screen.PAY and view.payment.mode == "code"
    assert view.payment.wallet == "wechat" and not view.payment.qr_payload
    assert view.payment.deadline is not None and view.notice is None
    assert (view.payment.deadline - clock.now()).total_seconds() == pytest.approx(60, abs=1)
    poll(lane, clock)
    assert lane.view.payment.mode == "code"  # still confirming
    wallet.shopper(wallet.charges[0], approve=True)
    poll(lane, clock)
    assert lane.view.screen is Screen.RECEIPT and sales(demo_kiosk) == 1


def test_password_then_declined_goes_back_to_the_pay_screen(lane_of, wallet, clock,
                                                            demo_kiosk):
    lane = at_pay(lane_of())
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    wallet.shopper(wallet.charges[0], approve=False)
    poll(lane, clock)
    view = lane.view
    assert view.screen is Screen.PAY and view.payment is None
    assert view.notice.key == "declined_declined" and view.takes_codes
    assert not lane.checkout.cart.frozen and sales(demo_kiosk) == 0
    # A fresh code is taken at once.
    lane.scan(WECHAT_CODE_2)
    assert lane.view.screen is Screen.RECEIPT and len(wallet.charges) == 2


@pytest.mark.parametrize("decline", ["insufficient_funds", "code_expired", "code_used"])
def test_a_code_declined_at_once_says_why_on_the_pay_screen(lane_of, wallet, decline,
                                                           demo_kiosk):
    lane = at_pay(lane_of(wallets=("wechat",)))
    wallet.next = decline
    lane.scan(WECHAT_CODE)
    view = lane.view
    assert view.screen is Screen.PAY and view.notice.key == f"declined_{decline}"
    # One wallet: the QR is back at once beside the reason, to scan instead.
    assert view.payment is not None and view.payment.mode == "qr" and view.payment.qr_payload
    assert sales(demo_kiosk) == 0
    assert ("reverse", wallet.charges[0]) in wallet.calls  # closed, never left waiting


def test_the_deadline_reverses_and_confirms(lane_of, wallet, clock, demo_kiosk):
    demo_kiosk.settings.payment.code_deadline_s = 30
    lane = lane_of()
    assert lane.p.timings.code_deadline.total_seconds() == 30  # payment.code_deadline_s
    at_pay(lane)
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    no = wallet.charges[0]
    for _ in range(17):  # 27 s: within the deadline, no "still there?" either
        poll(lane, clock)
        assert lane.view.screen is Screen.PAY and lane.view.payment.mode == "code"
    clock.advance(seconds=5)
    lane.tick()
    view = lane.view
    assert view.screen is Screen.PAY and view.payment is None
    assert view.notice.key == "payment_code_timeout"
    assert ("reverse", no) in wallet.calls and wallet.orders[no]["status"] == "closed"
    assert sales(demo_kiosk) == 0


def test_the_countdown_is_the_monotonic_deadline_whatever_the_wall_clock_does(
        lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    no = wallet.charges[0]
    poll(lane, clock, 10)
    clock.step(hours=-3)  # NTP or someone at the settings: no time passes
    lane.tick()
    shown = (lane.view.payment.deadline - clock.now()).total_seconds()
    assert shown == pytest.approx(50, abs=1)  # still 50 s to go on screen
    clock.step(hours=6)  # forward past the shown deadline: nothing ends early
    lane.tick()
    assert lane.view.payment is not None and ("reverse", no) not in wallet.calls
    poll(lane, clock, 51)  # the monotonic deadline: reversed
    assert lane.view.payment is None and ("reverse", no) in wallet.calls


def test_no_still_there_while_the_shopper_confirms_within_the_deadline(lane_of, wallet,
                                                                      clock, demo_kiosk):
    demo_kiosk.settings.ui.idle_s = 30
    lane = at_pay(lane_of())
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    wallet.reverse_refusals = 100
    lane.cancel_payment()  # refused: mid-password, closing
    for _ in range(30):  # 48 s, idle for longer than ui.idle_s
        poll(lane, clock)
        assert lane.view.screen is Screen.PAY


def test_cancel_while_paying_is_retried_until_confirmed(lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    no = wallet.charges[0]
    wallet.reverse_refusals = 2
    lane.cancel_payment()
    view = lane.view
    assert view.screen is Screen.PAY and view.payment is not None and view.payment.closing
    assert view.notice.key == "payment_code_reversing"  # never "cancelled" yet
    poll(lane, clock)
    assert lane.view.payment is not None and lane.view.notice.key == "payment_code_reversing"
    poll(lane, clock)
    view = lane.view
    assert view.payment is None and view.notice.key == "payment_code_cancelled"
    assert wallet.calls.count(("reverse", no)) == 3 and wallet.orders[no]["status"] == "closed"
    assert len(wallet.charges) == 1 and sales(demo_kiosk) == 0


def test_a_lost_reply_is_queried_never_charged_again(lane_of, wallet, clock, demo_kiosk):
    lane = at_pay(lane_of())
    wallet.next = "lost"
    lane.scan(WECHAT_CODE)
    assert lane.view.payment.mode == "code"
    poll(lane, clock)
    assert lane.view.screen is Screen.RECEIPT and len(wallet.charges) == 1


# -- what starts a charge, and what does not -------------------------------------------------

def test_a_code_on_the_shopping_screen_is_neither_sent_nor_recorded(lane_of, wallet, demo_kiosk):
    lane = lane_of()
    lane.scan(MILK)
    before = events(demo_kiosk)
    for how in ("camera", "serial", "wedge", "manual"):
        lane.scan(WECHAT_CODE, how=how)
        assert lane.view.notice.key == "payment_code_not_now"
    lane.start()
    assert events(demo_kiosk) == before and wallet.charges == []
    assert len(lane.view.priced.lines) == 1


def test_a_code_while_a_qr_payment_is_open_closes_the_qr_first(lane_of, wallet, demo_kiosk):
    lane = at_pay(lane_of())
    qr_order = lane.view.payment.out_trade_no
    lane.scan(ALIPAY_CODE)
    assert wallet.calls.index(("close", qr_order)) < wallet.calls.index(
        ("charge", wallet.charges[0]))
    assert lane.view.screen is Screen.RECEIPT and sales(demo_kiosk) == 1


def test_a_qr_paid_meanwhile_is_the_sale_and_the_code_is_not_charged(lane_of, wallet,
                                                                     demo_kiosk):
    lane = at_pay(lane_of())
    wallet.pay_qr(lane.view.payment.out_trade_no)
    lane.scan(WECHAT_CODE)
    assert lane.view.screen is Screen.RECEIPT and wallet.charges == []
    assert sales(demo_kiosk) == 1


def test_a_second_code_while_one_is_charged_is_dropped(lane_of, wallet, clock):
    lane = at_pay(lane_of())
    wallet.next = "paying"
    lane.scan(WECHAT_CODE)
    lane.scan(WECHAT_CODE_2)
    lane.typed_code(ALIPAY_CODE)
    assert len(wallet.charges) == 1 and lane.view.payment.mode == "code"


def test_a_wallet_the_adapter_does_not_take_is_refused_and_never_sent(lane_of, wallet):
    lane = at_pay(lane_of())
    lane.scan(UNIONPAY_CODE)
    assert lane.view.notice.key == "payment_code_not_taken" and wallet.charges == []


def test_the_store_code_ranges_are_the_lanes(demo_kiosk, wallet):
    """payment.code_ranges decides what is a payment code: a store that narrows WeChat's
    range makes a 13... code goods again (refused by the catalogue, never charged)."""
    demo_kiosk.settings.payment.code_ranges = {"wechat": {"prefixes": ["10"],
                                                          "lengths": [18]}}
    lane = bootstrap.build_lane(demo_kiosk, provider=wallet, receipt_notice=lambda: None)
    lane.boot()
    lane.scan(MILK)
    lane.scan(WECHAT_CODE)  # 13...: not a payment code in this store: goods, refused
    assert lane.view.notice.key == "refused"
    at_pay(lane)
    lane.scan(WECHAT_CODE)
    assert wallet.charges == [] and lane.view.payment.mode == "qr"
    lane.scan(WECHAT_CODE_2)  # 10...
    assert len(wallet.charges) == 1


# -- the canary: a payment code is a credential -----------------------------------------------

CANARY = "147258369147258369"  # a WeChat payment code nobody else uses


def test_a_payment_code_never_reaches_a_log_an_event_the_db_or_the_view(
        demo_kiosk, wallet, clock, caplog, data_dir: Path):
    """The canary: a payment code read by the real camera pipeline (rendered frames, the
    real decoder, the two-read rule), a serial scanner on a real pty (whole, and cut off
    before its suffix), the keyboard wedge (whole, and without Enter) and the keypad, on
    the shopping screen (refused) and on the pay screen (charged), is found afterwards in
    no log record, outbox event, file of the data directory (db, -wal, -shm) or view."""
    caplog.set_level(logging.DEBUG)
    executor = InlineLane(lambda: bootstrap.build_lane(demo_kiosk, provider=wallet,
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
        wallet.next = "insufficient_funds"
        show_camera(codes[0], lambda: len(wallet.charges) == 1)
        wallet.next = "code_used"
        pty.send(codes[1])
        pump_until(lambda: len(wallet.charges) == 2, "the serial charge")
        wallet.next = "code_expired"
        type_wedge(codes[2])
        wallet.next = "paying"
        lane.typed_code(codes[3])
        wallet.shopper(wallet.charges[-1], approve=True)
        poll(lane, clock)
        assert lane.view.screen is Screen.RECEIPT
    finally:
        serial.stop()
        camera.stop()
        scanner.stop()
        pty.__exit__(None, None, None)
    assert wallet.codes == codes  # each path reached the provider, once
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
