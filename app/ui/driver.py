"""Drives the real kiosk screen: simulated touches, demo-shelf camera frames, checks, screenshots.

Product tooling, not a test: the README's screenshots, the UI tests
(tests/ui) and the screen benchmark (bench/ui_bench.py) all run the kiosk's
real Kivy app through it. A *flow* is a generator that takes a ``Driver`` and
yields while it waits, so the Kivy loop keeps running between steps. The
``Driver`` presses widgets with real touch events (``UnitTestTouch``), holds
codes under the demo camera (the demo rig renders them into real frames the
real decoder reads), moves the kiosk's clock for inactivity, and takes
screenshots. A step that fails raises ``FlowFailed``.

``run(flow, runtime, rig=..., clock=...)`` opens the window, starts the app and
runs the flow to its end; it returns the process exit status (0: the flow
finished; 1: it failed, with the traceback on stderr). Kivy has one window per
process, so callers start one process per flow. This module never builds a
kiosk: the caller (tests/ui/flows.py, bench/ui_bench.py, through
``app.bootstrap.start_demo``) builds and seeds it, starts the simulated store
and builds the runtime over both, and passes the runtime and the store in.
Kivy is imported only inside functions, after ``run`` has configured the window.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from app.runtime import KioskRuntime
from app.services.clock import OffsetClock

os.environ.setdefault("KIVY_NO_ARGS", "1")

Step = Generator[None, None, None]
"""One flow, or a part of one: yields whenever it waits for the screen."""


class FlowFailed(AssertionError):
    """A flow's step did not hold: what was expected, and what the screen showed."""


class Driver:
    """What a flow touches and reads: the running ``KioskApp`` (``app``), its demo rig
    (``rig``: the simulated store whose camera shows held codes), the kiosk's clock
    (``clock``: move it to skip inactivity) and the screenshot folder (None: no shots)."""

    def __init__(self, app: Any, clock: OffsetClock, shots: Path | None) -> None:
        self.app, self.clock, self.shots = app, clock, shots
        self.rig = app.demo

    # -- finding and touching --------------------------------------------------------------
    def widget(self, widget_id: str) -> Any:
        from kivy.core.window import Window

        found = self.app.root.ids.get(widget_id)
        if found is not None:
            return found
        found = self.app.root.ids.staff_screen.ids.get(widget_id)
        if found is not None:
            return found
        for child in Window.children:  # popups (code entry, demo shelf) sit on the window
            if widget_id in getattr(child, "ids", {}):
                return child.ids[widget_id]
        raise FlowFailed(f"no widget {widget_id!r} on screen")

    def touch(self, widget: Any) -> None:
        from kivy.tests.common import UnitTestTouch

        if widget.disabled or widget.opacity == 0 or widget.height == 0:
            raise FlowFailed(f"{widget!r} cannot be touched (disabled or hidden)")
        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()

    def hold_corner(self, seconds: float) -> Step:
        """A finger held on the top-left corner (the hidden way into staff mode)."""
        from kivy.core.window import Window
        from kivy.tests.common import UnitTestTouch

        touch = UnitTestTouch(5, Window.height - 5)
        touch.touch_down()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            yield
        touch.touch_up()

    def press(self, widget_id: str) -> None:
        self.touch(self.widget(widget_id))

    def row_button(self, line_no: int, text: str) -> Any:
        """The +, - or remove button on the ``line_no``th cart row shown (0 = first)."""
        from app.ui.widgets import CartRow

        rows = sorted((w for w in self.widget("cart").walk() if isinstance(w, CartRow)),
                      key=lambda r: -r.y)
        rows = [r for r in rows if r.name]
        if line_no >= len(rows):
            raise FlowFailed(f"no cart row {line_no}; rows: {[r.name for r in rows]}")
        for child in rows[line_no].walk():
            if getattr(child, "text", None) == text and hasattr(child, "trigger_action"):
                return child
        raise FlowFailed(f"no {text!r} button on row {line_no}")

    def type_keys(self, keypad_id: str, digits: str) -> None:
        keypad = self.widget(keypad_id)
        for digit in digits:
            button = next(w for w in keypad.walk() if getattr(w, "text", None) == digit
                          and hasattr(w, "trigger_action"))
            self.touch(button)

    # -- waiting -----------------------------------------------------------------------------
    def until(self, condition: Callable[[], object], what: str, timeout: float = 10.0) -> Step:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise FlowFailed(f"timed out waiting for {what}; screen {self.screen}, "
                                 f"notice {self.app.shown.get('notice')!r}")
            yield
        yield from self.frames(2)  # let the layout catch up before the next touch

    def screen_is(self, name: str, timeout: float = 10.0) -> Step:
        yield from self.until(lambda: self.screen == name, f"screen {name!r}", timeout)
        yield from self.frames(3)  # laid out before anything on it is touched

    def popup_closed(self) -> Step:
        from kivy.core.window import Window
        from kivy.uix.modalview import ModalView

        yield from self.until(lambda: not any(isinstance(w, ModalView)
                                              for w in Window.children), "the popup to close")

    def frames(self, n: int = 3) -> Step:
        for _ in range(n):
            yield

    @property
    def screen(self) -> str:
        return str(self.app.root.ids.screens.current)

    def text(self, widget_id: str) -> str:
        return str(self.widget(widget_id).text)

    def post(self, command: Callable[..., object], *args: object) -> Step:
        """Staff-side steps the shopper screens have no button for (issue 8 brings them)."""
        self.app.post(command, *args)
        yield from self.frames(2)
        self.app.runtime.idle()
        yield from self.frames(2)

    def hold(self, code: str, frames: int = 20) -> None:
        self.rig.hold(code, frames)

    # -- screenshots -------------------------------------------------------------------------
    def shot(self, name: str) -> Step:
        if self.shots is None:
            return
        from kivy.core.window import Window

        from app.ui.app import save_screenshot

        yield from self.frames(4)
        done: list[Path] = []

        def take(*_args: object) -> None:
            Window.unbind(on_flip=take)
            done.append(save_screenshot(self.shots / f"{name}.png"))
        Window.bind(on_flip=take)
        Window.canvas.ask_update()
        yield from self.until(lambda: done, f"screenshot {name}")


