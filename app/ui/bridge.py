"""The bridge from the lane's and the devices' threads onto the Kivy thread.

Widgets may only be touched on the Kivy thread. Other threads call ``post``;
the newest value is delivered on the next frame through ``Clock.schedule_once``.
Views are snapshots, so when several arrive within one frame only the newest
is shown: the screen never falls behind the lane.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from kivy.clock import Clock

T = TypeVar("T")


class Bridge(Generic[T]):
    def __init__(self, deliver: Callable[[T], None]) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._latest: T | None = None
        self._scheduled = False

    def post(self, value: T) -> None:
        """From any thread."""
        with self._lock:
            self._latest = value
            if self._scheduled:
                return
            self._scheduled = True
        Clock.schedule_once(self._flush, 0)

    def _flush(self, _dt: float) -> None:
        with self._lock:
            value, self._latest = self._latest, None
            self._scheduled = False
        if value is not None:
            self._deliver(value)
