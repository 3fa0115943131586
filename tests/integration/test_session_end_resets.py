"""Every way a session ends tells the screen so (``LaneView.sessions_ended``), and nothing
else does: the screen puts the store's language, text size and contrast back then, so
the next shopper never inherits the last one's (issue 19)."""

from __future__ import annotations

import pytest
import requests

from app import bootstrap
from app.lane import Screen
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter

MILK = "6900000000014"


@pytest.fixture
def lane(demo_kiosk, sim):
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    demo_kiosk.settings.payment.wallets = ["wechat"]
    made = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    made.boot()
    return made


def paid(lane, sim, clock) -> None:
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT
    lane.receipt_outcome(1, lane.view.receipt.order_id, True, "")


def test_done_timeout_staff_reset_and_error_each_end_one_session(lane, sim, clock):
    ended = lane.view.sessions_ended
    lane.scan(MILK)
    lane.plus(lane.view.priced.lines[0].line.line_id)
    lane.pay()
    lane.cancel_payment()
    assert lane.view.screen is Screen.SHOPPING
    assert lane.view.sessions_ended == ended, "nothing within a session ends it"
    lane.abandon("staff_reset")
    assert lane.view.screen is Screen.ATTRACT and lane.view.sessions_ended == ended + 1
    paid(lane, sim, clock)
    assert lane.view.sessions_ended == ended + 1, "paying does not end it: the receipt is up"
    lane.done()
    assert lane.view.sessions_ended == ended + 2
    paid(lane, sim, clock)
    clock.advance(seconds=60)  # the receipt screen times out by itself
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.view.sessions_ended == ended + 3
    lane.scan(MILK)
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE and lane.view.sessions_ended == ended + 3
    clock.advance(seconds=31)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.view.sessions_ended == ended + 4
    lane.scan(MILK)
    lane.failed(RuntimeError("boom"))
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.view.sessions_ended == ended + 5
