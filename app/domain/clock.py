"""The clock port: the domain never reads time itself, callers pass a Clock in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

# The earliest the wall clock can truly read on a kiosk running this code: the start of
# the year of its first commit (2026-11-25; this code did not exist before it). A clock
# earlier than this is wrong, whatever else is true: a dead RTC battery (1970-01-01,
# 2000-01-01, the board's firmware date) or someone at the settings. Stale by design in
# the safe direction: it never refuses a right clock; a wrong clock that reads between
# this date and real time is caught by the payment provider's 5-minute window instead
# (a staff alert, docs/operations.md). Not the latest time in the database: a clock once
# set ahead and then put right would lock the lane until that time came round.
EARLIEST_PLAUSIBLE = datetime(2026, 1, 1, tzinfo=UTC)


def implausible(now: datetime, floor: datetime = EARLIEST_PLAUSIBLE) -> bool:
    """Whether the wall-clock time ``now`` (timezone-aware) is too early to be true:
    before ``floor`` (``EARLIEST_PLAUSIBLE`` unless told). Source: issue 16, fault 3."""
    return now < floor


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
