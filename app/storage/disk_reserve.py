"""A reserve of disk space kept in the data directory for the one write that must not fail.

A shopper who has paid the provider must get a recorded sale and an exit pass even
if the disk filled while the QR was up (issue 16, fault 5). The lane keeps a file
of ``payment.reserve_mb`` real (allocated, not sparse) bytes beside the database;
when a write on the money path fails with SQLITE_FULL, the file is deleted, which
gives SQLite that much room to write the paid state, the sale and its events, and
the write is tried once more. The lane takes no new payment until the reserve has
been made again, which needs the space back (``ensure``).

No SQL here: this module owns one plain file of the data directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

RESERVE_FILE = "disk-reserve"
_CHUNK = 1024 * 1024


class DiskReserve:
    """The reserve file ``path`` of ``size_bytes`` bytes (0: no reserve, never held)."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes

    @property
    def held(self) -> bool:
        """Whether the reserve is in place at its full size (or none is configured)."""
        if self.size_bytes <= 0:
            return True
        try:
            return self.path.stat().st_size >= self.size_bytes
        except OSError:
            return False

    def ensure(self) -> bool:
        """Make the reserve if it is not in place; True if it is held afterwards.

        The bytes are written (zeros, fsynced), not allocated sparsely, so the file
        system has really handed the space over. A disk too full to hold it leaves no
        partial file behind and returns False (never raises for ``ENOSPC``)."""
        if self.held:
            return True
        tmp = self.path.with_name(self.path.name + ".making")
        try:
            with open(tmp, "wb") as f:
                zeros = bytes(_CHUNK)
                left = self.size_bytes
                while left > 0:
                    f.write(zeros[:min(left, _CHUNK)])
                    left -= _CHUNK
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return True
        except OSError as exc:
            log.warning("the disk reserve %s (%d bytes) could not be made: %s", self.path,
                        self.size_bytes, exc)
            tmp.unlink(missing_ok=True)
            return False

    def release(self) -> int:
        """Delete the reserve; returns the bytes it held (0 if there was none)."""
        try:
            size = self.path.stat().st_size
            self.path.unlink()
        except FileNotFoundError:
            return 0
        log.warning("disk reserve %s released: %d bytes handed back to the file system",
                    self.path, size)
        return size


__all__ = ["RESERVE_FILE", "DiskReserve"]
