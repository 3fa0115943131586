"""Every table's owner in app/storage: the repository methods services (and, after the
lane rewrite, the lane, staff mode and the scenario harness) call instead of SQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.events import EventType, new_event
from app.domain.payment import new_payment
from app.storage.alerts import StaffAlerts
from app.storage.audit import AuditLog
from app.storage.db import write_transaction
from app.storage.lane_state import LaneState
from app.storage.outbox import Outbox
from app.storage.payments_repo import PaymentsRepo
from app.storage.print_jobs import PrintJobs
from app.storage.sales_repo import Sales
from app.storage.sessions_repo import Sessions, StoredLine
from app.storage.z_reports import ZMarks, ZReports
from tests.unit.factories import paid_sale


@pytest.fixture
def db(kiosk):
    return kiosk.db


def payment(no: str, cart: str, now, minor: int = 650):
    return new_payment(no, cart, minor, "CNY", "simulator", now, now + timedelta(minutes=2))


# --- sessions and cart lines ----------------------------------------------------------------
def test_sessions_open_close_and_find_again(db, clock):
    sessions = Sessions(db)
    t0 = clock.now()
    sessions.add("s1", "lane-01", t0.isoformat())
    sessions.add("s2", "lane-01", (t0 + timedelta(seconds=1)).isoformat())
    sessions.add("s3", "lane-02", t0.isoformat())
    assert sessions.open_for_lane("lane-01").session_id == "s2"  # the newest open one
    sessions.set_member("s2", "M000001", provisional=True)
    found = sessions.open_for_lane("lane-01")
    assert (found.member_id, found.member_provisional) == ("M000001", True)
    assert sessions.member_provisional("s2") and not sessions.member_provisional("s1")
    assert not sessions.member_provisional("no-such-session")
    sessions.close("s2", "paid", t0.isoformat(), "K1")
    assert sessions.session_for_order("K1") == "s2" and sessions.session_for_order("K2") is None
    assert sessions.open_for_lane("lane-01").session_id == "s1"
    sessions.close("s1", "abandoned", (t0 + timedelta(minutes=5)).isoformat(), None)
    assert sessions.open_for_lane("lane-01") is None
    window = (t0.isoformat(), (t0 + timedelta(hours=1)).isoformat())
    assert sessions.count_abandoned(*window) == 1
    assert sessions.count_abandoned((t0 + timedelta(hours=1)).isoformat(),
                                    (t0 + timedelta(hours=2)).isoformat()) == 0


def test_cart_lines_are_written_replaced_and_removed(db, clock):
    sessions = Sessions(db)
    sessions.add("s1", "lane-01", clock.now().isoformat())
    sessions.put_line("s1", StoredLine(2, "6900000000021", 1, 1234, None, False))
    sessions.put_line("s1", StoredLine(1, "6900000000014", 2, None, 650, False))
    sessions.put_line("s1", StoredLine(1, "6900000000014", 3, None, 650, True))  # replaced
    assert sessions.lines("s1") == [StoredLine(1, "6900000000014", 3, None, 650, True),
                                    StoredLine(2, "6900000000021", 1, 1234, None, False)]
    sessions.remove_line("s1", 1)
    assert [ln.line_id for ln in sessions.lines("s1")] == [2]
    assert sessions.lines("other") == []


def test_a_line_and_a_session_keep_their_product_and_promotions_snapshots(db, clock):
    from app.domain.catalogue import Product, Unit
    from app.domain.money import Money
    from app.domain.promotions import promotion_from_dict

    sessions = Sessions(db)
    promo = promotion_from_dict({"promo_id": "P1", "kind": "amount_off", "amount": "1.00",
                                 "departments": ["dairy"]}, "CNY")
    sessions.add("s1", "lane-01", clock.now().isoformat(), [promo], "CNY")
    sessions.add("old", "lane-02", clock.now().isoformat())  # as before m010: none kept
    assert sessions.promotions("s1") == [promo]
    assert sessions.promotions("old") is None and sessions.promotions("nobody") is None
    milk = Product("06900000000014", "牛奶", "Milk", Money(650, "CNY"), Unit.EACH, "food",
                   Money(590, "CNY"), 18, 2, "dairy", "milk.png")
    sessions.put_line("s1", StoredLine(1, milk.code, 1, None, None, False, milk))
    assert sessions.lines("s1")[0].product == milk


def test_a_line_written_in_the_callers_transaction_goes_with_it(db, clock):
    sessions, outbox = Sessions(db), Outbox(db)
    sessions.add("s1", "lane-01", clock.now().isoformat())
    with pytest.raises(RuntimeError):
        with write_transaction(db):
            sessions.put_line("s1", StoredLine(1, "6900000000014", 1, None, None, False))
            outbox.record(new_event(EventType.HELP_REQUESTED, occurred_at=clock.now(),
                                    session_id="s1", payload={"reason": "x"}))
            raise RuntimeError("the event could not be written")
    assert sessions.lines("s1") == [] and outbox.status().pending == 0


# --- sales --------------------------------------------------------------------------------
def test_sales_are_kept_once_and_read_by_period_and_recency(db, clock):
    sales = Sales(db)
    assert sales.last_mark() == 0 and sales.recent() == []
    first = paid_sale()
    sales.add(first, clock.now())
    sales.add(first, clock.now())  # the same order again: ignored
    assert sales.count(first.order_id) == 1 and sales.get(first.order_id) == first
    assert sales.get("no-such-order") is None
    mark = sales.last_mark()
    from dataclasses import replace

    second = replace(first, order_id="K2")
    clock.advance(minutes=1)
    sales.add(second, clock.now())
    assert [o for o, _ in sales.recent(8)] == ["K2", first.order_id]  # newest first
    assert sales.recent(1)[0] == ("K2", second)
    assert sales.between(0, mark) == [first]
    assert sales.between(mark, sales.last_mark()) == [second]


# --- staff alerts ---------------------------------------------------------------------------
def test_staff_alerts_are_found_listed_and_counted(db, clock):
    alerts = StaffAlerts(db)
    assert not alerts.exists("outbox") and alerts.unresolved() == []
    alerts.add("payment", "K1", "paid 1.00 more than the cart", clock.now())
    clock.advance(minutes=1)
    alerts.add("outbox", "fill", "the event outbox is 80% full", clock.now())
    clock.advance(minutes=1)
    alerts.add("payment", "K1", "another flag", clock.now())
    assert alerts.exists("outbox") and alerts.exists("payment", ref="K1")
    assert alerts.exists("payment", ref="K1", message="another flag")
    assert not alerts.exists("payment", ref="K2")
    assert [a.kind for a in alerts.unresolved()] == ["payment", "outbox", "payment"]
    newest = alerts.unresolved(newest_first=True, limit=2)
    assert [a.message for a in newest] == ["another flag", "the event outbox is 80% full"]
    db.execute("UPDATE staff_alerts SET resolved_at = 'x' WHERE kind = 'outbox'")
    assert not alerts.exists("outbox") and alerts.exists("outbox", unresolved_only=False)
    t0, end = clock.now() - timedelta(hours=1), clock.now() + timedelta(seconds=1)
    assert alerts.count_refs("payment", t0.isoformat(), end.isoformat()) == 1  # one order
    alerts.add("payment", "K2", "flag", clock.now())
    assert alerts.count_refs("payment", t0.isoformat(), end.isoformat()) == 2
    assert alerts.count_refs("payment", t0.isoformat(), clock.now().isoformat()) == 1
    assert alerts.count_refs("outbox", t0.isoformat(), end.isoformat()) == 1


# --- Z reports ------------------------------------------------------------------------------
def test_z_reports_keep_their_marks_and_heads(db):
    z = ZReports(db)
    assert z.last_marks() is None and z.next_number() == 1 and z.heads() == []
    z.add(1, "0000", "2026-11-25T22:00:00+08:00", {"sales_count": 0}, 3, "a" * 64, 5, 7)
    assert z.last_marks() == ZMarks("2026-11-25T22:00:00+08:00", 5, 7, 3)
    assert z.next_number() == 2
    z.add(2, "2026-11-25T22:00:00+08:00", "2026-11-26T22:00:00+08:00", {}, 9, "b" * 64, 6, 8)
    assert z.heads() == [(3, "a" * 64), (9, "b" * 64)]
    assert z.last_marks().audit_seq == 9


# --- lane state -----------------------------------------------------------------------------
def test_the_lane_is_open_until_staff_close_it_and_stays_so(kiosk, data_dir, clock):
    state = LaneState(kiosk.db)
    assert state.is_open()
    state.set_open(False)
    assert not state.is_open()
    from app import bootstrap

    again = bootstrap.build(kiosk.settings, clock)  # a restart: another connection
    try:
        assert not LaneState(again.db).is_open()
        LaneState(again.db).set_open(True)
    finally:
        again.close()
    assert state.is_open()


# --- payments -------------------------------------------------------------------------------
def test_payments_counted_listed_and_the_latest_found(db, clock):
    repo = PaymentsRepo(db)
    assert repo.count() == 0 and repo.latest() is None and repo.all_payments() == []
    repo.add(payment("K1", "c1", clock.now()), {}, clock.now())
    clock.advance(seconds=5)
    repo.add(payment("K2", "c2", clock.now(), 900), {}, clock.now())
    assert repo.count() == 2 and repo.latest().out_trade_no == "K2"
    assert [p.out_trade_no for p in repo.all_payments()] == ["K1", "K2"]


def test_refund_steps_are_found_by_step_marks(db, clock):
    repo = PaymentsRepo(db)
    assert repo.last_step_mark() == 0
    p = payment("K1", "c1", clock.now())
    repo.add(p, {}, clock.now())  # its "created" step
    mark = repo.last_step_mark()
    assert mark > 0
    repo.refunded(p, clock.now(), 300, "R1", "RF1", "Manager")
    repo.log(p, clock.now(), "a note")
    repo.refunded(p, clock.now(), 100, "R2", "RF2", "Manager")
    assert repo.refund_notes(mark, repo.last_step_mark()) == [
        "refunded 300 as R1: RF1", "refunded 100 as R2: RF2"]
    assert repo.refund_notes(0, mark) == []


# --- print jobs ------------------------------------------------------------------------------
def test_the_first_job_of_an_order_and_every_exit_pass(db, clock):
    jobs = PrintJobs(db)
    sale = paid_sale()
    assert jobs.first_for(sale.order_id) is None and jobs.exit_passes() == []
    first = jobs.add(sale, "PASS-1", clock.now())
    jobs.reprint(sale.order_id, clock.now())
    jobs.add_document("Z1", "Z REPORT", clock.now())
    found = jobs.first_for(sale.order_id)
    assert found.job_id == first and found.sale == sale and found.exit_pass == "PASS-1"
    assert not found.copy and jobs.latest_for(sale.order_id).copy
    assert jobs.exit_passes() == ["PASS-1"]  # once, however often printed; none for documents


# --- the outbox ------------------------------------------------------------------------------
def test_event_types_counted_and_a_sessions_events_found(db, clock):
    outbox = Outbox(db)
    assert outbox.types() == [] and outbox.count_by_type() == {}

    def record(kind, session, **payload):
        outbox.record(new_event(kind, occurred_at=clock.now(), session_id=session,
                                payload=payload))

    scanned = {"code": "6900000000014", "product": "Milk", "price_minor": 650}
    record(EventType.ITEM_SCANNED, "s1", **scanned, how="manual")
    record(EventType.HELP_REQUESTED, "s1", reason="help")
    record(EventType.ITEM_REMOVED, "s1", line_id=1, product="6900000000014", quantity=1,
           weight_g=None)
    record(EventType.ITEM_SCANNED, "s2", **scanned, how="camera")
    assert outbox.types() == ["item_scanned", "help_requested", "item_removed", "item_scanned"]
    assert outbox.count_by_type() == {"item_scanned": 2, "help_requested": 1, "item_removed": 1}
    got = outbox.session_events("s1", [EventType.ITEM_REMOVED, EventType.ITEM_SCANNED])
    assert [(kind, payload.get("how")) for kind, payload in got] == [
        ("item_scanned", "manual"), ("item_removed", None)]
    assert outbox.session_events("s1", []) == []
    assert outbox.session_events("s3", ["item_scanned"]) == []


# --- the audit log ------------------------------------------------------------------------------
def test_audit_rows_counted_by_kind_within_marks(db, clock):
    audit = AuditLog(db)
    audit.append("void_line", "A", {"line": 1}, clock.now())
    audit.append("override_price", "A", {"line": 2}, clock.now())
    audit.append("void_line", "A", {"line": 3}, clock.now())
    assert audit.count_kinds(0, 3) == {"void_line": 2, "override_price": 1}
    assert audit.count_kinds(1, 2) == {"override_price": 1}
    assert audit.count_kinds(3, 3) == {}


# --- the reference backend's store (hq.sqlite_store, under devices/sim's backend) -----------------
def test_the_simulated_backend_counts_every_event(tmp_path):
    from hq.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "backend.db")
    assert store.total() == 0
    store.conn.execute("INSERT INTO events (event_id, kiosk_id, seq) VALUES ('e1', 'k1', 1), "
                       "('e2', 'k2', 1)")
    assert store.total() == 2
    store.close()


# --- store data versions (issue 22) ---------------------------------------------------------------
def test_store_data_versions_refusals_contact_and_lane_keys(db):
    from app.storage.store_data_repo import StoreDataRepo, current_versions

    repo = StoreDataRepo(db)
    assert repo.applied_versions() == {} and repo.contact() == (None, None, None)
    repo.add_version("promotions", 1, "full", "2026-01-01T00:00:00Z", b"{}", b"sig", "t0")
    repo.add_version("promotions", 1, "full", "2026-01-01T00:00:00Z", b"{}", b"sig", "t1")
    assert [(r.version, r.state, r.staged_at) for r in repo.rows("promotions")] == [
        (1, "staged", "t1")]  # staged again: replaced, not doubled
    repo.set_state("promotions", 1, "applied", applied_at="t2")
    assert repo.applied_versions() == {"promotions": 1}
    # Applied, but the promotions in the catalogue are not head office's: "local".
    assert current_versions(db) == {"catalogue": None, "promotions": "local",
                                    "lane-keys": None}
    repo.refuse("catalogue", 3, "truncated", "t3")
    repo.refuse("catalogue", 4, "tampered", "t4")
    assert repo.last_refusal("catalogue") == ("t4", "tampered")
    assert repo.last_refusal("promotions") is None
    repo.contacted("t5", None)
    repo.contacted("t6", "timeout")
    assert repo.contact() == ("t5", "timeout", "t6")
    repo.replace_lane_keys({"lane-02": "k2", "lane-01": "k1"}, 1)
    assert repo.lane_keys() == {"lane-01": "k1", "lane-02": "k2"}
