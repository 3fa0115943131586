"""Issue 19, nothing fails silently: the lane's messages say what just happened, a
declined payment says nobody was charged, "Call staff" can be cancelled and never stops
the inactivity timer, a shopper who walks away from the payment QR frees the lane, and
an approved age check goes straight on to paying.

Headless, on the real lane: real SQLite in a temp dir, the payment simulator on
127.0.0.1, staff mode with real PINs, a clock moved by hand.
"""

# ruff: noqa: F811 - make_lane is test_lane.py's fixture, imported and requested by name

from __future__ import annotations

import json

import pytest
import requests

from app import bootstrap
from app.lane import Screen
from app.ui.strings import say
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from tests.integration.test_lane import BEER, MILK, events, make_lane  # noqa: F401 - a fixture


@pytest.fixture
def staffed(demo_kiosk, sim, clock):
    """A lane (one wallet: the QR comes at once) with staff mode and an attendant."""
    bootstrap.build_staff_book(demo_kiosk).add("Li Na", "attendant", "2468", clock.now())
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    demo_kiosk.settings.payment.wallets = []
    lane = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    lane.boot()
    return lane


def sign_in(lane) -> None:
    lane.staff.open_pin_pad()
    lane.staff.pin("2468")
    assert lane.view.staff.page == "menu"


def words(notice) -> tuple[str, str]:
    values = dict(notice.values)
    return say("zh", notice.key, **values), say("en", notice.key, **values)


# -- messages describe what just happened ---------------------------------------------------
def test_a_line_staff_void_says_removed_by_staff_not_added(staffed):
    staffed.scan(MILK)
    assert staffed.view.notice.key == "added"
    line = staffed.view.priced.lines[0].line.line_id
    sign_in(staffed)
    staffed.staff.do("void_line", str(line))
    staffed.staff.sign_out()
    assert staffed.view.screen is Screen.SHOPPING and staffed.view.priced.lines == ()
    assert staffed.view.notice.key == "removed_by_staff"
    zh, en = words(staffed.view.notice)
    assert zh.startswith("店员已删除：") and "纯牛奶" in zh
    assert en.startswith("Removed by staff: ") and "Milk" in en
    assert staffed.view.last_line_id is None  # no line is highlighted as just scanned


