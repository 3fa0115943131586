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


def check(condition: object, message: str) -> None:
    if not condition:
        raise FlowFailed(message)


def to_the_qr(d: Driver, wallet: str = "wechat") -> Step:
    """Shopping screen -> Pay -> a wallet -> the payment QR on screen."""
    d.press("pay_button")
    yield from d.until(lambda: d.widget(f"wallet_{wallet}").height > 0, "wallet choice")
    d.press(f"wallet_{wallet}")
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")


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


def screenshots(d: Driver) -> Step:
    """Every screen in Chinese and English, and the main ones in large text (README)."""
    def both(name: str) -> Step:
        yield from shots_both(d, name)

    def large(name: str) -> Step:
        d.app.set_text_size(True)
        yield from d.shot(f"{name}-large")
        d.app.set_text_size(False)

    yield from d.screen_is("attract")
    yield from both("attract")
    yield from large("attract")
    d.press("start_button")
    yield from d.screen_is("member")
    d.type_keys("phone_keypad", "1380000")
    yield from both("member")
    d.widget("phone_keypad").typed = ""
    d.type_keys("phone_keypad", "13800000001")
    d.press("phone_ok")
    yield from d.screen_is("shopping")
    for code in (MILK, "6900000000045", MILK, "2100109012343"):
        d.hold(code)
        yield from d.until(lambda: d.app.view.notice and d.app.view.notice.key == "added"
                           and d.app.view.last_line_id is not None, "a scan")
        yield from d.frames(25)  # the next code must be a new showing
    d.hold(UNKNOWN)
    yield from d.until(lambda: d.app.shown["notice_level"] == "error", "refusal")
    yield from both("shopping")
    yield from large("shopping")
    d.app.set_contrast(True)
    yield from d.shot("shopping-contrast-en" if d.app.language == "en" else
                      "shopping-contrast-zh")
    d.app.set_contrast(False)
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
    d.hold(BEER)
    yield from d.until(lambda: len(d.app.rows) == 4, "beer")
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
    yield from d.until(lambda: d.widget("pay_qr").texture is not None, "payment QR")
    yield from both("pay-qr")
    yield from large("pay-qr")
    d.app.set_contrast(True)
    yield from d.shot("pay-qr-contrast-zh")
    d.app.set_contrast(False)
    d.rig.show_payment_code("wechat", "never")  # the phone under the camera; no password
    yield from d.until(lambda: d.app.shown["confirming"], "confirm on your phone")
    yield from d.frames(3)
    yield from both("confirm-phone")
    yield from large("confirm-phone")
    d.app.set_contrast(True)
    yield from d.shot("confirm-phone-contrast-zh")
    d.app.set_contrast(False)
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