Flow = Callable[[Driver], Step]
"""A whole session on the screen: called with the ``Driver`` once the app has started."""


def run(flow: Flow, runtime: KioskRuntime, *, rig: Any, clock: OffsetClock,
        shots: Path | None = None) -> int:
    """Open the kiosk's window, run ``flow`` on it, stop the app; returns 0 or 1 (exit status).

    ``runtime`` is a built, not yet started kiosk (``app.bootstrap.start_demo``); its
    ``settings.ui`` sizes the window, which is configured here, before Kivy makes it.
    ``rig`` is the started simulated store (``devices.sim.store.SimStore``) that the
    runtime's settings point at: the driver holds codes under its camera and the
    app plays the shopper's phone with it; the caller stops it. ``clock`` is the
    ``OffsetClock`` the kiosk was built with. ``shots`` is the folder ``Driver.shot``
    writes PNGs to (None: shots are skipped). A flow that raises is reported on
    stderr with its traceback and gives 1; so does an app that stops before the flow
    has finished.
    """
    from app.ui.window import configure

    configure(runtime.settings.ui)  # before the window exists
    from kivy.clock import Clock

    from app.ui.app import KioskApp

    outcome: list[BaseException | None] = []

    def started(app: KioskApp) -> None:
        steps: Iterator[None] = flow(Driver(app, clock, shots))

        def step(_dt: float) -> bool:
            try:
                next(steps)
                return True
            except StopIteration:
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - reported below, after the app stops
                outcome.append(exc)
                traceback.print_exc()
            app.stop()
            return False
        Clock.schedule_interval(step, 0.03)

    KioskApp(runtime, store=rig, on_started=started).run()
    if not outcome:
        print("the app stopped before the flow finished", file=sys.stderr)
        return 1
    return 0 if outcome[0] is None else 1
