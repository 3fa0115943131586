"""``kiosk doctor``: the checks a technician runs on a kiosk PC, and how they are reported.

A check is a small function returning a ``CheckResult``: its name, a severity
(``pass``, ``warn``, ``fail``), what was found (``result``) and, unless it
passed, what to do (``fix``). The rule for the severity (issue 20):

- ``fail``: something a shopper would notice (no payment, no receipt, no
  scanning, Chinese shown as boxes, a kiosk that refuses to start), or the
  store's money exposed (a signing or payment key others can read: anyone on
  the PC could forge exit passes or charges). The doctor exits 1.
- ``warn``: works now, but needs a technician's look (software rendering, a
  backup overdue, a clock a few seconds off). The doctor exits 0.

This module holds the runner (``run_checks``: each check in a thread of its own,
time-boxed, so no check can hang the doctor), the report (text and the
``--json`` shape, ``report_json``) and the checks that need neither devices nor
the network: versions, fonts, the data directory, the database, backups, the
clock, key files, the display. The device and network probes (camera, printer,
scanners, OpenGL, payment, membership) are built in ``app/cli/doctor.py`` on
the same ``CheckResult``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.storage.backups import newest_age_s
from app.storage.db import check_file

JSON_SCHEMA_VERSION = 1
LOGS_HINT = "the kiosk's own log: journalctl -u kiosk -e"


class Severity(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. ``name``: a stable identifier (``camera``, ``printer``, ...);
    ``result``: one line, what was found; ``fix``: what to do ('' when it passed);
    ``details``: facts for fleet tools (JSON values only)."""

    name: str
    severity: Severity
    result: str
    fix: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


def ok(name: str, result: str, **details: Any) -> CheckResult:
    return CheckResult(name, Severity.PASS, result, "", details)


def warn(name: str, result: str, fix: str, **details: Any) -> CheckResult:
    return CheckResult(name, Severity.WARN, result, fix, details)


def fail(name: str, result: str, fix: str, **details: Any) -> CheckResult:
    return CheckResult(name, Severity.FAIL, result, fix, details)


@dataclass(frozen=True)
class Check:
    """A check to run: ``run`` returns its result; ``timeout_s`` bounds it (seconds)."""

    name: str
    run: Callable[[], CheckResult]
    timeout_s: float = 10.0


