"""The lane's store data versions (issue 22): verify, stage, apply between shoppers in one
transaction, roll back, refuse what is not head office's, and say so; on real SQLite files.

Versions are built as head office publishes them (tests/store_versions.py, with the
domain's own encoder and a real Ed25519 key)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest

from app.domain.exit_pass import ExitPass
from app.services.exit_pass import PassSigner, check_pass, lane_signer, public_key_text
from app.services.health import health_lines, health_page, store_data_lines
from app.services.reports import Reports
from app.services.store_data import StoreData, StoreDataRefused
from app.storage.audit import AuditLog
from app.storage.catalogue_repo import SqliteCatalogue
from app.storage.sales_repo import Sales
from tests.store_versions import (
    STORE,
    gtin13,
    listing,
    make_version,
    new_key,
    product_row,
    public_b64,
    resigned,
    utc,
)
from tests.unit.factories import paid_sale

V1 = [product_row(gtin13(i), 100 + i, f"Item {i}") for i in range(1, 6)]
MILK = gtin13(1)  # "Item 1"


def v2_rows() -> list[tuple]:
    rows = {r[0]: r for r in V1}
    rows["0" + gtin13(2)] = product_row(gtin13(2), 999, "Item 2")  # price changed
    del rows["0" + gtin13(3)]  # removed
    rows["0" + gtin13(9)] = product_row(gtin13(9), 450, "Item 9")  # added
    return list(rows.values())


def whole_catalogue(catalogue: SqliteCatalogue) -> list[tuple]:
    """Every product row, in code order: a query over the whole catalogue."""
    out: list[tuple] = []
    while page := catalogue.rows(out[-1][0] if out else "", 5000):
        out += page
    return out


def as_rows(rows) -> list[tuple]:
    return sorted((tuple(r) for r in rows), key=lambda r: r[0])


@pytest.fixture
def key():
    return new_key()


@pytest.fixture
def keys_file(kiosk):
    return kiosk.settings.public_keys_path


@pytest.fixture
def store(kiosk, key, keys_file, clock):
    return StoreData(kiosk.db, kiosk.catalogue, store_id=STORE,
                     currency=kiosk.settings.store.currency, public_key=public_b64(key),
                     keys_file=keys_file, lane_id=kiosk.settings.kiosk.lane_id,
                     stale_after_s=3600, clock=clock, audit=AuditLog(kiosk.db))


def stage(store: StoreData, v, fmt: str):
    return store.stage(v.manifest_raw, v.signature, fmt, v.payload(fmt))


LATER = utc("2030-01-01T00:00:00+00:00")


def test_full_then_delta_then_rollback(kiosk, store, key):
    v1 = make_version(key, rows=V1, version=1)
    assert store.have("catalogue") is None
    assert [(m.version, f) for m, f in store.plan("catalogue", listing(v1))] == [(1, "full")]
    stage(store, v1, "full")
    assert store.have("catalogue") == 1 and store.status().staged() == {"catalogue": 1}
    assert whole_catalogue(kiosk.catalogue) == []  # staged, not applied
    assert store.apply_due(LATER) == [("catalogue", 1)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(V1)
    assert kiosk.lookup(MILK).item is not None  # the lane sells from it

    v2 = make_version(key, rows=v2_rows(), previous=V1, version=2)
    assert [(m.version, f) for m, f in store.plan("catalogue", listing(v1, v2))] == [
        (2, "delta")]
    stage(store, v2, "delta")
    assert store.apply_due(LATER) == [("catalogue", 2)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(v2_rows())
    st = store.status().kinds["catalogue"]
    assert (st.applied, st.previous, st.staged) == (2, 1, ())

    assert store.rollback("catalogue", "Manager") == (2, 1)
    assert whole_catalogue(kiosk.catalogue) == as_rows(V1)
    st = store.status().kinds["catalogue"]
    assert (st.applied, st.rolled_back, st.previous) == (1, (2,), None)
    assert store.status().versions()["catalogue"] == 1
    with pytest.raises(ValueError, match="nothing to roll back to"):
        store.rollback("catalogue", "Manager")
    audit = AuditLog(kiosk.db)
    assert audit.count_kinds(0, audit.head()[0]) == {
        "store_data_applied": 2, "store_data_rolled_back": 1}

    # The rolled-back version is never planned again; a newer one comes in full (its delta
    # is against 2, which the lane no longer holds), and applies.
    v3_rows = [*v2_rows(), product_row(gtin13(10), 1, "Item 10")]
    v3 = make_version(key, rows=v3_rows, previous=v2_rows(), version=3)
    assert [(m.version, f) for m, f in store.plan("catalogue", listing(v2, v3))] == [
        (3, "full")]
    with pytest.raises(StoreDataRefused, match="rolled back"):
        stage(store, v2, "full")
    stage(store, v3, "full")
    assert store.apply_due(LATER) == [("catalogue", 3)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(v3_rows)
    # ... and a full switch rolls back too: to the table it replaced.
    assert store.rollback("catalogue", "Manager") == (3, 1)
    assert whole_catalogue(kiosk.catalogue) == as_rows(V1)
    store.tidy()
    assert whole_catalogue(kiosk.catalogue) == as_rows(V1)


def test_a_full_and_later_deltas_apply_together_in_one_step(kiosk, store, key):
    """A lane back after hours catches up in one step: full of the newest effective
    version, deltas of the later ones, all applied in one transaction."""
    r2 = v2_rows()
    r3 = [*r2, product_row(gtin13(11), 5, "Item 11")]
    v1 = make_version(key, rows=V1, version=1)
    v2 = make_version(key, rows=r2, previous=V1, version=2)
    v3 = make_version(key, rows=r3, previous=r2, version=3,
                      effective_at="2029-01-01T00:00:00Z")
    plan = store.plan("catalogue", listing(v1, v2, v3))
    assert [(m.version, f) for m, f in plan] == [(2, "full"), (3, "delta")]
    for m, fmt in plan:
        stage(store, {2: v2, 3: v3}[m.version], fmt)
    assert store.apply_due(LATER) == [("catalogue", 2), ("catalogue", 3)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(r3)


def test_a_version_is_applied_only_when_it_is_due(kiosk, store, key):
    """A price change published for 09:00, downloaded at 08:50, applies at 09:00, not
    before (the lane calls apply_due only between shoppers: docs/pricing.md)."""
    stage(store, make_version(key, rows=V1, version=1), "full")
    store.apply_due(LATER)
    nine = utc("2026-12-01T09:00:00+08:00")
    v2 = make_version(key, rows=v2_rows(), previous=V1, version=2, effective_at=nine)
    stage(store, v2, "delta")
    assert not store.due(nine - timedelta(seconds=1))
    assert store.apply_due(nine - timedelta(seconds=1)) == []
    assert whole_catalogue(kiosk.catalogue) == as_rows(V1)
    assert store.due(nine)
    assert store.apply_due(nine) == [("catalogue", 2)]
    assert not store.due(nine)
    assert whole_catalogue(kiosk.catalogue) == as_rows(v2_rows())


def _tampered(v):
    data = bytearray(v.full)
    data[len(data) // 2] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize("case", ["tampered", "truncated", "other key", "missing base",
                                  "other currency", "other store", "bad signature"])
def test_every_refusal_says_why_and_changes_nothing(kiosk, store, key, case):
    v1 = make_version(key, rows=V1, version=1)
    stage(store, v1, "full")
    store.apply_due(LATER)
    before = whole_catalogue(kiosk.catalogue)
    r2 = v2_rows()
    v2 = make_version(key, rows=r2, previous=V1, version=2)
    fmt, payload, manifest, signature = "full", v2.full, v2.manifest_raw, v2.signature
    if case == "tampered":
        payload, reason = _tampered(v2), "SHA-256 does not match"
    elif case == "truncated":
        payload, reason = v2.full[:-10], "truncated"
    elif case == "other key":
        forged = make_version(new_key(), rows=r2, previous=V1, version=2)
        manifest, signature = forged.manifest_raw, forged.signature
        reason = "signed by another key"
    elif case == "bad signature":
        forged = make_version(key, rows=r2, previous=V1, version=2, sign_with=new_key())
        manifest, signature = forged.manifest_raw, forged.signature
        reason = "signature does not match"
    elif case == "missing base":
        r3 = [*r2, product_row(gtin13(12), 7)]
        v3 = make_version(key, rows=r3, previous=r2, version=3)
        fmt, payload, manifest, signature = "delta", v3.delta, v3.manifest_raw, v3.signature
        reason = "delta against version 2, which this lane does not hold"
    elif case == "other currency":
        other = resigned(key, v2, currency="USD")
        manifest, signature, reason = other.manifest_raw, other.signature, "is in USD"
    else:
        other = resigned(key, v2, store_id="store-99")
        manifest, signature, reason = other.manifest_raw, other.signature, "store-99"
    with pytest.raises(StoreDataRefused, match=reason) as refused:
        store.stage(manifest, signature, fmt, payload)
    assert refused.value.reason == str(refused.value)
    assert whole_catalogue(kiosk.catalogue) == before  # unchanged
    assert store.status().staged() == {} and store.have("catalogue") == 1
    assert store.apply_due(LATER) == []
    assert whole_catalogue(kiosk.catalogue) == before
    assert kiosk.lookup(MILK).item is not None  # still sells
    assert reason in store.status().kinds["catalogue"].last_refusal
    if case in ("other key", "bad signature", "other currency", "other store"):
        with pytest.raises(StoreDataRefused, match=reason):
            store.plan("catalogue", [(manifest, signature)])


def test_no_pinned_key_refuses_everything(kiosk, key, clock):
    store = StoreData(kiosk.db, kiosk.catalogue, store_id=STORE, currency="CNY",
                      public_key=None, keys_file=None, lane_id="lane-01", stale_after_s=60,
                      clock=clock, audit=None)
    v1 = make_version(key, rows=V1)
    with pytest.raises(StoreDataRefused, match="not set up"):
        stage(store, v1, "full")
    assert not store.status().stale  # sync not set up: nothing to be behind on


def test_a_bad_row_refuses_the_version(kiosk, store, key):
    bad = [*V1, ("0" + gtin13(7), "x", "X", -5, None, "each", "food", 0, None, "", "")]
    with pytest.raises(StoreDataRefused, match="price must be"):
        stage(store, make_version(key, rows=bad), "full")
    assert store.status().staged() == {}


def test_promotions_and_lane_keys_apply_and_roll_back(kiosk, store, key, keys_file, clock):
    # This lane's own key line, as the kiosk writes it at first start.
    own = lane_signer(kiosk.settings.private_key_path, keys_file, kiosk.settings.kiosk.lane_id)
    other = PassSigner(__import__("cryptography.hazmat.primitives.asymmetric.ed25519",
                                  fromlist=["x"]).Ed25519PrivateKey.generate())
    third = new_key()
    lanes1 = [("lane-02", public_key_text(other.public_key())),
              ("lane-03", public_b64(third))]
    k1 = make_version(key, kind="lane-keys", rows=lanes1, version=1)
    promo = {"promo_id": "P1", "kind": "amount_off", "amount": "1.00",
             "departments": ["dairy"]}
    p1 = make_version(key, kind="promotions", rows=[("P1", promo)], version=1)
    stage(store, k1, "full")
    stage(store, p1, "full")
    assert sorted(store.apply_due(LATER)) == [("lane-keys", 1), ("promotions", 1)]
    text = keys_file.read_text()
    mine = public_key_text(own.public_key())
    assert f'"{kiosk.settings.kiosk.lane_id}" = "{mine}"' in text
    assert '"lane-02"' in text and '"lane-03"' in text
    issued = int(clock.now().timestamp())
    pass_text = other.sign(ExitPass("lane-02", "K2-000001", 650, "CNY", 1, issued))
    valid, said = check_pass(pass_text, keys_path=keys_file, now=clock.now(), max_age_h=2,
                             refunded_minor=lambda _o: 0)
    assert valid, said
    assert [p.promo_id for p in kiosk.catalogue.promotions()] == ["P1"]

    promo2 = dict(promo, amount="2.00")
    p2 = make_version(key, kind="promotions", rows=[("P1", promo2)],
                      previous=[("P1", promo)], version=2)
    k2 = make_version(key, kind="lane-keys", rows=lanes1[1:], previous=lanes1, version=2)
    stage(store, p2, "delta")
    stage(store, k2, "delta")
    store.apply_due(LATER)
    assert kiosk.catalogue.promotions()[0].amount.minor == 200
    assert '"lane-02"' not in keys_file.read_text()
    assert store.rollback("lane-keys", "Manager") == (2, 1)
    assert '"lane-02"' in keys_file.read_text()
    assert store.rollback("promotions", "Manager") == (2, 1)
    assert kiosk.catalogue.promotions()[0].amount.minor == 100
    assert store.status().versions() == {"catalogue": None, "promotions": 1, "lane-keys": 1}


def test_a_local_import_after_sync_makes_the_kind_local(kiosk, store, key, tmp_path):
    from app.services.catalogue import import_catalogue

    v1 = make_version(key, rows=V1)
    stage(store, v1, "full")
    store.apply_due(LATER)
    assert store.status().versions()["catalogue"] == 1
    csv = tmp_path / "local.csv"
    csv.write_text("code,name_zh,name_en,price,member_price,unit,tax_class,min_age,"
                   "quantity_limit,department,image\n6900000000014,牛奶,Milk,6.50,,each,food,"
                   "0,,dairy,\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, csv, replace=True, tax_classes=frozenset({"food"}),
                     parallel=False)
    st = store.status().kinds["catalogue"]
    assert (st.applied, st.local) == (None, True)
    assert store.have("catalogue") is None
    r2 = v2_rows()
    v2 = make_version(key, rows=r2, previous=V1, version=2)
    assert [(m.version, f) for m, f in store.plan("catalogue", listing(v1, v2))] == [
        (2, "full")]
    with pytest.raises(StoreDataRefused, match="does not hold"):
        stage(store, v2, "delta")
    with pytest.raises(ValueError, match="local import"):
        store.rollback("catalogue", "Manager")
    stage(store, v2, "full")
    store.apply_due(LATER)
    assert whole_catalogue(kiosk.catalogue) == as_rows(r2)
    assert store.status().versions()["catalogue"] == 2


def test_a_sale_record_carries_the_versions_and_reports_show_them(kiosk, store, key, clock):
    sales = Sales(kiosk.db)
    first = paid_sale()
    sales.add(first, clock.now())  # before any version
    stage(store, make_version(key, rows=V1), "full")
    store.apply_due(LATER)
    from dataclasses import replace

    second = replace(first, order_id="K2")
    sales.add(second, clock.now())
    assert sales.data_versions(first.order_id) == {
        "catalogue": None, "promotions": None, "lane-keys": None}
    assert sales.data_versions("K2") == {"catalogue": 1, "promotions": None,
                                         "lane-keys": None}
    reports = Reports(kiosk.db, AuditLog(kiosk.db), "lane-01", "CNY")
    x = reports.x(clock.now())
    assert x.body["data_versions"]["catalogue"] == 1
    assert [row["sales"] for row in x.body["sold_under"]] == [1, 1]
    text = x.text()
    assert "Data now: catalogue 1, promotions -, lane-keys -" in text
    assert "Sold under catalogue 1, promotions -, lane-keys -: 1 sale(s)" in text
    z = reports.z(clock.now(), "Manager")
    assert z.body["sold_under"][1]["versions"]["catalogue"] == 1


class _Provider:
    name = "simulator"

    def query(self, _order):
        raise RuntimeError("404 not found")


def test_health_says_the_data_is_stale_after_the_age(kiosk, store, key, clock):
    from app.storage.outbox import Outbox

    stage(store, make_version(key, rows=V1), "full")
    store.apply_due(LATER)
    store.contacted(True)
    lines = store_data_lines(store.status(), 3600)
    assert lines[0].startswith("Store data: catalogue 1, promotions -, lane keys -")
    assert "head office checked 0 min 0 s ago" in lines[0]
    assert not any("Alert (store-data)" in line for line in lines)
    clock.advance(seconds=3601)
    store.contacted(False, "connection refused")
    st = store.status()
    assert st.stale and st.age_s == pytest.approx(3601) and st.last_error == "connection refused"
    lines = health_lines(lambda: [], _Provider(), Outbox(kiosk.db), lambda: [],
                         lambda: (store.status(), 3600))
    assert any("Alert (store-data)" in line and "1 h 0 min" in line for line in lines)
    said = health_page(lambda: [], _Provider(), Outbox(kiosk.db), lambda: [],
                       lambda: (store.status(), 3600), clock.now)
    from app.ui.present import words

    zh = [words(s, "zh", clock.now().tzinfo, clock.now()) for s in said]
    en = [words(s, "en", clock.now().tzinfo, clock.now()) for s in said]
    assert any(line.startswith("店铺数据：商品目录 1") for line in zh)
    assert any("提醒（店铺数据）" in line for line in zh)
    assert any("Alert (store data): store data not checked" in line for line in en)


def test_the_data_is_stale_when_head_office_was_never_reached(kiosk, store, clock):
    assert not store.status().stale
    clock.advance(seconds=3601)
    st = store.status()
    assert st.stale and st.age_s is None and st.checked_at is None


def test_a_delta_staged_twice_and_a_killed_staging_leave_one_copy(kiosk, store, key):
    stage(store, make_version(key, rows=V1), "full")
    store.apply_due(LATER)
    v2 = make_version(key, rows=v2_rows(), previous=V1, version=2)
    stage(store, v2, "delta")
    stage(store, v2, "delta")  # downloaded again: replaces, does not add
    assert store.apply_due(LATER) == [("catalogue", 2)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(v2_rows())


def test_the_key_file_is_rewritten_at_start_after_a_crash(kiosk, store, key, keys_file, clock):
    lanes = [("lane-07", public_b64(new_key()))]
    stage(store, make_version(key, kind="lane-keys", rows=lanes), "full")
    store.apply_due(LATER)
    keys_file.write_text("")  # as if killed after the commit, before the file was written
    StoreData(kiosk.db, kiosk.catalogue, store_id=STORE, currency="CNY",
              public_key=public_b64(key), keys_file=keys_file, lane_id="lane-01",
              stale_after_s=60, clock=clock, audit=None)
    assert '"lane-07"' in keys_file.read_text()


def test_the_public_key_setting_must_be_a_key(kiosk, clock):
    with pytest.raises(ValueError, match="hq_public_key"):
        StoreData(kiosk.db, kiosk.catalogue, store_id=STORE, currency="CNY",
                  public_key=base64.b64encode(b"short").decode(), keys_file=None,
                  lane_id="lane-01", stale_after_s=60, clock=clock, audit=None)


def test_manifest_json_is_what_was_signed(kiosk, store, key):
    """plan parses the signed bytes, never a convenience object: a manifest re-serialised
    (other spacing) no longer matches its signature."""
    v1 = make_version(key, rows=V1)
    loose = json.dumps(json.loads(v1.manifest_raw), indent=1).encode()
    with pytest.raises(StoreDataRefused, match="signature does not match"):
        store.plan("catalogue", [(loose, v1.signature)])
    assert datetime  # (imported for the helpers' types)


def test_two_instances_on_two_connections_agree_on_the_age(kiosk, store, key, clock):
    """The sync thread and the lane's thread each hold a StoreData on their own connection:
    a contact reported on one is measured (monotonic clock) on the other."""
    from app.storage.db import open_database

    other_db = open_database(kiosk.settings.data_dir / "kiosk.db", migrate=False)
    try:
        sync_side = StoreData(other_db, SqliteCatalogue(other_db, "CNY"), store_id=STORE,
                              currency="CNY", public_key=public_b64(key), keys_file=None,
                              lane_id="lane-01", stale_after_s=3600, clock=clock, audit=None)
        clock.advance(seconds=10)
        sync_side.contacted(True)
        clock.step(seconds=-7200)  # the wall clock is set back: ages stay on the monotonic clock
        clock.advance(seconds=30)
        st = store.status()
        assert st.age_s == pytest.approx(30) and not st.stale
    finally:
        other_db.close()


def test_a_shopper_who_scanned_before_the_change_pays_the_price_scanned(
        demo_kiosk, sim, clock, key, keys_file):
    """Effective-dated change (issue 22): a price change for 09:00 is staged at 08:50; a
    shopper scans at 08:59 and pays at 09:02 the price scanned (the cart keeps its prices:
    docs/pricing.md, "A session's prices"; the lane applies versions only between
    shoppers); the sale records version 1; the next shopper gets version 2's price."""
    from app import bootstrap
    from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
    from tests.helpers import pay_on_the_phone

    kiosk = demo_kiosk
    store = StoreData(kiosk.db, kiosk.catalogue, store_id=STORE, currency="CNY",
                      public_key=public_b64(key), keys_file=keys_file, lane_id="lane-01",
                      stale_after_s=3600, clock=clock, audit=AuditLog(kiosk.db))
    demo = whole_catalogue(kiosk.catalogue)
    milk = "06900000000014"
    stage(store, make_version(key, rows=demo, version=1), "full")
    assert store.apply_due(clock.now()) == [("catalogue", 1)]
    nine = clock.now() + timedelta(minutes=10)  # "09:00"
    changed = [(*r[:3], 999, None, *r[5:]) if r[0] == milk else r for r in demo]
    stage(store, make_version(key, rows=changed, previous=demo, version=2,
                              effective_at=nine), "delta")  # "08:50"
    kiosk.settings.payment.wallets = []
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    lane = bootstrap.build_lane(kiosk, provider=provider, receipt_notice=lambda: None)
    lane.boot()
    clock.advance(minutes=9)  # "08:59"
    lane.scan(milk[1:])
    assert lane.view.priced.total.minor == 650
    clock.advance(minutes=3)  # "09:02": the version is due, but a shopper is mid-session
    assert store.due(clock.now())
    pay_on_the_phone(lane, sim, clock)
    sales = Sales(kiosk.db)
    order, sale = sales.recent(1)[0]
    assert sale.total.minor == 650
    assert sales.data_versions(order)["catalogue"] == 1
    # Between shoppers (the attract screen): the lane applies it; the next shopper pays 9.99.
    assert store.apply_due(clock.now()) == [("catalogue", 2)]
    lane.scan(milk[1:])
    assert lane.view.priced.total.minor == 999


