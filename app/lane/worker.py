"""The lane's own thread: runs every lane command in order, off the touch screen's thread.

A lane talks to SQLite, the printer (the status check before paying blocks
for up to a few hundred milliseconds) and the payment provider (network
calls with timeouts of seconds). None of that may freeze the screen, so the
UI, the camera, the scanners and the printer all *post* commands here, and
the lane publishes each new ``LaneView`` back through ``publish`` (the UI
bridge moves it onto the Kivy thread). The lane, its database connection and
its payment desk live and die on this thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from app.lane.lane import Lane
from app.lane.views import LaneView

log = logging.getLogger(__name__)

Command = Callable[[Lane], object]


class LaneWorker:
    """The lane's executor under the touch screen. ``beat`` is called on the lane's thread
    on every pass of its loop (at least every ``tick_s`` seconds while the lane is not
    stuck in a command): the service watchdog's sign of life (devices.systemd.Watchdog),
    so a hung lane stops the pings and systemd restarts the kiosk."""

    def __init__(self, make_lane: Callable[[], Lane], publish: Callable[[LaneView], None],
                 tick_s: float = 0.25, beat: Callable[[], None] = lambda: None) -> None:
        self._make_lane = make_lane
        self._publish = publish
        self._tick_s = tick_s
        self._beat = beat
        self._queue: queue.Queue[Command | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._started_error: BaseException | None = None
        self.lane: Lane | None = None  # for tests that inspect it after idle()

    def publish_to(self, publish: Callable[[LaneView], None]) -> None:
        """Where each new view goes (set before ``start``): the UI's bridge to its thread."""
        self._publish = publish

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="lane", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the lane did not start")
        if self._started_error is not None:
            raise self._started_error

    def post(self, command: Command) -> None:
        """Run ``command(lane)`` on the lane's thread, after everything posted before it."""
        self._queue.put(command)

    def idle(self, timeout: float = 10.0) -> None:
        """Wait until every command posted so far has run (tests and shutdown)."""
        done = threading.Event()
        self.post(lambda _lane: done.set())
        if not done.wait(timeout):
            raise TimeoutError("the lane is still busy")

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            lane = self._make_lane()
            lane.on_view(self._publish)
            self.lane = lane
            lane.boot()
        except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
            self._started_error = exc
            self._ready.set()
            return
        self._publish(lane.view)
        self._ready.set()
        next_tick = time.monotonic() + self._tick_s
        while True:
            self._beat()
            try:
                command = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                command = Lane.tick
            if command is None:
                return
            try:
                command(lane)
            except Exception as exc:  # noqa: BLE001 - the screen shows what to do next
                lane.failed(exc)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_s
                if command is not Lane.tick:
                    try:
                        lane.tick()
                    except Exception as exc:  # noqa: BLE001
                        lane.failed(exc)


class InlineLane:
    """The headless executor: the lane lives on the caller's thread, and commands posted by
    device threads wait in a queue until the caller ``pump``s them (with the lane's ticks).

    Unlike ``LaneWorker``, a command that raises is not turned into the error screen: it
    propagates to ``pump``'s caller, so a scenario or test sees the bug, not a screen."""

    def __init__(self, make_lane: Callable[[], Lane]) -> None:
        self._make_lane = make_lane
        self._queue: queue.Queue[Command] = queue.Queue()
        self.lane: Lane | None = None

    def start(self) -> None:
        lane = self._make_lane()
        lane.boot()
        self.lane = lane

    def post(self, command: Command) -> None:
        self._queue.put(command)

    def pump(self, seconds: float = 0.0) -> None:
        """Run what devices posted, ticking the lane, for at least ``seconds`` (monotonic)
        and until nothing is waiting."""
        lane = self.lane
        if lane is None:
            raise RuntimeError("the lane has not started")
        end = time.monotonic() + seconds
        while True:
            try:
                command: Command | None = self._queue.get(timeout=0.05)
            except queue.Empty:
                command = None
            if command is not None:
                command(lane)
            lane.tick()
            if time.monotonic() >= end and self._queue.empty():
                return

    def idle(self, timeout: float = 10.0) -> None:
        """Run every command posted so far (on this thread)."""
        while not self._queue.empty():
            self.pump()

    def stop(self) -> None:
        self.lane = None


__all__ = ["InlineLane", "LaneWorker"]
