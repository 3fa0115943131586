"""Which sales get an exit check: a random share, plus risk rules the store sets.

Pure: the caller passes the random draw (``roll`` in [0, 1)), so the same
inputs always give the same reasons, and tests need no seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.money import Money


@dataclass(frozen=True)
class ExitAuditRules:
    share: float = 0.03  # picked at random
    high_total: Money | None = None  # at least this total: always checked
    max_removals: int = 0  # more removals than this: checked (0 = no rule)
    max_manual: int = 0  # more typed codes than this: checked (0 = no rule)


def exit_audit_reasons(rules: ExitAuditRules, *, total: Money, removals: int,
                       manual_entries: int, roll: float) -> list[str]:
    """Why this sale is checked at the exit (empty: it is not)."""
    reasons = []
    if roll < rules.share:
        reasons.append("random")
    if rules.high_total is not None and total >= rules.high_total:
        reasons.append("high_total")
    if rules.max_removals and removals > rules.max_removals:
        reasons.append("many_removals")
    if rules.max_manual and manual_entries > rules.max_manual:
        reasons.append("many_manual_entries")
    return reasons
