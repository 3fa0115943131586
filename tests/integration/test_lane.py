"""The lane's shopper flow, headless: the same object the touch screen drives.

Real SQLite in a temp dir, the payment simulator on 127.0.0.1, a fixed clock
moved by hand (so inactivity and expiry are exact, not slept).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests

from app import bootstrap
from app.config import load_settings
from app.domain.money import Money
from app.lane import Lane, LaneWorker, Screen
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from tests.helpers import wait_for

MILK = "6900000000014"  # 6.50, member 5.90
MILK_KEY = "0" + MILK  # GTIN-14, how the catalogue keys it
BEER = "6900000001769"  # 18+


@pytest.fixture
def make_lane(demo_kiosk, sim, clock):
    made = []

    def make(notice=None, wallets=("wechat", "alipay"), lookup=None, kiosk=None):
        k = kiosk or demo_kiosk
        provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
        k.settings.payment.wallets = list(wallets)
        lane = bootstrap.build_lane(k, provider=provider, receipt_notice=notice or (lambda: None))
        if lookup is not None:
            lane.p.phone_lookup = lookup
        lane.boot()
        made.append(lane)
        return lane
    return make


def events(kiosk) -> list[str]:
    return [r[0] for r in kiosk.db.execute("SELECT type FROM outbox ORDER BY seq")]


def pay_on_phone(sim, lane) -> None:
    no = lane.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok


def test_a_shopper_starts_skips_membership_scans_and_edits_the_cart(make_lane, demo_kiosk):
    lane = make_lane()
    assert lane.view.screen is Screen.ATTRACT
    lane.start()
    assert lane.view.screen is Screen.MEMBER
    lane.skip_member()
    lane.scan(MILK, "]E0")
    view = lane.view
    assert view.screen is Screen.SHOPPING and view.notice.key == "added"
    (line,) = view.priced.lines
    assert line.line.product.code == MILK_KEY and view.priced.total == Money(650, "CNY")
    lane.plus(line.line.line_id)
    lane.plus(line.line.line_id)
    assert lane.view.priced.lines[0].line.quantity == 3
    lane.minus(line.line.line_id)
    assert lane.view.priced.lines[0].line.quantity == 2
    lane.remove(line.line.line_id)
    assert lane.view.priced.lines == () and lane.view.priced.total == Money(0, "CNY")
    assert events(demo_kiosk) == ["session_started", "item_scanned", "quantity_changed",
                                  "quantity_changed", "quantity_changed", "item_removed"]


def test_scanning_a_product_on_the_attract_screen_starts_a_session(make_lane, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    assert lane.view.screen is Screen.SHOPPING and len(lane.view.priced.lines) == 1
    assert demo_kiosk.db.execute("SELECT count(*) FROM sessions WHERE state = 'open'"
                                 ).fetchone()[0] == 1


def test_an_unknown_or_bad_code_says_so_and_changes_nothing(make_lane, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    lane.scan("4006381333931")  # valid check digit, not sold here
    notice = lane.view.notice
    assert (notice.key, notice.level) == ("refused", "error")
    assert dict(notice.values)["code"] == "unknown_product"
    assert dict(notice.values)["message_zh"] and dict(notice.values)["message_en"]
    lane.scan("6900000000015")  # wrong check digit
    assert lane.view.notice.key == "refused"
    assert dict(lane.view.notice.values)["code"] != "unknown_product"
    lane.typed_code("\x1b[2J; DROP TABLE products")
    assert lane.view.notice.key == "refused"
    assert len(lane.view.priced.lines) == 1
    assert events(demo_kiosk).count("scan_rejected") == 3


def test_a_member_by_phone_gets_member_prices(make_lane, demo_kiosk):
    lane = make_lane(lookup=lambda phone: "M000001" if phone == "13800000001" else None)
    lane.start()
    lane.member_phone("1380000")
    assert lane.view.notice.key == "member_phone_invalid" and lane.view.screen is Screen.MEMBER
    lane.member_phone("13900000009")
    assert lane.view.notice.key == "member_unknown"
    lane.member_phone("138 0000 0001")
    assert lane.view.screen is Screen.SHOPPING and lane.view.member_id == "M000001"
    lane.scan(MILK)
    assert lane.view.priced.total == Money(590, "CNY")


def test_an_age_restricted_item_waits_for_staff_before_paying(make_lane, demo_kiosk):
    lane = make_lane()
    lane.scan(BEER)
    lane.pay()
    assert lane.view.screen is Screen.AGE_CHECK
    assert lane.view.age_lines[0][3] == 18
    lane.approve_age("clerk-7")
    # Straight on to paying: the shopper does not tap Pay a second time (issue 19).
    assert lane.view.screen is Screen.PAY and lane.view.age_lines == ()
    assert "age_check_approved" in events(demo_kiosk)


def test_a_whole_sale_paid_through_the_simulator(make_lane, demo_kiosk, sim, clock):
    lane = make_lane()
    lane.scan(MILK)
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.PAY and lane.view.payment is None
    assert lane.view.wallets == ("wechat", "alipay")
    lane.choose_wallet("alipay")
    pv = lane.view.payment
    assert pv.qr_payload.endswith(pv.out_trade_no) and pv.amount == Money(1300, "CNY")
    assert pv.wallet == "alipay" and lane.view.frozen
    lane.scan(MILK)  # a scan while paying adds nothing
    assert lane.checkout.cart.item_count() == 2
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    view = lane.view
    assert view.screen is Screen.RECEIPT and view.receipt.total == Money(1300, "CNY")
    assert view.receipt.printed is None and not view.receipt.show_pass
    lane.receipt_outcome(1, view.receipt.order_id, True, "")
    assert lane.view.receipt.printed is True
    clock.advance(seconds=16)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.view.priced is None
    kinds = events(demo_kiosk)
    tail = [k for k in kinds if k in ("payment_started", "payment_paid", "session_ended",
                                      "receipt_printed")]
    assert tail == ["payment_started", "payment_paid", "session_ended", "receipt_printed"]
    assert demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()[0] == "paid"


def test_a_failed_receipt_puts_the_exit_pass_on_screen(make_lane, sim, clock):
    lane = make_lane(wallets=("wechat",))
    lane.scan(MILK)
    lane.pay()  # one wallet: straight to the QR
    assert lane.view.payment is not None
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    receipt = lane.view.receipt
    lane.receipt_outcome(1, receipt.order_id, False, "paper out")
    assert lane.view.receipt.show_pass and lane.view.receipt.printed is False
    assert lane.view.deadline == clock.now() + timedelta(seconds=60)


def test_a_printer_that_cannot_print_is_told_before_paying(make_lane, sim, clock):
    lane = make_lane(notice=lambda: ("打印机缺纸", "The printer is out of paper"),
                     wallets=())
    lane.scan(MILK)
    lane.pay()
    assert lane.view.printer_notice == ("打印机缺纸", "The printer is out of paper")
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.receipt.show_pass  # known before any outcome arrives


def test_cancel_closes_the_payment_and_the_cart_can_change_again(make_lane, sim, demo_kiosk):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    lane.cancel_payment()
    assert lane.view.screen is Screen.SHOPPING and lane.view.notice.key == "payment_cancelled"
    assert not lane.view.frozen
    lane.scan(MILK)
    assert lane.checkout.cart.item_count() == 2
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).status_code == 409


def test_an_expired_qr_goes_back_to_the_cart(make_lane, clock):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    clock.advance(seconds=121)
    lane.tick()
    assert lane.view.screen is Screen.SHOPPING and lane.view.notice.key == "payment_expired"


def test_inactivity_asks_then_abandons_and_wipes_the_screen(make_lane, clock, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    lane.still_here()
    assert lane.view.screen is Screen.SHOPPING and len(lane.view.priced.lines) == 1
    clock.advance(seconds=91)
    lane.tick()
    clock.advance(seconds=31)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.view.priced is None
    assert lane.view.member_id is None and lane.session is None
    row = demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()
    assert row[0] == "abandoned"
    payload = json.loads(demo_kiosk.db.execute(
        "SELECT payload FROM outbox WHERE type = 'session_abandoned'").fetchone()[0])
    assert payload["cart"][0]["product"] == MILK_KEY and payload["reason"] == "timeout"


def test_walking_away_from_an_open_payment_resolves_it_before_wiping(make_lane, clock, sim,
                                                                     demo_kiosk):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    lane.abandon("staff_reset")
    assert lane.view.screen is Screen.ATTRACT
    state = demo_kiosk.db.execute("SELECT state FROM payments WHERE out_trade_no = ?",
                                  [no]).fetchone()[0]
    assert state == "cancelled"


def test_a_restart_comes_back_to_the_same_cart_and_payment(make_lane, demo_kiosk, sim, clock,
                                                            data_dir):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.scan(BEER)
    lane.approve_age("clerk")
    lane.pay()
    no = lane.view.payment.out_trade_no
    # The kiosk dies here; a new process opens the same data dir.
    settings = load_settings(data_dir=data_dir, environ={})
    fresh = bootstrap.build(settings, clock=clock)
    again = make_lane(wallets=(), kiosk=fresh)
    assert again.view.screen is Screen.PAY and again.view.payment.out_trade_no == no
    assert [pl.line.product.code for pl in again.view.priced.lines] == [MILK_KEY, "0" + BEER]
    assert again.view.frozen
    pay_on_phone(sim, again)
    clock.advance(seconds=2)
    again.tick()
    assert again.view.screen is Screen.RECEIPT
    fresh.close()


def test_a_restart_after_paying_shows_the_receipt(make_lane, demo_kiosk, sim, clock, data_dir):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    pay_on_phone(sim, lane)
    # The desk completes the sale on disk, and the kiosk dies before the screen hears of it.
    lane.p.desk.on_completed = None
    lane.p.desk.poll(lane.view.payment.out_trade_no)
    settings = load_settings(data_dir=data_dir, environ={})
    fresh = bootstrap.build(settings, clock=clock)
    again = make_lane(wallets=(), kiosk=fresh)
    assert again.view.screen is Screen.RECEIPT and again.view.receipt.total == Money(650, "CNY")
    fresh.close()


def test_a_lost_camera_offers_the_keypad_then_closes_the_lane(make_lane, clock):
    lane = make_lane()
    lane.camera_health("lost")
    assert lane.view.manual_entry and lane.view.notice.key == "camera_lost"
    clock.advance(seconds=31)
    lane.tick()
    assert lane.view.screen is Screen.OUT_OF_ORDER
    lane.camera_health("ok")
    assert lane.view.screen is Screen.ATTRACT and not lane.view.manual_entry


def test_a_closed_lane_takes_no_shoppers(make_lane):
    lane = make_lane()
    lane.set_open(False)
    assert lane.view.screen is Screen.CLOSED
    lane.scan(MILK)
    assert lane.view.screen is Screen.CLOSED and lane.session is None
    lane.set_open(True)
    assert lane.view.screen is Screen.ATTRACT


def test_the_worker_runs_commands_off_thread_and_shows_errors(demo_kiosk, sim, data_dir, clock):
    seen = []

    def make() -> Lane:
        settings = load_settings(data_dir=data_dir, environ={})
        k = bootstrap.build(settings, clock=clock)
        provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET)
        return bootstrap.build_lane(k, provider=provider)

    worker = LaneWorker(make, seen.append, tick_s=0.05)
    worker.start()
    worker.post(lambda lane: lane.scan(MILK))
    worker.idle()
    assert seen[-1].screen is Screen.SHOPPING

    def broken(lane: Lane) -> None:
        raise RuntimeError("disk on fire")
    worker.post(broken)
    worker.idle()
    assert seen[-1].screen is Screen.ERROR and seen[-1].notice.key == "error_generic"
    worker.post(Lane.recover_from_error)
    worker.idle()
    assert seen[-1].screen is Screen.SHOPPING and len(seen[-1].priced.lines) == 1
    assert wait_for(lambda: seen[-1].version > 0)
    worker.stop()


# -- found in review: a shopper or a lane must never be stuck --------------------------------
class Switchable:
    """The simulator adapter with a switch: off = the provider cannot be reached."""

    def __init__(self, inner) -> None:
        self.inner, self.up, self.calls = inner, True, 0
        self.name = inner.name
        self.code_wallets = inner.code_wallets  # an attribute, not a call

    def __getattr__(self, attr):
        method = getattr(self.inner, attr)

        def call(*args, **kwargs):
            from app.domain.payment import PaymentError

            self.calls += 1
            if not self.up:
                raise PaymentError("provider unreachable (switched off)")
            return method(*args, **kwargs)
        return call


@pytest.fixture
def switchable_lane(demo_kiosk, sim):
    provider = Switchable(SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET))
    demo_kiosk.settings.payment.wallets = []
    lane = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    lane.boot()
    return lane, provider


def test_a_cancel_the_provider_cannot_hear_does_not_trap_the_shopper(switchable_lane, clock,
                                                                     demo_kiosk):
    lane, provider = switchable_lane
    lane.scan(MILK)
    lane.pay()
    provider.up = False
    lane.cancel_payment()
    assert lane.view.screen is Screen.PAY and lane.view.payment.closing
    assert lane.view.notice.key == "payment_closing"
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    clock.advance(seconds=31)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT  # the lane is free for the next shopper
    assert demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()[0] == "abandoned"
    # The payment is still open: retried with backoff, not on every tick.
    calls = provider.calls
    for _ in range(40):
        clock.advance(seconds=0.25)
        lane.tick()
    assert provider.calls - calls <= 4
    provider.up = True
    clock.advance(seconds=120)
    lane.tick()
    assert demo_kiosk.db.execute("SELECT state FROM payments").fetchone()[0] == "cancelled"


def test_paid_after_the_shopper_left_is_a_sale_and_its_session_says_so(switchable_lane, clock,
                                                                       demo_kiosk, sim):
    lane, provider = switchable_lane
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    provider.up = False
    lane.abandon("timeout")  # the close fails: the payment stays open
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok  # paid anyway
    provider.up = True
    clock.advance(seconds=121)
    lane.tick()
    row = demo_kiosk.db.execute("SELECT state, order_id FROM sessions").fetchone()
    assert tuple(row) == ("paid", no)
    assert lane.view.screen is Screen.ATTRACT


def test_boot_does_not_wait_for_an_unreachable_provider(switchable_lane, demo_kiosk, clock):
    lane, provider = switchable_lane
    lane.scan(MILK)
    lane.pay()
    lane.abandon("timeout")
    provider.up = False
    demo_kiosk.db.execute("UPDATE payments SET state = 'pending'")  # as a crash left it
    calls = provider.calls
    again = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    again.boot()
    assert provider.calls == calls and again.view.screen is Screen.ATTRACT


def test_without_a_printer_the_exit_pass_shows_after_a_restart(make_lane, demo_kiosk, sim,
                                                               clock, data_dir):
    from app.services.receipts import NO_PRINTER_NOTICE

    def no_printer() -> tuple[str, str]:
        return NO_PRINTER_NOTICE
    lane = make_lane(notice=no_printer, wallets=())
    lane.scan(MILK)
    lane.pay()
    settings = load_settings(data_dir=data_dir, environ={})
    fresh = bootstrap.build(settings, clock=clock)
    again = make_lane(notice=no_printer, wallets=(), kiosk=fresh)
    assert again.view.printer_notice == no_printer()
    pay_on_phone(sim, again)
    clock.advance(seconds=2)
    again.tick()
    assert again.view.receipt.show_pass
    fresh.close()


def test_a_receipt_the_printer_never_confirms_shows_the_pass_before_wiping(make_lane, sim,
                                                                           clock):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.receipt.printed is None and not lane.view.receipt.show_pass
    clock.advance(seconds=16)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT and lane.view.receipt.show_pass
    clock.advance(seconds=61)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT


def test_an_error_screen_nobody_comes_back_to_is_wiped(make_lane, clock, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    lane.failed(RuntimeError("boom"))
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.view.priced is None
    assert demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()[0] == "abandoned"


def test_call_staff_always_alerts_and_does_not_leak_into_the_next_session(make_lane, clock,
                                                                          demo_kiosk):
    lane = make_lane()
    lane.call_staff()  # on the attract screen: no session, still an alert
    alerts = demo_kiosk.db.execute("SELECT kind, message FROM staff_alerts").fetchall()
    assert [a[0] for a in alerts] == ["help"]
    lane.start()
    assert not lane.view.help_requested
    lane.skip_member()
    lane.call_staff()
    lane.call_staff()  # a second tap within a minute is the same call
    assert events(demo_kiosk).count("help_requested") == 1
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.SHOPPING  # waiting for staff is not walking away
    clock.advance(seconds=300)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE


def test_a_recovered_camera_takes_its_warning_away(make_lane, clock):
    lane = make_lane()
    lane.camera_health("lost")
    lane.camera_health("ok")
    assert lane.view.notice is None and lane.view.camera_ok


def test_a_create_the_provider_refuses_tells_the_shopper_at_once(demo_kiosk, clock):
    # A wrong key or an amount out of the platform's range: the provider refused the create
    # and did nothing. The shopper is told the payment failed and may change the cart, not
    # left on "connecting" until the QR would have expired (issue 15 review).
    from app.domain.payment import ProviderRefused

    class Refusing:
        name = "refusing"

        def create(self, order):  # noqa: ANN001, ANN201
            raise ProviderRefused("total over the limit", maybe_done=False,
                                  code="ACQ.TOTAL_FEE_EXCEED")

        def query(self, out_trade_no):  # noqa: ANN001, ANN201
            raise AssertionError("no order exists to query")

        def close(self, out_trade_no):  # noqa: ANN001, ANN201
            raise AssertionError("no order exists to close")

    demo_kiosk.settings.payment.wallets = []
    lane = bootstrap.build_lane(demo_kiosk, provider=Refusing(), receipt_notice=lambda: None)
    lane.boot()
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.SHOPPING and lane.view.payment is None
    assert lane.view.notice.key == "payment_failed" and not lane.view.frozen
    lane.plus(lane.view.priced.lines[0].line.line_id)  # the cart can change again
    assert lane.view.priced.lines[0].line.quantity == 2


def test_a_cart_that_totals_nothing_is_not_sent_to_a_wallet(make_lane, sim, demo_kiosk):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    line = lane.view.priced.lines[0].line.line_id
    lane.override_price(line, Money(0, "CNY"), "clerk-7")
    lane.pay()
    assert lane.view.screen is Screen.SHOPPING and lane.view.notice.key == "nothing_to_pay"
    assert not lane.view.frozen and lane.view.payment is None
    assert demo_kiosk.db.execute("SELECT count(*) FROM payments").fetchone()[0] == 0


# -- issue 16, fault 5: a full disk -----------------------------------------------------------
def test_too_little_free_disk_refuses_before_any_qr_and_tells_the_truth(make_lane, demo_kiosk,
                                                                       sim):
    lane = make_lane(wallets=("wechat",))
    assert lane.p.min_free_bytes == 64 * 1024 * 1024  # payment.min_free_mb, its default
    assert lane.p.free_bytes() > 0  # wired to shutil.disk_usage of the data dir
    lane.p.free_bytes = lambda: 10 * 1024 * 1024  # a nearly full disk, faked
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.SHOPPING and lane.view.payment is None
    assert lane.view.notice.key == "disk_full" and not lane.view.frozen
    assert demo_kiosk.db.execute("SELECT count(*) FROM payments").fetchone()[0] == 0
    assert not sim.provider.orders  # the provider never heard of it: no QR anyone could pay
    (message,) = [m for (m,) in demo_kiosk.db.execute(
        "SELECT message FROM staff_alerts WHERE kind = 'disk'")]
    assert "payment.min_free_mb" in message
    lane.pay()  # again: still refused, one alert
    assert demo_kiosk.db.execute("SELECT count(*) FROM staff_alerts WHERE kind = 'disk'"
                                 ).fetchone()[0] == 1
    lane.p.free_bytes = lambda: 10 * 1024 ** 3  # space freed
    lane.pay()
    assert lane.view.screen is Screen.PAY and lane.view.payment is not None


def test_a_disk_full_error_never_says_the_cart_is_saved(make_lane, demo_kiosk):
    import sqlite3

    lane = make_lane()
    lane.scan(MILK)
    lane.failed(sqlite3.OperationalError("database or disk is full"))
    assert lane.view.screen is Screen.ERROR and lane.view.notice.key == "error_disk_full"
    assert demo_kiosk.db.execute("SELECT count(*) FROM staff_alerts WHERE kind = 'disk'"
                                 ).fetchone()[0] == 1
    lane.failed(RuntimeError("something else"))
    assert lane.view.notice.key == "error_generic"
