"""The lane's own settings that outlive a restart (table ``lane_state``): open or closed.

Staff close a lane for the night or for cleaning; the lane stays closed across
a restart until staff open it again. A lane never told otherwise is open.
"""

from __future__ import annotations

import sqlite_utils

from app.storage.db import write_transaction


class LaneState:
    """Repository over ``lane_state`` (its only owner)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def is_open(self) -> bool:
        """True unless staff closed the lane (and have not opened it since)."""
        row = self.db.execute("SELECT value FROM lane_state WHERE key = 'open'").fetchone()
        return row is None or row[0] == "1"

    def set_open(self, is_open: bool) -> None:
        """Keep whether the lane is open (inside the caller's transaction, if any)."""
        with write_transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO lane_state (key, value) VALUES ('open', ?)",
                            ["1" if is_open else "0"])


__all__ = ["LaneState"]
