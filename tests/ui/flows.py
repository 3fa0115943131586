"""Whole shopping sessions on the real screen, run by the screen driver (app/ui/driver.py).

Each flow touches what a shopper would touch, holds codes under the demo
camera (rendered into real frames and decoded by the real decoder), and
asserts on what the widgets show.

Run one as ``python -m tests.ui.flows FLOW --data DIR`` (the UI tests start
one process per flow: Kivy has one window per process); it exits non-zero
with the traceback on stderr when a step fails.
``python -m tests.ui.flows screenshots --data DIR --shots docs/screenshots``
writes the README's screenshots.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.lane import Lane
from app.ui.driver import Driver, FlowFailed, Step

MILK = "6900000000014"
BEER = "6900000001769"
UNKNOWN = "4006381333931"
FAMILY_PACK = "6900000000670"  # Potato Chips Original 70g Family Pack: the longest name


def check(condition: object, message: str) -> None:
    if not condition:
        raise FlowFailed(message)


def to_the_qr(d: Driver, wallet: str = "wechat") -> Step:
    """Shopping screen -> Pay -> a wallet -> the payment QR on screen."""
    d.press("pay_button")
    yield from d.until(lambda: d.widget(f"wallet_{wallet}").height > 0, "wallet choice")
    d.press(f"wallet_{wallet}")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR",
                       timeout=30)


def whole_sale(d: Driver) -> Step:
    """Start, member by phone, scan, +/-, remove, a refused code, pay by WeChat, receipt."""
    yield from d.screen_is("attract")
    d.press("start_button")
    yield from d.screen_is("member")
    d.type_keys("phone_keypad", "13800000001")
    check(d.widget("phone_keypad").typed == "13800000001", d.widget("phone_keypad").typed)
    d.press("phone_ok")
    yield from d.screen_is("shopping")
    # By phone: the number is shown masked, never whole (issue 19)
    yield from d.until(lambda: "138****0001" in d.app.shown.get("member", ""), "member shown")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk in the cart")
    check("纯牛奶" in d.app.rows[0]["name"], d.app.rows[0])
    check(d.app.sounds.played[-1:] == ["accepted"], d.app.sounds.played)
    check("会员价" in d.app.rows[0]["savings"], "member price shown on the line")
    yield from d.frames(3)
    d.touch(d.row_button(0, "+"))
    yield from d.until(lambda: d.app.rows and d.app.rows[0]["quantity"] == "2", "quantity 2")
    check("11.80" in d.text("total"), (d.text("total"), dict(d.app.shown)))  # 2 x 5.90
    d.hold(BEER)
    yield from d.until(lambda: len(d.app.rows) == 2, "beer in the cart")
    yield from d.frames(3)
    d.touch(d.row_button(1, "-"))  # one beer, minus: asked first, then the line goes
    yield from d.until(lambda: d.app.view.confirm is not None, "asked before removing")
    yield from d.frames(3)
    d.press("confirm_yes")
    yield from d.until(lambda: len(d.app.rows) == 1, "beer removed")
    d.hold(UNKNOWN)
    yield from d.until(lambda: d.app.shown.get("notice_level") == "error", "refusal shown")
    check(d.app.sounds.played[-1] == "rejected", d.app.sounds.played)
    check(d.text("shopping_notice"), "the refusal is on screen")
    check(len(d.app.rows) == 1, "the refused code added nothing")
    d.press("pay_button")
    yield from d.screen_is("pay")
    yield from d.until(lambda: d.widget("wallet_wechat").height > 0, "wallet choice")
    d.press("wallet_wechat")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")
    check("11.80" in d.text("pay_amount"), d.text("pay_amount"))
    check("秒" in d.text("pay_expires"), d.text("pay_expires"))
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)
    check(d.app.sounds.played[-1] == "paid", d.app.sounds.played)
    yield from d.until(lambda: "请取走小票" in d.text("receipt_status"), "receipt printed",
                       timeout=20)
    receipts = list(d.rig.receipts_dir.glob("*.txt"))
    check(receipts, "the virtual printer printed the receipt")
    text = receipts[0].read_text(encoding="utf-8")
    check("纯牛奶" in text and "11.80" in text, text[:400])
    d.press("done_button")
    yield from d.screen_is("attract")
    check(d.app.rows == [], "the screen is wiped for the next shopper")


def age_check_and_cancel(d: Driver) -> Step:
    """An 18+ item waits for staff; then a payment is started and cancelled."""
    yield from d.screen_is("attract")
    d.hold(BEER)  # scanning on the attract screen starts a session
    yield from d.screen_is("shopping")
    yield from d.until(lambda: len(d.app.rows) == 1, "beer in the cart")
    d.press("pay_button")
    yield from d.screen_is("age_check")
    check("18" in d.text("age_lines"), d.text("age_lines"))
    d.press("call_staff_button")
    yield from d.until(lambda: d.text("staff_coming"), "staff called banner")
    yield from d.post(Lane.approve_age, "clerk-7")
    yield from d.screen_is("pay")  # straight on to paying: no second tap on Pay
    yield from d.until(lambda: d.widget("wallet_alipay").height > 0, "wallet choice")
    d.press("wallet_alipay")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")
    d.press("cancel_payment")
    yield from d.screen_is("shopping")
    # Said over the cart, where the shopper looks, with "not charged"; not beside the camera.
    yield from d.until(lambda: "取消" in d.text("payment_outcome"), "cancelled notice")
    check("未扣款" in d.text("payment_outcome"), d.text("payment_outcome"))
    check(d.text("shopping_notice") == "", d.text("shopping_notice"))
    check(not d.widget("pay_button").disabled, "the cart can be paid again")


def inactivity(d: Driver) -> Step:
    """Still there? then the cart is abandoned and the screen wiped."""
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk in the cart")
    d.clock.advance(seconds=91)
    yield from d.screen_is("still_there")
    # The countdown from the 30 s the lane set (how much of it a loaded machine spent
    # drawing is not asserted: no timed asserts).
    left = d.text("still_there_prompt").split(" ", 1)[0]
    check(left.isdigit() and 0 < int(left) <= 30 and "清空购物车" in d.text("still_there_prompt"),
          d.text("still_there_prompt"))
    d.press("still_here_button")
    yield from d.screen_is("shopping")
    check(len(d.app.rows) == 1, "the cart is still there")
    d.clock.advance(seconds=91)
    yield from d.screen_is("still_there")
    d.clock.advance(seconds=31)
    yield from d.screen_is("attract")
    check(d.app.rows == [] and d.app.view.member_id is None, "wiped")


def manual_entry_and_looks(d: Driver) -> Step:
    """Typing a code; switching language, large text and high contrast mid-session."""
    yield from d.screen_is("attract")
    d.press("start_button")
    yield from d.screen_is("member")
    d.type_keys("phone_keypad", "1380013")
    d.press("skip_button")
    yield from d.screen_is("shopping")
    check(d.widget("phone_keypad").typed == "", "a half-typed phone number is wiped")
    d.press("type_code_button")
    yield from d.frames(3)
    d.type_keys("code_keypad", MILK)
    d.press("code_ok")
    yield from d.until(lambda: len(d.app.rows) == 1, "typed milk in the cart")
    yield from d.popup_closed()
    # A typed code refused: what was wrong with the digits, never "type the code" again.
    d.press("type_code_button")
    yield from d.frames(3)
    d.type_keys("code_keypad", "6900000000015")  # one digit wrong
    d.press("code_ok")
    yield from d.until(lambda: "校验位" in d.text("shopping_notice"), "the typing refused")
    check("手动输入" not in d.text("shopping_notice"), d.text("shopping_notice"))
    yield from d.popup_closed()
    # A USB scanner (keyboard wedge) types a code fast and ends it with Enter.
    from kivy.core.window import Window
    for char in "6900000000045":
        Window.dispatch("on_textinput", char)
    Window.dispatch("on_key_down", 13, 0, "", [])
    yield from d.until(lambda: len(d.app.rows) == 2, "the wedge scan in the cart")
    # Escape does not leave the kiosk.
    Window.dispatch("on_key_down", 27, 0, "", [])
    yield from d.frames(3)
    check(Window.dispatch("on_request_close"), "closing the window is refused")
    before = d.widget("total").font_size
    d.press("language_button")
    yield from d.frames(2)
    check(d.app.rows[0]["name"].startswith("Whole Milk"), d.app.rows[0]["name"])
    check(d.app.rows[1]["name"] == "Whole Milk 1L", d.app.rows[1]["name"])
    check(d.text("pay_button") == "Pay", d.text("pay_button"))
    d.press("large_text_button")
    yield from d.frames(2)
    check(d.widget("total").font_size > before * 1.2, "large text is larger")
    check(d.widget("pay_button").height >= d.app.target, "targets grew too")
    d.press("contrast_button")
    yield from d.frames(2)
    check(d.app.theme["bg"][:3] == [0, 0, 0], "high contrast is black")


def out_of_view(d: Driver, seconds: float = 1.2) -> Step:
    """The packet taken away from the camera long enough (real time: the scanner's
    ``rescan_after_s``, 0.8 s) that showing it again is a new scan, not the same one."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield


