"""The Kivy application: loads kiosk.kv, sets the Chinese-capable font, shows the attract screen.

This is the foundation's screen: the attract screen with the store's name, the
prompt and the language switch. The shopping, payment and staff screens come
with the kiosk screen issue. ``screenshot`` saves the first rendered frame and
quits, for docs and UI tests.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.app import App  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.text import DEFAULT_FONT, LabelBase  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.lang import Builder  # noqa: E402
from kivy.properties import DictProperty, StringProperty  # noqa: E402

from app.bootstrap import PROJECT_ROOT, Kiosk  # noqa: E402
from app.fonts import find_cjk_font  # noqa: E402
from app.ui.strings import STRINGS  # noqa: E402


class KioskApp(App):
    language = StringProperty("zh")
    text = DictProperty({})
    store_name = StringProperty("")
    store_name_other = StringProperty("")

    def __init__(self, kiosk: Kiosk, screenshot: Path | None = None) -> None:
        super().__init__()
        self.kiosk = kiosk
        self._screenshot = screenshot
        self.title = kiosk.settings.store.name_en

    def build(self):  # type: ignore[no-untyped-def]
        ui = self.kiosk.settings.ui
        LabelBase.register(DEFAULT_FONT, str(find_cjk_font(ui.font, PROJECT_ROOT)))
        if ui.fullscreen:
            Window.fullscreen = "auto"
        else:
            Window.size = (ui.width, ui.height)
        Window.clearcolor = (0.97, 0.97, 0.95, 1)
        self.set_language(self.kiosk.settings.kiosk.language)
        root = Builder.load_file(str(PROJECT_ROOT / "kiosk.kv"))
        if self._screenshot is not None:
            # Let layout settle, then capture right after a frame is drawn (on_flip):
            # reading pixels at any other moment can give a blank buffer under Mesa.
            Clock.schedule_once(self._arm_screenshot, 1.0)
        return root

    def set_language(self, language: str) -> None:
        self.language = language
        self.text = STRINGS[language]
        store = self.kiosk.settings.store
        first, second = (
            (store.name_zh, store.name_en) if language == "zh" else (store.name_en, store.name_zh)
        )
        self.store_name, self.store_name_other = first, second

    def _arm_screenshot(self, _dt: float) -> None:
        Window.bind(on_flip=self._take_screenshot)
        # Kivy only redraws when something changed; ask for a frame so on_flip fires.
        Window.canvas.ask_update()

    def _take_screenshot(self, *_args: object) -> None:
        Window.unbind(on_flip=self._take_screenshot)
        assert self._screenshot is not None
        target = self._screenshot
        target.parent.mkdir(parents=True, exist_ok=True)
        # Window.screenshot appends a counter to the name; move the file to the exact path.
        saved = Window.screenshot(name=str(target.with_suffix("")) + "%(counter)04d.png")
        if saved:
            Path(saved).replace(target)
        self.stop()