def run_one(check: Check) -> CheckResult:
    """Run ``check`` on a daemon thread and wait at most ``check.timeout_s`` (monotonic):
    a check still running then is reported as a failure and left behind (a hung driver or
    a silent port must not hang the doctor). An exception is a failure naming it. The
    result and fix come back on one line each (whitespace runs become one space)."""
    box: list[CheckResult] = []

    def target() -> None:
        try:
            box.append(check.run())
        except Exception as exc:  # noqa: BLE001 - any crash of a check is its result
            box.append(fail(check.name, f"the check crashed: {type(exc).__name__}: {exc}",
                            f"report this with the output of `kiosk doctor`; {LOGS_HINT}"))

    worker = threading.Thread(target=target, name=f"doctor-{check.name}", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(check.timeout_s)
    if box:
        # One line each: device errors quote messages that span lines (python-escpos's).
        r = box[0]
        return CheckResult(r.name, r.severity, " ".join(r.result.split()),
                           " ".join(r.fix.split()), r.details)
    return fail(check.name, f"no answer within {check.timeout_s:g} s (the check was "
                f"abandoned after {time.monotonic() - started:.1f} s)",
                "the device or service hangs: unplug and replug it, or restart it; "
                + LOGS_HINT)


def run_checks(checks: Sequence[Check],
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run each check in turn (``run_one``); ``on_result`` sees each result as it comes
    (the text report prints as it goes). Returns the results in the checks' order."""
    results = []
    for check in checks:
        result = run_one(check)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def exit_status(results: Sequence[CheckResult]) -> int:
    """1 if any check failed, else 0 (warnings alone exit 0)."""
    return 1 if any(r.severity is Severity.FAIL for r in results) else 0


def format_result(result: CheckResult) -> str:
    """The text line(s) of one result: ``PASS  name  result`` and, unless it passed, an
    indented ``fix:`` line."""
    line = f"{result.severity.value.upper():<5} {result.name:<14} {result.result}"
    return line + (f"\n      fix: {result.fix}" if result.fix else "")


def summary(results: Sequence[CheckResult]) -> str:
    counts = {s: sum(1 for r in results if r.severity is s) for s in Severity}
    verdict = "not ready: fix the failures above" if counts[Severity.FAIL] else "ready"
    return (f"{counts[Severity.PASS]} passed, {counts[Severity.WARN]} warnings, "
            f"{counts[Severity.FAIL]} failed: {verdict}. Logs: journalctl -u kiosk")


def report_json(results: Sequence[CheckResult], lane_id: str, now_iso: str) -> dict[str, Any]:
    """The ``--json`` report, a stable shape for fleet tools (``schema`` 1; fields are only
    ever added)::

        {"schema": 1, "lane_id": str, "checked_at": ISO 8601 wall clock,
         "status": "pass" | "warn" | "fail" (the worst check), "exit_status": 0 | 1,
         "counts": {"pass": int, "warn": int, "fail": int},
         "checks": [{"name": str, "severity": "pass" | "warn" | "fail",
                     "result": str, "fix": str, "details": {...}}, ...]}
    """
    worst = Severity.FAIL if any(r.severity is Severity.FAIL for r in results) else \
        Severity.WARN if any(r.severity is Severity.WARN for r in results) else Severity.PASS
    return {
        "schema": JSON_SCHEMA_VERSION, "lane_id": lane_id, "checked_at": now_iso,
        "status": worst.value, "exit_status": exit_status(results),
        "counts": {s.value: sum(1 for r in results if r.severity is s) for s in Severity},
        "checks": [{"name": r.name, "severity": r.severity.value, "result": r.result,
                    "fix": r.fix, "details": dict(r.details)} for r in results],
    }


# --- versions --------------------------------------------------------------------------------
def check_versions(requires_python: str, requirements: Sequence[str],
                   installed: Callable[[str], str | None],
                   python: str | None = None) -> CheckResult:
    """Python against ``requires_python`` (a specifier, e.g. '>=3.11') and each requirement
    line (PEP 508, e.g. 'kivy>=2.3.1'; lines with an extra marker are skipped) against
    ``installed(name)`` (the installed version, None if absent). Source of the rules:
    pyproject.toml's ``requires-python`` and ``dependencies``."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    python = python or ".".join(str(n) for n in sys.version_info[:3])
    problems = []
    if requires_python and python not in SpecifierSet(requires_python):
        problems.append(f"Python {python} (needs {requires_python})")
    checked = 0
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra (tests, tools): not needed to run
        checked += 1
        version = installed(req.name)
        if version is None:
            problems.append(f"{req.name} missing (needs {req.specifier or 'any'})")
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} (needs {req.specifier})")
    if problems:
        return fail("versions", "; ".join(problems),
                    "reinstall the kiosk's environment: sudo ./run.sh install (or "
                    ".venv/bin/pip install -e .)", python=python, problems=problems)
    return ok("versions", f"Python {python}, {checked} packages as pyproject.toml requires",
              python=python, packages=checked)


# --- fonts -----------------------------------------------------------------------------------
CJK_SAMPLE = "扫码购付款谢"  # words the attract screen and the receipt show


def missing_glyphs(font_path: Path, chars: str = CJK_SAMPLE) -> list[str]:
    """The characters of ``chars`` that the font at ``font_path`` has no glyph for.

    Rendered with FreeType (through Pillow): a character without a glyph renders as the
    font's .notdef glyph, so it is compared with the rendering of U+10FFFD (a private-use
    code point no kiosk font maps). Raises ``OSError`` if the file is not a font FreeType
    can read."""
    from PIL import ImageFont

    font = ImageFont.truetype(str(font_path), 32)

    def shape(ch: str) -> tuple[tuple[int, int], bytes]:
        mask = font.getmask(ch)
        return mask.size, bytes(mask)

    notdef = shape("\U0010fffd")
    return [ch for ch in chars if shape(ch) == notdef]


def check_font(find: Callable[[], Path], configured: str) -> CheckResult:
    """The font the kiosk would use for Chinese (``find``: ``app.fonts.find_cjk_font``
    bound to the settings; raises ``FontMissing``) has glyphs for ``CJK_SAMPLE``."""
    from app.fonts import FontMissing

    install = ("install fonts-wqy-microhei (apt-get install fonts-wqy-microhei) or set "
               "ui.font to a .ttf/.ttc/.otf file with Chinese glyphs")
    try:
        path = find()
    except FontMissing as exc:
        return fail("font", str(exc), install, configured=configured)
    try:
        missing = missing_glyphs(path)
    except OSError as exc:
        return fail("font", f"{path} is not a readable font: {exc}", install, path=str(path))
    if missing:
        return fail("font", f"{path} has no glyphs for {''.join(missing)}: Chinese would "
                    "show as boxes", install, path=str(path), missing="".join(missing))
    return ok("font", f"{path} renders Chinese ({CJK_SAMPLE})", path=str(path))


# --- display ---------------------------------------------------------------------------------
MIN_SCREEN = (1024, 600)  # below this the kiosk's layout (kiosk.kv, 1280x800) does not fit


def check_display(environ: Mapping[str, str], screen: tuple[int, int] | None) -> CheckResult:
    """A display to draw on (``DISPLAY`` or ``WAYLAND_DISPLAY``) and, when the OpenGL probe
    measured it (``screen``: width, height in pixels), a screen big enough (MIN_SCREEN)."""
    shown = {k: environ[k] for k in ("WAYLAND_DISPLAY", "DISPLAY") if environ.get(k)}
    if not shown:
        return fail("display", "neither WAYLAND_DISPLAY nor DISPLAY is set: no screen to "
                    "draw on", "run the doctor in the kiosk's session (the kiosk service "
                    "starts it: systemctl status kiosk), or export DISPLAY=:0")
    where = ", ".join(f"{k}={v}" for k, v in shown.items())
    if screen is None:
        return warn("display", f"{where}; screen size unknown (the OpenGL probe failed)",
                    "see the opengl line", **shown)
    w, h = screen
    if w < MIN_SCREEN[0] or h < MIN_SCREEN[1]:
        return warn("display", f"{where}; screen {w}x{h} is smaller than "
                    f"{MIN_SCREEN[0]}x{MIN_SCREEN[1]}: the layout will be cramped",
                    "set the screen's resolution to its native size (1280x800 or more)",
                    width=w, height=h, **shown)
    return ok("display", f"{where}; screen {w}x{h}", width=w, height=h, **shown)


# --- data directory, database, backups -------------------------------------------------------
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_data_dir(data_dir: Path, uid: int, *, min_free_mb: int, reserve_mb: int,
                   free_bytes: int | None = None) -> CheckResult:
    """The data directory exists, is owned by the kiosk user (``uid``), gives others no
    access (it holds the keys and the sales) and has room: at least
    ``payment.min_free_mb`` + ``payment.reserve_mb`` free (below that the lane refuses
    payments, app/lane/paying.py), and a warning below twice that."""
    name = "data dir"
    who = user_name(uid)
    try:
        st = data_dir.stat()
    except FileNotFoundError:
        return fail(name, f"{data_dir} does not exist",
                    f"sudo ./run.sh install makes it; or: sudo install -d -o {who} -m 0700 "
                    f"{data_dir}")
    mode = stat.S_IMODE(st.st_mode)
    facts: dict[str, Any] = {"path": str(data_dir), "owner": user_name(st.st_uid),
                             "mode": f"{mode:04o}"}
    if st.st_uid != uid:
        return fail(name, f"{data_dir} is owned by {user_name(st.st_uid)}, not the kiosk user "
                    f"{who}", f"sudo chown -R {who}: {data_dir}", **facts)
    if mode & 0o007 or mode & 0o020:
        return fail(name, f"{data_dir} has mode {mode:04o}: others can reach the keys and "
                    "sales in it", f"chmod 0700 {data_dir}", **facts)
    if free_bytes is None:
        free_bytes = shutil.disk_usage(data_dir).free
    need_mb = min_free_mb + reserve_mb
    free_mb = free_bytes // (1024 * 1024)
    facts |= {"free_mb": free_mb, "needed_mb": need_mb}
    room = f"clear space on {data_dir}'s disk (old logs: journalctl --vacuum-size=200M)"
    if free_mb < need_mb:
        return fail(name, f"{free_mb} MiB free, below the {need_mb} MiB payments need "
                    "(payment.min_free_mb + payment.reserve_mb): payments are refused", room,
                    **facts)
    if free_mb < 2 * need_mb:
        return warn(name, f"{free_mb} MiB free, close to the {need_mb} MiB payments need",
                    room, **facts)
    return ok(name, f"{data_dir}: owner {facts['owner']}, mode {mode:04o}, {free_mb} MiB free",
              **facts)


def check_database(path: Path, restore_command: str,
                   held_kiosk: Sequence[Path] = ()) -> CheckResult:
    """The database passes SQLite's ``PRAGMA quick_check`` (the kiosk refuses to start on
    one that does not, app/storage/db.py ``open_database``). No database yet is a warning
    (the first start makes it), unless files in ``held_kiosk`` (the lane's key, the audit
    head) show the directory held a kiosk: then the kiosk refuses to start, a failure."""
    if not path.exists() or path.stat().st_size == 0:
        marks = [str(m) for m in held_kiosk if m.exists()]
        if marks:
            return fail("database", f"{path} is missing or empty, but this data directory "
                        f"held a kiosk ({', '.join(marks)}): the kiosk refuses to start",
                        f"restore a backup: {restore_command}", path=str(path))
        return warn("database", f"{path} does not exist yet",
                    "start the kiosk once (systemctl start kiosk) or `kiosk db status`")
    problems = check_file(path)
    if problems:
        return fail("database", f"{path} is damaged: {'; '.join(problems[:3])}",
                    f"stop the kiosk and restore a backup: {restore_command}",
                    path=str(path), problems=problems[:10])
    return ok("database", f"{path} passes SQLite's quick_check", path=str(path))


def check_backups(directory: Path, every_h: float, now_s: float) -> CheckResult:
    """The newest backup in ``directory`` is no older than twice ``kiosk.backup_every_h``
    (the kiosk takes one at start-up when the newest is older than that, and at every Z
    report). Overdue or none is a warning: the shopper notices nothing, but a damaged
    database would lose more."""
    age = newest_age_s(directory, now_s) if directory.is_dir() else None
    fix = "take one now: kiosk db backup (the kiosk takes one at start and at each Z report)"
    if age is None:
        return warn("backups", f"no backup in {directory}", fix)
    hours = age / 3600
    limit = 2 * every_h
    if every_h > 0 and hours > limit:
        return warn("backups", f"the newest backup is {hours:.1f} h old (more than twice "
                    f"kiosk.backup_every_h = {every_h:g} h)", fix, age_h=round(hours, 2))
    return ok("backups", f"the newest backup is {hours:.1f} h old", age_h=round(hours, 2))


# --- the clock -------------------------------------------------------------------------------
def check_clock_sync(synchronised: bool | None, source: str) -> CheckResult:
    """Whether the system clock is synchronised (``timedatectl show -p NTPSynchronized``
    or systemd-timesyncd's flag file, found by the caller; None: neither could tell)."""
    fix = "turn on time synchronisation: sudo timedatectl set-ntp true (and let the PC " \
        "reach an NTP server)"
    if synchronised is None:
        return warn("clock sync", f"cannot tell whether the clock is synchronised ({source})",
                    fix)
    if not synchronised:
        return warn("clock sync", f"the clock is not synchronised ({source})", fix)
    return ok("clock sync", f"synchronised ({source})")


CLOCK_WARN_S = 10.0  # the Date header has 1 s resolution; a round trip adds its half
CLOCK_FAIL_S = 60.0  # payment providers refuse requests 300 s off (gateway, WeChat Pay):
#                      fail with a margin, and receipts and exit passes carry the time
PROVIDER_WINDOW_S = 300.0  # the gateway contract's and WeChat Pay's signed-time window


def clock_offset_s(date_header: str, sent_s: float, received_s: float) -> float:
    """How far the kiosk's clock is behind the server's (seconds; negative: ahead), from
    an HTTP ``Date`` header (RFC 9110, 1 s resolution) and the kiosk's wall-clock times
    just before sending and just after the reply (``time.time()``): the server's time is
    compared with the middle of the round trip. Raises ValueError for a bad header."""
    try:
        server = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"unreadable Date header {date_header!r}") from exc
    return server - (sent_s + received_s) / 2


