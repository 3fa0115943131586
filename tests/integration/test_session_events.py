"""The shopping session on disk: every change written with its behaviour event, or neither."""

from __future__ import annotations

import pytest

from app import bootstrap
from app.domain.rejections import Refused
from app.domain.scan_input import CleanScan
from app.services.members import MemberIdentity
from app.services.session import ShoppingSession
from app.storage.outbox import Outbox

MILK = "6900000000014"


def session(kiosk, outbox=None):
    return ShoppingSession.start(kiosk.db, outbox or bootstrap.build_outbox(kiosk),
                                 bootstrap.build_checkout(kiosk), "lane-01", how="start_button")


def events(kiosk) -> list[tuple[str, dict]]:
    rows = kiosk.db.execute("SELECT type, payload FROM outbox ORDER BY seq").fetchall()
    import json

    return [(t, json.loads(p)) for t, p in rows]


def test_a_session_records_each_step_with_its_event(demo_kiosk):
    s = session(demo_kiosk)
    s.identify(MemberIdentity("M000001", "member_qr"))
    line = s.scan(CleanScan(MILK, "]E0"), how="wedge")
    s.scan(MILK)
    s.set_quantity(line.line_id, 3)
    with pytest.raises(Refused):
        s.scan("4006381333931")  # not in the catalogue
    s.remove(line.line_id)
    s.request_help("cannot find the barcode")
    s.end("K1", 0, 0)
    kinds = [t for t, _ in events(demo_kiosk)]
    assert kinds == ["session_started", "member_identified", "item_scanned", "item_scanned",
                     "quantity_changed", "scan_rejected", "item_removed", "help_requested",
                     "session_ended"]
    scanned = events(demo_kiosk)[2][1]
    assert scanned["how"] == "wedge" and scanned["price_minor"] == 650
    rows = demo_kiosk.db.execute("SELECT member_id, session_id FROM outbox").fetchall()
    assert {r[1] for r in rows} == {s.session_id}
    assert rows[0][0] is None and all(r[0] == "M000001" for r in rows[1:])
    assert demo_kiosk.db.execute("SELECT state FROM sessions").fetchone()[0] == "paid"


class BrokenOutbox(Outbox):
    """Writes the session's start, then fails every event (a disk error, say)."""

    def record(self, event):
        if event.type != "session_started":
            raise OSError("disk I/O error")
        return super().record(event)


def test_a_change_whose_event_cannot_be_written_does_not_happen(demo_kiosk):
    s = session(demo_kiosk, BrokenOutbox(demo_kiosk.db))
    with pytest.raises(OSError):
        s.scan(MILK)
    assert s.checkout.lines() == []  # the cart in memory was put back
    assert demo_kiosk.db.execute("SELECT count(*) FROM cart_lines").fetchone()[0] == 0
    assert [t for t, _ in events(demo_kiosk)] == ["session_started"]


def test_at_the_outbox_cap_new_sessions_still_start_and_sell(demo_kiosk):
    # Issue 16, fault 4: at the cap new sessions were refused (QueueFull).
    full = Outbox(demo_kiosk.db, max_bytes=4000)
    for n in range(12):  # far more events than the cap holds
        s = session(demo_kiosk, full)
        s.scan(MILK)
        s.scan(MILK)
        s.end(f"K{n}", 1300, 2)
    kinds = [t for t, _ in events(demo_kiosk)]
    assert kinds.count("session_ended") == 12  # every sale's event kept
    assert kinds[-3:] == ["item_scanned", "item_scanned", "session_ended"]  # the last intact
    assert "events_evicted" in kinds and kinds.count("session_started") < 12
    assert demo_kiosk.db.execute("SELECT count(*) FROM staff_alerts WHERE kind = 'outbox' "
                                 "AND ref = 'evicted'").fetchone()[0] >= 1


def test_a_restarted_kiosk_finds_the_open_session_and_its_cart(demo_kiosk):
    s = session(demo_kiosk)
    s.scan(MILK)
    s.scan(MILK)
    resumed = ShoppingSession.resume(demo_kiosk.db, bootstrap.build_outbox(demo_kiosk),
                                     bootstrap.build_checkout(demo_kiosk), "lane-01")
    assert resumed is not None and resumed.session_id == s.session_id
    assert [(ln.product.code[1:], ln.quantity) for ln in resumed.checkout.lines()] == [(MILK, 2)]
    resumed.abandon()
    (kind, payload), = [e for e in events(demo_kiosk) if e[0] == "session_abandoned"]
    assert payload["cart"][0]["quantity"] == 2
    assert ShoppingSession.resume(demo_kiosk.db, bootstrap.build_outbox(demo_kiosk),
                                  bootstrap.build_checkout(demo_kiosk), "lane-01") is None


def test_age_restricted_items_ask_for_a_check_and_approval_is_recorded(demo_kiosk):
    code = demo_kiosk.db.execute("SELECT code FROM products WHERE min_age > 0 LIMIT 1"
                                 ).fetchone()[0][1:]
    s = session(demo_kiosk)
    line = s.scan(code)
    s.approve_age(line.line_id, staff="anna")
    kinds = [t for t, _ in events(demo_kiosk)]
    assert kinds[-3:] == ["item_scanned", "age_check_requested", "age_check_approved"]
    assert events(demo_kiosk)[-1][1]["staff"] == "anna"


def test_a_new_session_starts_with_an_empty_cart_even_on_a_reused_checkout(demo_kiosk):
    outbox = bootstrap.build_outbox(demo_kiosk)
    checkout = bootstrap.build_checkout(demo_kiosk)
    first = ShoppingSession.start(demo_kiosk.db, outbox, checkout, "lane-01", how="start")
    first.scan(MILK)
    first.end("K1", 650, 1)
    second = ShoppingSession.start(demo_kiosk.db, outbox, checkout, "lane-01", how="start")
    assert second.session_id != first.session_id and checkout.lines() == []
