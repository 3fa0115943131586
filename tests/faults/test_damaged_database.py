"""A damaged database is noticed, refused, and restored from a backup (issue 16, fault 6).

An emptied ``kiosk.db`` beside the files a kiosk leaves (its audit head, its lane
key) must not start a brand-new empty kiosk; a half-truncated file must give a
clear refusal, not a traceback; an overwritten page must be found by the start-up
check (``PRAGMA quick_check``). ``kiosk db backup`` copies the database with
SQLite's online backup; ``kiosk db restore`` checks a backup before putting it in
place and keeps the damaged file aside.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from app import bootstrap
from app.config import load_settings
from app.storage.lock import LOCK_FILE, DataDirInUse, hold_data_dir
from tests.helpers import run_kiosk

ROOT = Path(__file__).resolve().parents[2]
KIOSK = str(Path(sys.executable).with_name("kiosk"))

AT = datetime.fromisoformat("2026-11-25T10:00:00+08:00")


def kiosk(data_dir: Path, *args: str):
    return run_kiosk(*args, env={"KIOSK_DATA_DIR": str(data_dir)})


@pytest.fixture
def held(data_dir: Path) -> Path:
    """A data directory that held a kiosk: a catalogue, audit rows, a published head."""
    k = bootstrap.build(load_settings(data_dir=data_dir, environ={}))
    try:
        bootstrap.seed_demo_store(k)
        audit = bootstrap.build_audit(k)
        for n in range(50):
            audit.append("test", "staff", {"n": n, "pad": "x" * 200}, AT)
        assert audit.publish_head()
        k.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        k.close()
    assert (data_dir / "audit-head").exists()
    return data_dir / "kiosk.db"


def refused(data_dir: Path, *words: str) -> str:
    ran = kiosk(data_dir, "db", "status")
    assert ran.returncode != 0, ran.stdout
    assert "Traceback" not in ran.stderr and "refusing to start" in ran.stderr, ran.stderr
    for word in words:
        assert word in ran.stderr, ran.stderr
    assert "kiosk db restore" in ran.stderr  # says how to get out of it
    return ran.stderr


def audit_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])


def test_an_emptied_database_beside_a_kiosk_is_refused_not_started_afresh(data_dir, held):
    held.write_bytes(b"")
    refused(data_dir, "empty", "audit-head")
    assert held.stat().st_size == 0  # nothing was created over it


def test_a_deleted_database_beside_a_kiosk_is_refused(data_dir, held):
    held.unlink()
    refused(data_dir, "missing")
    assert not held.exists()


def test_a_half_truncated_database_is_refused_with_a_clear_message(data_dir, held):
    data = held.read_bytes()
    held.write_bytes(data[: len(data) // 2])
    refused(data_dir, "damaged")


def test_an_overwritten_page_is_found_at_start_up(data_dir, held):
    data = bytearray(held.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page: 4 * page] = bytes((i * 7 + 13) % 256 for i in range(page))  # garbage
    held.write_bytes(bytes(data))
    refused(data_dir, "damaged")


def test_another_programs_database_is_refused_not_migrated_into(data_dir):
    """A kiosk.db that is another SQLite program's file (a wrong --data-dir), in a
    directory that never held a kiosk: before, the kiosk wrote its tables into it and
    started as a new, empty kiosk inside someone else's file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    foreign = data_dir / "kiosk.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('not the kiosk')")
    conn.close()
    ran = kiosk(data_dir, "db", "status")
    assert ran.returncode == 1, ran.stdout
    assert "Traceback" not in ran.stderr and "refusing to start" in ran.stderr, ran.stderr
    assert "not a kiosk database" in ran.stderr and "notes" in ran.stderr, ran.stderr
    assert "--data-dir" in ran.stderr
    with sqlite3.connect(foreign) as conn:
        tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ["notes"]  # nothing of the kiosk's was written into it


def test_a_new_data_directory_still_starts(data_dir):
    ran = kiosk(data_dir, "db", "status")
    assert ran.returncode == 0, ran.stderr


def test_backup_then_restore_brings_the_kiosk_back_and_keeps_the_damaged_file(
        data_dir, held, tmp_path):
    copy = tmp_path / "copies" / "kiosk-backup.db"
    ran = kiosk(data_dir, "db", "backup", str(copy))
    assert ran.returncode == 0, ran.stderr
    assert audit_rows(copy) == 50
    default = kiosk(data_dir, "db", "backup")  # a dated file under <data dir>/backups
    assert default.returncode == 0, default.stderr
    assert len(list((data_dir / "backups").glob("kiosk-*.db"))) == 1

    held.write_bytes(b"")  # the bad day
    refused(data_dir, "empty")
    ran = kiosk(data_dir, "db", "restore", str(copy))
    assert ran.returncode == 0, ran.stderr
    aside = list(data_dir.glob("kiosk.db.before-restore-*[0-9]"))  # not its -wal/-shm
    assert len(aside) == 1 and aside[0].stat().st_size == 0  # the damaged file is kept
    status = kiosk(data_dir, "db", "status")
    assert status.returncode == 0, status.stderr
    assert audit_rows(held) == 50
    assert bootstrap.build_audit(bootstrap.build(load_settings(data_dir=data_dir, environ={}))
                                 ).publish_head()  # the chain still meets the head file


