"""What staff and the command line see of the lane's store data versions, and the audited
rollback (issue 22, docs/store-sync.md "Staff and the command line").

A real lane and staff mode over a real SQLite file and the payment simulator (HTTP on
127.0.0.1), a real ``StoreData`` holding head-office versions signed with an Ed25519 key
(tests/store_versions.py), the page worded by ``app.ui.present.staff_page`` as the screen
does, and ``kiosk sync`` run as its own process on a real data directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app import bootstrap
from app.config import load_settings
from app.services.store_data import StoreData
from app.storage.sessions_repo import Sessions
from app.ui import present
from tests.integration import test_staff
from tests.integration.test_staff import MILK, sign_in
from tests.store_versions import STORE, make_version, new_key, product_row, public_b64

lane, book = test_staff.lane, test_staff.book  # the staff tests' lane and staff book
SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
MANAGER, ATTENDANT = "13579", "2468"  # Wang Wei, Li Na (test_staff.book)
COLA = "6900000000908"
# Version 1 and 2 of the catalogue: version 2 changes the milk's price (5.90 -> 6.50).
V1_ROWS = [product_row(MILK, 590, "Whole Milk 250ml"), product_row(COLA, 300, "Cola")]
V2_ROWS = [product_row(MILK, 650, "Whole Milk 250ml"), product_row(COLA, 300, "Cola")]


def two_versions(data: StoreData, key, clock) -> None:  # type: ignore[no-untyped-def]
    """Catalogue version 1 (full) then version 2 (a delta against 1), each staged and
    applied as the lane does between shoppers."""
    v1 = make_version(key, rows=V1_ROWS, version=1, effective_at="2026-01-01T00:00:00Z")
    data.stage(v1.manifest_raw, v1.signature, "full", v1.full)
    data.apply_due(clock.now())
    v2 = make_version(key, rows=V2_ROWS, previous=V1_ROWS, version=2,
                      effective_at="2026-11-25T01:30:00Z")
    data.stage(v2.manifest_raw, v2.signature, "delta", v2.payload("delta"))
    data.apply_due(clock.now())
    assert data.status().kinds["catalogue"].applied == 2


def build_store_data(kiosk, clock, key, stale_after_s: float = 4 * 3600) -> StoreData:  # type: ignore[no-untyped-def]
    return StoreData(kiosk.db, kiosk.catalogue, store_id=STORE, currency="CNY",
                     public_key=public_b64(key), keys_file=None, lane_id="lane-01",
                     stale_after_s=stale_after_s, clock=clock,
                     audit=bootstrap.build_audit(kiosk))


@pytest.fixture
def key():  # type: ignore[no-untyped-def]
    return new_key()


@pytest.fixture
def data(lane, demo_kiosk, clock, key):  # type: ignore[no-untyped-def]
    store_data = build_store_data(demo_kiosk, clock, key)
    two_versions(store_data, key, clock)
    store_data.contacted(True)
    lane.staff.p.store_data = store_data
    return store_data


def page(lane, language, clock):  # type: ignore[no-untyped-def]
    return present.staff_page(lane.view.staff, language, SHANGHAI, clock.now())


def milk_price(kiosk) -> int:  # type: ignore[no-untyped-def]
    product = kiosk.catalogue.get("0" + MILK)
    assert product is not None
    return product.price.minor


def rollbacks(kiosk):  # type: ignore[no-untyped-def]
    return [(actor, json.loads(detail)) for actor, detail in kiosk.db.execute(
        "SELECT actor, detail FROM audit_log WHERE kind = 'store_data_rolled_back' "
        "ORDER BY seq")]


def test_the_page_shows_each_kind_in_both_languages(lane, data, clock, key):
    v3 = make_version(key, rows=V1_ROWS, previous=V2_ROWS, version=3,
                      effective_at="2027-01-01T01:00:00Z")  # 09:00 in Shanghai
    data.stage(v3.manifest_raw, v3.signature, "delta", v3.payload("delta"))
    clock.advance(minutes=12)
    sign_in(lane, ATTENDANT)
    lane.staff.do("store_data")
    assert lane.view.staff.page == "data"
    en = page(lane, "en", clock)
    assert en["staff_title"].startswith("Store data"), en
    text = en["staff_text"]
    assert "Head office last reached 12 min 0 s ago (2026-11-25 10:00:00)" in text, text
    assert "Catalogue and prices: version 2" in text, text
    # Applied at 10:00 store time; effective 01:30 UTC = 09:30 in Shanghai.
    assert "in use since 2026-11-25 10:00:00 (effective from 2026-11-25 09:30:00)" in text
    assert "before it: version 1" in text
    assert "downloaded, waiting: version 3, from 2027-01-01 09:00:00" in text, text
    assert "Promotions: no version from head office yet" in text
    assert "Warning" not in text  # reached 12 minutes ago: not stale
    # An attendant is told a manager rolls back.
    assert en["rollback_catalogue"] == "Catalogue and prices: back to version 1 (manager)"
    assert en["rollback_promotions"] == "" and en["rollback_lane-keys"] == ""
    zh = page(lane, "zh", clock)
    assert zh["staff_title"].startswith("门店数据"), zh
    assert "上次连上总部：12分0秒前" in zh["staff_text"], zh["staff_text"]
    assert "商品和价格：第 2 版" in zh["staff_text"] and "上一版：第 1 版" in zh["staff_text"]
    assert "已下载、等待启用：第 3 版，2027-01-01 09:00:00 起" in zh["staff_text"]
    assert zh["rollback_catalogue"] == "商品和价格退回第 1 版（店长）"
    for worded in (en, zh):  # one language at a time: no "English / 中文" lines
        assert " / " not in worded["staff_text"] and "_minor" not in worded["staff_text"]


def test_a_manager_rolls_back_after_saying_yes_and_it_is_audited(lane, data, demo_kiosk,
                                                                 clock):
    assert milk_price(demo_kiosk) == 650
    sign_in(lane, MANAGER)
    lane.staff.do("store_data")
    assert page(lane, "en", clock)["rollback_catalogue"] == \
        "Catalogue and prices: back to version 1"
    lane.staff.do("store_data", "catalogue")
    view = lane.view.staff
    assert view.page == "confirm" and view.purpose == "store_data" and view.chosen == "catalogue"
    en = page(lane, "en", clock)
    assert en["staff_title"] == "Roll back the catalogue and prices to version 1?"
    assert "Shoppers after this pay version 1 prices." in en["staff_text"], en
    assert "Version 2 is set aside and never used again" in en["staff_text"]
    zh = page(lane, "zh", clock)
    assert zh["staff_title"] == "把商品和价格退回第 1 版？"
    assert "之后的顾客按第 1 版的价格结账。" in zh["staff_text"]
    # Asking changed nothing.
    assert data.status().kinds["catalogue"].applied == 2 and rollbacks(demo_kiosk) == []
    lane.staff.do("store_data", "confirmed")
    assert data.status().kinds["catalogue"].applied == 1
    assert data.status().kinds["catalogue"].rolled_back == (2,)
    assert milk_price(demo_kiosk) == 590
    assert rollbacks(demo_kiosk) == [("Wang Wei", {"lane": "lane-01", "kind": "catalogue",
                                                    "from": 2, "to": 1})]
    assert lane.view.staff.page == "data"
    assert page(lane, "en", clock)["staff_message"] == \
        "Rolled back the catalogue and prices from version 2 to version 1."
    assert page(lane, "zh", clock)["staff_message"] == "商品和价格已从第 2 版退回第 1 版。"
    assert "rolled back, never used again: version 2" in page(lane, "en", clock)["staff_text"]
    # Version 1 was the first: nothing further back, so no button.
    assert page(lane, "en", clock)["rollback_catalogue"] == ""
    # The audit log page names it in the staff member's language.
    lane.staff.do("audit_log")
    assert "store data rolled back" in page(lane, "en", clock)["staff_text"]
    assert "门店数据退回" in page(lane, "zh", clock)["staff_text"]


@pytest.mark.parametrize("open_what", ["session", "payment"])
def test_no_rollback_while_a_shopper_has_a_session_or_payment_open(lane, data, demo_kiosk,
                                                                   clock, open_what):
    lane.scan(MILK)
    if open_what == "payment":
        lane.pay()
        assert lane.view.payment is not None
    sign_in(lane, MANAGER)
    lane.staff.do("store_data", "catalogue")  # the "back to version 1" button
    assert lane.view.staff.page == "data"  # not even asked: refused at once
    assert lane.view.staff.level == "error"
    en = page(lane, "en", clock)["staff_message"]
    said = {"session": "A shopper is using", "payment": "A payment is still open at"}
    assert en.startswith(f"{said[open_what]} this lane: nothing was rolled back"), en
    zh = page(lane, "zh", clock)["staff_message"]
    assert "现在不能退回" in zh, zh
    # A confirmation answered while a shopper is there is refused too.
    lane.staff.do("store_data", "confirmed")
    assert data.status().kinds["catalogue"].applied == 2 and milk_price(demo_kiosk) == 650
    assert rollbacks(demo_kiosk) == []
    refused = [json.loads(d) for (d,) in demo_kiosk.db.execute(
        "SELECT detail FROM audit_log WHERE kind = 'store_data_rollback_refused'")]
    assert refused and refused[0]["why"] == open_what and refused[0]["kind"] == "catalogue"


def test_an_attendant_is_refused_a_rollback(lane, data, demo_kiosk, clock):
    sign_in(lane, ATTENDANT)
    lane.staff.do("store_data", "catalogue")
    assert page(lane, "en", clock)["staff_message"] == "Only a manager may roll back a version."
    assert page(lane, "zh", clock)["staff_message"] == "只有店长可以退回版本。"
    assert data.status().kinds["catalogue"].applied == 2 and rollbacks(demo_kiosk) == []


def test_stale_data_is_said_in_words_a_clerk_understands(lane, demo_kiosk, clock, key):
    store_data = build_store_data(demo_kiosk, clock, key, stale_after_s=3600)
    two_versions(store_data, key, clock)
    store_data.contacted(True)
    clock.advance(hours=5)
    lane.staff.p.store_data = store_data
    sign_in(lane, ATTENDANT)
    lane.staff.do("store_data")
    en = page(lane, "en", clock)["staff_text"]
    assert "Head office last reached 5 h ago" in en, en
    assert "Warning: head office not reached for 5 h, so prices may be out of date." \
        in en and "call head office IT" in en, en
    zh = page(lane, "zh", clock)["staff_text"]
    assert "注意：已有5小时没有连上总部，价格可能不是最新的" in zh, zh


def test_the_page_says_when_store_sync_is_not_set_up(lane, clock):
    assert lane.staff.p.store_data is None  # as the lane is built without sync.hq_public_key
    sign_in(lane, MANAGER)
    lane.staff.do("store_data")
    assert page(lane, "en", clock)["staff_text"].startswith(
        "Store sync is not set up on this lane")
    assert page(lane, "zh", clock)["staff_text"].startswith("本通道没有设置与总部同步")
    assert page(lane, "en", clock)["rollback_catalogue"] == ""


# -- kiosk sync, a process of its own on a real data directory -----------------------------
def sync_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app.cli", "sync", *args], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_kiosk_sync_status_and_rollback(tmp_path, clock, key):
    data_dir = tmp_path / "lane"
    data_dir.mkdir()
    (data_dir / "kiosk.toml").write_text(
        # No head office need answer: status and rollback read and write the database.
        f'[sync]\nhq_public_key = "{public_b64(key)}"\nurl = "http://127.0.0.1:9"\n\n'
        f'[membership]\nstore_id = "{STORE}"\n',
        encoding="utf-8")
    kiosk = bootstrap.build(load_settings(data_dir=data_dir, environ={}), clock=clock)
    store_data = bootstrap.build_store_data(kiosk)
    assert store_data is not None
    two_versions(store_data, key, clock)
    Sessions(kiosk.db).add("s-1", "lane-01", clock.now().isoformat())  # a shopper mid-cart
    kiosk.close()

    status = sync_cli(data_dir, "status", "--json")
    assert status.returncode == 0, status.stderr
    facts = json.loads(status.stdout)
    cat = facts["kinds"]["catalogue"]
    assert facts["set_up"] is True and cat["applied"] == 2 and cat["previous"] == 1
    assert cat["effective_at"] == "2026-11-25T09:30:00+08:00" and cat["staged"] == []
    assert facts["kinds"]["promotions"]["applied"] is None
    text = sync_cli(data_dir, "status")
    assert "catalogue   version 2, applied 2026-11-25T10:00:00+08:00" in text.stdout, text.stdout
    assert "previous: 1 (kiosk sync rollback catalogue)" in text.stdout

    refused = sync_cli(data_dir, "rollback", "catalogue", "--staff", "Wang Wei")
    assert refused.returncode == 1
    assert "not rolled back: a shopper's session is open at this lane" in refused.stderr, \
        refused.stderr
    assert json.loads(sync_cli(data_dir, "status", "--json").stdout)[
        "kinds"]["catalogue"]["applied"] == 2

    kiosk = bootstrap.build(load_settings(data_dir=data_dir, environ={}), clock=clock)
    Sessions(kiosk.db).close("s-1", "paid", clock.now().isoformat(), None)  # they paid
    kiosk.close()
    done = sync_cli(data_dir, "rollback", "catalogue", "--staff", "Wang Wei")
    assert done.returncode == 0, done.stderr
    assert "catalogue: rolled back from version 2 to version 1" in done.stdout
    after = json.loads(sync_cli(data_dir, "status", "--json").stdout)["kinds"]["catalogue"]
    assert after["applied"] == 1 and after["rolled_back"] == [2] and after["previous"] is None

    kiosk = bootstrap.build(load_settings(data_dir=data_dir, environ={}), clock=clock)
    assert rollbacks(kiosk) == [("Wang Wei", {"lane": "lane-01", "kind": "catalogue",
                                              "from": 2, "to": 1})]
    assert milk_price(kiosk) == 590
    kiosk.close()
    again = sync_cli(data_dir, "rollback", "catalogue", "--staff", "Wang Wei")
    assert again.returncode == 1 and "nothing to roll back to" in again.stderr, again.stderr


def test_kiosk_sync_without_store_sync_set_up(tmp_path):
    status = sync_cli(tmp_path / "bare", "status", "--json")
    assert status.returncode == 0, status.stderr
    facts = json.loads(status.stdout)
    assert facts["set_up"] is False and "head office" in facts["why"], facts
    refused = sync_cli(tmp_path / "bare", "rollback", "catalogue", "--staff", "x")
    assert refused.returncode == 1 and "not set up" in refused.stderr


@pytest.fixture
def head_office(tmp_path):  # type: ignore[no-untyped-def]
    """A real head-office service (hq.service.HqServer, HTTP on 127.0.0.1) over the
    embedded SQLite store."""
    import threading

    from hq.service import HqServer
    from hq.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "hq.db")
    server = HqServer(store, token="lane-token")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, store
    server.shutdown()
    server.server_close()


def test_kiosk_sync_check_asks_head_office_now_and_stages(tmp_path, head_office, key):
    server, store = head_office
    v1 = make_version(key, rows=V1_ROWS, version=1, effective_at="2027-01-01T01:00:00Z")
    store.publish_version(v1.manifest_raw, v1.signature, v1.full, None)
    data_dir = tmp_path / "lane"
    data_dir.mkdir()
    config = data_dir / "kiosk.toml"
    config.write_text(
        f'[sync]\nhq_public_key = "{public_b64(key)}"\nurl = "{server.url}"\n\n'
        f'[membership]\nstore_id = "{STORE}"\ntoken = "lane-token"\n', encoding="utf-8")
    checked = sync_cli(data_dir, "check", "--json")
    assert checked.returncode == 0, checked.stderr
    facts = json.loads(checked.stdout)
    assert facts["reached"] is True and facts["staged_now"] == 1, facts
    # Staged, not applied: the lane applies it between shoppers, from 2027-01-01.
    assert facts["kinds"]["catalogue"]["staged"] == [1]
    assert facts["kinds"]["catalogue"]["staged_effective"] == ["2027-01-01T09:00:00+08:00"]
    assert facts["kinds"]["catalogue"]["applied"] is None
    assert facts["checked_at"] is not None
    # Head office gone: exit 1, the reason said, nothing changed.
    server.shutdown()
    server.server_close()
    down = sync_cli(data_dir, "check")
    assert down.returncode == 1, down.stdout
    assert "head office: not reached" in down.stdout, down.stdout
    assert "staged, waiting: 1" in down.stdout
