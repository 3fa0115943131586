"""`kiosk demo`'s head office (issue 22): the documented flow, in process. The simulated
store publishes the demo store data as version 1 with a key of its own and the lane pins
it; the README's `kiosk hq publish catalogue seeds/price-change.csv ...` command (run as
the `kiosk` command, in process) publishes a price change to the running backend; the
lane's sync thread stages it; the shopper mid-session pays the old price; the next
shopper gets the new one."""

from __future__ import annotations

import time

from app import bootstrap
from app.config import load_settings
from app.domain.money import Money
from app.lane import Screen
from app.services.clock import OffsetClock
from app.storage.sales_repo import Sales
from devices.sim.store import BACKEND_DB, HQ_KEY_FILE
from tests.helpers import pay_on_the_phone, run_kiosk

MILK = "6900000000014"


def pump_until(runtime, condition, timeout: float = 20.0) -> bool:
    """Run the lane (ticks and what the devices posted) until ``condition()``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        runtime.executor.pump(0.1)
        if condition():
            return True
    return bool(condition())


def test_publishing_to_the_demo_head_office_reaches_the_lane_after_the_shopper(tmp_path):
    data = tmp_path / "demo"
    settings = load_settings(data_dir=data, environ={})
    settings.payment.wallets = ["wechat"]
    clock = OffsetClock()
    kiosk = bootstrap.build(settings, clock)
    bootstrap.seed_demo_store(kiosk)
    store = bootstrap.start_sim_store(settings, head_office=True)
    runtime = None
    try:
        assert (data / HQ_KEY_FILE).exists() and settings.sync.hq_public_key
        runtime = bootstrap.build_runtime(kiosk, threaded=False,
                                          camera_factory=store.camera_factory())
        runtime.start()
        lane = runtime.lane
        status = lane.p.store_data.status
        assert pump_until(runtime, lambda: status().versions() == {
            "catalogue": 1, "promotions": 1, "lane-keys": None})  # the lane follows hq
        lane.scan(MILK)  # a shopper is mid-session
        assert lane.view.priced.total == Money(650, "CNY")
        ran = run_kiosk("hq", "publish", "catalogue", "seeds/price-change.csv",
                        "--store", settings.membership.store_id,
                        "--key", str(data / HQ_KEY_FILE),
                        "--store-address", f"sqlite:{data / BACKEND_DB}")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert pump_until(runtime, lambda: status().staged() == {"catalogue": 2})
        lane.touch()
        runtime.executor.pump(0.2)
        assert status().versions()["catalogue"] == 1  # not while the shopper shops
        pay_on_the_phone(lane, store.pay, clock)
        ((_order, sale),) = Sales(kiosk.db).recent(5)
        assert sale.total == Money(650, "CNY")  # the price scanned
        assert pump_until(runtime, lambda: status().versions()["catalogue"] == 2)
        assert lane.view.screen is Screen.ATTRACT
        lane.scan(MILK)  # the next shopper
        assert lane.view.priced.total == Money(720, "CNY")
    finally:
        if runtime is not None:
            runtime.stop()
        store.stop()
        kiosk.close()
