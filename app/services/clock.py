"""The real clock, kept out of the domain so domain code can be tested at any time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SystemClock:
    """Wall-clock time in the kiosk's local timezone."""

    def now(self) -> datetime:
        return datetime.now(UTC).astimezone()


class OffsetClock:
    """The system clock plus however far it was jumped: scenarios and UI tests use it to
    reach inactivity and QR expiry without sleeping, while everything else runs in real
    time."""

    def __init__(self) -> None:
        self._system = SystemClock()
        self.offset = timedelta()

    def now(self) -> datetime:
        return self._system.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
