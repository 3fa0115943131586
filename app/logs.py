"""The kiosk's log: one structured line per record on stderr, which journald keeps.

Under systemd a service's stderr goes to the journal (``StandardError=journal``, the
default), tagged with the unit and ``SyslogIdentifier=``; journald reads a ``<N>``
prefix on each line as its priority (``SyslogLevelPrefix=``, on by default), keeps
its own timestamps, and rotates and caps the files (journald.conf ``SystemMaxUse=``):
so the kiosk writes no log files of its own and rotates nothing. ``journalctl -u
kiosk`` reads it; ``journalctl -u kiosk -p err`` only the errors.

Lines on stderr, not the native journal protocol (datagrams of FIELD=value to
/run/systemd/journal/socket, as systemd-python's JournalHandler sends): stderr also
carries what Python itself writes there (faulthandler's dump of a hung process, Kivy's
and SDL's own messages; a crash's traceback, and a thread's, is one record at critical:
``log_uncaught``), works the same on a laptop, in a
container and in the tests, and needs no C extension built against libsystemd. The
structure is in the line: logfmt, ``level=error logger=app.lane.paying thread=lane
msg="..."`` (and ``exc="..."`` with the traceback's newlines escaped, so one record is
one journal entry), which ``journalctl -u kiosk -g 'logger=app.lane'`` and log tools
read; the time is added only off the journal (journald stamps each entry).

No secrets: the kiosk's code never logs a key, token, PIN or payment code (the canary
test, tests/integration/test_secrets.py, runs a whole session and searches this very
output); as a last guard, the secret values in the settings (``secret_values``) are
replaced by ``***`` in every line before it is written.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TextIO

from app.config import Settings

HANDLER_NAME = "kiosk-journal"
# syslog priorities (sd-daemon(3)'s SD_ERR and friends) for Python's levels
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
              (logging.INFO, 6))
SECRET_WORDS = ("secret", "token", "password", "passwd", "private")
REDACTED = "***"


def priority(levelno: int) -> int:
    """The syslog priority (2 crit .. 7 debug) of a Python log level."""
    return next((p for level, p in PRIORITIES if levelno >= level), 7)


def quote(value: str) -> str:
    """A logfmt value: bare when it is one plain word, else double-quoted with ``\\``,
    ``"`` and newlines escaped (one record stays one line)."""
    if value and all(c.isalnum() or c in "-_./:@+," for c in value):
        return value
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r"))
    return f'"{escaped}"'


def to_journal(stream: TextIO, environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True when ``stream`` is connected to journald: ``$JOURNAL_STREAM`` ("device:inode",
    systemd.exec(5)) names the very file ``stream`` writes to."""
    wanted = environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


class JournalFormatter(logging.Formatter):
    """``<prio>level=... logger=... thread=... msg="..." [exc="..."]`` for journald, or the
    same line after ``time=...`` (local, ISO 8601, milliseconds) and without the
    ``<prio>`` prefix off the journal. ``secrets``: values replaced by ``***``."""

    def __init__(self, *, journal: bool, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.journal = journal
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***`` (longest first)."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def format(self, record: logging.LogRecord) -> str:
        fields: list[tuple[str, str]] = []
        if not self.journal:
            fields.append(("time", self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                           + f".{int(record.msecs):03d}"))
        fields += [("level", record.levelname.lower()), ("logger", record.name),
                   ("thread", record.threadName or ""), ("msg", record.getMessage())]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        if record.stack_info:
            fields.append(("stack", record.stack_info))
        # Each value redacted before it is quoted: quoting escapes '"' and '\\', so a
        # secret holding one would no longer be found in the line.
        line = " ".join(f"{key}={quote(self.redact(value))}" for key, value in fields)
        return f"<{priority(record.levelno)}>{line}" if self.journal else line


def secret_values(settings: Settings) -> list[str]:
    """The secrets held in the settings themselves: the membership token and member key,
    and the payment adapter's options whose name says secret, token, password or
    private (key *files* are paths; their contents never reach the settings)."""
    out = [settings.membership.token, settings.membership.member_key]
    for name, value in settings.payment.options.items():
        if isinstance(value, str) and any(w in name.lower() for w in SECRET_WORDS) \
                and not name.endswith("_file"):
            out.append(value)
    return [s for s in out if len(s) >= 4]  # a 1-3 character "secret" would eat every line


def configure_logging(settings: Settings, *, stream: TextIO | None = None,
                      level: str | None = None) -> logging.Handler:
    """Send the root logger's records, one structured line each, to ``stream`` (stderr):
    journald's format when that is where it goes, else with a time. ``level``: a Python
    level name (default ``settings.kiosk.log_level``). Replaces a handler this function
    installed before (idempotent); leaves others (a test's capture) alone. Kivy is told
    to log through Python's logging (``KIVY_LOG_MODE=PYTHON``, before Kivy is imported:
    no log files of its own under ~/.kivy). Returns the handler."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JournalFormatter(journal=to_journal(out),
                                          secrets=secret_values(settings)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or settings.kiosk.log_level).upper())
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    sys.excepthook = log_uncaught
    threading.excepthook = log_uncaught_in_thread
    return handler


def log_uncaught(exc_type: type[BaseException], exc: BaseException,
                 tb: TracebackType | None) -> None:
    """``sys.excepthook``: a crash is one record at critical (one journal entry, priority
    2, the traceback in its ``exc`` field), not Python's lines on stderr, which journald
    would keep one entry each at its default priority (info), hidden from ``journalctl
    -p warning``. Ctrl-C stays Python's own."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("kiosk").critical("uncaught exception: the kiosk stops",
                                        exc_info=(exc_type, exc, tb))


def log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook``: a thread's uncaught exception, as ``log_uncaught``."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("kiosk").critical(
        "uncaught exception in thread %s: the thread ended", name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))


def fields_of(line: str) -> dict[str, Any]:
    """Parse one line this module wrote back into its fields (tests and tools): the
    ``<prio>`` prefix becomes ``priority``. ValueError if it is not such a line."""
    out: dict[str, Any] = {}
    if line.startswith("<") and ">" in line[:3]:
        out["priority"] = int(line[1:line.index(">")])
        line = line[line.index(">") + 1:]
    i = 0
    while i < len(line):
        eq = line.index("=", i)
        key = line[i:eq]
        i = eq + 1
        if i < len(line) and line[i] == '"':
            i += 1
            value = []
            while line[i] != '"':
                if line[i] == "\\":
                    i += 1
                    value.append({"n": "\n", "r": "\r"}.get(line[i], line[i]))
                else:
                    value.append(line[i])
                i += 1
            i += 1
            out[key] = "".join(value)
        else:
            end = line.find(" ", i)
            end = len(line) if end < 0 else end
            out[key] = line[i:end]
            i = end
        if i < len(line):
            if line[i] != " ":
                raise ValueError(f"not a log line at {i}: {line!r}")
            i += 1
    return out


__all__ = ["JournalFormatter", "configure_logging", "fields_of", "log_uncaught",
           "log_uncaught_in_thread", "priority", "quote", "secret_values", "to_journal"]
