"""The data directory's lock: one running kiosk per data directory, and no restore under it.

A running kiosk (``kiosk run``, ``kiosk demo``: ``app.bootstrap.run_ui``) holds an
exclusive ``fcntl.flock`` on ``<data dir>/kiosk.lock`` for as long as it runs, with
its process id written in the file for staff. The kernel drops the lock when the
process ends, however it ends (a crash, SIGKILL, a power cut), so a stale file never
blocks anything. ``kiosk db restore`` takes the same lock and refuses while another
process holds it: a database replaced under a running lane would be written on by
the lane's open connection (issue 16, fault 6).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from app.storage.db import data_dir_unusable

LOCK_FILE = "kiosk.lock"


class DataDirInUse(Exception):
    """Another process holds the data directory (the message names it and its pid)."""


class DataDirLock:
    """A held lock on a data directory; ``release()`` (or the process ending) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Free the lock. Idempotent."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def hold_data_dir(data_dir: Path, what: str = "a running kiosk") -> DataDirLock:
    """Take the exclusive lock on ``data_dir`` (creating ``kiosk.lock``) and write this
    process's id into it. Raises ``DataDirInUse`` naming the holder's pid when another
    process (or another open of the lock in this one) holds it; ``DataDirUnusable``
    (naming the directory: read-only, full) when it cannot be written. ``what``: why
    it is held, written beside the pid."""
    path = data_dir / LOCK_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or full disk: the message staff get everywhere
        raise data_dir_unusable(data_dir, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise DataDirInUse(f"{data_dir} is in use by {holder} (lock {path}): stop it "
                           "first") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
    except OSError as exc:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise data_dir_unusable(data_dir, exc) from None
    return DataDirLock(path, fd)


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, what = text.partition(" ")
    return f"{what or 'a kiosk process'} (pid {pid})" if pid.isdigit() else "a kiosk process"
