"""app.logs: one structured line per record, journald's priority prefix, no secrets."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from app.config import load_settings
from app.logs import HANDLER_NAME, JournalFormatter, configure_logging, fields_of, to_journal


def record(level: int, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            import sys
            exc_info = sys.exc_info()
    return logging.LogRecord("app.lane.paying", level, __file__, 1, msg, args, exc_info)


def test_a_record_is_one_line_of_fields_with_its_priority_for_the_journal():
    line = JournalFormatter(journal=True).format(
        record(logging.ERROR, 'paid %s "twice"\nreally', "ORD-1", exc=True))
    assert "\n" not in line
    f = fields_of(line)
    assert f["priority"] == 3 and f["level"] == "error" and f["logger"] == "app.lane.paying"
    assert f["msg"] == 'paid ORD-1 "twice"\nreally'
    assert "RuntimeError: boom\nsecond line" in f["exc"]
    assert "time" not in f  # journald stamps each entry itself
    plain = fields_of(JournalFormatter(journal=False).format(record(logging.INFO, "hi")))
    assert "priority" not in plain and plain["time"] and plain["msg"] == "hi"


def test_secret_values_from_the_settings_never_reach_a_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "kiosk.toml").write_text(
        '[payment]\nadapter = "gateway"\noptions = { base_url = "http://x", secret = '
        '"CANARY-gw-secret-1" }\n[membership]\ntoken = "CANARY-token-2"\n', encoding="utf-8")
    settings = load_settings(data_dir=data, environ={})
    out = io.StringIO()
    handler = configure_logging(settings, stream=out, level="debug")
    try:
        logging.getLogger("app.test").warning("sent CANARY-gw-secret-1 and CANARY-token-2")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "CANARY" not in out.getvalue()
    assert fields_of(out.getvalue().strip())["msg"] == "sent *** and ***"
    assert handler.get_name() == HANDLER_NAME


def test_the_journal_is_recognised_by_journal_stream_naming_stderr(tmp_path):
    path = tmp_path / "stream"
    with open(path, "w") as f:
        st = os.fstat(f.fileno())
        assert to_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not to_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not to_journal(f, {})


def test_a_secret_with_a_quote_or_backslash_is_redacted_too():
    # The line's values are quoted with '"' and '\' escaped: a secret holding either was
    # looked for only after escaping, so the escaped form (the secret, to any reader of
    # the journal) went out unredacted.
    secret = 'CANARY"pw\\x9'
    fmt = JournalFormatter(journal=True, secrets=[secret])
    line = fmt.format(record(logging.WARNING, "token %s refused", secret))
    assert "CANARY" not in line
    assert fields_of(line)["msg"] == "token *** refused"
    try:
        raise RuntimeError(f"refused {secret}")
    except RuntimeError:
        import sys
        rec = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "CANARY" not in fmt.format(rec)


def test_a_crash_is_one_journal_entry_at_critical_priority(tmp_path):
    # A crash's traceback went to stderr as Python prints it: one journal entry per line,
    # at journald's default priority (info), so `journalctl -u kiosk -p warning` (where
    # docs/operations.md sends staff for a restart loop's cause) hid the cause. A thread's
    # uncaught exception the same.
    import subprocess
    import sys

    script = (
        "import io, os, sys, threading\n"
        "from app.config import load_settings\n"
        "from pathlib import Path\n"
        "from app.logs import configure_logging\n"
        "st = os.fstat(sys.stderr.fileno())\n"
        "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'\n"
        "configure_logging(load_settings(data_dir=Path(sys.argv[1]), environ={}))\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='lane'); t.start(); t.join()\n"
        "raise RuntimeError('the crash')\n")
    ran = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert ran.returncode == 1
    lines = ran.stderr.splitlines()
    assert len(lines) == 2, ran.stderr
    thread, crash = (fields_of(line) for line in lines)
    assert thread["priority"] == 2 and "ZeroDivisionError" in thread["exc"]
    assert "lane" in thread["msg"]
    assert crash["priority"] == 2 and "RuntimeError: the crash" in crash["exc"]