def check_clock_offset(date_header: str, sent_s: float, received_s: float,
                       against: str) -> CheckResult:
    """The clock's offset from ``against`` (the payment provider) by its ``Date`` header."""
    name = "clock offset"
    if not date_header:
        return warn(name, f"{against} sent no Date header: offset unknown",
                    "check the clock by hand: timedatectl")
    try:
        offset = clock_offset_s(date_header, sent_s, received_s)
    except ValueError as exc:
        return warn(name, str(exc), "check the clock by hand: timedatectl")
    rtt = max(received_s - sent_s, 0.0)
    facts = {"offset_s": round(offset, 1), "round_trip_s": round(rtt, 3)}
    fix = ("set the time and keep it synchronised: sudo timedatectl set-ntp true; "
           "timedatectl timesync-status")
    said = f"{abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'} {against}'s clock"
    if abs(offset) > PROVIDER_WINDOW_S:
        return fail(name, f"the kiosk's clock is {said}: providers refuse requests more "
                    f"than {PROVIDER_WINDOW_S:g} s off, so payments fail; receipts and exit "
                    "passes show the wrong time", fix, **facts)
    if abs(offset) > CLOCK_FAIL_S:
        return fail(name, f"the kiosk's clock is {said}: receipts and exit passes show the "
                    f"wrong time, and at {PROVIDER_WINDOW_S:g} s off payments fail", fix,
                    **facts)
    if abs(offset) > CLOCK_WARN_S:
        return warn(name, f"the kiosk's clock is {said}", fix, **facts)
    return ok(name, f"within {CLOCK_WARN_S:g} s of {against}'s clock ({offset:+.1f} s)",
              **facts)


