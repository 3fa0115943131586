"""Store sync end to end on one lane (issue 22): the real head-office service
(``BackendServer``, an ``hq.service.HqServer`` over the SQLite store) on 127.0.0.1,
versions published with ``hq.publish.publish`` and a key of head office's, the lane's
real database, sync thread parts and HTTP client built by the composition root, a clock
moved by hand. docs/store-sync.md is the contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from app import bootstrap
from app.config import load_settings
from app.domain.clock import FixedClock
from app.domain.money import Money
from app.lane import Screen
from app.services.health import store_data_lines
from app.services.store_sync import StoreSync, SyncSide
from app.storage.sales_repo import Sales
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer, Handler
from hq import publish as hq_publish
from tests.helpers import wait_for

SHANGHAI = timezone(timedelta(hours=8))
ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "seeds" / "catalogue.csv"
PRICE_CHANGE = ROOT / "seeds" / "price-change.csv"  # milk 6.50 -> 7.20
MILK = "6900000000014"
STORE = "store-01"


class CountingHandler(Handler):
    """The sim backend's handler, counting every answer's (method, path, status)."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.server.answers.append((self.command, self.path.partition("?")[0], code))  # type: ignore[attr-defined]
        super().send_response(code, message)


def start_hq(db: Path, port: int = 0) -> BackendServer:
    server = BackendServer(port, db)
    server.RequestHandlerClass = CountingHandler
    server.answers = []  # type: ignore[attr-defined]
    return server.start()  # type: ignore[return-value]


@dataclass
class Rig:
    hq: BackendServer
    hq_db: Path
    key: Any
    clock: FixedClock
    kiosk: bootstrap.Kiosk
    sync: StoreSync
    side: SyncSide
    lane: Any
    sim: Any

    def publish(self, source: Path, effective: datetime | None = None, kind: str = "catalogue",
                key: Any = None) -> int:
        m = hq_publish.publish(self.hq.store, key or self.key, STORE, kind, source,
                               effective_at=effective, now=self.clock.now(),
                               tax_classes=frozenset(self.kiosk.settings.store.tax_classes))
        return m.version

    def look(self) -> float:
        """One pass of the sync thread's loop (what it does every sync.poll_s)."""
        return self.sync.sync_once(self.side.data)

    def status(self) -> Any:
        return self.side.data.status()

    def listings(self) -> list[int]:
        return [code for method, path, code in self.hq.answers  # type: ignore[attr-defined]
                if method == "GET" and path.endswith("/data/catalogue")]

    def pay(self) -> Money:
        lane = self.lane
        lane.pay()
        total = lane.view.payment.amount
        no = lane.view.payment.out_trade_no
        assert requests.post(f"{self.sim.url}/sim/orders/{no}/pay", timeout=5).ok
        self.clock.advance(seconds=2)
        lane.tick()
        assert lane.view.screen is Screen.RECEIPT
        lane.receipt_outcome(1, lane.view.receipt.order_id, True, "")
        self.clock.advance(seconds=16)
        lane.tick()
        assert lane.view.screen is Screen.ATTRACT
        return total

    def milk(self) -> Money:
        """What milk costs a new shopper now (scanned, then the cart abandoned)."""
        self.lane.scan(MILK)
        price = self.lane.view.priced.total
        self.lane.abandon("timeout")
        return price


@pytest.fixture
def rig(tmp_path, sim):
    clock = FixedClock(datetime(2026, 12, 1, 8, 40, tzinfo=SHANGHAI))
    hq_db = tmp_path / "hq.db"
    hq = start_hq(hq_db)
    key = hq_publish.create_key_file(tmp_path / "hq-publish.key")
    settings = load_settings(data_dir=tmp_path / "lane", environ={})
    settings.membership.base_url, settings.membership.token = hq.url, DEFAULT_TOKEN
    settings.membership.store_id = STORE
    settings.sync.hq_public_key = hq_publish.public_key_text(key)
    settings.payment.wallets = ["wechat"]
    kiosk = bootstrap.build(settings, clock)
    bootstrap.seed_demo_store(kiosk)
    sync = bootstrap.build_store_sync(settings, clock)
    assert sync is not None
    side = sync.open_side()
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    lane = bootstrap.build_lane(kiosk, provider=provider, receipt_notice=lambda: None)
    lane.boot()
    r = Rig(hq, hq_db, key, clock, kiosk, sync, side, lane, sim)
    r.publish(CATALOGUE)  # version 1: the demo catalogue as head office has it
    r.look()
    lane.tick()
    assert r.status().versions()["catalogue"] == 1
    yield r
    side.close()
    kiosk.close()
    try:
        hq.stop()
    except OSError:
        pass
    hq.store.close()