def looks_reset_between_shoppers(d: Driver) -> Step:
    """English, large text and high contrast chosen by one shopper are the store's again
    for the next: after a staff reset, an abandoned cart (timeout) and "Done"."""
    def choose_looks() -> Step:
        d.press("language_button")
        d.press("large_text_button")
        d.press("contrast_button")
        yield from d.frames(3)
        check(d.app.language == "en" and d.app.large_text and d.app.high_contrast,
              "the shopper's looks are on")

    def store_looks(after: str) -> None:
        check(d.app.language == "zh" and not d.app.large_text and not d.app.high_contrast
              and d.app.theme["bg"][:3] != [0, 0, 0] and d.app.scale == 1.0
              and d.text("start_button") == "开始购物",
              f"after {after}: language {d.app.language}, large {d.app.large_text}, "
              f"contrast {d.app.high_contrast}")

    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from choose_looks()
    yield from d.post(Lane.abandon, "staff_reset")
    yield from d.screen_is("attract")
    store_looks("a staff reset")
    yield from choose_looks()  # chosen on the attract screen: kept into the session
    yield from out_of_view(d)
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    check(d.app.language == "en" and d.app.large_text, "kept for the shopper who chose them")
    d.clock.advance(seconds=91)
    yield from d.screen_is("still_there")
    d.clock.advance(seconds=31)
    yield from d.screen_is("attract")
    store_looks("an abandoned cart")
    yield from out_of_view(d)
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from choose_looks()
    yield from to_the_qr(d)
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)
    check(d.app.language == "en", "the receipt screen is still the shopper's")
    d.press("done_button")
    yield from d.screen_is("attract")
    store_looks("Done")


def chinese_line_breaks(d: Driver) -> Step:
    """A long Chinese notice in the shopping screen's narrow column, in every look: no drawn
    line starts with closing punctuation or ends with an opening bracket; the same text in
    a plain Kivy Label at the same width does (what the screen drew before, issue 19)."""
    from kivy.uix.label import Label

    from app.ui.linebreak import breaks_rules
    from tests.ui import checks

    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from d.frames(25)
    d.hold(UNKNOWN)
    yield from d.until(lambda: d.app.shown["notice_level"] == "error", "the refusal")
    plain_broke = []
    for language, large, contrast in LOOKS:
        if language != "zh":
            continue
        d.app.do("touch")
        d.app.set_text_size(large)
        d.app.set_contrast(contrast)
        yield from d.frames(4)
        checks.settle(d.app)
        notice = d.widget("shopping_notice")
        lines = checks.drawn_lines(notice)
        check(len(lines) >= 2, f"the notice fits one line: {lines}")
        check("".join(lines) == notice.text, (lines, notice.text))
        check(breaks_rules(lines) == [], f"drawn as {lines}")
        plain = Label(text=notice.text, font_size=notice.font_size, bold=notice.bold,
                      text_size=(notice.width, None))
        plain.texture_update()
        plain_broke += breaks_rules(checks.drawn_lines(plain))
        check(not checks.line_break_faults(d.app), checks.line_break_faults(d.app))
    check(plain_broke, "Kivy's own wrapping broke no rule here: the check proves nothing")


def restart_mid_payment(d: Driver) -> Step:
    """First half of the crash test: stops (is killed) with the payment QR showing."""
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk in the cart")
    yield from to_the_qr(d)
    print(f"ORDER {d.app.view.payment.out_trade_no}", flush=True)
    while True:  # the test kills this process here, as a power cut would
        yield


def restart_resumed(d: Driver) -> Step:
    """Second half: the restarted kiosk shows the same cart and payment, and takes the pay."""
    yield from d.screen_is("pay", timeout=15)
    print(f"RESUMED {d.app.view.payment.out_trade_no}", flush=True)
    check(len(d.app.rows) == 1, "the cart came back")
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)


def pay_by_code(d: Driver) -> Step:
    """The pay screen offers both ways; a payment code held to the camera (the simulator's
    WeChat Pay wallet's, on the simulated phone) is charged, "confirm on your phone" counts
    down with the QR hidden, and the password typed on the phone is a sale."""
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from to_the_qr(d)
    check(d.widget("show_code").height > 0, "both ways to pay are shown")
    check(d.text("show_code_text") in ("或向摄像头出示付款码",), d.text("show_code_text"))
    d.rig.show_payment_code("wechat", "password:4")  # the password typed 4 s after the charge
    yield from d.until(lambda: d.app.shown["confirming"], "confirm on your phone")
    yield from d.frames(3)
    check(d.text("pay_title") == "请在手机上确认付款", d.text("pay_title"))
    check("秒内" in d.text("confirm_countdown"), d.text("confirm_countdown"))
    check(d.widget("pay_qr").opacity == 0 and d.widget("show_code").height == 0,
          "no QR while the code is charged")
    yield from d.screen_is("receipt", timeout=15)
    # The camera cannot read the phone: the code's digits typed on the keypad, as dots.
    d.press("done_button")
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from to_the_qr(d)
    d.press("type_payment_code")
    yield from d.frames(5)
    d.type_keys("code_keypad", str(d.rig.issue_payment_code("wechat", "password:2")["code"]))
    check(d.widget("code_keypad").masked, "a payment code is typed as dots")
    d.press("code_ok")
    yield from d.until(lambda: d.app.shown["confirming"], "confirm on your phone (typed)")
    yield from d.screen_is("receipt", timeout=15)


def printer_out_of_paper(d: Driver) -> Step:
    """The shopper is told before paying; the exit pass is shown on screen."""
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk in the cart")
    d.press("pay_button")
    yield from d.until(lambda: d.text("printer_notice"), "printer notice", timeout=15)
    d.press("wallet_wechat")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)
    yield from d.until(lambda: d.widget("exit_pass_qr").texture is not None, "exit pass QR")
    check("出口" in d.text("receipt_status"), d.text("receipt_status"))


def wrong_clock(d: Driver) -> Step:
    """The kiosk's wall clock (only: the kiosk's OffsetClock) reset to 1970: out of order,
    naming the clock and what it reads in both languages; no scan starts a sale; set
    right, the lane is back by itself (issue 16, fault 3)."""
    from datetime import datetime

    yield from d.screen_is("attract")
    now = d.clock.now()
    d.clock.step((datetime(1970, 1, 1, tzinfo=now.tzinfo) - now).total_seconds())
    yield from d.screen_is("out_of_order")
    for language, words in (("zh", "本机时钟显示 1970-01-01\u00a000:0"),
                            ("en", "The kiosk's clock says 1970-01-01\u00a000:0")):
        d.app.set_language(language)
        yield from d.until(lambda words=words: words in d.app.shown["out_of_order"],
                           f"the clock named ({language})")
        yield from d.shot(f"out-of-order-clock-{language}")
    d.app.set_language("zh")
    d.hold(MILK)
    yield from d.frames(30)
    check(d.app.view.screen.value == "out_of_order" and not d.app.rows, "no sale started")
    d.clock.step((now - d.clock.now()).total_seconds())
    yield from d.screen_is("attract")