def test_dated_backups_roll(data_dir, held):
    backups = data_dir / "backups"
    backups.mkdir()
    for hour in range(3):  # older backups, named as the command names them
        (backups / f"kiosk-20261124-0{hour}0000.db").write_bytes(b"old")
    ran = kiosk(data_dir, "db", "backup", "--keep", "2")
    assert ran.returncode == 0, ran.stderr
    kept = sorted(p.name for p in backups.glob("kiosk-*.db"))
    assert len(kept) == 2 and kept[0] == "kiosk-20261124-020000.db", kept
    assert audit_rows(backups / kept[1]) == 50  # the new one, checked and complete


def test_the_file_a_restore_sets_aside_keeps_what_its_wal_held(data_dir, held, tmp_path):
    """A lane killed (or crashed) leaves its newest commits in ``kiosk.db-wal``. The file
    a restore sets aside must open with them, or "undo a wrong restore by restoring that
    file" brings back a database without them: before, the WAL was kept as
    ``kiosk.db-wal.before-restore-*``, a name SQLite never pairs with the set-aside file."""
    copy = tmp_path / "backup.db"
    assert kiosk(data_dir, "db", "backup", str(copy)).returncode == 0
    crashed = sqlite3.connect(held)
    crashed.execute("PRAGMA wal_autocheckpoint=0")  # the lane's newest rows stay in the WAL
    crashed.execute("CREATE TABLE after_the_backup (n INTEGER)")
    crashed.execute("INSERT INTO after_the_backup VALUES (51)")
    crashed.commit()
    # The lane dies here: copy its files as a kill leaves them (no checkpoint on close).
    lane = tmp_path / "lane"
    lane.mkdir()
    for f in data_dir.iterdir():
        if f.is_file():
            (lane / f.name).write_bytes(f.read_bytes())
    crashed.close()
    assert (lane / "kiosk.db-wal").stat().st_size > 0
    ran = kiosk(lane, "db", "restore", str(copy))
    assert ran.returncode == 0, ran.stderr
    aside = next(lane.glob("kiosk.db.before-restore-*[0-9]"))
    with sqlite3.connect(aside) as conn:
        kept = conn.execute("SELECT n FROM after_the_backup").fetchall()
    conn.close()
    assert kept == [(51,)]


def test_restore_refuses_a_damaged_backup_and_changes_nothing(data_dir, held, tmp_path):
    bad = tmp_path / "bad.db"
    data = held.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    before = held.read_bytes()
    ran = kiosk(data_dir, "db", "restore", str(bad))
    assert ran.returncode != 0 and "nothing restored" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr
    assert held.read_bytes() == before
    assert not list(data_dir.glob("kiosk.db.before-restore-*"))
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    ran = kiosk(data_dir, "db", "restore", str(other))
    assert ran.returncode != 0 and "not a kiosk database" in ran.stderr, ran.stderr


def start_screen(data_dir: Path, tmp_path: Path, command: str = "demo") -> subprocess.Popen:
    """`kiosk COMMAND` (the touch screen) as a real child process on ``data_dir``."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir), "KIVY_HOME": str(tmp_path / "kivy"),
           "KIVY_NO_ARGS": "1"}
    return subprocess.Popen([KIOSK, command], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for_lock(data_dir: Path, child: subprocess.Popen) -> None:
    """Until the child has written its pid into the data directory's lock file."""
    lock = data_dir / LOCK_FILE
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.fail(f"the kiosk ended: {child.stderr.read().decode()[-2000:]}")
        if lock.exists() and lock.read_text().startswith(f"{child.pid} "):
            return
        time.sleep(0.2)
    pytest.fail("the kiosk never took the data directory's lock")