def test_a_typed_code_refused_says_what_was_wrong_with_it(make_lane, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    for typed, key in (("4006381333931", "typed_unknown"),      # valid, not sold here
                       ("6900000000015", "typed_check_digit"),  # one digit wrong
                       ("69OO", "typed_not_a_code")):           # letters where digits go
        lane.typed_code(typed)
        assert (lane.view.notice.key, lane.view.notice.level) == (key, "error"), typed
        zh, en = words(lane.view.notice)
        # Never "type the code" to a shopper who just typed it: what to check instead.
        assert "type the code" not in en.lower() and "手动输入" not in zh
        assert "digits" in en and "数字" in zh
    assert len(lane.view.priced.lines) == 1
    assert events(demo_kiosk).count("scan_rejected") == 3
    lane.scan("4006381333931")  # the same code from the camera keeps the lookup's words
    assert lane.view.notice.key == "refused"


def test_a_change_to_the_cart_replaces_the_last_scans_message(make_lane):
    lane = make_lane()
    lane.scan(MILK)
    line = lane.view.priced.lines[0].line.line_id
    lane.plus(line)
    assert lane.view.notice is None  # not "Added: ..." for a + tap


# -- a declined payment says nobody was charged -----------------------------------------------
def test_a_declined_qr_payment_says_the_wallet_declined_and_nothing_was_charged(
        make_lane, sim, clock):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/decline", timeout=5).ok
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.SHOPPING and not lane.view.frozen
    assert lane.view.notice.key == "declined_declined"  # the provider's reason, not "failed"
    zh, en = words(lane.view.notice)
    assert "未扣款" in zh and "you have not been charged" in en


@pytest.mark.parametrize("key", ["payment_cancelled", "payment_expired", "payment_failed",
                                 "declined_insufficient_funds", "declined_code_expired",
                                 "declined_code_used", "declined_code_invalid",
                                 "declined_declined", "payment_code_cancelled",
                                 "payment_code_timeout"])
def test_every_payment_that_ended_without_money_says_so(key):
    assert "未扣款" in say("zh", key)
    assert "not been charged" in say("en", key) or "nothing was charged" in say("en", key)


# -- "Call staff" --------------------------------------------------------------------------
def test_the_shopper_can_cancel_a_call_for_staff_and_staff_are_told(make_lane, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    lane.call_staff()
    assert lane.view.help_requested
    lane.cancel_help()
    assert not lane.view.help_requested
    messages = [r[0] for r in demo_kiosk.db.execute(
        "SELECT message FROM staff_alerts WHERE kind = 'help' ORDER BY rowid")]
    assert len(messages) == 2 and "cancelled" in messages[1]
    lane.call_staff()  # and may call again at once
    assert lane.view.help_requested


def test_staff_signing_in_at_the_lane_answers_the_call(staffed):
    staffed.scan(MILK)
    staffed.call_staff()
    staffed.staff.open_pin_pad()
    assert staffed.view.help_requested  # the PIN pad is not an attendant yet
    staffed.staff.pin("2468")
    assert not staffed.view.help_requested
    staffed.staff.sign_out()
    assert staffed.view.screen is Screen.SHOPPING and not staffed.view.help_requested


def test_calling_staff_gives_a_longer_grace_but_never_switches_inactivity_off(make_lane,
                                                                             clock):
    lane = make_lane()
    lane.scan(MILK)
    lane.call_staff()
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.SHOPPING  # waiting for staff is not walking away
    clock.advance(seconds=90)  # 181 s untouched: the grace (180 s) is over
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    assert lane.view.help_requested  # staff still come; the banner stays with the question
    clock.advance(seconds=31)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and not lane.view.help_requested


# -- walking away from the payment QR ----------------------------------------------------------
def test_walking_away_from_the_qr_asks_then_closes_the_order_and_frees_the_lane(
        make_lane, clock, sim, demo_kiosk):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE and lane.view.back_to is Screen.PAY
    words_ = say("en", "still_there_paying", seconds=30)
    assert "payment will be cancelled" in words_
    clock.advance(seconds=31)
    lane.tick()
    assert lane.view.screen is Screen.ATTRACT and lane.session is None
    state = demo_kiosk.db.execute("SELECT state FROM payments WHERE out_trade_no = ?",
                                  [no]).fetchone()[0]
    assert state == "cancelled"  # queried, then closed at the provider, before the wipe
    assert requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"][no]["status"] \
        == "closed"
    payload = json.loads(demo_kiosk.db.execute(
        "SELECT payload FROM outbox WHERE type = 'session_abandoned'").fetchone()[0])
    assert payload["reason"] == "timeout" and payload["cart"]


def test_paying_on_the_phone_while_still_there_is_asked_gives_the_receipt(make_lane, clock,
                                                                          sim):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT and lane.view.receipt.order_id


def test_still_here_returns_to_the_same_qr(make_lane, clock):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    lane.still_here()
    assert lane.view.screen is Screen.PAY and lane.view.payment.out_trade_no == no
    assert lane.view.back_to is None and lane.view.frozen


def test_a_scan_while_still_there_is_asked_over_the_qr_goes_back_to_the_qr(make_lane, clock):
    lane = make_lane(wallets=())
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    clock.advance(seconds=91)
    lane.tick()
    assert lane.view.screen is Screen.STILL_THERE
    lane.scan(MILK)  # the shopper is back: the QR again, the cart being paid for unchanged
    assert lane.view.screen is Screen.PAY and lane.view.payment.out_trade_no == no
    assert lane.view.priced.lines[0].line.quantity == 1


# -- the age check goes on to paying -----------------------------------------------------------
def test_an_age_check_approved_in_staff_mode_goes_straight_on_to_paying(staffed):
    staffed.scan(BEER)
    staffed.pay()
    assert staffed.view.screen is Screen.AGE_CHECK
    sign_in(staffed)
    staffed.staff.do("approve_age")
    assert staffed.view.screen is Screen.STAFF  # no QR counts down behind staff mode
    staffed.staff.sign_out()
    assert staffed.view.screen is Screen.PAY and staffed.view.payment is not None


def test_the_age_check_screen_really_calls_staff(staffed, demo_kiosk):
    staffed.scan(BEER)
    staffed.pay()
    assert staffed.view.screen is Screen.AGE_CHECK
    assert "Staff are on their way" in say("en", "age_prompt")  # so they must be called
    assert staffed.view.help_requested
    alerts = [m for (m,) in demo_kiosk.db.execute(
        "SELECT message FROM staff_alerts WHERE kind = 'help'")]
    assert alerts and "age_check" in alerts[0]
    assert events(demo_kiosk).count("help_requested") == 1
    sign_in(staffed)  # the attendant at the lane answers it
    assert not staffed.view.help_requested


def test_a_new_action_replaces_a_payment_outcome_and_an_age_approval(staffed, sim, clock):
    staffed.scan(MILK)
    staffed.pay()
    no = staffed.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/decline", timeout=5).ok
    clock.advance(seconds=2)
    staffed.tick()
    assert staffed.view.notice.key == "declined_declined"
    staffed.scan(BEER)
    assert staffed.view.notice.key == "added"  # the decline is not shown beside a new scan
    sign_in(staffed)
    staffed.staff.do("approve_age")
    staffed.staff.sign_out()
    assert staffed.view.notice.key == "age_approved"
    staffed.remove(staffed.view.priced.lines[0].line.line_id)
    assert staffed.view.notice is None


def test_approving_age_mid_shopping_does_not_start_paying(staffed):
    staffed.scan(BEER)
    sign_in(staffed)
    staffed.staff.do("approve_age")
    staffed.staff.sign_out()
    assert staffed.view.screen is Screen.SHOPPING and staffed.view.payment is None


def test_remove_the_age_restricted_items_and_pay_for_the_rest(staffed, demo_kiosk):
    staffed.scan(MILK)
    staffed.scan(BEER)
    staffed.pay()
    assert staffed.view.screen is Screen.AGE_CHECK
    assert staffed.view.help_requested  # the age check called staff...
    staffed.remove_age_items()
    assert not staffed.view.help_requested  # ...and calls them off: nothing to check now
    assert staffed.view.screen is Screen.PAY and staffed.view.payment is not None
    (left,) = staffed.view.priced.lines
    assert left.line.product.code.endswith(MILK)
    assert events(demo_kiosk).count("item_removed") == 1


def test_removing_the_only_age_restricted_item_leaves_an_empty_cart(staffed):
    staffed.scan(BEER)
    staffed.pay()
    staffed.remove_age_items()
    assert staffed.view.screen is Screen.SHOPPING and staffed.view.priced.lines == ()
    assert staffed.view.notice.key == "age_items_removed_empty"


# -- the camera ---------------------------------------------------------------------------------
def test_a_lost_camera_is_carried_in_the_view_with_whether_a_hand_scanner_is_fitted(
        make_lane):
    lane = make_lane()
    lane.camera_health("lost")
    assert not lane.view.camera_ok and not lane.view.hand_scanner
    lane.typed_code(MILK)  # the attract screen's keypad starts a session
    assert lane.view.screen is Screen.SHOPPING and len(lane.view.priced.lines) == 1
    lane.abandon("staff_reset")
    assert not lane.view.camera_ok  # a new shopper is told too