def test_a_newer_version_effective_now_is_not_held_back_by_an_older_future_one(
        kiosk, store, key):
    """Head office publishes version 2 for a date far ahead (Christmas prices), then
    version 3 effective now (an urgent fix). Version 3 is the newest version in effect, so
    the lane applies it at the next attract screen, not at Christmas: versions are applied
    in order, 2 and 3 together (3's delta is against 2; 3's snapshot is the whole
    catalogue head office wants from now), as plan() already assumes ("older ones would
    never be in effect")."""
    stage(store, make_version(key, rows=V1, version=1), "full")
    store.apply_due(LATER)
    now = utc("2026-12-01T09:00:00+08:00")
    r2 = v2_rows()
    r3 = [*r2, product_row(gtin13(12), 7, "Item 12")]
    v2 = make_version(key, rows=r2, previous=V1, version=2,
                      effective_at="2026-12-25T00:00:00Z")
    v3 = make_version(key, rows=r3, previous=r2, version=3,
                      effective_at="2026-11-30T00:00:00Z")
    plan = store.plan("catalogue", listing(v2, v3))
    assert [(m.version, f) for m, f in plan] == [(2, "delta"), (3, "delta")]
    stage(store, v2, "delta")
    stage(store, v3, "delta")
    assert store.due(now)
    assert store.apply_due(now) == [("catalogue", 2), ("catalogue", 3)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(r3)
    assert not store.due(LATER)  # version 2 went with it: nothing left waiting
    # Version 2 was never in effect: a rollback must not put its prices in force early.
    assert store.status().kinds["catalogue"].previous is None
    with pytest.raises(ValueError, match="not in effect yet"):
        store.rollback("catalogue", "Manager")
    assert whole_catalogue(kiosk.catalogue) == as_rows(r3)


def test_after_a_local_import_the_version_it_replaced_is_not_fetched_again(
        kiosk, store, key, tmp_path):
    """A local import replaced catalogue version 1; head office has published nothing
    newer. Its listing (the lane names no version, so all kept ones) holds only version 1,
    which this lane already applied: nothing to download, and no refusal ("already
    applied") recorded on every poll, which staff would read as a failing download."""
    from app.services.catalogue import import_catalogue

    v1 = make_version(key, rows=V1)
    stage(store, v1, "full")
    store.apply_due(LATER)
    csv = tmp_path / "local.csv"
    csv.write_text("code,name_zh,name_en,price,member_price,unit,tax_class,min_age,"
                   "quantity_limit,department,image\n6900000000014,牛奶,Milk,6.50,,each,food,"
                   "0,,dairy,\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, csv, replace=True, tax_classes=frozenset({"food"}),
                     parallel=False)
    assert store.have("catalogue") is None
    assert store.plan("catalogue", listing(v1)) == []
    assert store.status().kinds["catalogue"].last_refusal is None


def test_no_version_is_applied_while_a_catalogue_import_runs(kiosk, store, key):
    """`kiosk catalog import` (without --replace) copies the live catalogue into its side
    table batch by batch, then switches: a head-office version applied between two of its
    batches would leave a catalogue half of one version and half of the other. While an
    import holds its lock (``<db>.import-lock``, as another process would), the lane
    applies nothing and keeps the version waiting; once the import ends, it applies."""
    stage(store, make_version(key, rows=V1), "full")
    store.apply_due(LATER)
    stage(store, make_version(key, rows=v2_rows(), previous=V1, version=2), "delta")
    with kiosk.catalogue.import_lock():  # an import in progress
        assert store.apply_due(LATER) == []
        assert whole_catalogue(kiosk.catalogue) == as_rows(V1)
        assert store.status().kinds["catalogue"].staged == (2,)
    assert store.apply_due(LATER) == [("catalogue", 2)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(v2_rows())


def test_no_rollback_while_a_catalogue_import_runs(kiosk, store, key):
    """The same rule for a rollback (it restores before-images or switches tables): while
    an import holds its lock it is refused with the reason, nothing changed."""
    stage(store, make_version(key, rows=V1), "full")
    store.apply_due(LATER)
    stage(store, make_version(key, rows=v2_rows(), previous=V1, version=2), "delta")
    store.apply_due(LATER)
    with kiosk.catalogue.import_lock():
        with pytest.raises(ValueError, match="catalogue import is running"):
            store.rollback("catalogue", "Manager")
        assert whole_catalogue(kiosk.catalogue) == as_rows(v2_rows())
    assert store.rollback("catalogue", "Manager") == (2, 1)
    assert whole_catalogue(kiosk.catalogue) == as_rows(V1)


def test_a_payload_that_inflates_to_one_huge_line_is_refused_without_reading_it_whole(
        kiosk, store, key):
    """A payload is signed, so only head office's key can make one; still, a gzip that
    inflates to one 64 MiB line (no newline) must not be read into memory whole to find
    that it is not a row: lines past ``MAX_LINE_BYTES`` are refused as they are read."""
    import gzip
    import tracemalloc
    from dataclasses import replace

    from app.domain import store_data as sd

    v1 = make_version(key, rows=V1)
    bomb = gzip.compress(b"x" * (64 * 1024 * 1024), compresslevel=9)
    forged = resigned(key, v1, full=sd.Payload("full", sd.digest(bomb), len(bomb), 5))
    forged = replace(forged, full=bomb)
    tracemalloc.start()
    try:
        with pytest.raises(StoreDataRefused, match="longer than"):
            stage(store, forged, "full")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak
    assert store.status().staged() == {}


def test_a_local_import_over_a_staged_delta_does_not_strand_the_lane(kiosk, store, key,
                                                                     tmp_path):
    """Version 2 is staged as a delta on version 1 (waiting for 09:00) when staff import a
    catalogue file: the delta can never apply (its base is gone). The lane must not go on
    naming version 2 to head office (which then answers 304 forever, and every later delta
    is on a base the lane cannot use): it asks again as a lane with no version, gets
    version 2 in full, and applies it at 09:00."""
    from app.services.catalogue import import_catalogue

    v1 = make_version(key, rows=V1)
    stage(store, v1, "full")
    store.apply_due(LATER)
    nine = utc("2026-12-01T09:00:00+08:00")
    r2 = v2_rows()
    v2 = make_version(key, rows=r2, previous=V1, version=2, effective_at=nine)
    stage(store, v2, "delta")
    csv = tmp_path / "local.csv"
    csv.write_text("code,name_zh,name_en,price,member_price,unit,tax_class,min_age,"
                   "quantity_limit,department,image\n6900000000014,牛奶,Milk,6.50,,each,food,"
                   "0,,dairy,\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, csv, replace=True, tax_classes=frozenset({"food"}),
                     parallel=False)
    assert store.have("catalogue") is None
    assert store.status().kinds["catalogue"].staged == ()
    plan = store.plan("catalogue", listing(v1, v2))
    assert [(m.version, f) for m, f in plan] == [(2, "full")]
    stage(store, v2, "full")
    assert store.apply_due(nine) == [("catalogue", 2)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(r2)


def test_a_rollback_under_a_staged_delta_does_not_strand_the_lane(kiosk, store, key):
    """The same with a rollback: version 3 is staged as a delta on 2 (for later) when a
    manager rolls 2 back to 1. The delta can never apply; the lane names 1 to head office,
    not 3, and gets version 3 in full."""
    r2 = v2_rows()
    r3 = [*r2, product_row(gtin13(12), 7, "Item 12")]
    v1 = make_version(key, rows=V1)
    v2 = make_version(key, rows=r2, previous=V1, version=2)
    v3 = make_version(key, rows=r3, previous=r2, version=3, effective_at=LATER)
    stage(store, v1, "full")
    store.apply_due(LATER - timedelta(days=1))
    stage(store, v2, "delta")
    store.apply_due(LATER - timedelta(days=1))
    stage(store, v3, "delta")
    assert store.rollback("catalogue", "Manager") == (2, 1)
    assert store.have("catalogue") == 1
    assert store.status().kinds["catalogue"].staged == ()
    assert [(m.version, f) for m, f in store.plan("catalogue", listing(v2, v3))] == [
        (3, "full")]
    stage(store, v3, "full")
    assert store.apply_due(LATER) == [("catalogue", 3)]
    assert whole_catalogue(kiosk.catalogue) == as_rows(r3)
