"""The lane of a kiosk that must not sell: one out-of-order view, and nothing else.

When the kiosk's database is damaged (``app.storage.db.DatabaseDamaged``) the touch
screen still starts, so a shopper reads why this lane is closed instead of a dark
screen, but no lane is built: nothing opens, reads or writes the damaged database.
``RefusingLane`` is the executor the runtime is given in its place: it publishes
its one view and drops every command (touches, scans, staff's corner).
"""

from __future__ import annotations

from collections.abc import Callable

from app.lane.lane import Lane
from app.lane.views import LaneView, Notice, Screen

Command = Callable[[Lane], object]


def refusing_view(key: str, **values: object) -> LaneView:
    """The out-of-order screen with the reason ``key`` (a string id of app.ui.strings,
    shown in place of the default prompt) and its values."""
    return LaneView(Screen.OUT_OF_ORDER, notice=Notice.of(key, "error", **values))


class RefusingLane:
    """A ``LaneExecutor`` (app.runtime) with no lane: ``start`` publishes ``view``."""

    def __init__(self, view: LaneView) -> None:
        self.view = view
        self.lane: Lane | None = None
        self._publish: Callable[[LaneView], None] = lambda _view: None

    def publish_to(self, publish: Callable[[LaneView], None]) -> None:
        self._publish = publish

    def start(self) -> None:
        self._publish(self.view)

    def post(self, command: Command) -> None:
        """Dropped: there is no lane to run it on."""

    def idle(self, timeout: float = 10.0) -> None:
        """Nothing is ever waiting."""

    def stop(self) -> None:
        """Nothing runs."""
