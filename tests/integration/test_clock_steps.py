"""The kiosk's wall clock stepped while a shopper is at the lane (issue 16, fault 3).

Only the kiosk's injected clock is stepped (``FixedClock.step`` moves the wall
clock and not the monotonic one; ``advance`` is time passing and moves both),
never the machine's. Every wait of the lane (payment polling, the inactivity
timer, "still there?", the receipt screen, a QR's expiry) is measured on the
monotonic clock, so a step changes none of them. Real SQLite, the payment
simulator on 127.0.0.1.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app import bootstrap
from app.domain.clock import FixedClock
from app.lane import Screen
from app.services.clock import OffsetClock
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter

MILK = "6900000000014"


@pytest.fixture
def lane(demo_kiosk, sim):
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    demo_kiosk.settings.payment.wallets = []
    made = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    made.boot()
    return made


def pay_on_phone(sim, lane) -> None:
    no = lane.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok


def test_a_clock_stepped_back_while_the_qr_is_up_still_polls_on_time(lane, sim, clock):
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.PAY and lane.view.payment is not None
    pay_on_phone(sim, lane)
    clock.step(minutes=-4)
    clock.advance(seconds=2)  # one poll interval (1.5 s) has passed
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT  # noticed now, not 4 minutes late


def test_a_clock_stepped_back_an_hour_still_asks_still_there_and_wipes(lane, clock,
                                                                      demo_kiosk):
    lane.scan(MILK)
    clock.step(hours=-1)
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    # What is shown is the wall clock's: now (as stepped) plus the countdown.
    assert lane.view.deadline == clock.now() + timedelta(seconds=30)
    clock.step(hours=-1)
    clock.advance(seconds=10)
    lane.tick()  # the countdown shown follows the stepped wall clock: 20 s left
    assert lane.view.screen is Screen.STILL_THERE
    assert abs((lane.view.deadline - clock.now()).total_seconds() - 20) < 1.01
    clock.advance(seconds=21)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.session is None
    assert demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()[0] == "abandoned"


def test_a_clock_stepped_forward_an_hour_while_paying_does_not_give_up(lane, sim, clock,
                                                                       demo_kiosk):
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.step(hours=1)
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.PAY and lane.view.payment.out_trade_no == no
    state = demo_kiosk.db.execute("SELECT state, closing FROM payments WHERE out_trade_no = ?",
                                  [no]).fetchone()
    assert state[0] not in ("expired", "cancelled") and not state[1]
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT
    assert demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()[0] == "paid"


def test_a_qr_still_expires_on_time_with_the_clock_stepped_back(lane, clock):
    lane.scan(MILK)
    lane.pay()
    clock.step(hours=-1)
    clock.advance(seconds=121)
    lane.tick()
    assert lane.view.screen is Screen.SHOPPING and lane.view.notice.key == "payment_expired"


def test_the_desk_does_not_expire_a_payment_when_the_clock_steps_forward(lane, clock,
                                                                         demo_kiosk):
    # PaymentDesk.expire_due (what `kiosk pay` and any other caller of the desk use): the
    # QR's two minutes are measured on the monotonic clock, not against expires_at.
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.step(hours=1)
    clock.advance(seconds=2)
    assert lane.p.desk.expire_due() == []
    state = demo_kiosk.db.execute("SELECT state, closing FROM payments WHERE out_trade_no = ?",
                                  [no]).fetchone()
    assert state[0] not in ("expired", "cancelled") and not state[1]


def test_the_desk_expires_a_payment_on_time_with_the_clock_stepped_back(lane, clock):
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.step(hours=-1)
    clock.advance(seconds=100)
    assert lane.p.desk.expire_due() == []  # 20 s of its 2 minutes left
    clock.advance(seconds=21)
    [after] = lane.p.desk.expire_due()
    assert after.out_trade_no == no and after.state.value == "expired"


def test_a_payment_found_open_at_start_up_expires_on_its_wall_clock_deadline(
        lane, clock, demo_kiosk, sim):
    # No monotonic reference survives a restart: a new desk takes expires_at once, then
    # counts on its own monotonic clock (a step after that changes nothing).
    lane.scan(MILK)
    lane.pay()
    clock.advance(seconds=60)
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    fresh = bootstrap.build_payment_desk(demo_kiosk, provider)
    assert fresh.expire_due() == []
    assert 59 <= fresh.seconds_left(fresh.repo.all_open()[0]) <= 60
    clock.step(hours=1)
    assert fresh.expire_due() == []
    clock.advance(seconds=61)
    assert [p.state.value for p in fresh.expire_due()] == ["expired"]


def test_the_pay_screens_countdown_counts_real_seconds_after_a_step(lane, clock):
    from app.ui.present import seconds_left

    lane.scan(MILK)
    lane.pay()
    assert seconds_left(lane.view.deadline, clock.now()) == 120
    clock.step(hours=1)
    clock.advance(seconds=2)
    lane.tick()
    # What the screen shows ("expires in N s") is the seconds left on the monotonic
    # deadline, not expires_at less the stepped wall clock (which would read 0).
    assert lane.view.screen is Screen.PAY
    assert seconds_left(lane.view.deadline, clock.now()) == 118
    clock.step(hours=-2)
    clock.advance(seconds=8)
    lane.tick()
    assert seconds_left(lane.view.deadline, clock.now()) == 110  # not 3,710


def test_the_receipt_screen_ends_on_time_with_the_clock_stepped_back(lane, sim, clock):
    lane.scan(MILK)
    lane.pay()
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT
    lane.receipt_outcome(1, lane.view.receipt.order_id, True, "")
    clock.step(hours=-1)
    clock.advance(seconds=16)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT


def test_the_clocks_tests_use_step_the_wall_clock_only():
    fixed = FixedClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    wall, mono = fixed.now(), fixed.monotonic()
    fixed.step(hours=-1)
    assert fixed.now() == wall - timedelta(hours=1) and fixed.monotonic() == mono
    fixed.advance(seconds=5)
    assert fixed.monotonic() == mono + 5
    offset = OffsetClock()
    before = offset.monotonic()
    offset.step(-3600)
    assert offset.monotonic() - before < 60  # stepping is not time passing
    offset.advance(90)
    assert offset.monotonic() - before >= 90


def test_a_provider_refusing_the_kiosks_clock_alerts_staff_naming_the_clock(
        demo_kiosk, sim, monkeypatch):
    # The kiosk's process only: the adapter signs with a time 10 minutes behind; the
    # simulator (like the store gateway) refuses a timestamp more than 300 s off.
    import devices.payment.gateway as gateway

    class Behind:
        @staticmethod
        def time() -> float:
            return time.time() - 600

    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    monkeypatch.setattr(gateway, "time", Behind)
    demo_kiosk.settings.payment.wallets = []
    lane = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    lane.boot()
    lane.scan(MILK)
    lane.pay()
    # Refused before it was made (401): the shopper is told at once, not "connecting".
    assert lane.view.screen is Screen.SHOPPING and lane.view.notice.key == "payment_failed"
    lane.pay()  # tried again: refused again, still one alert
    assert lane.view.notice.key == "payment_failed"
    alerts = [m for kind, m in bootstrap.open_alerts(demo_kiosk) if kind == "clock"]
    assert len(alerts) == 1  # once while it lasts, however many calls were refused
    assert "the kiosk's clock" in alerts[0] and "lane-01" in alerts[0]


def to_1970(clock: FixedClock) -> None:
    """The kiosk's wall clock (only) reset as a dead RTC battery leaves it."""
    now = clock.now()
    clock.step(seconds=(datetime(1970, 1, 1, tzinfo=now.tzinfo) - now).total_seconds())