# Eight different products (the demo catalogue): a cart longer than the screen.
EIGHT = ["6900000000014", "6900000000045", "6900000000052", "6900000000083",
         "6900000000120", "6900000000151", "6900000000182", "6900000000243"]  # last: eggs, limit 2
WORDS = {
    "zh": {"attract": "扫描会员码或第一件商品", "items": "件", "save": "已优惠",
           "member": "会员 138****0001", "remove_q": "删除“", "start_over_q": "清空购物车",
           "back": "返回购物车", "any_wallet": "微信支付或支付宝"},
    "en": {"attract": "first item to begin", "items": "items", "save": "You save",
           "member": "Member 138****0001", "remove_q": "Remove ", "start_over_q": "Empty the cart",
           "back": "Back to cart", "any_wallet": "WeChat Pay or Alipay"},
}


def cart_row_of(d: Driver, line_id: int) -> Any:
    """The CartRow widget showing line ``line_id`` now, or None (not laid out: off screen)."""
    from app.ui.widgets import CartRow

    rows = [w for w in d.widget("cart").walk() if isinstance(w, CartRow) and w.name
            and w.line_id == line_id]
    return rows[0] if rows else None


def line_in_view(d: Driver, line_id: int) -> bool:
    """Whether line ``line_id``'s row lies wholly inside the cart's visible region."""
    cart = d.widget("cart")
    row = cart_row_of(d, line_id)
    if row is None:
        return False
    _x, bottom = row.to_window(row.x, row.y)
    _x, top = row.to_window(row.x, row.top)
    _x, view_bottom = cart.to_window(cart.x, cart.y)
    _x, view_top = cart.to_window(cart.x, cart.top)
    return bottom >= view_bottom - 1 and top <= view_top + 1


def scan_one(d: Driver, code: str, rows: int, *, check_view: bool = True) -> Step:
    """Hold ``code`` to the camera until the cart has ``rows`` lines; then (``check_view``)
    the line it touched must be in view and lit."""
    before = d.app.view.version
    d.hold(code)
    yield from d.until(lambda: len(d.app.rows) == rows and d.app.view.version > before and
                       d.app.view.notice is not None and d.app.view.notice.key == "added",
                       f"{rows} lines")
    if check_view:
        yield from newest_in_view(d)
    yield from d.frames(25)  # the next code must be a new showing


def newest_in_view(d: Driver) -> Step:
    target = d.app.view.last_line_id
    yield from d.until(lambda: line_in_view(d, target), f"line {target} scrolled into view")
    row = cart_row_of(d, target)
    check(row is not None and row.highlight, f"line {target} is highlighted: "
          f"{[(r['line_id'], r['highlight']) for r in d.app.rows]} {row and row.highlight}")


def cart_you_can_check(d: Driver) -> Step:
    """Issue 19: the attract screen says a scan starts; a member by phone keeps a mistyped
    number to fix and is then shown masked; eight scans, each newest line scrolled into
    view and highlighted; "+" off at the limit; "-" at 1 asks; the pay screen shows the
    count, savings and member and goes back to the cart; "Cancel and start again" asks
    and wipes. Words checked in the language the flow runs in (--language)."""
    lang = d.app.language
    w = WORDS[lang]
    d.app.highlight_s = 3600  # lit until the next change: frames are slow on a busy machine
    yield from d.screen_is("attract")
    check(w["attract"] in d.text("attract_prompt"), d.text("attract_prompt"))
    yield from d.shot(f"attract-scan-starts-{lang}")
    d.press("start_button")
    yield from d.screen_is("member")
    d.type_keys("phone_keypad", "13800000009")  # one digit wrong: nobody's number
    d.press("phone_ok")
    yield from d.until(lambda: d.app.view.notice and d.app.view.notice.key == "member_unknown",
                       "not a member")
    check(d.widget("phone_keypad").typed == "13800000009", "the number is kept to fix")
    yield from d.shot(f"member-kept-{lang}")
    d.touch(next(b for b in d.widget("phone_keypad").walk()  # backspace: one digit goes
                 if getattr(b, "text", "") == {"zh": "退格", "en": "Del"}[lang]))
    check(d.widget("phone_keypad").typed == "1380000000", d.widget("phone_keypad").typed)
    d.type_keys("phone_keypad", "1")
    d.press("phone_ok")
    yield from d.screen_is("shopping")
    yield from d.until(lambda: w["member"] in d.app.shown["member"], "member shown masked")
    check("13800000001" not in d.app.shown["member"], d.app.shown["member"])
    for n, code in enumerate(EIGHT, start=1):
        yield from scan_one(d, code, n)
    yield from d.shot(f"cart-newest-in-view-{lang}")
    check(sum(r["highlight"] for r in d.app.rows) == 1, "only the newest line is lit")
    # The rest in large text: taller rows, the same promises.
    d.app.set_text_size(True)
    yield from d.frames(3)
    # Scanned again: the first line (now above the fold) is the one shown.
    yield from scan_one(d, EIGHT[0], 8)
    check(d.app.view.last_line_id == d.app.rows[0]["line_id"], "the milk line took the scan")
    # Eggs: limit 2 per shopper. Scanned a second time, their "+" is off.
    eggs = d.app.rows[-1]["line_id"]
    yield from scan_one(d, EIGHT[-1], 8)
    # Briefly lit: once its time is up (HIGHLIGHT_S; here made 0), no line is.
    d.app.highlight_s = 0
    d.app._highlight_until = 0
    yield from d.until(lambda: not any(r["highlight"] for r in d.app.rows), "the light off")
    check(not cart_row_of(d, eggs).highlight, "the eggs' row is no longer lit")
    d.app.highlight_s = 3600
    yield from d.shot(f"cart-large-{lang}")
    plus = next(c for c in cart_row_of(d, eggs).walk() if getattr(c, "text", "") == "+")
    check(plus.disabled, "'+' is off at the eggs' limit of 2")
    # "-" at quantity 1 asks; Keep keeps, Remove removes.
    low = d.app.rows[2]["line_id"]
    yield from d.until(lambda: d.app.view.last_line_id == eggs, "eggs shown")
    d.app.do("minus", low)  # the row may be off screen: the same command its button sends
    yield from d.until(lambda: d.app.view.confirm is not None, "asked before removing")
    yield from d.frames(4)
    check(w["remove_q"] in d.text("confirm_text"), d.text("confirm_text"))
    yield from d.shot(f"confirm-remove-{lang}-large")
    d.press("confirm_no")
    yield from d.popup_closed()
    check(len(d.app.rows) == 8, "kept")
    d.app.do("minus", low)
    yield from d.until(lambda: d.app.view.confirm is not None, "asked again")
    yield from d.frames(4)
    d.press("confirm_yes")
    yield from d.popup_closed()
    yield from d.until(lambda: len(d.app.rows) == 7, "removed")
    # The pay screen says what the total is for, and goes back to the cart.
    d.press("pay_button")
    yield from d.screen_is("pay")
    yield from d.until(lambda: d.app.shown["pay_summary"], "pay summary")
    summary = d.text("pay_summary")
    for part in (w["items"], w["save"], w["member"]):
        check(part in summary, (part, summary))
    check(d.text("cancel_payment") == w["back"], d.text("cancel_payment"))
    yield from d.shot(f"pay-summary-{lang}-large")
    d.press("cancel_payment")
    yield from d.screen_is("shopping")
    check(len(d.app.rows) == 7, "the cart is as it was")
    # Cancel and start again: asked, then the attract screen and an empty cart.
    d.press("start_over_button")
    yield from d.until(lambda: d.app.view.confirm is not None, "asked before starting over")
    yield from d.frames(4)
    check(w["start_over_q"] in d.text("confirm_text"), d.text("confirm_text"))
    yield from d.shot(f"confirm-start-over-{lang}-large")
    d.press("confirm_yes")
    yield from d.screen_is("attract")
    check(d.app.rows == [] and not d.app.shown["member"], "wiped for a fresh start")


