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
import sys
from collections.abc import Callable
from pathlib import Path

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
    yield from d.until(lambda: "M000001" in d.app.shown.get("member", ""), "member shown")
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
    d.touch(d.row_button(1, "-"))  # one beer, minus: the line goes
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
    yield from d.screen_is("shopping")
    d.press("pay_button")
    yield from d.screen_is("pay")
    yield from d.until(lambda: d.widget("wallet_alipay").height > 0, "wallet choice")
    d.press("wallet_alipay")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")
    d.press("cancel_payment")
    yield from d.screen_is("shopping")
    yield from d.until(lambda: "取消" in d.text("shopping_notice"), "cancelled notice")
    check(not d.widget("pay_button").disabled, "the cart can be paid again")


def inactivity(d: Driver) -> Step:
    """Still there? then the cart is abandoned and the screen wiped."""
    yield from d.screen_is("attract")
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk in the cart")
    d.clock.advance(seconds=91)
    yield from d.screen_is("still_there")
    check("30" in d.text("still_there_prompt") or "29" in d.text("still_there_prompt"),
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
    d.hold(MILK)
    yield from d.until(lambda: len(d.app.rows) == 1, "milk")
    check(d.app.language == "en" and d.app.large_text, "kept for the shopper who chose them")
    d.clock.advance(seconds=91)
    yield from d.screen_is("still_there")
    d.clock.advance(seconds=31)
    yield from d.screen_is("attract")
    store_looks("an abandoned cart")
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


FLOWS: dict[str, Callable[[Driver], Step]] = {
    "whole_sale": whole_sale,
    "age_check_and_cancel": age_check_and_cancel,
    "inactivity": inactivity,
    "manual_entry_and_looks": manual_entry_and_looks,
    "restart_mid_payment": restart_mid_payment,
    "restart_resumed": restart_resumed,
    "printer_out_of_paper": printer_out_of_paper,
    "pay_by_code": pay_by_code,
    "wrong_clock": wrong_clock,
    "looks_reset_between_shoppers": looks_reset_between_shoppers,
    "chinese_line_breaks": chinese_line_breaks,
}


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
    yield from d.screen_is("shopping")
    d.press("pay_button")
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
    d.press("act_device_health")
    yield from d.until(lambda: "Camera" in d.text("staff_text"), "device health")
    check("Printer" in d.text("staff_text") and "Payment" in d.text("staff_text"),
          d.text("staff_text"))
    check("Alert (audit)" not in d.text("staff_text"), d.text("staff_text"))
    yield from shots_both(d, "staff-health")
    d.press("staff_menu_button")
    yield from d.until(lambda: d.widget("staff_pages").current == "menu", "the menu")
    d.press("act_audit_log")
    yield from d.until(lambda: "chain OK" in d.app.shown["staff_title"], "audit log")
    check("void_line" in d.text("staff_text"), d.text("staff_text")[:300])
    yield from shots_both(d, "staff-audit-log")
    d.press("staff_sign_out")
    yield from d.screen_is("shopping")
    check(len(d.app.rows) == 1 and "啤酒" in d.app.rows[0]["name"], d.app.rows)
    d.press("pay_button")
    yield from d.screen_is("pay")  # the beer was approved: no age check screen


FLOWS["staff_mode"] = staff_mode


def run_flow(flow: Callable[[Driver], Step], data_dir: Path, *, shots: Path | None = None,
             pay_url: str = "", language: str = "zh", paper_out: bool = False) -> int:
    """Build the demo kiosk in ``data_dir`` against a fresh demo rig and run ``flow`` on its
    screen; returns the exit status (0: the flow finished). ``pay_url``: a payment
    simulator that outlives this process (the restart test), else the rig's own."""
    from app import bootstrap
    from app.config import load_settings
    from app.services.clock import OffsetClock
    from app.ui import driver

    settings = load_settings(data_dir=data_dir)
    settings.kiosk.language = language
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
    args = parser.parse_args(argv)
    return run_flow(FLOWS[args.flow], args.data, shots=args.shots, pay_url=args.pay_url,
                    language=args.language, paper_out=args.paper_out)


if __name__ == "__main__":
    sys.exit(main())