def clock_alerts(kiosk) -> list[str]:
    return [m for kind, m in bootstrap.open_alerts(kiosk) if kind == "clock"]


def test_a_kiosk_booting_in_1970_is_out_of_order_naming_the_clock_until_it_is_set(
        demo_kiosk, sim, clock):
    wall = clock.now()
    to_1970(clock)
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    lane = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    lane.boot()
    assert lane.view.screen is Screen.OUT_OF_ORDER
    assert lane.view.wrong_clock == "1970-01-01 00:00"
    [alert] = clock_alerts(demo_kiosk)
    assert "lane-01" in alert and "the kiosk's clock says 1970-01-01" in alert
    lane.scan(MILK)  # no sale starts: an exit pass dated 1970 is worthless
    lane.start()
    assert lane.view.screen is Screen.OUT_OF_ORDER and lane.session is None
    assert demo_kiosk.db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    clock.advance(minutes=2)
    lane.tick()
    assert lane.view.wrong_clock == "1970-01-01 00:02"  # the time it reads, kept current
    assert len(clock_alerts(demo_kiosk)) == 1  # one alert while it lasts
    clock.step(seconds=(wall - clock.now()).total_seconds())  # staff set the clock
    clock.advance(seconds=1)
    lane.tick()  # recovers by itself on the next tick
    assert lane.view.screen is Screen.ATTRACT and lane.view.wrong_clock == ""
    lane.scan(MILK)
    assert lane.view.screen is Screen.SHOPPING and lane.session is not None


def test_a_clock_reset_to_1970_mid_session_takes_no_payment(lane, clock, demo_kiosk):
    lane.scan(MILK)
    to_1970(clock)
    lane.pay()
    assert lane.view.screen is Screen.SHOPPING and lane.view.notice.key == "clock_wrong"
    assert demo_kiosk.db.execute("SELECT count(*) FROM payments").fetchone()[0] == 0
    assert len(clock_alerts(demo_kiosk)) == 1


def test_the_out_of_order_words_name_the_clock_and_what_it_reads():
    from app.ui.strings import say

    assert say("en", "out_of_order_clock", reads="1970-01-01 00:00").startswith(
        "The kiosk's clock says 1970-01-01 00:00")
    assert "Staff: set the date and time" in say("en", "out_of_order_clock", reads="x")
    assert "1970-01-01 00:00" in say("zh", "out_of_order_clock", reads="1970-01-01 00:00")


def test_a_scan_or_touch_just_after_the_clock_went_wrong_starts_no_sale(lane, clock,
                                                                       demo_kiosk):
    assert lane.view.screen is Screen.ATTRACT
    to_1970(clock)  # no tick yet: the attract screen is still up
    lane.scan(MILK)
    assert lane.session is None and lane.view.screen is Screen.OUT_OF_ORDER
    clock.step(days=20_000)  # 2024: still before the floor
    lane.tick()
    assert lane.view.wrong_clock.startswith("2024-")
    clock.step(days=800)  # set right (2026-12)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT
    to_1970(clock)
    lane.start()  # the touch on Start before the next tick
    assert lane.session is None and lane.view.screen is Screen.OUT_OF_ORDER
    assert demo_kiosk.db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
