"""Drives the real kiosk app under Xvfb: simulated touches, demo-shelf camera frames, asserts.

Run as ``python -m tests.ui.driver FLOW --data DIR`` (the UI tests start one
process per flow: Kivy has one window per process). A flow is a generator
that yields while it waits, so the Kivy loop keeps running between steps;
``Driver`` presses widgets with real touch events (``UnitTestTouch``), holds
codes under the demo camera, moves the kiosk's clock for inactivity, and takes
screenshots. A failed assert exits non-zero with the traceback on stderr.

``python -m tests.ui.driver screenshots --data DIR --shots docs/screenshots``
writes the README's screenshots.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from app.services.clock import OffsetClock  # noqa: E402 - no Kivy: safe before the window

Step = Generator[None, None, None]

os.environ.setdefault("KIVY_NO_ARGS", "1")


class FlowFailed(AssertionError):
    pass


class Driver:
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


def run(flow: Callable[[Driver], Step], data_dir: Path, *, shots: Path | None = None,
        pay_url: str = "", language: str = "zh", paper_out: bool = False) -> int:
    from app import bootstrap
    from app.config import load_settings
    from app.services.clock import OffsetClock
    from app.ui.window import configure

    settings = load_settings(data_dir=data_dir)
    settings.kiosk.language = language
    settings.ui.sounds = False  # no sound card here; what was played is still recorded
    clock = OffsetClock()
    kiosk = bootstrap.build(settings, clock)
    bootstrap.seed_demo_store(kiosk)
    bootstrap.seed_demo_staff(kiosk)
    # pay_url: a payment simulator that outlives this process (the restart test)
    rig = bootstrap.start_sim_store(settings, pay_url=pay_url)
    if paper_out and rig.printer is not None:
        rig.printer.set_state(paper_out=True)
    configure(settings.ui)
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

    try:
        runtime = bootstrap.build_runtime(kiosk, threaded=True,
                                          camera_factory=rig.camera_factory())
        KioskApp(runtime, store=rig, on_started=started).run()
    finally:
        rig.stop()
    if not outcome:
        print("the app stopped before the flow finished", file=sys.stderr)
        return 1
    return 0 if outcome[0] is None else 1


def main(argv: list[str] | None = None) -> int:
    from tests.ui import flows

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("flow", choices=sorted(flows.FLOWS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--shots", type=Path)
    parser.add_argument("--pay-url", default="")
    parser.add_argument("--language", default="zh")
    parser.add_argument("--paper-out", action="store_true")
    args = parser.parse_args(argv)
    return run(flows.FLOWS[args.flow], args.data, shots=args.shots, pay_url=args.pay_url,
               language=args.language, paper_out=args.paper_out)


if __name__ == "__main__":
    sys.exit(main())