def test_a_price_change_for_nine_is_staged_at_eight_fifty_and_applied_between_shoppers(rig):
    r, lane, clock = rig, rig.lane, rig.clock
    nine = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI)
    assert r.publish(PRICE_CHANGE, effective=nine) == 2
    clock.advance(minutes=10)  # 08:50
    assert r.look() == r.sync.poll_s
    assert r.status().staged() == {"catalogue": 2}  # downloaded (a delta) and staged
    lane.tick()
    assert r.status().versions()["catalogue"] == 1  # not before 09:00
    clock.advance(minutes=9)  # 08:59: a shopper scans milk
    lane.scan(MILK)
    assert lane.view.priced.total == Money(650, "CNY")
    clock.advance(minutes=3)  # 09:02: the change is due; the shopper is still here
    lane.touch()
    r.look()
    lane.tick()
    assert r.status().versions()["catalogue"] == 1
    # The rule (docs/pricing.md): the cart keeps the prices it was scanned with, because
    # the lane switches versions only between shoppers.
    assert r.pay() == Money(650, "CNY")
    lane.tick()  # the attract screen, no session, no payment: the first moment after 9
    assert r.status().versions()["catalogue"] == 2
    assert r.status().staged() == {}
    lane.scan(MILK)  # the next shopper
    assert lane.view.priced.total == Money(720, "CNY")
    (order_id,), = r.kiosk.db.execute("SELECT order_id FROM sales").fetchall()
    assert Sales(r.kiosk.db).data_versions(order_id)["catalogue"] == 1  # sold under 1


def test_a_steady_lane_gets_304s(rig):
    first = rig.listings()
    assert first == [200]  # the first look listed version 1
    for _ in range(5):
        rig.clock.advance(seconds=30)
        rig.look()
    assert rig.listings() == [200] + [304] * 5  # If-None-Match: "catalogue-1"
    assert rig.status().versions()["catalogue"] == 1


def test_head_office_down_for_hours_then_caught_up_in_one_step(rig):
    r, lane, clock = rig, rig.lane, rig.clock
    port = r.hq.server_address[1]
    r.hq.stop()  # head office is down: connections refused
    stale_after = r.kiosk.settings.sync.stale_after_h * 3600
    waits = []
    for _ in range(6):  # three hours of looks (the sync thread's backoff, jittered)
        clock.advance(minutes=30)
        waits.append(r.look())
        assert r.milk() == Money(650, "CNY")  # the lane keeps selling
    assert all(0 <= w <= 300 for w in waits) and max(waits) > 2  # backing off, capped
    st = r.status()
    assert st.age_s == pytest.approx(3 * 3600) and not st.stale and st.last_error
    clock.advance(hours=1, minutes=1)  # past sync.stale_after_h (4 h)
    r.look()
    st = r.status()
    assert st.stale and st.age_s > stale_after
    assert any("not checked with head office for 4 h" in line
               for line in store_data_lines(st, stale_after))
    # Meanwhile head office published three versions (the store is the same file).
    r.publish(PRICE_CHANGE)
    r.publish(CATALOGUE)
    r.publish(PRICE_CHANGE)
    r.hq = start_hq(r.hq_db, port)  # back
    assert r.look() == r.sync.poll_s
    assert r.status().staged() == {"catalogue": 4} and not r.status().stale
    applied: list[list[tuple[str, int]]] = []
    data = lane.p.store_data
    apply_due = data.apply_due
    data.apply_due = lambda now: applied.append(apply_due(now)) or applied[-1]
    lane.tick()
    assert applied == [[("catalogue", 2), ("catalogue", 3), ("catalogue", 4)]]  # one step
    assert r.milk() == Money(720, "CNY")


