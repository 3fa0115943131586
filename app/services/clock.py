"""The real clock, kept out of the domain so domain code can be tested at any time."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Wall-clock time in the kiosk's local timezone."""

    def now(self) -> datetime:
        return datetime.now(UTC).astimezone()
