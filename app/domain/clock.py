"""The clock port: the domain never reads time itself, callers pass a Clock in."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class FixedClock:
    """A clock that only moves when told to; for tests and scripted scenarios."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        """Seconds since the clock was made, moved only by ``advance`` (never by ``step``)."""
        return self._mono

    def advance(self, **delta: float) -> None:
        """Time passes: the wall clock and the monotonic clock both move by ``delta``
        (``timedelta`` keywords)."""
        step = timedelta(**delta)
        self._now += step
        self._mono += step.total_seconds()

    def step(self, **delta: float) -> None:
        """The wall clock is set by ``delta`` (``timedelta`` keywords, negative = back);
        no time passes, so the monotonic clock stays where it was."""
        self._now += timedelta(**delta)