def one_qr(d: Driver) -> Step:
    """payment.aggregated_qr (run with --aggregated-qr): Pay goes straight to the QR,
    which names every wallet that can scan it; no wallet to choose."""
    lang = d.app.language
    yield from scan_one(d, MILK, 1, check_view=False)
    d.press("pay_button")
    yield from d.screen_is("pay")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "the QR at once")
    check(d.widget("wallet_wechat").height == 0, "no wallet choice")
    check(WORDS[lang]["any_wallet"] in d.app.shown["pay_prompt"], d.app.shown["pay_prompt"])
    yield from d.shot(f"pay-one-qr-{lang}")
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)


def looks(d: Driver, name: str) -> Step:
    """``name`` in large text and in high contrast (the shopper's looks), then as it was."""
    d.app.set_text_size(True)
    yield from d.shot(f"{name}-large")
    d.app.set_text_size(False)
    d.app.set_contrast(True)
    yield from d.shot(f"{name}-contrast")
    d.app.set_contrast(False)


def camera_lost(d: Driver) -> Step:
    """Issue 19: the camera stops. Every screen that relies on it says so and what to do
    instead, in both languages; the attract screen offers the keypad (a typed barcode
    starts a session), the guide box greys out, the pay screen stops offering "show your
    payment code to the camera" but still takes its typed digits."""
    yield from d.screen_is("attract")
    yield from d.post(Lane.camera_health, "lost")
    yield from d.until(lambda: d.widget("attract_type_code").opacity == 1, "attract keypad")
    for language, says, never in (("zh", "摄像头无法使用", "扫描会员码"),
                                  ("en", "camera is not working", "Scan your member code")):
        d.app.set_language(language)
        yield from d.frames(2)
        check(says in d.text("attract_hint"), d.text("attract_hint"))
        # The attract screen's own hint does not contradict its warning.
        check(never not in d.text("attract_prompt"), d.text("attract_prompt"))
        yield from d.shot(f"attract-camera-lost-{language}")
    d.app.set_language("zh")
    yield from looks(d, "attract-camera-lost")
    d.press("attract_type_code")
    yield from d.frames(5)
    d.type_keys("code_keypad", MILK)
    d.press("code_ok")
    yield from d.screen_is("shopping")
    yield from d.until(lambda: len(d.app.rows) == 1, "typed milk starts a session")
    yield from d.popup_closed()
    check(not d.widget("preview").live, "the guide box is greyed")
    check("手动输入条码" in d.text("camera_warning"), d.text("camera_warning"))
    check(d.widget("type_code_button").tone == "accent", "typing is offered first")
    yield from shots_both(d, "shopping-camera-lost")
    yield from looks(d, "shopping-camera-lost")
    d.press("member_sign_in")
    yield from d.screen_is("member")
    check("不能扫描会员码" in d.text("member_prompt"), d.text("member_prompt"))
    yield from shots_both(d, "member-camera-lost")
    d.press("skip_button")
    yield from d.screen_is("shopping")
    yield from to_the_qr(d)
    check(d.widget("show_code").height == 0, "no 'show your payment code to the camera'")
    check(d.widget("type_payment_code").height > 0, "typing the payment code is offered")
    check("摄像头无法使用" in d.text("pay_camera"), d.text("pay_camera"))
    yield from shots_both(d, "pay-qr-camera-lost")
    yield from looks(d, "pay-qr-camera-lost")
    yield from d.post(Lane.camera_health, "ok")
    yield from d.until(lambda: d.widget("show_code").height > 0 and not d.text("pay_camera"),
                       "the camera back")


def nothing_fails_silently(d: Driver) -> Step:
    """Issue 19: a declined payment is said over the cart with "not charged"; "Call staff"
    can be called off; "still there?" comes on the QR screen and says the payment will be
    cancelled, then the lane is free; "remove the age-restricted items and pay for the
    rest"."""
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from to_the_qr(d)
    d.app.demo_phone("decline")  # the simulated phone's "Decline"
    yield from d.screen_is("shopping", timeout=15)
    yield from d.until(lambda: d.text("payment_outcome"), "the decline over the cart")
    check("未扣款" in d.text("payment_outcome"), d.text("payment_outcome"))
    check(d.text("shopping_notice") == "", "not (also) in the narrow column")
    d.app.set_language("en")
    yield from d.frames(2)
    check("you have not been charged" in d.text("payment_outcome"), d.text("payment_outcome"))
    d.app.set_language("zh")
    yield from shots_both(d, "payment-declined")
    yield from looks(d, "payment-declined")
    # Call staff, then call it off.
    d.press("call_staff_button")
    yield from d.until(lambda: d.text("staff_coming"), "staff called banner")
    check(d.widget("cancel_help").height > 0 and not d.widget("cancel_help").disabled,
          "the call can be called off")
    yield from shots_both(d, "staff-called")
    yield from looks(d, "staff-called")
    d.press("cancel_help")
    yield from d.until(lambda: not d.app.shown["help_requested"], "the call called off")
    yield from d.frames(5)  # the banner's room goes back to the screen
    # Walking away from the QR.
    d.press("pay_button")
    yield from d.screen_is("pay")
    yield from d.frames(5)
    d.press("wallet_wechat")
    yield from d.until(lambda: d.app.view.payment is not None, "payment QR")
    d.clock.advance(seconds=95)
    yield from d.screen_is("still_there")
    check("取消付款" in d.text("still_there_prompt"), d.text("still_there_prompt"))
    yield from shots_both(d, "still-there-paying")
    d.clock.advance(seconds=31)
    yield from d.screen_is("attract", timeout=15)
    check(d.app.rows == [] and d.app.view.payment is None, "the lane is free again")
    # The age check: remove those items and pay for the rest.
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from d.frames(25)
    d.hold(BEER)
    yield from d.until(lambda: len(d.app.rows) == 2, "beer")
    d.press("pay_button")
    yield from d.screen_is("age_check")
    yield from shots_both(d, "age-check-remove")
    yield from looks(d, "age-check-remove")
    d.press("age_remove_and_pay")
    yield from d.screen_is("pay")
    check(len(d.app.rows) == 1 and "纯牛奶" in d.app.rows[0]["name"], d.app.rows)


FLOWS: dict[str, Callable[[Driver], Step]] = {
    "cart_you_can_check": cart_you_can_check,
    "one_qr": one_qr,
    "whole_sale": whole_sale,
    "age_check_and_cancel": age_check_and_cancel,
    "inactivity": inactivity,
    "manual_entry_and_looks": manual_entry_and_looks,
    "restart_mid_payment": restart_mid_payment,
    "restart_resumed": restart_resumed,
    "printer_out_of_paper": printer_out_of_paper,
    "pay_by_code": pay_by_code,
    "wrong_clock": wrong_clock,
    "camera_lost": camera_lost,
    "nothing_fails_silently": nothing_fails_silently,
    "looks_reset_between_shoppers": looks_reset_between_shoppers,
    "chinese_line_breaks": chinese_line_breaks,
}


def _in_picker(d: Driver, kind: str, text: str) -> object:
    """The ``kind`` widget (``DeptButton``, ``ProduceTile``, ``SearchKey``) on screen whose
    text (a tile: its name) starts with ``text``."""
    from kivy.core.window import Window

    for popup in Window.children:
        for w in popup.walk():
            label = getattr(w, "name", "") if kind == "ProduceTile" else getattr(w, "text", "")
            if type(w).__name__ == kind and isinstance(label, str) and \
                    label.startswith(text) and w.opacity and w.height:
                return w
    raise FlowFailed(f"no {kind} {text!r} on screen")


def _event_types(d: Driver) -> list[str]:
    import sqlite3

    d.app.runtime.idle()
    conn = sqlite3.connect(d.app.settings.database_path)
    try:
        return [r[0] for r in conn.execute("SELECT type FROM outbox ORDER BY seq")]
    finally:
        conn.close()


def _tile_names(d: Driver) -> list[str]:
    return [t["name"] for t in d.app.produce_tiles]


