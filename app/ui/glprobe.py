"""OpenGL probe for ``kiosk doctor``: create Kivy's window (full screen, as the kiosk does)
and print the GL vendor, renderer, version and the screen size as one JSON line.

Run as ``python -m app.ui.glprobe`` in a subprocess with a timeout (``app/cli/doctor.py``):
a missing or broken GL driver can crash or hang the process that creates the context,
and the doctor must report it, not die with it.
"""

from __future__ import annotations

import json
import os


def probe() -> dict[str, object]:
    """{"vendor", "renderer", "version": str, "size": [width, height] in pixels}. Raises
    whatever Kivy raises when no window or GL context can be made."""
    for name in ("KIVY_NO_ARGS", "KIVY_NO_CONSOLELOG", "KIVY_NO_FILELOG"):
        os.environ.setdefault(name, "1")
    from kivy.config import Config

    Config.set("graphics", "fullscreen", "auto")  # the window takes the screen's size
    from kivy.core.window import Window
    from kivy.graphics import opengl as gl

    def text(value: object) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    if Window is None:
        raise RuntimeError("Kivy could not create a window (no usable window provider)")
    return {"vendor": text(gl.glGetString(gl.GL_VENDOR)),
            "renderer": text(gl.glGetString(gl.GL_RENDERER)),
            "version": text(gl.glGetString(gl.GL_VERSION)),
            "size": list(Window.system_size)}


if __name__ == "__main__":
    print(json.dumps(probe()), flush=True)