def test_unauthorized_and_503_change_nothing_and_back_off(rig):
    r, clock = rig, rig.clock
    r.publish(PRICE_CHANGE)
    requests.post(f"{r.hq.url}/sim/mode", json={"status": 503, "retry_after": 120},
                  timeout=5)
    assert r.look() >= 120  # Retry-After honoured
    assert r.status().staged() == {} and r.sync.health().state == "backing_off"
    requests.post(f"{r.hq.url}/sim/mode", json={"status": 200, "token": "another"},
                  timeout=5)
    clock.advance(minutes=5)
    assert r.look() == r.sync.pause_s  # the token refused: paused, staff alerted
    assert r.status().staged() == {} and r.sync.health().state == "paused"
    alerts = bootstrap.open_alerts(r.kiosk)
    assert alerts and alerts[0][0] == "store-data" and "token" in alerts[0][1]
    requests.post(f"{r.hq.url}/sim/mode", json={"token": DEFAULT_TOKEN}, timeout=5)
    assert r.look() == r.sync.poll_s
    assert r.status().staged() == {"catalogue": 2}


def test_a_version_signed_by_another_key_is_refused_and_the_lane_sells_on(rig, tmp_path):
    r = rig
    other = hq_publish.create_key_file(tmp_path / "other.key")
    r.publish(PRICE_CHANGE, key=other)
    assert r.look() == r.sync.poll_s  # not a hot loop: the usual interval
    st = r.status()
    assert st.staged() == {} and st.versions()["catalogue"] == 1
    assert "key" in (st.kinds["catalogue"].last_refusal or "")
    r.lane.tick()
    assert r.milk() == Money(650, "CNY")


def test_the_thread_follows_head_office_and_sends_heartbeats(rig):
    r = rig
    r.publish(PRICE_CHANGE)
    sync = bootstrap.build_store_sync(r.kiosk.settings, r.clock)
    assert sync is not None
    sync.start()
    try:
        assert wait_for(lambda: r.status().staged() == {"catalogue": 2}, timeout=15)
        assert wait_for(lambda: r.hq.store.heartbeats(STORE), timeout=15)
    finally:
        sync.stop()
    (_store, lane_id, _at, body), = r.hq.store.heartbeats(STORE)
    assert lane_id == r.kiosk.settings.kiosk.lane_id
    assert body["versions"]["catalogue"] == 1 and body["staged"] == {"catalogue": 2}
    assert body["outbox"]["pending"] >= 0 and body["health"]["state"] in ("ok", "degraded")


def test_a_lane_whose_version_head_office_pruned_gets_a_full_snapshot_not_a_404_loop(rig):
    # Review of issue 22 (head-office side): the lane holds version 1; head office
    # publishes 2, 3 and 4 keeping one version, so 1, 2 and 3 (the base of 4's delta) are
    # gone. One look must stage 4 as a full snapshot; nothing asks for a pruned payload.
    r, lane = rig, rig.lane
    classes = frozenset(r.kiosk.settings.store.tax_classes)
    for source in (PRICE_CHANGE, CATALOGUE, PRICE_CHANGE):
        hq_publish.publish(r.hq.store, r.key, STORE, "catalogue", source, keep=1,
                           now=r.clock.now(), tax_classes=classes)
    assert r.hq.store.versions_after(STORE, "catalogue", None)[0][0].find(b'"version":4') > 0
    before = len(r.hq.answers)  # type: ignore[attr-defined]
    r.clock.advance(seconds=30)
    r.look()
    fetched = [(path, code) for method, path, code
               in r.hq.answers[before:]  # type: ignore[attr-defined]
               if method == "GET" and "/data/catalogue/" in path]
    assert fetched == [(f"/v1/stores/{STORE}/data/catalogue/4/full", 200)]
    assert r.status().staged() == {"catalogue": 4}
    lane.tick()
    assert r.status().versions()["catalogue"] == 4
    assert r.milk() == Money(720, "CNY")