@pytest.mark.ui
@pytest.mark.slow
def test_restore_is_refused_while_a_kiosk_runs_on_the_data_directory(data_dir, tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: ./run.sh test runs the suite under Xvfb")
    child = start_screen(data_dir, tmp_path)
    try:
        wait_for_lock(data_dir, child)
        copy = tmp_path / "copy.db"
        ran = kiosk(data_dir, "db", "backup", str(copy))  # online: fine while it sells
        assert ran.returncode == 0, ran.stderr
        before = (data_dir / "kiosk.db").read_bytes()
        ran = kiosk(data_dir, "db", "restore", str(copy))
        assert ran.returncode != 0, ran.stdout
        assert "refusing to restore" in ran.stderr and f"pid {child.pid}" in ran.stderr
        assert (data_dir / "kiosk.db").read_bytes() == before  # nothing replaced
        assert not list(data_dir.glob("kiosk.db.before-restore-*"))
    finally:
        child.kill()
        child.wait(30)
    ran = kiosk(data_dir, "db", "restore", str(copy))  # the kiosk is stopped: it goes ahead
    assert ran.returncode == 0, ran.stderr
    aside = list(data_dir.glob("kiosk.db.before-restore-*[0-9]"))  # not its -wal/-shm
    assert len(aside) == 1 and str(aside[0]) in ran.stdout  # the replaced file, and where


def test_a_second_holder_of_the_data_directory_is_refused(data_dir):
    with hold_data_dir(data_dir, "kiosk run"):
        with pytest.raises(DataDirInUse, match=f"kiosk run \\(pid {os.getpid()}\\)"):
            hold_data_dir(data_dir)
    hold_data_dir(data_dir).release()  # free again once released


def test_kiosk_demo_refused_by_a_running_kiosk_loads_nothing_into_its_data(data_dir):
    """``kiosk demo`` pointed by mistake at a data directory a kiosk is running on (a
    store lane before its catalogue and staff are in): before, it loaded the demo
    catalogue, promotions and staff (a manager with the published PIN 2580) into the
    running kiosk's database, and only then was refused the screen."""
    ran = kiosk(data_dir, "db", "status")  # a new kiosk: no catalogue, no staff yet
    assert ran.returncode == 0, ran.stderr
    with hold_data_dir(data_dir, "kiosk run"):
        ran = kiosk(data_dir, "demo", "--screenshot", str(data_dir / "shot.png"))
    assert ran.returncode == 1, ran.stdout
    assert "Traceback" not in ran.stderr and f"pid {os.getpid()}" in ran.stderr, ran.stderr
    with sqlite3.connect(data_dir / "kiosk.db") as conn:
        staff = conn.execute("SELECT count(*) FROM staff").fetchone()[0]
        products = conn.execute("SELECT count(*) FROM products").fetchone()[0]
    conn.close()
    assert (staff, products) == (0, 0)


# A child process: `kiosk run` on the damaged data directory, with the screen checked
# once it is up (what it shows, in both languages), then stopped.
SCREEN_CHECK = """
import sys
from kivy.clock import Clock
from app.ui import app as ui
from app.cli import main

def started(app):
    def check(_dt):
        shown = {}
        for lang in ("zh", "en"):
            app.set_language(lang)
            shown[lang] = app.shown["out_of_order"]
            # what the screen's label says, not only what the app computed for it
            shown[lang + "_on_screen"] = app.root.ids.screens.get_screen("out_of_order").prompt
        print("SCREEN", app.root.ids.screens.current)
        print("ZH", shown["zh"].replace("\\n", " "))
        print("EN", shown["en"].replace("\\n", " "))
        print("SHOWN", all(shown[lang + "_on_screen"] == shown[lang] for lang in ("zh", "en")))
        app.runtime.do("start")  # a touch reaches no lane: still out of order
        Clock.schedule_once(lambda _dt: (print("AFTER", app.root.ids.screens.current),
                                         app.stop()), 0.5)
    Clock.schedule_once(check, 1.0)

ui.KioskApp.on_start = lambda self: started(self)
sys.argv = ["kiosk", "run"]
main()
"""


@pytest.mark.ui
@pytest.mark.slow
def test_a_damaged_database_shows_the_out_of_order_reason_and_alerts_staff(data_dir, held,
                                                                          tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: ./run.sh test runs the suite under Xvfb")
    backup = kiosk(data_dir, "db", "backup")  # a rolling backup to name on screen
    assert backup.returncode == 0, backup.stderr
    newest = sorted((data_dir / "backups").glob("kiosk-*.db"))[-1]
    data = held.read_bytes()
    held.write_bytes(data[: len(data) // 2])  # the bad day
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir), "KIVY_HOME": str(tmp_path / "kivy"),
           "KIVY_NO_ARGS": "1", "KIVY_LOG_MODE": "PYTHON"}
    ran = subprocess.run([sys.executable, "-c", SCREEN_CHECK], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    out = dict(line.split(" ", 1) for line in ran.stdout.splitlines()
               if line.split(" ", 1)[0] in ("SCREEN", "ZH", "EN", "AFTER", "SHOWN"))
    assert out.get("SCREEN") == "out_of_order", (ran.stdout, ran.stderr[-3000:])
    assert out["AFTER"] == "out_of_order"
    assert out["SHOWN"] == "True", out  # the label shows the reason (it once kept the camera's)
    assert "记录已损坏" in out["ZH"] and f"kiosk db restore {newest}" in out["ZH"], out
    assert "records are damaged" in out["EN"] and f"kiosk db restore {newest}" in out["EN"]
    assert ran.returncode == 1  # headless callers still see a failure
    assert "refusing to sell" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    alerts = (data_dir / "ALERTS.txt").read_text()  # the alert outlives the database
    assert "database: refusing to sell" in alerts and "damaged" in alerts, alerts
    assert f"kiosk db restore {newest}" in alerts
    assert held.read_bytes() == data[: len(data) // 2]  # nothing touched the damaged file


# -- rolling backups ---------------------------------------------------------------------------
def screen_once(data_dir: Path, tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess:
    """`kiosk run --screenshot` as a real child: the screen starts, one frame, it stops."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir), "KIVY_HOME": str(tmp_path / "kivy"),
           "KIVY_NO_ARGS": "1", "KIVY_LOG_MODE": "PYTHON", **env_extra}
    return subprocess.run([KIOSK, "run", "--screenshot", str(tmp_path / "shot.png")], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def needs_display() -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: ./run.sh test runs the suite under Xvfb")


@pytest.mark.ui
@pytest.mark.slow
def test_start_up_takes_a_backup_when_the_newest_is_old_and_keeps_the_newest_n(
        data_dir, held, tmp_path):
    needs_display()
    backups = data_dir / "backups"
    backups.mkdir()
    three_days_ago = time.time() - 3 * 86400
    for day in range(1, 10):  # nine older backups, named as the kiosk names them
        old = backups / f"kiosk-202611{day:02d}-210000.db"
        old.write_bytes(b"old")
        os.utime(old, (three_days_ago, three_days_ago))
    ran = screen_once(data_dir, tmp_path, KIOSK_KIOSK__BACKUPS_KEEP="7")
    assert ran.returncode == 0, ran.stderr[-3000:]
    kept = sorted(p.name for p in backups.glob("kiosk-*.db"))
    assert len(kept) == 7 and kept[0] == "kiosk-20261104-210000.db", kept  # the oldest went
    newest = backups / kept[-1]
    assert newest.name > "kiosk-20261109-210000.db"  # the new one, named by the time now
    assert audit_rows(newest) == 50  # a complete, checked copy
    again = screen_once(data_dir, tmp_path, KIOSK_KIOSK__BACKUPS_KEEP="7")
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in backups.glob("kiosk-*.db")) == kept  # not due yet


@pytest.mark.ui
@pytest.mark.slow
def test_a_failed_backup_alerts_staff_and_the_kiosk_still_starts(data_dir, held, tmp_path):
    needs_display()
    (data_dir / "backups").write_text("not a directory")  # every backup there fails
    ran = screen_once(data_dir, tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]  # the screen came up and stopped as asked
    assert (tmp_path / "shot.png").exists()
    alerts = (data_dir / "ALERTS.txt").read_text()
    assert "backup: the start-up backup" in alerts and "failed" in alerts, alerts
    with sqlite3.connect(held) as conn:
        rows = conn.execute("SELECT ref, message FROM staff_alerts WHERE kind = 'backup'"
                            ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "start-up", rows  # staff mode shows it too


def test_a_z_report_is_followed_by_a_backup(data_dir, held):
    before = set((data_dir / "backups").glob("kiosk-*.db"))
    ran = subprocess.run([KIOSK, "report", "z"], env={**os.environ,
                         "KIOSK_DATA_DIR": str(data_dir)}, capture_output=True, text=True,
                         timeout=120)  # a real process: it ends only once the copy is made
    assert ran.returncode == 0, ran.stderr
    new = set((data_dir / "backups").glob("kiosk-*.db")) - before
    assert len(new) == 1, new
    with sqlite3.connect(new.pop()) as conn:  # taken after the report committed
        assert conn.execute("SELECT count(*) FROM z_reports").fetchone()[0] == 1


def test_kiosk_db_backups_lists_them_with_times_and_sizes(data_dir, held):
    assert "no backups in" in kiosk(data_dir, "db", "backups").stdout
    assert kiosk(data_dir, "db", "backup").returncode == 0
    ran = kiosk(data_dir, "db", "backups")
    assert ran.returncode == 0, ran.stderr
    (line,) = ran.stdout.splitlines()
    (backup,) = (data_dir / "backups").glob("kiosk-*.db")
    assert str(backup) in line and f"{backup.stat().st_size / 1e6:.2f} MB" in line
    taken = datetime.fromtimestamp(backup.stat().st_mtime).astimezone()
    assert taken.strftime("%Y-%m-%d %H:%M:%S") in line
