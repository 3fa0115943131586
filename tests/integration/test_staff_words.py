"""Staff pages in the attendant's language (issue 19): the lane's state on the menu, the
reset confirmation saying what will be lost, and device health, the audit log and the X
report in words, money and the store's local time, in Chinese and in English.

Staff mode runs on a real lane over the payment simulator (HTTP on 127.0.0.1) and a real
SQLite file; the pages are worded by ``app.ui.present.staff_page``, as the screen does.
"""

from __future__ import annotations

import re
from datetime import UTC
from zoneinfo import ZoneInfo

from app.lane import Screen
from app.ui import present
from tests.integration import test_staff
from tests.integration.test_staff import BEER, MILK, sign_in

lane, book = test_staff.lane, test_staff.book  # the staff tests' lane and staff book
SHANGHAI = ZoneInfo("Asia/Shanghai")
ENGINEERING = re.compile(r"[a-z]+_minor=|\d{4}-\d\d-\d\dT\d\d:\d\d|\+00:00")


def page(lane, language, clock):
    return present.staff_page(lane.view.staff, language, SHANGHAI, clock.now())


def test_the_menu_shows_the_cart_the_open_payment_and_the_age_check(lane, clock):
    sign_in(lane, "2468")
    idle = page(lane, "en", clock)["staff_state"]
    assert idle == "No one is shopping at this lane"
    assert page(lane, "zh", clock)["staff_state"] == "没有顾客在购物"
    lane.staff.sign_out()
    lane.scan(MILK)
    lane.scan(BEER)
    sign_in(lane, "2468")
    en = page(lane, "en", clock)["staff_state"]
    assert "Cart: 2 items, total ¥" in en, en
    assert "Whole Milk" in en and "Waiting for an age check: Tsingtao" in en, en
    zh = page(lane, "zh", clock)["staff_state"]
    assert "购物车：2 件" in zh and "纯牛奶" in zh and "等待年龄核验" in zh, zh
    lane.staff.do("approve_age")
    lane.staff.sign_out()
    lane.pay()
    assert lane.view.payment is not None  # no wallet choice here: the QR is up
    clock.advance(seconds=75)
    sign_in(lane, "2468")
    en = page(lane, "en", clock)["staff_state"]
    assert "Open payment: Payment simulator, QR code (any wallet), ¥" in en, en
    assert "for 1 min 15 s" in en, en
    zh = page(lane, "zh", clock)["staff_state"]
    assert "付款中：模拟支付" in zh and "已 1分15秒" in zh, zh


def test_reset_asks_first_and_says_what_will_be_lost(lane, clock):
    for _ in range(3):
        lane.scan(MILK)
        clock.advance(seconds=2)
    lane.pay()
    sign_in(lane, "2468")
    lane.staff.do("reset")
    assert lane.view.staff.page == "confirm" and lane.session is not None
    en = page(lane, "en", clock)
    assert en["staff_title"] == "Reset this lane?"
    assert "The cart of 3 items, ¥19.50, will be cleared." in en["staff_text"], en
    assert "The open payment (Payment simulator, ¥19.50) is checked" in en["staff_text"]
    zh = page(lane, "zh", clock)
    assert zh["staff_title"] == "确定要重置本通道吗？"
    assert "购物车（3 件，¥19.50）将被清空" in zh["staff_text"], zh
    lane.staff.menu()  # "No, back to the menu": the cart is still there
    assert lane.session is not None and lane.view.staff.page == "menu"
    lane.staff.do("reset")
    lane.staff.do("reset", "confirmed")
    lane.staff.sign_out()
    assert lane.session is None and lane.view.screen is Screen.ATTRACT
    sign_in(lane, "2468")
    lane.staff.do("reset")
    assert page(lane, "en", clock)["staff_text"].startswith("No one is shopping now")


def test_one_item_reads_as_one_item(lane, clock):
    lane.scan(MILK)
    sign_in(lane, "2468")
    lane.staff.do("reset")
    assert "The cart of 1 item, ¥6.50" in page(lane, "en", clock)["staff_text"]
    lane.staff.menu()
    assert "Cart: 1 item, total ¥6.50" in page(lane, "en", clock)["staff_state"]


def test_health_audit_log_and_x_report_in_words_money_and_local_time(lane, clock, sim):
    lane.scan(MILK)
    test_staff.pay(lane, sim, clock)
    sign_in(lane, "2468")
    for action in ("device_health", "audit_log", "x_report"):
        lane.staff.do(action)
        zh, en = page(lane, "zh", clock), page(lane, "en", clock)
        for words in (zh, en):
            assert words["staff_text"] and not ENGINEERING.search(words["staff_text"]), \
                (action, words["staff_text"])
        assert re.search(r"[\u4e00-\u9fff]", zh["staff_text"] + zh["staff_title"]), zh
        assert not re.search(r"[\u4e00-\u9fff]", en["staff_title"]), en
        if action == "device_health":
            assert "支付（模拟支付）：" in zh["staff_text"] and "没有未处理的提醒" in \
                zh["staff_text"], zh
            assert "Payment (Payment simulator): answered in" in en["staff_text"], en
        if action == "audit_log":
            assert zh["staff_title"] == "审计日志（链条完整）", zh
            assert "付款成功" in zh["staff_text"] and "金额 ¥6.50" in zh["staff_text"], zh
            assert "payment paid" in en["staff_text"] and "amount ¥6.50" in en["staff_text"]
            assert "by Payment simulator" in en["staff_text"], en
            local = clock.now().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
            utc = clock.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            assert local in zh["staff_text"] and utc not in zh["staff_text"], zh
        if action == "x_report":
            assert "销售：1 笔，合计 ¥6.50" in zh["staff_text"], zh
            assert "Sales: 1, total ¥6.50" in en["staff_text"], en
            assert "  Payment simulator: 1 sale, ¥6.50" in en["staff_text"], en
            assert "+08" not in en["staff_text"] and "the first sale" in en["staff_text"]