def find_produce(d: Driver) -> Step:
    """Issue 19: loose items by picture. From the shopping screen: departments, a search
    typed on the letter pad (in either language's screen: Chinese names are shown, the
    English letters still find them), a tap on a tile adds the item as typing its PLU
    would; a missing picture falls back to a plain tile; the code pad opens the grid too.
    Shots in the language given (``--language``), normal, large text and high contrast."""
    zh = d.app.language == "zh"
    lang = d.app.language
    pictures = d.app.settings.images_path
    (pictures / "demo" / "plu-4053.png").unlink()  # the lemon's picture is gone
    yield from d.screen_is("attract")
    d.press("start_button")
    yield from d.screen_is("member")
    d.press("skip_button")
    yield from d.screen_is("shopping")
    d.press("find_produce_button")
    yield from d.until(lambda: d.app.view.produce is not None and d.app.produce_tiles,
                       "the grid")
    yield from d.frames(5)
    names = _tile_names(d)
    check(("牛油果" if zh else "Avocado") in names and len(names) == 11, names)
    departments = [b["text"] for b in d.app.produce_departments]
    check(departments == (["全部", "面包烘焙 (3)", "蔬菜水果 (8)"] if zh else
                          ["All", "Bakery (3)", "Fruit & veg (8)"]), departments)
    lemon = next(t for t in d.app.produce_tiles if t["code"] == "PLU:4053")
    check(lemon["picture"] == "" and lemon["initials"] == "L", lemon)  # fallback tile
    avocado = next(t for t in d.app.produce_tiles if t["code"] == "PLU:4046")
    check(avocado["picture"].endswith("plu-4046.png"), avocado)
    yield from d.shot(f"find-produce-{lang}")
    d.touch(_in_picker(d, "DeptButton", "面包" if zh else "Bakery"))
    yield from d.until(lambda: d.app.view.produce.department == "bakery", "bakery")
    check(sorted(_tile_names(d)) == sorted(["菠萝包", "奶油面包", "法式长棍"] if zh else
                                           ["Pineapple Bun", "Cream Bun", "Baguette"]),
          _tile_names(d))
    d.press("produce_search_button")
    yield from d.frames(5)
    for key in "AVO":
        d.touch(_in_picker(d, "SearchKey", key))
        yield from d.frames(2)
    yield from d.until(lambda: d.app.view.produce.search == "avo", "the search")
    expected = ["牛油果", "大牛油果", "有机牛油果"] if zh else \
        ["Avocado", "Large Avocado", "Organic Avocado"]
    yield from d.until(lambda: sorted(_tile_names(d)) == sorted(expected), "avocados")
    check(d.app.view.produce.department == "", "a search looks in every department")
    yield from d.shot(f"find-produce-search-{lang}")
    d.press("search_done")
    yield from d.frames(5)
    if zh:  # an input method's Chinese text goes into the search too
        from kivy.core.window import Window
        d.press("produce_search_button")
        yield from d.frames(3)
        d.touch(_in_picker(d, "SearchKey", "清除"))
        Window.dispatch("on_textinput", "有机")
        yield from d.until(lambda: _tile_names(d) == ["有机牛油果"], "the Chinese search")
        d.press("search_done")
        yield from d.frames(5)
    d.touch(_in_picker(d, "ProduceTile", expected[0] if not zh else "有机牛油果"))
    yield from d.popup_closed()
    yield from d.until(lambda: len(d.app.rows) == 1, "the picked item in the cart")
    code = "PLU:4046" if not zh else "PLU:94046"
    line = d.app.view.priced.lines[0].line
    check(line.product.code == code and line.quantity == 1, line)
    check(d.app.view.notice.key == "added", d.app.view.notice)
    check(d.app.rows[0]["picture"].endswith(f"plu-{code[4:]}.png"), d.app.rows[0])
    # The code pad offers the grid too; a tile there adds the same as typing the PLU.
    d.press("type_code_button")
    yield from d.frames(5)
    if d.shots is not None:
        yield from d.shot(f"find-produce-codepad-{lang}")
        d.app.set_text_size(True)
        yield from d.frames(5)
        d.app.do("touch")
        yield from d.shot(f"find-produce-codepad-large-{lang}")
        d.app.set_text_size(False)
        yield from d.frames(5)
    d.press("code_find_produce")
    yield from d.until(lambda: d.app.view.produce is not None and d.app.produce_tiles,
                       "the grid from the code pad")
    yield from d.frames(5)
    d.touch(_in_picker(d, "ProduceTile", "柠檬" if zh else "Lemon"))
    yield from d.popup_closed()
    yield from d.until(lambda: len(d.app.rows) == 2, "the lemon in the cart")
    check(d.app.rows[1]["picture"] == "", "no picture: none on the cart line")
    check(not [e for e in _event_types(d) if e == "scan_rejected"],
          "typing a search is not a refused scan")
    yield from d.shot(f"find-produce-cart-{lang}")
    if d.shots is not None:
        d.app.set_text_size(True)
        yield from d.frames(5)
        d.app.do("touch")  # shots are slow under load: not "still there?"
        yield from d.shot(f"find-produce-cart-large-{lang}")
        d.app.set_text_size(False)
        yield from d.frames(5)
    d.press("find_produce_button")
    yield from d.until(lambda: d.app.view.produce is not None, "the grid again")
    yield from d.frames(5)
    if d.shots is not None:  # the looks, for the eye: large text, high contrast
        d.app.set_text_size(True)
        yield from d.frames(5)
        d.app.do("touch")  # shots are slow under load: not "still there?"
        yield from d.shot(f"find-produce-large-{lang}")
        d.app.set_contrast(True)
        yield from d.frames(3)
        d.app.do("touch")  # shots are slow under load: not "still there?"
        yield from d.shot(f"find-produce-large-contrast-{lang}")
        d.app.set_text_size(False)
        yield from d.frames(5)
        d.app.do("touch")  # shots are slow under load: not "still there?"
        yield from d.shot(f"find-produce-contrast-{lang}")
        d.press("produce_search_button")
        yield from d.frames(5)
        d.app.do("touch")  # shots are slow under load: not "still there?"
        yield from d.shot(f"find-produce-keys-contrast-{lang}")
        d.press("search_done")
        yield from d.frames(3)
        d.app.set_contrast(False)
    d.press("produce_close")
    yield from d.popup_closed()
    check(len(d.app.rows) == 2 and d.app.view.produce is None, "closed, nothing added")


FLOWS["find_produce"] = find_produce


def shots_both(d: Driver, name: str) -> Step:
    for language in ("zh", "en"):
        d.app.set_language(language)
        yield from d.shot(f"{name}-{language}")
    d.app.set_language("zh")


# Every look a screen is shown and checked in: (language, large text, high contrast).
LOOKS = [("zh", False, False), ("en", False, False), ("zh", True, False), ("en", True, False),
         ("zh", False, True), ("en", False, True)]


def look_name(name: str, language: str, large: bool, contrast: bool) -> str:
    """``shopping-zh``, ``shopping-large-en``, ``shopping-contrast-zh``: the tour's files."""
    return "-".join([name] + (["large"] if large else []) + (["contrast"] if contrast else [])
                    + [language])


def every_look(d: Driver, name: str, faults: list[str], *, contrast_check: bool = True) -> Step:
    """Show the screen in every look (``LOOKS``); in each, check the layout and the Chinese
    line breaks (tests/ui/checks.py), take its screenshot, and check the contrast of every
    text and button on the high-contrast shots (tests/ui/contrast.py). What is wrong is
    added to ``faults`` (named by the look); the look is normal Chinese again at the end."""
    from tests.ui import checks

    for language, large, contrast in LOOKS:
        d.app.do("touch")  # as the look buttons do: a slow tour is not a shopper gone
        d.app.set_language(language)
        d.app.set_text_size(large)
        d.app.set_contrast(contrast)
        yield from d.frames(4)
        label = look_name(name, language, large, contrast)
        found = checks.layout_faults(d.app) + checks.line_break_faults(d.app)
        yield from d.shot(label)
        if contrast and contrast_check and d.shots is not None:
            found += checks.contrast_faults(d.app, d.shots / f"{label}.png")
        faults.extend(f"{label}: {f}" for f in found)
    d.app.set_language("zh")
    d.app.set_text_size(False)
    d.app.set_contrast(False)
    yield from d.frames(2)
    checks.settle(d.app)  # laid out again before the next touch lands on it
    yield from d.frames(2)


