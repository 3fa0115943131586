"""Window settings Kivy must have before its window exists (size, full screen, Escape).

Importing ``kivy.core.window`` creates the window, so these are set first,
from ``run_ui``, before ``app.ui.app`` is imported.
"""

from __future__ import annotations

import os

from app.config import UiSettings


def configure(ui: UiSettings) -> None:
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    # A kiosk cannot be left with the Escape key, and a right click draws no touch dots.
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("graphics", "width", str(ui.width))
    Config.set("graphics", "height", str(ui.height))
    Config.set("graphics", "fullscreen", "auto" if ui.fullscreen else "0")
    Config.set("graphics", "resizable", "0" if ui.fullscreen else "1")
