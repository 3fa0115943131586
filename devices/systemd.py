"""systemd's service notifications (sd_notify(3)): readiness, status, stopping, watchdog.

systemd starts the kiosk with ``Type=notify``: it waits for ``READY=1`` before it calls
the service started, and with ``WatchdogSec=`` it kills and restarts a kiosk whose
``WATCHDOG=1`` pings stop. The protocol is one datagram of newline-separated
``KEY=value`` lines to the Unix socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract-namespace name written with a leading ``@``); ``$WATCHDOG_USEC`` gives the
watchdog interval and ``$WATCHDOG_PID`` the process it is meant for.

Own code rather than a library: the protocol is a documented, stable handful of lines
(sd_notify(3)); ``sdnotify`` on PyPI has not been released since 2019, swallows every
error and knows nothing of the watchdog variables, and ``systemd-python`` is a C
extension that needs libsystemd's headers to build on every kiosk. Outside systemd
(no ``$NOTIFY_SOCKET``: a laptop, the tests) every call is a no-op.

``Watchdog`` pings only while every named source (the lane's loop, the screen's
clock) has beaten within the interval, so a hung lane *or* a frozen screen stops the
pings and systemd restarts the kiosk, not only a dead process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping

log = logging.getLogger(__name__)

ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(name: str) -> str | bytes:
    """The ``connect`` address for ``$NOTIFY_SOCKET``: a file path as is, an abstract
    name (``@name``) as bytes starting with NUL (sd_notify(3)). ValueError if empty or
    neither a path nor ``@``-name."""
    if name.startswith("@") and len(name) > 1:
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    raise ValueError(f"NOTIFY_SOCKET {name!r}: not an absolute path or @abstract name")


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; inert when it is unset.

    ``environ`` is read once (default ``os.environ``; the three variables are then
    removed from it when ``unset`` is true, as sd_notify's ``unset_environment`` does, so
    a child process the kiosk starts never speaks for it). Thread-safe: the lane's
    thread and the screen's both send."""

    def __init__(self, environ: MutableMapping[str, str] | None = None, *,
                 unset: bool = True) -> None:
        env = os.environ if environ is None else environ
        self.socket_name = env.get("NOTIFY_SOCKET", "")
        self.watchdog_s = watchdog_interval_s(env, os.getpid())
        if unset:
            for name in ENV_NAMES:
                env.pop(name, None)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True under systemd (``$NOTIFY_SOCKET`` was set)."""
        return bool(self.socket_name)

    def send(self, **fields: object) -> bool:
        """Send one message, e.g. ``send(READY=1, STATUS="selling")`` -> ``READY=1\\nSTATUS=
        selling``. A newline in a value is replaced by a space (it would start a new field).
        Returns True if sent; False when inert or the socket refused (logged once: a
        kiosk never stops selling because its supervisor went away)."""
        if not self.enabled:
            return False
        text = "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items())
        with self._lock:
            try:
                if self._sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    sock.connect(socket_address(self.socket_name))
                    self._sock = sock
                self._sock.sendall(text.encode())
                return True
            except (OSError, ValueError) as exc:
                if not self._warned:
                    log.warning("systemd notification %r not sent: %s", text[:40], exc)
                    self._warned = True
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                return False

    def ready(self, status: str = "") -> bool:
        """``READY=1`` (with a ``STATUS=`` line when given): the kiosk is up."""
        return self.send(READY=1, STATUS=status) if status else self.send(READY=1)

    def status(self, text: str) -> bool:
        """``STATUS=text``: what ``systemctl status kiosk`` shows."""
        return self.send(STATUS=text)

    def stopping(self, status: str = "stopping") -> bool:
        """``STOPPING=1``: a clean stop has begun (systemd then waits TimeoutStopSec)."""
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """systemd's watchdog interval in seconds from ``WATCHDOG_USEC`` (microseconds), or
    None: unset, not a positive integer, or ``WATCHDOG_PID`` names another process
    (sd_watchdog_enabled(3))."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """``WATCHDOG=1`` at half systemd's interval (sd_watchdog_enabled(3)'s advice), sent
    only while every source in ``sources`` has ``beat`` within that half interval.

    Each source calls ``beat(name)`` from its own loop (the lane's executor thread: every
    pass, at least every lane tick; the screen: from its clock). The ping is sent from
    whichever beat finds it due, so no thread of its own pings for a thread that hangs.
    ``monotonic``: seconds (time.monotonic), for intervals only."""

    def __init__(self, notifier: Notifier, sources: Iterable[str],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.every_s = notifier.watchdog_s / 2 if notifier.watchdog_s else None
        self._monotonic = monotonic
        now = monotonic()
        self._beats = {name: now for name in sources}
        self._last_ping = float("-inf")
        self._lock = threading.Lock()
        self.pings = 0

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled and self.every_s is not None

    def beat(self, source: str) -> None:
        """``source`` is alive now; ping systemd if due and every source is alive. KeyError
        for a source not named at construction."""
        if not self.enabled or self.every_s is None:
            return
        now = self._monotonic()
        with self._lock:
            if source not in self._beats:
                raise KeyError(source)
            self._beats[source] = now
            if now - self._last_ping < self.every_s:
                return
            stale = [n for n, at in self._beats.items() if now - at > self.every_s]
            if stale:
                return  # a source is hung: let systemd's watchdog fire
            self._last_ping = now
        if self.notifier.send(WATCHDOG=1):
            self.pings += 1


__all__ = ["Notifier", "Watchdog", "socket_address", "watchdog_interval_s"]