def screenshots(d: Driver) -> Step:
    """Every screen in Chinese and English, each in normal, large-text and high-contrast
    looks, checked in each (layout, line breaks, contrast): the README's screenshots."""
    faults: list[str] = []
    if d.shots is None:  # the contrast check reads the pixels: shots are always taken
        import tempfile
        d.shots = Path(tempfile.mkdtemp(prefix="kiosk-shots-"))

    def both(name: str) -> Step:
        yield from every_look(d, name, faults)

    yield from d.screen_is("attract")
    yield from both("attract")
    d.press("start_button")
    yield from d.screen_is("member")
    d.type_keys("phone_keypad", "1380000")
    yield from both("member")
    d.widget("phone_keypad").typed = ""
    d.type_keys("phone_keypad", "13800000001")
    d.press("phone_ok")
    yield from d.screen_is("shopping")
    d.hold(MILK)  # the camera once; the rest as the scanner hands them to the lane (faster)
    yield from d.until(lambda: d.app.view.notice and d.app.view.notice.key == "added"
                       and d.app.view.last_line_id is not None, "a scan")
    for code in ("6900000000045", MILK, "2100109012343", FAMILY_PACK, BEER, UNKNOWN):
        yield from d.post(Lane.scan, code)
    yield from d.until(lambda: d.app.shown["notice_level"] == "error", "refusal")
    yield from both("shopping")
    d.press("type_code_button")
    yield from d.frames(5)
    d.type_keys("code_keypad", "6900")
    yield from both("manual-entry")
    d.widget("code_keypad").typed = ""
    d.touch(next(w for w in d.widget("code_keypad").parent.walk()
                 if getattr(w, "text", "") in ("关闭", "Close") and hasattr(w, "trigger_action")))
    yield from d.popup_closed()
    d.app.open_demo_shelf()
    yield from d.frames(5)
    yield from d.shot("demo-shelf-zh")
    d.app._shelf.dismiss()
    yield from d.popup_closed()
    d.press("pay_button")
    yield from d.screen_is("age_check")
    yield from both("age-check")
    yield from d.post(Lane.approve_age, "clerk-7")
    yield from d.screen_is("pay")
    yield from d.until(lambda: d.widget("wallet_wechat").height > 0, "wallet choice")
    yield from d.until(lambda: d.widget("show_code").height > 0, "show your payment code")
    yield from both("pay-choose")
    d.press("wallet_wechat")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR",
                       timeout=30)
    yield from both("pay-qr")
    d.rig.show_payment_code("wechat", "never")  # the phone under the camera; no password
    yield from d.until(lambda: d.app.shown["confirming"], "confirm on your phone")
    yield from d.frames(3)
    yield from both("confirm-phone")
    d.press("cancel_payment")  # reversed, confirmed: the pay screen again, both ways
    yield from d.until(lambda: d.widget("wallet_wechat").height > 0
                       and d.widget("show_code").height > 0, "the pay screen again")
    d.press("wallet_wechat")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")
    d.rig.printer.set_state(paper_out=True)
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)
    yield from d.until(lambda: d.app.view.receipt and d.app.view.receipt.printed is False,
                       "the receipt to fail", timeout=20)
    yield from both("receipt-exit-pass")
    d.rig.printer.set_state(paper_out=False)
    d.press("done_button")
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from to_the_qr(d)
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)
    yield from d.until(lambda: d.app.view.receipt and d.app.view.receipt.printed, "printed",
                       timeout=20)
    yield from both("receipt-printed")
    d.press("done_button")
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    d.clock.advance(seconds=95)
    yield from d.screen_is("still_there")
    yield from both("still-there")
    d.press("still_here_button")
    yield from d.screen_is("shopping")
    yield from d.hold_corner(5.0)
    yield from d.screen_is("staff")
    d.type_keys("staff_keypad", "14")
    yield from both("staff-pin")
    d.widget("staff_keypad").typed = ""
    d.type_keys("staff_keypad", "1470")
    d.press("staff_pin_ok")
    yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")
    yield from both("staff-menu")
    d.press("staff_sign_out")
    yield from d.screen_is("shopping")
    yield from d.post(Lane.abandon, "staff_reset")
    yield from d.post(Lane.set_open, False)
    yield from d.screen_is("closed")
    yield from both("closed")
    yield from d.post(Lane.set_open, True)
    yield from d.post(Lane.camera_health, "lost")
    d.clock.advance(seconds=31)
    yield from d.screen_is("out_of_order")
    yield from both("out-of-order")
    yield from d.post(Lane.camera_health, "ok")
    yield from d.screen_is("attract")

    def broken(_lane: Lane) -> None:
        raise RuntimeError("simulated fault for the error screen")
    yield from d.post(broken)
    yield from d.screen_is("error")
    yield from both("error")
    check(not faults, f"{len(faults)} faults on the screens:\n" + "\n".join(faults))


FLOWS["screenshots"] = screenshots


def staff_mode(d: Driver) -> Step:
    """The hidden corner, a wrong PIN, the attendant's menu, actions, sign out."""
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from d.frames(25)
    d.hold(BEER)
    yield from d.until(lambda: len(d.app.rows) == 2, "beer")
    yield from d.hold_corner(1.0)  # too short: nothing happens
    yield from d.frames(5)
    check(d.screen == "shopping", "a short touch on the corner does nothing")
    yield from d.hold_corner(5.0)  # staff.hold_s is 3 s: a margin for slow frames
    yield from d.screen_is("staff")
    check(d.widget("staff_pages").current == "pin", d.widget("staff_pages").current)
    d.type_keys("staff_keypad", "9999")
    check(d.widget("staff_keypad").typed == "9999", "typed")
    d.press("staff_pin_ok")
    yield from d.until(lambda: "wrong PIN" in d.text("staff_message"), "wrong PIN message")
    d.type_keys("staff_keypad", "14")
    yield from shots_both(d, "staff-pin")
    d.widget("staff_keypad").typed = ""
    d.type_keys("staff_keypad", "1470")
    d.press("staff_pin_ok")
    yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")
    check(d.widget("act_override_price").disabled, "an attendant cannot override prices")
    yield from shots_both(d, "staff-menu")
    d.press("act_approve_age")
    yield from d.until(lambda: "Age check approved" in d.text("staff_message"), "approved")
    d.press("act_void_line")
    yield from d.until(lambda: d.widget("staff_pages").current == "pick", "line picker")
    yield from d.frames(3)
    first = next(w for w in d.widget("staff_choices").walk()
                 if getattr(w, "choice", "") == "1")
    d.touch(first)
    yield from d.until(lambda: "Voided" in d.text("staff_message"), "voided")
    voided = d.app.view.notice  # what the shopper reads once staff mode closes
    check(voided is not None and voided.key == "removed_by_staff", voided)
    d.press("act_device_health")
    yield from d.until(lambda: "摄像头" in d.text("staff_text"), "device health")
    check("小票打印机" in d.text("staff_text") and "支付" in d.text("staff_text"),
          d.text("staff_text"))
    check("提醒（审计）" not in d.text("staff_text"), d.text("staff_text"))
    yield from shots_both(d, "staff-health")
    d.press("staff_menu_button")
    yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")
    d.press("act_audit_log")
    yield from d.until(lambda: "链条完整" in d.app.shown["staff_title"], "audit log")
    check("删除商品行" in d.text("staff_text"), d.text("staff_text")[:300])
    yield from shots_both(d, "staff-audit-log")
    d.press("staff_sign_out")
    yield from d.screen_is("shopping")
    check(len(d.app.rows) == 1 and "啤酒" in d.app.rows[0]["name"], d.app.rows)
    # "Removed by staff", not the last scan's "Added: ..."
    check(d.text("shopping_notice").startswith("店员已删除：纯牛奶"), d.text("shopping_notice"))
    d.app.set_language("en")
    yield from d.frames(2)
    check(d.text("shopping_notice").startswith("Removed by staff: Whole Milk"),
          d.text("shopping_notice"))
    d.app.set_language("zh")
    d.press("pay_button")
    yield from d.screen_is("pay")  # the beer was approved: no age check screen


