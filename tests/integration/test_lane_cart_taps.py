"""A cart the shopper can check, and fewer taps (issue 19), headless on the real lane.

The line just changed is the one the screen shows; "-" at quantity 1 asks before a
line goes; "+" is off at the line's limit; "Cancel and start again" ends the session
as a walk-away does; a phone member's number is shown masked; one aggregated QR
skips the wallet choice. Real SQLite, the payment simulator on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest

from app import bootstrap
from app.domain.cart import MAX_QUANTITY
from app.lane import Screen
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter

MILK = "6900000000014"
BEER = "6900000001769"
EGGS = "6900000000243"  # quantity_limit 2 in the demo catalogue


@pytest.fixture
def make_lane(demo_kiosk, sim, clock):
    def make(wallets=("wechat", "alipay"), aggregated_qr=False, lookup=None):
        provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
        demo_kiosk.settings.payment.wallets = list(wallets)
        demo_kiosk.settings.payment.aggregated_qr = aggregated_qr
        lane = bootstrap.build_lane(demo_kiosk, provider=provider,
                                    receipt_notice=lambda: None)
        if lookup is not None:
            lane.p.phone_lookup = lookup
        lane.boot()
        return lane
    return make


def events(kiosk) -> list[tuple[str, dict]]:
    return [(r[0], json.loads(r[1])) for r in kiosk.db.execute(
        "SELECT type, payload FROM outbox ORDER BY seq")]


def line_ids(lane) -> list[int]:
    return [pl.line.line_id for pl in lane.view.priced.lines]


def test_minus_at_quantity_one_asks_before_the_line_goes(make_lane, demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    (milk,) = line_ids(lane)
    lane.minus(milk)
    asked = lane.view.confirm
    assert asked is not None and asked.kind == "remove" and asked.line_id == milk
    assert asked.name_en.startswith("Whole Milk") and asked.name_zh.startswith("纯牛奶")
    assert line_ids(lane) == [milk]  # nothing removed yet
    lane.answer(False)
    assert lane.view.confirm is None and line_ids(lane) == [milk]
    assert "item_removed" not in [kind for kind, _ in events(demo_kiosk)]
    lane.minus(milk)
    lane.answer(True)
    assert lane.view.confirm is None and line_ids(lane) == []
    removed = [p for kind, p in events(demo_kiosk) if kind == "item_removed"]
    assert [p["line_id"] for p in removed] == [milk]


def test_a_scan_while_asked_takes_the_question_away(make_lane):
    lane = make_lane()
    lane.scan(MILK)
    lane.minus(line_ids(lane)[0])
    lane.scan(BEER)
    assert lane.view.confirm is None and len(line_ids(lane)) == 2
    lane.answer(True)  # a late answer to a question no longer on screen: nothing
    assert len(line_ids(lane)) == 2


def test_plus_and_minus_make_their_line_the_one_shown(make_lane):
    lane = make_lane()
    lane.scan(MILK)
    lane.scan(BEER)
    milk, beer = line_ids(lane)
    assert lane.view.last_line_id == beer
    lane.plus(milk)
    assert lane.view.last_line_id == milk
    lane.plus(beer)
    lane.minus(beer)
    assert lane.view.last_line_id == beer


def test_plus_is_off_at_the_products_limit_and_at_the_line_limit(make_lane):
    lane = make_lane()
    lane.scan(EGGS)
    lane.scan(MILK)
    eggs, milk = line_ids(lane)
    assert lane.view.full_lines == ()
    lane.plus(eggs)  # 2 eggs: the demo catalogue's limit per shopper
    assert lane.view.full_lines == (eggs,)
    lane.plus(eggs)  # a "+" that got through anyway is refused, not added
    assert lane.view.notice.key == "refused" and lane.view.priced.lines[0].line.quantity == 2
    lane.minus(eggs)
    assert lane.view.full_lines == ()
    lane.session.set_quantity(milk, MAX_QUANTITY - 1)
    lane.plus(milk)
    assert lane.view.full_lines == (milk,)


def test_cancel_and_start_again_asks_then_ends_the_session_as_a_walk_away(make_lane,
                                                                           demo_kiosk):
    lane = make_lane()
    lane.scan(MILK)
    lane.scan(BEER)
    first = lane.session.session_id
    lane.ask_start_over()
    assert lane.view.confirm is not None and lane.view.confirm.kind == "start_over"
    lane.answer(False)
    assert lane.view.screen is Screen.SHOPPING and len(line_ids(lane)) == 2
    lane.ask_start_over()
    lane.answer(True)
    assert lane.view.screen is Screen.ATTRACT and lane.view.priced is None
    assert lane.session is None and lane.view.confirm is None
    (abandoned,) = [p for kind, p in events(demo_kiosk) if kind == "session_abandoned"]
    assert abandoned["reason"] == "shopper_cancelled"
    assert [c["name"] for c in abandoned["cart"]] == ["Whole Milk 250ml", "Tsingtao Beer 500ml"]
    state = demo_kiosk.db.execute("SELECT state FROM sessions WHERE session_id = ?",
                                  [first]).fetchone()[0]
    assert state == "abandoned"
    lane.scan(MILK)  # a fresh start: a new session, an empty cart plus this milk
    assert lane.session.session_id != first and len(line_ids(lane)) == 1


def test_start_over_is_not_offered_while_paying(make_lane):
    lane = make_lane()
    lane.scan(MILK)
    lane.pay()
    lane.choose_wallet("wechat")
    assert lane.view.screen is Screen.PAY and lane.view.payment is not None
    lane.ask_start_over()
    assert lane.view.confirm is None and lane.view.screen is Screen.PAY


def test_a_phone_member_is_shown_masked_and_forgotten_after_the_session(make_lane):
    lane = make_lane(lookup=lambda phone: "M000042" if phone == "13812345678" else None)
    lane.start()
    lane.member_phone("13812345679")  # a mistake: not a member
    assert lane.view.notice.key == "member_unknown" and lane.view.member_masked == ""
    lane.member_phone("13812345678")
    assert lane.view.screen is Screen.SHOPPING and lane.view.member_id == "M000042"
    assert lane.view.member_masked == "138****5678"
    lane.scan(MILK)
    assert lane.view.member_masked == "138****5678"
    lane.ask_start_over()
    lane.answer(True)
    assert lane.view.member_masked == ""


def test_one_aggregated_qr_skips_the_wallet_choice(make_lane):
    lane = make_lane(aggregated_qr=True)
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.PAY and lane.view.payment is not None
    assert lane.view.payment.wallet == "" and lane.view.payment.qr_payload


def test_without_the_setting_the_shopper_chooses(make_lane):
    lane = make_lane(aggregated_qr=False)
    lane.scan(MILK)
    lane.pay()
    assert lane.view.screen is Screen.PAY and lane.view.payment is None
    lane.choose_wallet("")  # no wallet named: not a choice on this lane
    assert lane.view.payment is None
    lane.choose_wallet("alipay")
    assert lane.view.payment is not None and lane.view.payment.wallet == "alipay"


def test_an_adapter_whose_qr_is_one_wallets_keeps_the_choice(make_lane):
    lane = make_lane(aggregated_qr=True)
    lane.p.desk.provider.aggregated_qr = False  # as WeChat Pay's or Alipay's own adapter
    lane.scan(MILK)
    lane.pay()
    assert lane.view.payment is None and lane.view.wallets == ("wechat", "alipay")


def test_back_to_the_cart_from_the_qr_closes_the_order_first(make_lane, sim):
    lane = make_lane(aggregated_qr=True)
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    lane.cancel_payment()
    assert lane.view.screen is Screen.SHOPPING and lane.view.payment is None
    assert not lane.view.frozen and lane.view.notice.key == "payment_cancelled"
    assert lane.p.desk.repo.open_for_cart(lane.session.session_id) is None
    assert lane.p.desk.repo.get(no).state.value == "cancelled"


def test_the_pay_screen_says_what_the_total_is_for_in_both_languages(make_lane):
    from app.ui import present

    lane = make_lane(lookup=lambda phone: "M000001")
    lane.start()
    lane.member_phone("13800000001")
    lane.scan(MILK)  # 6.50, member 5.90
    lane.scan(MILK)
    lane.pay()
    view = lane.view
    assert view.screen is Screen.PAY
    assert present.pay_summary(view, "zh") == "2 件  ·  已优惠 ¥1.20  ·  会员 138****0001"
    assert present.pay_summary(view, "en") == "2 items  ·  You save ¥1.20  ·  Member 138****0001"
    assert present.member_line(view, "en") == "Member 138****0001"  # never M000001 or 1380...
    assert present.scan_with(("wechat", "alipay"), "zh") == "请用微信支付或支付宝扫描二维码付款"
    assert present.scan_with(("wechat", "alipay"), "en") == \
        "Scan the QR code with WeChat Pay or Alipay"


def test_plus_is_shown_off_on_the_full_line_only(make_lane):
    from app.ui import present

    lane = make_lane()
    lane.scan(EGGS)
    lane.scan(EGGS)
    lane.scan(MILK)
    rows = {r["name"]: r for r in present.cart_rows(lane.view, "en")}
    assert rows["Fresh Eggs 10pcs"]["can_plus"] is False
    assert rows["Whole Milk 250ml"]["can_plus"] is True


def test_back_to_the_cart_after_the_phone_paid_is_the_sale_not_the_cart(make_lane, sim):
    """The shopper paid on the phone and taps "Back to cart" before the kiosk heard: the
    desk asks the provider before closing, finds it paid, and the receipt follows."""
    import requests

    lane = make_lane(aggregated_qr=True)
    lane.scan(MILK)
    lane.pay()
    no = lane.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
    lane.cancel_payment()
    assert lane.view.screen is Screen.RECEIPT and lane.view.receipt.total.minor == 650
    assert lane.p.desk.repo.get(no).state.value == "paid"
