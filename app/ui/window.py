"""Window settings Kivy must have before its window exists (size, full screen, Escape).

Importing ``kivy.core.window`` creates the window, so these are set first,
from ``run_ui``, before ``app.ui.app`` is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from app.config import UiSettings


def x_screen_size() -> tuple[int, int] | None:
    """The X screen's size in pixels (width, height), asked of the X server on $DISPLAY
    through libX11 (XDisplayWidth/XDisplayHeight); None without X (no $DISPLAY, no
    libX11, no server answering)."""
    if not os.environ.get("DISPLAY"):
        return None
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    x11 = ctypes.CDLL(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for fn in (x11.XDefaultScreen, x11.XCloseDisplay):
        fn.argtypes = [ctypes.c_void_p]
    for fn in (x11.XDisplayWidth, x11.XDisplayHeight):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    display = x11.XOpenDisplay(None)
    if not display:
        return None
    try:
        screen = x11.XDefaultScreen(display)
        return int(x11.XDisplayWidth(display, screen)), int(x11.XDisplayHeight(display, screen))
    finally:
        x11.XCloseDisplay(display)


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
    screen = x_screen_size() if ui.fullscreen else None
    if screen is not None:
        # Full screen on X is a request to the window manager (SDL sets
        # _NET_WM_STATE_FULLSCREEN), and the store PC's bare X server has none: the window
        # stayed at width x height, centred, cut off by the screen's edges, while Kivy
        # drew for the screen's size (measured: 1280x800 at -128,-16 on 1024x768,
        # docs/install.md). A borderless window the size of the screen at its corner is
        # full screen with or without a window manager.
        Config.set("graphics", "fullscreen", "0")
        Config.set("graphics", "borderless", "1")
        Config.set("graphics", "position", "custom")
        Config.set("graphics", "left", "0")
        Config.set("graphics", "top", "0")
        Config.set("graphics", "width", str(screen[0]))
        Config.set("graphics", "height", str(screen[1]))
