"""The real clock, kept out of the domain so domain code can be tested at any time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """Wall-clock time in the kiosk's local timezone, and the machine's monotonic clock
    (seconds, never stepped) that every wait and deadline of the lane is measured on."""

    def now(self) -> datetime:
        return datetime.now(UTC).astimezone()

    def monotonic(self) -> float:
        """Seconds since an arbitrary point; only differences mean anything."""
        return time.monotonic()


class OffsetClock:
    """The system clock plus however far it was jumped: scenarios and UI tests use it to
    reach inactivity and QR expiry without sleeping, while everything else runs in real
    time."""

    def __init__(self) -> None:
        self._system = SystemClock()
        self.offset = timedelta()

        self.mono_offset = 0.0

    def now(self) -> datetime:
        return self._system.now() + self.offset

    def monotonic(self) -> float:
        """The machine's monotonic seconds plus every ``advance`` (not ``step``)."""
        return time.monotonic() + self.mono_offset

    def advance(self, seconds: float) -> None:
        """Time passes: the wall clock and the monotonic clock both move ``seconds``."""
        self.offset += timedelta(seconds=seconds)
        self.mono_offset += seconds

    def step(self, seconds: float) -> None:
        """The kiosk's wall clock is set ``seconds`` forward (negative: back), as NTP or
        someone at the settings would: no time passes, so the monotonic clock stays."""
        self.offset += timedelta(seconds=seconds)