# --- key files -------------------------------------------------------------------------------
def check_key_file(label: str, path: Path, uid: int, *, required: bool,
                   created_by: str = "") -> CheckResult:
    """A private key or secret file: present (when ``required``), owned by the kiosk user
    ``uid``, mode 0600 or 0400 (nobody else may read it: with the exit-pass key anyone
    could forge passes, with a payment key charge or refund)."""
    name = f"key {label}"
    who = user_name(uid)
    try:
        st = path.stat()
    except FileNotFoundError:
        if not required:
            return warn(name, f"{path} does not exist yet",
                        created_by or "start the kiosk once: it creates it", path=str(path))
        return fail(name, f"{path} is missing", created_by or f"put the key at {path}",
                    path=str(path))
    mode = stat.S_IMODE(st.st_mode)
    facts = {"path": str(path), "mode": f"{mode:04o}", "owner": user_name(st.st_uid)}
    if mode not in (0o600, 0o400):
        return fail(name, f"{path} has mode {mode:04o}: others can read it",
                    f"chmod 0600 {path}", **facts)
    if st.st_uid != uid:
        return fail(name, f"{path} is owned by {user_name(st.st_uid)}, not {who}",
                    f"sudo chown {who}: {path}", **facts)
    return ok(name, f"{path}: mode {mode:04o}, owner {facts['owner']}", **facts)


def current_uid() -> int:
    return os.geteuid()


__all__ = ["CLOCK_FAIL_S", "CLOCK_WARN_S", "CJK_SAMPLE", "JSON_SCHEMA_VERSION", "Check",
           "CheckResult", "Severity", "check_backups", "check_clock_offset",
           "check_clock_sync", "check_data_dir", "check_database", "check_display",
           "check_font", "check_key_file", "check_versions", "clock_offset_s",
           "exit_status", "fail", "format_result", "missing_glyphs", "ok", "report_json",
           "run_checks", "run_one", "summary", "user_name", "warn"]
