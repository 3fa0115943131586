"""A virtual serial barcode scanner on a pty: the kiosk opens its port like a real one.

``VirtualSerialScanner`` opens a pseudo-terminal pair; the kiosk's
``SerialScanner`` opens ``port`` (the slave side, e.g. /dev/pts/5) through
pyserial exactly as it opens /dev/ttyACM0 in a store, and ``send`` writes what
a scanner would: an optional AIM identifier, the code and the suffix.
``unplug`` closes the pty so the kiosk sees the port vanish. With ``link``,
the port is also reachable at a fixed path that follows the scanner across
unplug and replug, as udev's /dev/serial/by-id links do in a store.
"""

from __future__ import annotations

import os
import tty
from pathlib import Path


class VirtualSerialScanner:
    """A scanner at the far end of a pty. Use as a context manager, or call ``close``."""

    def __init__(self, link: str | Path | None = None) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: bytes pass as sent
        self.port = os.ttyname(self._slave)
        self.link = Path(link) if link else None
        if self.link is not None:
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.port)
        self.open = True

    def send(self, code: str | bytes, aim: str = "", suffix: bytes = b"\r") -> None:
        data = code.encode("utf-8") if isinstance(code, str) else code
        os.write(self._master, aim.encode("ascii") + data + suffix)

    def send_raw(self, data: bytes) -> None:
        os.write(self._master, data)

    def unplug(self) -> None:
        """Close both ends, as pulling the USB cable removes the device."""
        if self.open:
            os.close(self._master)
            os.close(self._slave)
            if self.link is not None:
                self.link.unlink(missing_ok=True)
            self.open = False

    close = unplug

    def __enter__(self) -> VirtualSerialScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unplug()