FLOWS["staff_mode"] = staff_mode

# What the staff pages say in each language (the flow runs with --language zh or en).
STAFF_WORDS = {
    "zh": {"cart": "购物车：2 件", "payment": "付款中：模拟支付", "age": "等待年龄核验",
           "reset": "确定要重置本通道吗？", "lost": "购物车（2 件，", "health": "摄像头",
           "audit": "审计日志（链条完整）", "paid": "付款成功", "x": "销售：1 笔，合计 ¥",
           "saved": "本次共节省 ¥0.60", "idle": "没有顾客在购物"},
    "en": {"cart": "Cart: 2 items, total ¥", "payment": "Open payment: Payment simulator",
           "age": "Waiting for an age check", "reset": "Reset this lane?",
           "lost": "The cart of 2 items, ¥", "health": "Camera", "audit":
           "Audit log (chain intact)", "paid": "payment paid", "x": "Sales: 1, total ¥",
           "saved": "You saved ¥0.60", "idle": "No one is shopping at this lane"},
}


def staff_pages(d: Driver) -> Step:
    """The attendant's screens in the kiosk's language: the lane's state on the menu (the
    cart, an age check, then an open payment with its age), the reset confirmation saying
    what will be lost, device health, the audit log, the X report; and the receipt screen
    showing the savings. Screenshots: staff-menu-state, staff-reset-confirm, staff-health,
    staff-audit-log, staff-x-report, receipt-savings (each -zh or -en)."""
    lang = d.app.language
    said = STAFF_WORDS[lang]

    def sign_in() -> Step:
        yield from d.post(lambda lane: lane.staff.open_pin_pad())
        yield from d.until(lambda: d.widget("staff_pages").current == "pin", "PIN pad")
        d.type_keys("staff_keypad", "1470")
        d.press("staff_pin_ok")
        yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")

    yield from d.screen_is("attract")
    d.press("start_button")
    yield from d.screen_is("member")
    d.type_keys("phone_keypad", "13800000001")
    d.press("phone_ok")
    yield from d.screen_is("shopping")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from d.frames(25)
    d.hold(BEER)
    yield from d.until(lambda: len(d.app.rows) == 2, "beer")
    yield from sign_in()
    yield from d.until(lambda: said["cart"] in d.text("staff_state")
                       and said["age"] in d.text("staff_state"),
                       "the cart on the menu")
    d.press("act_approve_age")
    yield from d.until(lambda: said["age"] not in d.text("staff_state"), "age approved")
    d.press("staff_sign_out")
    yield from d.screen_is("shopping")
    yield from to_the_qr(d)
    d.clock.advance(seconds=30)  # the payment's age shows; the QR stays valid
    yield from sign_in()
    yield from d.until(lambda: said["payment"] in d.text("staff_state"), "the open payment")
    check(re.search(r"已 \d+秒" if lang == "zh" else r"for \d+ s\b", d.text("staff_state")),
          d.text("staff_state"))
    yield from d.shot(f"staff-menu-state-{lang}")
    d.app.set_text_size(True)
    yield from d.frames(3)
    check(d.widget("act_reset").height >= d.app.target, "large targets on the menu")
    yield from d.shot(f"staff-menu-state-large-{lang}")
    d.app.set_text_size(False)
    d.press("act_reset")
    yield from d.until(lambda: d.widget("staff_pages").current == "confirm", "confirmation")
    check(d.text("staff_confirm_title") == said["reset"], d.text("staff_confirm_title"))
    check(said["lost"] in d.text("staff_confirm_text"), d.text("staff_confirm_text"))
    yield from d.shot(f"staff-reset-confirm-{lang}")
    d.app.set_text_size(True)
    d.app.set_contrast(True)
    yield from d.frames(3)
    yield from d.shot(f"staff-reset-confirm-large-contrast-{lang}")
    d.app.set_text_size(False)
    d.app.set_contrast(False)
    d.press("staff_reset_keep")
    yield from d.until(lambda: d.widget("staff_pages").current == "menu", "kept")
    check(d.app.view.payment is not None or said["payment"] in d.text("staff_state"),
          "nothing was reset")
    d.press("staff_sign_out")
    yield from d.screen_is("pay")
    d.press("demo_pay")
    yield from d.screen_is("receipt", timeout=15)
    yield from d.until(lambda: said["saved"] in d.text("receipt_saved"), "savings shown")
    yield from d.shot(f"receipt-savings-{lang}")
    d.press("done_button")
    yield from d.screen_is("attract")
    yield from sign_in()
    yield from d.until(lambda: said["idle"] in d.text("staff_state"), "no one shopping")
    for action, key, name in (("act_device_health", "health", "staff-health"),
                              ("act_audit_log", "audit", "staff-audit-log"),
                              ("act_x_report", "x", "staff-x-report")):
        d.press("staff_menu_button")
        yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")
        d.press(action)
        yield from d.until(lambda key=key: said[key] in d.app.shown["staff_title"]
                           + d.text("staff_text"), name)
        text = d.text("staff_text")
        check("_minor=" not in text and "+00:00" not in text, text[:400])
        if key == "audit":
            check(said["paid"] in text, text[:400])
        yield from d.frames(3)
        yield from d.shot(f"{name}-{lang}")
    d.press("staff_sign_out")
    yield from d.screen_is("attract")


FLOWS["staff_pages"] = staff_pages


def banners_and_boxes(d: Driver) -> Step:
    """Review of issue 19's merge: the screens the tour leaves out, checked as the tour
    checks (``every_look``: layout, line breaks, contrast in six looks): a declined payment
    over the cart with the "staff are on their way" banner above it, and the "Cancel and
    start again?" box over the cart, the "Find produce" grid and its search pad. Fails
    with every fault found."""
    faults: list[str] = []
    if d.shots is None:  # the contrast check reads the pixels: shots are always taken
        import tempfile
        d.shots = Path(tempfile.mkdtemp(prefix="kiosk-shots-"))
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    yield from to_the_qr(d)
    d.app.demo_phone("decline")
    yield from d.screen_is("shopping", timeout=15)
    yield from d.until(lambda: d.text("payment_outcome"), "the decline over the cart")
    d.press("call_staff_button")
    yield from d.until(lambda: d.text("staff_coming"), "staff called banner")
    yield from every_look(d, "declined-and-staff-called", faults)
    d.press("cancel_help")
    yield from d.until(lambda: not d.app.shown["help_requested"], "the call called off")
    d.press("start_over_button")
    yield from d.until(lambda: d.app._confirm is not None and d.app._confirm.parent,
                       "the confirm box")
    yield from every_look(d, "confirm-start-over", faults)
    d.touch(next(w for w in d.app._confirm.walk()
                 if getattr(w, "text", "") == "继续购物" and hasattr(w, "trigger_action")))
    yield from d.until(lambda: d.app.view.confirm is None, "the box answered")
    yield from d.popup_closed()
    d.press("find_produce_button")
    yield from d.until(lambda: d.app.view.produce is not None and d.app.produce_tiles,
                       "the grid")
    yield from d.frames(5)
    yield from every_look(d, "find-produce-grid", faults)
    d.press("produce_search_button")
    yield from d.frames(5)
    yield from every_look(d, "find-produce-search-pad", faults)
    # Not yet here (the review found, unfixed): with the camera lost, the shopping screen
    # in large English text pushes the camera preview over its panel's top edge
    # (CameraPreview at y 666-691 over the area ending at 687: the warning and the
    # buttons overfill the left panel); add camera_health("lost") + every_look once fixed.
    check(not faults, "\n".join(faults))


FLOWS["banners_and_boxes"] = banners_and_boxes


