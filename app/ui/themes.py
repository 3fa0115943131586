"""The screens' two colour themes, and every pair of colours kiosk.kv draws one on the other.

No Kivy here, so the WCAG check over the palettes (tests/unit/test_contrast.py) runs
without a window. Colours are sRGB 0..1 with alpha, as Kivy takes them.
"""

from __future__ import annotations

THEMES = {
    "normal": {"bg": [0.97, 0.97, 0.95, 1], "panel": [1, 1, 1, 1], "ink": [0.08, 0.08, 0.08, 1],
               "muted": [0.35, 0.35, 0.35, 1], "accent": [0.0, 0.45, 0.3, 1],
               "on_accent": [1, 1, 1, 1], "alert": [0.75, 0.2, 0.1, 1],
               "on_alert": [1, 1, 1, 1], "ok": [0.0, 0.47, 0.18, 1], "warn": [0.6, 0.37, 0.0, 1],
               "error": [0.75, 0.12, 0.08, 1], "quiet": [0.86, 0.86, 0.84, 1],
               "highlight": [0.88, 0.96, 0.9, 1], "edge": [0, 0, 0, 0]},
    # WCAG AA in every pair the screens draw (tests/unit/test_contrast.py, and the
    # screenshots' pixels in tests/ui/contrast.py): 4.5:1 text, 3:1 large text and a
    # control's edge. Buttons get a white edge ("edge"): a dark fill next to black has no
    # 3:1 boundary of its own; "Call staff" is black on its bright red (white was 3.1:1).
    "contrast": {"bg": [0, 0, 0, 1], "panel": [0.08, 0.08, 0.08, 1], "ink": [1, 1, 1, 1],
                 "muted": [1, 1, 0.6, 1], "accent": [1, 0.9, 0, 1], "on_accent": [0, 0, 0, 1],
                 "alert": [1, 0.35, 0.2, 1], "on_alert": [0, 0, 0, 1], "ok": [0.4, 1, 0.4, 1],
                 "warn": [1, 0.85, 0.2, 1], "error": [1, 0.45, 0.4, 1],
                 "quiet": [0.3, 0.3, 0.3, 1], "highlight": [0.15, 0.3, 0.15, 1],
                 "edge": [1, 1, 1, 1]},
}

# (foreground, background, kind) for every colour kiosk.kv draws on another, by theme key.
# kind: "text" needs WCAG AA 4.5:1, "large" (24 px and up, or bold 18.7 px) and "control"
# (a button's edge against what it sits on, WCAG 1.4.11) need 3:1. The high-contrast theme
# meets all of them (tests/unit/test_contrast.py); the screenshots' pixels are checked too
# (tests/ui/contrast.py), for anything drawn that this list misses.
PAIRS: list[tuple[str, str, str]] = [
    *[(fg, bg, "text") for fg in ("ink", "muted", "accent", "ok", "warn", "error")
      for bg in ("bg", "panel")],
    ("ink", "quiet", "text"),  # quiet buttons, the keypad's display
    ("on_accent", "accent", "text"),  # buttons
    ("on_alert", "alert", "text"),  # "Call staff", "Cancel", the "staff is coming" banner
    ("ink", "highlight", "text"),  # the cart line just scanned
    ("muted", "highlight", "text"),
    ("ok", "highlight", "text"),
    *[("edge", bg, "control") for bg in ("bg", "panel", "highlight")],
]
