"""The lane applies head office's store data only between shoppers (app/lane/timers.py,
docs/store-sync.md "The lane"): never while a session or a payment is open, at the home
screen, at or after ``effective_at``; a cart keeps the prices it was scanned with
(docs/pricing.md). The store data here is a stand-in that changes the real price row on
apply, so the prices come from the real catalogue."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from app import bootstrap
from app.domain.money import Money
from app.lane import Screen
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter

MILK = "6900000000014"  # 6.50 in the demo catalogue


class PriceChange:
    """Stands in for ``StoreData``: one staged version that sets milk to 7.20 from
    ``effective``; ``apply_due`` writes it in one statement and says what it applied."""

    def __init__(self, db, effective: datetime) -> None:
        self.db, self.effective = db, effective
        self.applied: list[datetime] = []
        self.fail = False

    def due(self, now: datetime) -> bool:
        return not self.applied and now >= self.effective

    def apply_due(self, now: datetime) -> list[tuple[str, int]]:
        if self.fail:
            raise OSError("disk I/O error")
        with self.db.conn:
            self.db.execute("UPDATE products SET price = 720 WHERE code = ?", ["0" + MILK])
        self.applied.append(now)
        return [("catalogue", 2)]


@pytest.fixture
def lane_with(demo_kiosk, sim, clock):
    def make(data):
        provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
        demo_kiosk.settings.payment.wallets = ["wechat"]
        lane = bootstrap.build_lane(demo_kiosk, provider=provider,
                                    receipt_notice=lambda: None)
        lane.p.store_data = data
        lane.boot()
        return lane
    return make


def pay(lane, sim, clock) -> Money:
    lane.pay()
    no = lane.view.payment.out_trade_no
    total = lane.view.payment.amount
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT
    lane.receipt_outcome(1, lane.view.receipt.order_id, True, "")
    return total


def test_a_change_effective_mid_session_waits_for_the_shopper_to_finish(
        lane_with, demo_kiosk, sim, clock):
    # The rule (docs/pricing.md, "A session's prices"): a cart keeps the prices it was
    # scanned with; the lane switches versions only between shoppers, so the shopper who
    # scanned at 08:59 pays the 08:59 price at 09:02 and the next shopper the new one.
    nine = (clock.now() + timedelta(days=1)).replace(hour=9, minute=0, second=0)
    clock.advance(seconds=(nine - clock.now()).total_seconds() - 60)  # 08:59
    data = PriceChange(demo_kiosk.db, nine)
    lane = lane_with(data)
    lane.tick()
    assert not data.applied  # not yet effective
    lane.scan(MILK)
    assert lane.view.priced.total == Money(650, "CNY")
    clock.advance(minutes=3)  # 09:02: due, but a shopper is mid-session
    lane.touch()  # (still there: scrolling the cart)
    lane.tick()
    assert not data.applied
    assert pay(lane, sim, clock) == Money(650, "CNY")  # the price scanned at 08:59
    assert not data.applied  # the receipt screen: the shopper is still there
    clock.advance(seconds=16)
    lane.tick()  # the receipt screen ends: home
    lane.tick()  # the home screen's tick applies it
    assert lane.view.screen is Screen.ATTRACT and len(data.applied) == 1
    assert data.applied[0] >= nine
    lane.scan(MILK)  # the next shopper
    assert lane.view.priced.total == Money(720, "CNY")


def test_nothing_is_applied_while_a_payment_is_open(lane_with, demo_kiosk, sim, clock):
    data = PriceChange(demo_kiosk.db, clock.now())
    lane = lane_with(data)
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    # The provider answers too slowly (the lane's read timeout is 2 s): the abandoned QR
    # cannot be closed, so it stays open after the shopper has gone (the lane settles it
    # when the provider answers again).
    script(sim, "slow", 3, no)
    lane.abandon("timeout")
    assert lane.view.screen is Screen.ATTRACT and lane.session is None
    assert lane.p.desk.repo.all_open()
    lane.tick()
    assert not data.applied  # a payment is open: not between shoppers yet
    script(sim, "approve", 0, no)
    for _ in range(3):
        clock.advance(seconds=61)  # past the close's retry wait
        lane.tick()  # settles the stray payment, then applies
    assert lane.p.desk.repo.all_open() == [] and len(data.applied) == 1


def script(sim, outcome: str, seconds: float, order: str) -> None:
    assert requests.post(f"{sim.url}/sim/script", json={
        "outcome": outcome, "seconds": seconds, "order": order}, timeout=5).ok


def test_a_failed_apply_leaves_the_lane_selling_and_is_not_retried_every_tick(
        lane_with, demo_kiosk, clock):
    data = PriceChange(demo_kiosk.db, clock.now())
    data.fail = True
    calls = []
    apply_due = data.apply_due

    def counting(now):
        calls.append(now)
        return apply_due(now)
    data.apply_due = counting  # type: ignore[method-assign]
    lane = lane_with(data)
    for _ in range(5):
        lane.tick()
    assert len(calls) == 1 and lane.view.screen is Screen.ATTRACT
    lane.scan(MILK)
    assert lane.view.priced.total == Money(650, "CNY")  # still selling, old price
    lane.abandon("timeout")
    data.fail = False
    clock.advance(seconds=61)
    lane.tick()
    assert len(calls) == 2 and data.applied