def _store_data_versions(lane: Lane) -> None:
    """On the lane's thread: a real StoreData over the lane's database holding head-office
    versions signed with a test key (tests/store_versions.py): catalogue 1 and 2 applied
    (2 changes the milk's price), 3 downloaded and waiting until 2027, a version signed by
    another key refused; promotions 1 applied. Staff mode is handed it, as the composition
    root does."""
    from app.services.store_data import StoreData, StoreDataRefused
    from app.storage.catalogue_repo import SqliteCatalogue
    from tests.store_versions import STORE, make_version, new_key, product_row, public_b64

    key = new_key()
    data = StoreData(lane.p.db, SqliteCatalogue(lane.p.db, lane.p.currency), store_id=STORE,
                     currency=lane.p.currency, public_key=public_b64(key), keys_file=None,
                     lane_id=lane.p.lane_id, stale_after_s=4 * 3600, clock=lane.p.clock,
                     audit=lane.staff.p.audit)
    now = lane.p.clock.now()
    rows = [[product_row(MILK, price, "Whole Milk 250ml"), product_row(BEER, 650, "Beer")]
            for price in (590, 620, 640)]
    v1 = make_version(key, rows=rows[0], version=1, effective_at="2026-01-01T00:00:00Z")
    v2 = make_version(key, rows=rows[1], previous=rows[0], version=2,
                      effective_at="2026-01-02T01:00:00Z")
    v3 = make_version(key, rows=rows[2], previous=rows[1], version=3,
                      effective_at="2027-01-01T01:00:00Z")
    forged = make_version(key, rows=rows[2], previous=rows[1], version=4,
                          sign_with=new_key())
    promo = make_version(key, kind="promotions", rows=[], version=1)
    data.stage(v1.manifest_raw, v1.signature, "full", v1.full)
    data.apply_due(now)
    for version in (v2, v3):
        data.stage(version.manifest_raw, version.signature, "delta", version.payload("delta"))
    data.stage(promo.manifest_raw, promo.signature, "full", promo.full)
    try:
        data.stage(forged.manifest_raw, forged.signature, "delta", forged.payload("delta"))
    except StoreDataRefused:
        pass  # what the page shows as the last refusal
    data.apply_due(now)
    data.contacted(True)
    lane.staff.p.store_data = data


def light(d: Driver, widget_id: str) -> bool:
    """The widget's text is drawn light (each of r, g, b at least 0.8, opaque)."""
    r, g, b, a = d.widget(widget_id).color
    return min(r, g, b) >= 0.8 and a >= 0.99


def store_data_page(d: Driver) -> Step:
    """Issue 22: a manager opens "Store data" from the staff menu (versions, waiting,
    the one before, the last refusal, when head office was reached), asks to roll the
    catalogue back (the question says what shoppers get), says yes, and the page shows
    the rollback; the menu, the page, the question and the result checked in six looks
    (layout, line breaks, contrast). Screenshots staff-store-data*, staff-menu-16."""
    faults: list[str] = []
    if d.shots is None:  # the contrast check reads the pixels: shots are always taken
        import tempfile
        d.shots = Path(tempfile.mkdtemp(prefix="kiosk-shots-"))
    yield from d.screen_is("attract")
    yield from d.post(_store_data_versions)
    yield from d.post(lambda lane: lane.staff.open_pin_pad())
    yield from d.until(lambda: d.widget("staff_pages").current == "pin", "PIN pad")
    d.type_keys("staff_keypad", "2580")  # the demo manager
    d.press("staff_pin_ok")
    yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")
    yield from d.frames(3)
    yield from every_look(d, "staff-menu-store-data", faults)
    d.press("act_store_data")
    yield from d.until(lambda: d.widget("staff_pages").current == "data", "store data page")
    yield from d.frames(3)
    text = d.text("staff_data_text")
    check("商品和价格：第 2 版" in text and "上一版：第 1 版" in text, text)
    check("等待启用：第 3 版" in text and "上次拒收的下载" in text, text)
    check(d.text("rollback_catalogue") == "商品和价格退回第 1 版", d.text("rollback_catalogue"))
    check(d.widget("rollback_promotions").width < 1, "promotions 1 has nothing before it")
    yield from every_look(d, "staff-store-data", faults)
    # Back in the normal look after a contrast toggle: the page's words are still light on
    # the staff pages' dark ground (they went dark on dark, from the theme's binding).
    check(light(d, "staff_data_title") and light(d, "staff_data_text"),
          (d.widget("staff_data_title").color, d.widget("staff_data_text").color))
    d.press("rollback_catalogue")
    yield from d.until(lambda: d.widget("staff_pages").current == "confirm", "the question")
    yield from d.frames(3)
    check(d.text("staff_confirm_title") == "把商品和价格退回第 1 版？",
          d.text("staff_confirm_title"))
    check("之后的顾客按第 1 版的价格结账" in d.text("staff_confirm_text"),
          d.text("staff_confirm_text"))
    check(d.text("staff_reset_confirm") == "确认退回", d.text("staff_reset_confirm"))
    yield from every_look(d, "staff-store-data-confirm", faults)
    check(light(d, "staff_confirm_title") and light(d, "staff_confirm_text"),
          (d.widget("staff_confirm_title").color, d.widget("staff_confirm_text").color))
    d.app.set_language("en")
    yield from d.frames(2)
    check(d.text("staff_confirm_title") == "Roll back the catalogue and prices to version 1?",
          d.text("staff_confirm_title"))
    d.app.set_language("zh")
    d.press("staff_reset_confirm")
    yield from d.until(lambda: "已从第 2 版退回第 1 版" in d.text("staff_message"),
                       "rolled back")
    check(d.widget("staff_pages").current == "data", d.widget("staff_pages").current)
    check("商品和价格：第 1 版" in d.text("staff_data_text"), d.text("staff_data_text"))
    check("已撤回、不会再启用：第 2 版" in d.text("staff_data_text"), d.text("staff_data_text"))
    yield from every_look(d, "staff-store-data-rolled-back", faults)
    d.app.set_language("en")
    yield from d.frames(2)
    check(d.text("staff_message") ==
          "Rolled back the catalogue and prices from version 2 to version 1.",
          d.text("staff_message"))
    d.app.set_language("zh")
    d.press("staff_sign_out")
    yield from d.screen_is("attract")
    check(not faults, "\n".join(faults))


FLOWS["store_data_page"] = store_data_page


def run_flow(flow: Callable[[Driver], Step], data_dir: Path, *, shots: Path | None = None,
             pay_url: str = "", language: str = "zh", paper_out: bool = False,
             aggregated_qr: bool = False) -> int:
    """Build the demo kiosk in ``data_dir`` against a fresh demo rig and run ``flow`` on its
    screen; returns the exit status (0: the flow finished). ``pay_url``: a payment
    simulator that outlives this process (the restart test), else the rig's own."""
    from app import bootstrap
    from app.config import load_settings
    from app.services.clock import OffsetClock
    from app.ui import driver

    settings = load_settings(data_dir=data_dir)
    settings.kiosk.language = language
    settings.payment.aggregated_qr = aggregated_qr
    settings.ui.sounds = False  # no sound card here; what was played is still recorded
    clock = OffsetClock()
    _kiosk, rig, runtime = bootstrap.start_demo(settings, clock, pay_url=pay_url)
    if paper_out and rig.printer is not None:
        rig.printer.set_state(paper_out=True)
    try:
        return driver.run(flow, runtime, rig=rig, clock=clock, shots=shots)
    finally:
        rig.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("flow", choices=sorted(FLOWS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--shots", type=Path)
    parser.add_argument("--pay-url", default="")
    parser.add_argument("--language", default="zh")
    parser.add_argument("--paper-out", action="store_true")
    parser.add_argument("--aggregated-qr", action="store_true",
                        help="payment.aggregated_qr = true (no wallet choice)")
    args = parser.parse_args(argv)
    return run_flow(FLOWS[args.flow], args.data, shots=args.shots, pay_url=args.pay_url,
                    language=args.language, paper_out=args.paper_out,
                    aggregated_qr=args.aggregated_qr)


if __name__ == "__main__":
    sys.exit(main())

