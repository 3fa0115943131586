"""The Kivy application: the kiosk's touch screen over a running kiosk.

``KioskApp`` loads kiosk.kv, starts the ``KioskRuntime`` it is given (the lane
on its own thread, the devices on theirs: built by the composition root, not
here), renders each ``LaneView`` the lane publishes and forwards touches and
keys to the runtime. Device and lane threads never touch a widget: views come
through ``Bridge`` onto the Kivy thread.
A kiosk cannot be left: Escape does nothing and closing the window is
refused; only ``stop()`` (Ctrl-C in the terminal, tests) ends it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.app import App  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.text import DEFAULT_FONT, LabelBase  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.lang import Builder  # noqa: E402
from kivy.metrics import sp  # noqa: E402
from kivy.properties import (  # noqa: E402
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)

from app.fonts import find_cjk_font  # noqa: E402
from app.lane import LaneView, Screen  # noqa: E402
from app.runtime import KioskRuntime  # noqa: E402
from app.services.pictures import Pictures  # noqa: E402
from app.ui import present  # noqa: E402
from app.ui.bridge import Bridge  # noqa: E402
from app.ui.sounds import Sounds  # noqa: E402
from app.ui.strings import STRINGS, lane_name, say  # noqa: E402
from app.ui.themes import THEMES  # noqa: E402
from app.ui.widgets import CodeEntry, ConfirmBox, DemoShelf, ProducePicker, SearchPad  # noqa: E402

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]

STAFF_PAGES = {"lines": "pick", "sales": "pick", "verify": "text"}  # pages sharing a layout
LARGE = 1.3  # large-text mode: every font this much bigger
# ...and every touch target this much: they are 23 mm already, and at 1.3 the keypads and
# the pay screen no longer fitted the glass (issue 19).
LARGE_TARGET = 1.1
MIN_TARGET_MM = 15
HIGHLIGHT_S = 4.0  # how long the line just scanned or changed stays highlighted


class KioskApp(App):
    language = StringProperty("zh")
    text = DictProperty({})
    store_name = StringProperty("")
    store_name_other = StringProperty("")
    scale = NumericProperty(1.0)
    target = NumericProperty(96)  # the usual touch target, in pixels
    min_target = NumericProperty(57)  # the smallest a key may shrink to: 15 mm on the glass
    large_text = BooleanProperty(False)
    high_contrast = BooleanProperty(False)
    theme = DictProperty(THEMES["normal"])
    view: LaneView = ObjectProperty(LaneView(Screen.ATTRACT))
    shown = DictProperty({})  # every string the current screen shows, in the current language
    rows = ListProperty([])
    demo = ObjectProperty(None, allownone=True)
    camera = ObjectProperty(None, allownone=True)
    demo_shelf = BooleanProperty(False)
    staff_choices = ListProperty([])  # the demo rig feeds the camera: show its shelf
    produce_departments = ListProperty([])  # the "Find produce" grid's department buttons
    produce_tiles = ListProperty([])  # ... and its tiles (app.ui.present.produce)

    def __init__(self, runtime: KioskRuntime, *, store: Any = None,
                 screenshot: Path | None = None,
                 on_started: Callable[[KioskApp], None] | None = None) -> None:
        """``store``: the simulated store (devices.sim.store.SimStore) whose demo shelf
        and simulated phone the screen offers; None in a real store."""
        super().__init__()
        self.runtime = runtime
        self.settings = runtime.settings
        self.demo = store
        self.demo_shelf = store is not None and getattr(store, "camera", None) is not None
        self._screenshot = screenshot
        self._on_started = on_started
        self.title = runtime.settings.store.name_en
        self.sounds = Sounds(PROJECT_ROOT / "assets" / "sounds", self.settings.ui.sounds)
        self._bridge = Bridge(self.show)
        self._last_view = LaneView(Screen.ATTRACT)
        self._entry: CodeEntry | None = None
        self._zone = runtime.settings.store.zone()  # the store's time zone: times shown
        self._shelf: DemoShelf | None = None
        self._confirm: ConfirmBox | None = None
        self._highlight_until = 0.0  # time.monotonic() until which the changed line is lit
        self.highlight_s = HIGHLIGHT_S  # a test may lengthen it (a loaded machine is slow)
        self.pictures = Pictures(runtime.settings.images_path)
        self._picker: ProducePicker | None = None
        self._search_pad: SearchPad | None = None
        self._search = ""  # what the shopper has typed into the grid's search
        self._produce_grid: object = None  # the grid the tiles were last built from
        self._produce_words: dict[str, str] = {}
        self._row_needs: dict[tuple[int, str, float], float] = {}

    # -- building ------------------------------------------------------------------------------
    def build(self):  # type: ignore[no-untyped-def]
        ui = self.settings.ui
        LabelBase.register(DEFAULT_FONT, str(find_cjk_font(ui.font, PROJECT_ROOT)))
        if not ui.fullscreen and tuple(Window.size) != (ui.width, ui.height):
            Window.size = (ui.width, ui.height)  # app.ui.window.configure was not called
        Window.bind(on_request_close=self._refuse_close)
        px_per_mm = ui.dpi / 25.4
        self._min_target = MIN_TARGET_MM * px_per_mm
        self.set_text_size(False)
        self.set_contrast(False)
        self.set_language(self.settings.kiosk.language)
        root = Builder.load_file(str(PROJECT_ROOT / "kiosk.kv"))
        self._start_devices()
        Clock.schedule_interval(self._every_half_second, 0.5)
        if self._screenshot is not None:
            # Let layout settle, then capture right after a frame is drawn (on_flip):
            # reading pixels at any other moment can give a blank buffer under Mesa.
            Clock.schedule_once(self._arm_screenshot, 1.0)
        return root

    def on_start(self) -> None:
        signal.signal(signal.SIGINT, lambda *_: Clock.schedule_once(lambda _dt: self.stop()))
        if self._on_started is not None:
            self._on_started(self)

    def _start_devices(self) -> None:
        self.runtime.start(on_view=self._bridge.post)
        self.camera = self.runtime.camera
        Window.bind(on_textinput=self._key_text, on_key_down=self._key_down)
        Window.bind(on_touch_down=self._corner_down, on_touch_up=self._corner_up)
        Clock.schedule_interval(lambda _dt: self.runtime.key_tick(), 0.05)

    def _key_text(self, _window: object, text: str) -> None:
        if self._search_pad is not None and self._search_pad.get_parent_window():
            # The grid's search is open: a keyboard's (or input method's: Chinese) letters
            # go into it, not to the wedge (an input method commits a word at once, which
            # the wedge would take for a scan and refuse); digits are a scanner's.
            words = "".join(c for c in text if c.isprintable() and not c.isdigit())
            if words:
                self._set_search(self._search + words)
            text = "".join(c for c in text if c.isdigit())
        for char in text:
            self.runtime.key(char)

    def _key_down(self, _window: object, key: int, *_args: object) -> bool:
        if key in (13, 271):  # Enter, keypad Enter: the wedge's suffix
            self.runtime.key("\r")
            return True
        return key == 27  # Escape: swallowed, a kiosk cannot be left

    def on_stop(self) -> None:
        self.runtime.stop()

    def _refuse_close(self, *_args: object) -> bool:
        return True  # a kiosk's window cannot be closed by a shopper

    # -- commands from the screen --------------------------------------------------------------
    def post(self, command: Callable[..., object], *args: object) -> None:
        """Run a lane command on the lane's thread (from a touch)."""
        self.runtime.post(lambda lane: command(lane, *args))

    def do(self, name: str, *args: object) -> None:
        """kiosk.kv's buttons: ``app.do("pay")`` runs ``Lane.pay`` on the lane's thread."""
        self.runtime.do(name, *args)

    # -- staff mode ------------------------------------------------------------------------
    def staff_post(self, method: str, *args: object) -> None:
        """``app.staff_post("do", "reset")``: a StaffMode method on the lane's thread."""
        self.runtime.staff_do(method, *args)

    def staff_choose(self, choice: str) -> None:
        self.staff_post("do", self.shown["staff_purpose"], choice)

    def staff_amount(self, typed: str) -> None:
        self.staff_post("do", self.shown["staff_purpose"], self.shown["staff_chosen"], typed)

    def _corner_down(self, _window: object, touch: Any) -> bool:
        # The hidden way in: a finger held on the top-left corner for staff.hold_s.
        corner = 80
        if touch.x <= corner and touch.y >= Window.height - corner:
            self._corner_touch = touch
            self._corner_event = Clock.schedule_once(
                lambda _dt: self.staff_post("open_pin_pad"), self.settings.staff.hold_s)
        return False

    def _corner_up(self, _window: object, touch: Any) -> bool:
        if getattr(self, "_corner_touch", None) is touch:
            self._corner_event.cancel()
            self._corner_touch = None
        return False

    def open_code_entry(self) -> None:
        self.do("touch")
        self._entry = self._entry or CodeEntry()
        # On the pay screen the digits may be a payment code (a credential): shown as dots.
        self._entry.ids.code_keypad.masked = self.view.screen is Screen.PAY
        self._entry.open()

    def code_entered(self, text: str) -> None:
        if self._entry is not None:
            self._entry.dismiss()
        self.do("typed_code", text)

    # -- find produce (issue 19) ---------------------------------------------------------
    def open_produce(self) -> None:
        """"Find produce" (shopping screen, code pad): the lane opens the grid
        (``Lane.find_produce``); the picker opens when its view says so."""
        self.do("touch")
        if self._entry is not None:
            self._entry.dismiss()
        self._search = ""
        self.do("find_produce", "", "")

    def produce_department(self, department: str) -> None:
        self.do("find_produce", department, self._search)

    def open_search_pad(self) -> None:
        self.do("touch")
        self._search_pad = self._search_pad or SearchPad()
        self._search_pad.open()

    def produce_key(self, key: str) -> None:
        """A key of the grid's search pad: a letter, ``back`` or ``clear``."""
        if key == "back":
            self._set_search(self._search[:-1])
        elif key == "clear":
            self._set_search("")
        else:
            self._set_search(self._search + key.lower())

    def _set_search(self, text: str) -> None:
        self._search = text[:40]
        grid = self.view.produce
        # A search looks in every department: the shopper may not know where it is sold.
        self.do("find_produce", grid.department if grid and not self._search else "",
                self._search)

    def pick_produce(self, code: str) -> None:
        """A tile tapped: the lane types its PLU (``Lane.pick_produce``)."""
        self.do("pick_produce", code)

    def close_produce(self) -> None:
        self.do("close_produce")

    def _show_produce(self, view: LaneView) -> None:
        """Open the picker while the lane's view holds a grid on the shopping screen;
        close it (and its search pad) otherwise."""
        wanted = view.produce is not None and view.screen is Screen.SHOPPING
        if wanted:
            self._picker = self._picker or ProducePicker()
            if not self._picker.get_parent_window():
                self._picker.open()
        else:
            if self._search_pad is not None:
                self._search_pad.dismiss()
            if self._picker is not None:
                self._picker.dismiss()
            self._search = ""

    def open_demo_shelf(self) -> None:
        if not self.demo_shelf:
            return
        self._shelf = self._shelf or DemoShelf()
        self._shelf.open()

    def demo_hold(self, code: str) -> None:
        if self._shelf is not None:
            self._shelf.dismiss()
        if self.demo is not None:
            self.demo.hold(code)

    def demo_member(self, member_id: str) -> None:
        if self.demo is not None:
            self.demo_hold(self.demo.member_code(member_id))

    def demo_payment_code(self, wallet: str) -> None:
        """Demo shelf: a simulated phone shows a fresh ``wallet`` payment code to the camera
        (issued by the payment simulator over HTTP, off the UI thread)."""
        if self._shelf is not None:
            self._shelf.dismiss()
        demo = self.demo
        if demo is None:
            return

        def show() -> None:
            try:
                demo.show_payment_code(wallet)
            except Exception:  # noqa: BLE001 - the demo phone failing must not stop the kiosk
                log.exception("the simulated phone could not show a payment code")
        threading.Thread(target=show, name="demo-payment-code", daemon=True).start()

    def demo_phone(self, action: str) -> None:
        payment = self.view.payment
        if self.demo is not None and payment is not None:
            self.demo.phone(payment.out_trade_no, action)

    # -- look ----------------------------------------------------------------------------------
    def set_language(self, language: str) -> None:
        self.language = language
        self.text = STRINGS[language]
        store = self.settings.store
        first, second = (
            (store.name_zh, store.name_en) if language == "zh" else (store.name_en, store.name_zh)
        )
        self.store_name, self.store_name_other = first, second
        self._render()

    def toggle_language(self) -> None:
        self.do("touch")
        self.set_language("en" if self.language == "zh" else "zh")

    def set_text_size(self, large: bool) -> None:
        self.large_text = large
        self.scale = LARGE if large else 1.0
        self.target = max(sp(88), self._min_target) * (LARGE_TARGET if large else 1.0)
        self.min_target = self._min_target

    def set_contrast(self, high: bool) -> None:
        self.high_contrast = high
        self.theme = THEMES["contrast" if high else "normal"]
        Window.clearcolor = self.theme["bg"]

    # -- showing the lane ----------------------------------------------------------------------
    def show(self, view: LaneView) -> None:
        """On the Kivy thread: the lane's newest view."""
        before = self._last_view
        self._last_view = view
        self.view = view
        if self.root is not None:
            self.root.ids.screens.current = view.screen.value
            if view.screen is not before.screen:
                self._clear_keypads()
            page = view.staff.page if view.staff else "menu"
            staff = self.root.ids.staff_screen.ids
            staff.staff_pages.current = STAFF_PAGES.get(page, page)
            if (before.staff and before.staff.page) != (view.staff and view.staff.page):
                staff.staff_keypad.typed = ""
                staff.amount_keypad.typed = ""
        if self._line_changed(before, view):
            self._highlight_until = time.monotonic() + self.highlight_s
        if view.sessions_ended != before.sessions_ended:
            self.reset_looks()
            self._row_needs.clear()
        self._render()
        self._show_produce(view)
        self._react(before, view)
        self._ask(view)
        if self._line_changed(before, view) or (view.screen is Screen.SHOPPING and
                                                before.screen is not Screen.SHOPPING):
            # After the RecycleView has taken the new rows (next frame), and once more
            # when its layout has settled: the line just changed is scrolled into view.
            Clock.schedule_once(lambda _dt: self.scroll_cart(), 0)
            Clock.schedule_once(lambda _dt: self.scroll_cart(), 0.15)

    @staticmethod
    def _line_changed(before: LaneView, view: LaneView) -> bool:
        """A scan or a +/- touched a line (``LaneView.last_line_id``) in this view."""
        return view.last_line_id is not None and (
            view.last_line_id != before.last_line_id or view.priced != before.priced)

    def scroll_cart(self) -> None:
        """Scroll the cart so the line just scanned or changed is seen whole (from the 5th
        line on it would be under the fold): ``present.scroll_to_row`` on the rows' heights."""
        if self.root is None:
            return
        cart = self.root.ids.cart
        ids = [row["line_id"] for row in self.rows]
        target = self.view.last_line_id
        if target not in ids:
            return
        layout = cart.layout_manager
        cart.scroll_y = present.scroll_to_row(
            [row["height"] for row in self.rows], layout.spacing if layout else 0,
            cart.height, ids.index(target), cart.scroll_y)

    def _ask(self, view: LaneView) -> None:
        """Open the lane's question (``LaneView.confirm``) in its box, or close it."""
        if view.confirm is not None and view.screen is Screen.SHOPPING:
            self._confirm = self._confirm or ConfirmBox()
            if self._confirm.parent is None:
                self._confirm.open(animation=False)
        elif self._confirm is not None and self._confirm.parent is not None:
            self._confirm.dismiss(animation=False)

    def reset_looks(self) -> None:
        """The store's language, normal text and normal contrast: a session has ended, and
        the next shopper must not inherit the last one's choices."""
        self.set_text_size(False)
        self.set_contrast(False)
        self.set_language(self.settings.kiosk.language)

    def _clear_keypads(self) -> None:
        """Digits typed on a keypad (a phone number!) never outlive the screen they were
        typed on: the next shopper must not see them."""
        self.root.ids.phone_keypad.typed = ""
        staff = self.root.ids.staff_screen.ids
        staff.staff_keypad.typed = ""
        staff.amount_keypad.typed = ""
        if self._entry is not None:
            self._entry.ids.code_keypad.typed = ""

    def _react(self, before: LaneView, view: LaneView) -> None:
        """Sounds and the preview's flash, once per new notice."""
        notice = view.notice
        preview = self.root.ids.get("preview") if self.root is not None else None
        if notice is not None and notice is not before.notice:
            if notice.key == "added":
                self.sounds.play("accepted")
                if preview is not None:
                    preview.flash(True)
            elif notice.level == "error":
                self.sounds.play("rejected")
                if preview is not None:
                    preview.flash(False)
        if view.screen is Screen.RECEIPT and before.screen is not Screen.RECEIPT:
            self.sounds.play("paid")
        # The keypad is offered on the attract screen too while the camera is down.
        if view.screen not in (Screen.SHOPPING, Screen.PAY, Screen.ATTRACT) and \
                self._entry is not None:
            self._entry.dismiss()

    def row_needs(self, line_id: int, name: str, height: float) -> None:
        """A cart row's words need ``height`` pixels (a name wrapped to two lines, a
        weight that wraps in large text): rows are given it from the next render on.
        The latest measurement wins, down as well as up: a row measured while laid out at
        a passing width (a fresh recycled row, the screen changing) needs far more than
        it will, and a grow-only record kept the line that tall for good, its "-", "+"
        and Remove pushed out of the cart's view (review of issue 19). The height asked
        does not change the widths the words are measured at: no loop."""
        key = (line_id, name, self.scale)
        if abs(height - self._row_needs.get(key, 0)) > 1:
            self._row_needs[key] = height
            Clock.schedule_once(lambda _dt: self._render())

    def _every_half_second(self, _dt: float) -> None:
        self._render()

    def _render(self) -> None:
        view, lang = self.view, self.language
        now = self.runtime.clock.now()
        rows = present.cart_rows(view, lang, self.pictures.path)
        lit = time.monotonic() < self._highlight_until
        line = sp(22) * self.scale * 1.35
        for row in rows:  # RecycleView rows need their height up front
            row["highlight"] = row["highlight"] and lit  # briefly: HIGHLIGHT_S
            extra = row["savings"].count("\n") + 1 if row["savings"] else 0
            row["height"] = max(self.target + sp(12), line * (2 + extra) + sp(16),
                                self._row_needs.get((row["line_id"], row["name"],
                                                     self.scale), 0))
        self.rows = rows
        shown: dict[str, Any] = present.totals(view, lang)
        if (view.produce, lang) != self._produce_grid:  # rebuilt only when it changed
            self._produce_grid = (view.produce, lang)
            self.produce_departments, self.produce_tiles, self._produce_words = \
                present.produce(view.produce, lang, self.pictures.path)
        shown |= self._produce_words
        shown["produce_typed"] = self._search
        shown["produce_found"] = say(lang, "produce_found", count=len(self.produce_tiles)) \
            if view.produce is not None and self._search else ""
        # kv cannot bind to a LaneView's fields (it is not a Kivy object): flat values here.
        shown |= {"help_requested": view.help_requested, "manual_entry": view.manual_entry,
                  "member_id": view.member_id or "", "frozen": view.frozen,
                  "checking_printer": view.checking_printer,
                  "has_payment": view.payment is not None}
        shown["notice"] = present.notice_text(view.notice, lang)
        shown["notice_level"] = view.notice.level if view.notice else "info"
        # A payment's outcome is shown over the cart, where the shopper looks (not twice).
        shown["outcome"] = present.payment_outcome(view, lang)
        if shown["outcome"]:
            shown["notice"] = ""
        shown["camera_ok"] = view.camera_ok
        shown |= present.camera_words(view, lang)
        if view.notice is not None and view.notice.key == "camera_lost":
            shown["notice"] = ""  # each screen's own camera words say it, and what to do
        shown["member"] = present.member_line(view, lang)
        shown["lane_label"] = say(lang, "lane_label",
                                  lane=lane_name(self.settings.kiosk.lane_id))
        shown["ages"] = present.age_lines(view, lang)
        shown["countdown"] = present.seconds_left(view.deadline, now)
        # Why the lane is out of order: the reason the lane gave (app.lane.refusing: damaged
        # records), a wrong clock (named, with what it reads; a no-break space keeps its date
        # and time on one line), else the camera's.
        if view.screen is Screen.OUT_OF_ORDER and view.notice:
            shown["out_of_order"] = shown["notice"]
        elif view.wrong_clock:
            shown["out_of_order"] = say(lang, "out_of_order_clock",
                                        reads=view.wrong_clock.replace(" ", "\u00a0"))
        else:
            shown["out_of_order"] = say(lang, "out_of_order_prompt")
        pay = view.payment
        shown["pay_amount"] = present.money(pay.amount, lang) if pay else \
            shown.get("total", "")
        shown["pay_prompt"] = (say(lang, "scan_to_pay", wallet=present.wallet_name(
            pay.wallet, lang)) if pay.wallet else present.scan_with(view.wallets, lang)) \
            if pay else ""
        shown["pay_summary"] = present.pay_summary(view, lang)
        asked = view.confirm
        shown["confirm_text"] = "" if asked is None else say(
            lang, f"confirm_{asked.kind}", name_zh=asked.name_zh, name_en=asked.name_en) \
            if asked.kind == "remove" else say(lang, f"confirm_{asked.kind}")
        kind = asked.kind if asked else "remove"
        shown["confirm_yes"] = say(lang, f"confirm_{kind}_yes")
        shown["confirm_no"] = say(lang, f"confirm_{kind}_no")
        # The lane's deadline on the pay screen is the QR's monotonic one, shown against
        # the wall clock (a stepped wall clock neither shortens nor stretches it).
        shown["pay_expires"] = say(lang, "expires_in", seconds=present.seconds_left(
            view.deadline, now)) if pay and pay.qr_payload and not pay.closing else ""
        shown["qr"] = pay.qr_payload if pay and not pay.closing else ""
        shown |= present.code_payment(view, lang, now)
        shown["printer_notice"] = (view.printer_notice[0 if lang == "zh" else 1]
                                   if view.printer_notice else "")
        shown["wallets"] = [(w, present.wallet_name(w, lang)) for w in view.wallets] \
            if pay is None and not view.checking_printer else []
        r = view.receipt
        shown["receipt_pass"] = r.exit_pass if r and r.show_pass else ""
        shown["receipt_status"] = ("" if r is None else say(lang, "exit_pass_prompt")
                                   if r.show_pass else say(lang, "printing")
                                   if r.printed is None else say(lang, "take_receipt"))
        shown["receipt_audit"] = say(lang, "audit") if r and r.exit_audit else ""
        shown["receipt_points"] = say(lang, "points", points=r.points) \
            if r and r.points else ""
        shown["receipt_order"] = say(lang, "order", order_id=r.order_id) if r else ""
        shown["receipt_total"] = present.money(r.total, lang) if r else ""
        shown["receipt_saved"] = say(lang, "receipt_saved", amount=present.money(
            r.savings, lang)) if r and r.savings and r.savings.minor else ""
        # Behind the question is a payment: say it is cancelled too, not only the cart.
        shown["still_there"] = say(lang, "still_there_paying" if view.back_to is Screen.PAY
                                   else "still_there_prompt", seconds=shown["countdown"])
        st = view.staff
        shown |= {
            "staff_name": f"{st.name} ({say(lang, f'role_{st.role}') or st.role})"
            if st and st.name else "",
            "staff_manager": bool(st and st.role == "manager"),
            "staff_message": st.message if st else "",
            "staff_level": st.level if st else "info",
            "staff_badge": st.badge_name if st else "",
            "staff_purpose": st.purpose if st else "",
            "staff_chosen": st.chosen if st else "",
            "staff_lane_open": st.lane_open if st else True,
        }
        # Staff pages in words: the screen's language, money, the store's local time.
        shown |= present.staff_page(st, lang, self._zone, now)
        self.staff_choices = [{"text": label, "choice": cid}
                              for cid, label in (st.choices if st else ())]
        self.shown = shown

    # -- screenshots ---------------------------------------------------------------------------
    def _arm_screenshot(self, _dt: float) -> None:
        Window.bind(on_flip=self._take_screenshot)
        # Kivy only redraws when something changed; ask for a frame so on_flip fires.
        Window.canvas.ask_update()

    def _take_screenshot(self, *_args: object) -> None:
        Window.unbind(on_flip=self._take_screenshot)
        assert self._screenshot is not None
        save_screenshot(self._screenshot)
        self.stop()


def save_screenshot(target: Path) -> Path:
    """Save what the window shows now to exactly ``target`` (a PNG)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Window.screenshot appends a counter to the name; move the file to the exact path.
    saved = Window.screenshot(name=str(target.with_suffix("")) + "%(counter)04d.png")
    if saved:
        Path(saved).replace(target)
    return target


__all__ = ["KioskApp", "save_screenshot"]
