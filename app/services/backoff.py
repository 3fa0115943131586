"""Retry waits shared by the lane's background threads (the event uploader, the store-data
sync): capped exponential backoff with full jitter, at least what the server's
``Retry-After`` asked for.

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): the wait
after the n-th failure in a row is uniform in ``[0, min(cap, base * 2**n)]``, so a
store's lanes that lost head office together do not all come back in the same second.
A ``Retry-After`` is a floor, capped at :data:`MAX_RETRY_AFTER_S` so a bad header cannot
stop a lane for days.
"""

from __future__ import annotations

import random

MAX_RETRY_AFTER_S = 3600.0  # a bad Retry-After header must not stop a thread for days


class Backoff:
    """The failures in a row of one thread and the wait they call for. Seconds:
    ``base`` doubles per failure up to ``cap``; ``rng`` draws the jitter (seeded in
    tests)."""

    def __init__(self, base: float = 1.0, cap: float = 300.0,
                 rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self, at_least: float | None = None) -> float:
        """One more failure: the seconds to wait before the next try (uniform in
        ``[0, min(cap, base * 2**failures)]``, raised to ``at_least`` capped at
        :data:`MAX_RETRY_AFTER_S` when the server asked)."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 30))
        delay = self.rng.uniform(0, ceiling)  # full jitter: kiosks do not retry in step
        if at_least is not None:
            delay = max(delay, min(at_least, MAX_RETRY_AFTER_S))
        return delay

    def reset(self) -> None:
        """A success (or staff said "try now"): the next failure starts from ``base``."""
        self.failures = 0


__all__ = ["MAX_RETRY_AFTER_S", "Backoff"]
