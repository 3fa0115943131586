"""``kiosk install`` for real into a scratch root (``--root``): two releases, an upgrade that
migrates once after a backup, a reinstall, a rollback, uninstall and purge; and the unit
files it writes pass ``systemd-analyze verify``.

Under ``--root`` the commands that would change this machine (apt-get, useradd, udevadm,
sysctl, systemctl) are listed as skipped, not run; everything else runs: the directories
and files with their modes, a real ``python -m venv`` and ``pip install`` of this checkout
(as a wheel made here by hand, below: the test machine has no package index), the
database migration with its backup, the ``current`` link. The kiosk's user is ``daemon``
(it exists on every Debian machine; useradd is skipped), so the ownership the install
sets is really applied and checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import sqlite_utils

from app.install import files
from app.storage.migrations import MIGRATIONS
from tests.helpers import run_kiosk

ROOT = Path(__file__).resolve().parents[2]
USER = "daemon"
DAEMON_UID = 1


def make_wheel(out: Path, patch: dict[str, bytes] | None = None) -> Path:
    """A PEP 427 wheel of this checkout's ``app`` and ``devices`` with the ``kiosk``
    console script: what ``pip wheel .`` makes, without a build backend or network.
    ``patch``: files (path in the checkout: new content) that differ, for another release.
    Installed with ``--no-deps`` (no package index here), so it carries a .pth naming this
    interpreter's site-packages: the release's own Python finds the kiosk's dependencies
    there (its migration step runs in it), and the kiosk's code in the wheel, first."""
    dist = "scan_and_go_kiosk-0.1.0"
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{dist}-py3-none-any.whl"
    entries: dict[str, bytes] = {}
    for package in ("app", "devices"):
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                entries[str(path.relative_to(ROOT))] = path.read_bytes()
    entries.update(patch or {})
    entries["_kiosk_test_deps.pth"] = (sysconfig.get_paths()["purelib"] + "\n").encode()
    info = f"{dist}.dist-info"
    entries[f"{info}/METADATA"] = (b"Metadata-Version: 2.1\nName: scan-and-go-kiosk\n"
                                   b"Version: 0.1.0\n")
    entries[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                b"Tag: py3-none-any\n")
    entries[f"{info}/entry_points.txt"] = b"[console_scripts]\nkiosk = app.cli:main\n"
    record = []
    for name, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return wheel


def install(root: Path, *args: str) -> str:
    ran = run_kiosk("install", "--root", str(root), "--user", USER,
                    "--python", sys.executable, *args)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)


def older_database(path: Path) -> str:
    """This release's migrations but the last, and one sale: what the release before that
    migration left in the data directory. Returns the pending migration's name."""
    last = [m.name for m in MIGRATIONS.pending(sqlite_utils.Database(memory=True))][-1]
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before=last)
    db.execute("INSERT INTO sales (order_id, sale, paid_at) VALUES ('K1', '{}', '2026-11-29')")
    db.conn.commit()
    db.close()
    return last


def applied(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
    finally:
        conn.close()


@pytest.mark.slow
def test_install_upgrade_rollback_and_uninstall_for_real_into_a_scratch_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("setting the data directory's owner needs root (CI and ./run.sh test "
                    "run as root)")
    root = tmp_path / "root"
    root.mkdir()
    wheel = make_wheel(tmp_path)
    offline = ("--pip-arg=--no-index", "--pip-arg=--no-deps", "--source", str(wheel))

    out = install(root, "--release", "r1", "--printer", "/dev/serial/by-id/usb-printer-if00",
                  *offline)
    assert "skip    useradd" in out and "skip    systemctl enable" in out
    venv = root / "opt/kiosk/releases/r1/venv"
    assert (venv / "bin" / "kiosk").exists()  # pip installed the console script
    assert os.readlink(root / "opt/kiosk/current") == "releases/r1"
    data = root / "var/lib/kiosk"
    assert mode(data) == "0o750" and data.stat().st_uid == DAEMON_UID
    assert mode(data / "kiosk.toml") == "0o600" and (data / "kiosk.toml").stat().st_uid == 1
    assert 'port = "/dev/serial/by-id/usb-printer-if00"' in (data / "kiosk.toml").read_text()
    for path in files.SYSTEM_FILES:
        assert mode(root / str(path).lstrip("/")) == "0o644", path
    assert "nothing to migrate" in out  # no database yet: the first start makes it

    # The store sells with r1; then r2 arrives with a migration r1's database lacks.
    pending = older_database(data / "kiosk.db")
    (data / "kiosk.toml").write_text('[printer]\nport = "/dev/ttyS0"\n')  # the store's edit
    out = install(root, "--release", "r2", *offline)
    assert f"applied {pending}" in out
    upgrade = json.loads((root / "opt/kiosk/releases/r2/upgrade.json").read_text())
    backup = root / upgrade["backup"].lstrip("/")
    assert upgrade["applied"] == [pending] and backup.exists()
    assert pending not in applied(backup) and pending in applied(data / "kiosk.db")
    assert backup.stat().st_uid == DAEMON_UID  # the kiosk's own again after root migrated
    assert (data / "kiosk.toml").read_text() == '[printer]\nport = "/dev/ttyS0"\n'  # kept
    assert os.readlink(root / "opt/kiosk/current") == "releases/r2"
    assert json.loads((root / "opt/kiosk/releases/r2/release.json").read_text())[
        "previous"] == "r1"

    # Installing r2 again: nothing to migrate, the rollback's backup still recorded.
    out = install(root, "--release", "r2", *offline)
    assert "nothing to migrate" in out and "already in" in out
    assert json.loads((root / "opt/kiosk/releases/r2/upgrade.json").read_text()) == upgrade

    # One command back: r1's code and the database as r1 left it.
    out = install(root, "--rollback")
    assert os.readlink(root / "opt/kiosk/current") == "releases/r1"
    assert pending not in applied(data / "kiosk.db")
    assert list(data.glob("kiosk.db.before-restore-*"))  # the migrated file, kept aside
    conn = sqlite3.connect(data / "kiosk.db")
    assert conn.execute("SELECT order_id FROM sales").fetchall() == [("K1",)]
    conn.close()

    install(root, "--uninstall")
    assert not (root / "opt/kiosk").exists()
    assert not any((root / str(path).lstrip("/")).exists() for path in files.SYSTEM_FILES)
    assert (data / "kiosk.db").exists() and (data / "kiosk.toml").exists()
    out = install(root, "--uninstall", "--purge")
    assert not data.exists() and "skip    userdel daemon" in out


@pytest.mark.slow
def test_an_upgrade_runs_the_new_releases_migrations_not_the_installers(tmp_path):
    # `--source` names what pip installs (a wheel made elsewhere, docs/install.md): the
    # migrations must be that release's. The installer's own (this checkout's) found
    # nothing pending, took no backup, and left the new release's migration to its first
    # start: no backup, and a rollback that kept the newer schema under the older code.
    if os.geteuid() != 0:
        pytest.skip("setting the data directory's owner needs root (CI and ./run.sh test "
                    "run as root)")
    root = tmp_path / "root"
    root.mkdir()
    offline = ("--pip-arg=--no-index", "--pip-arg=--no-deps", "--source")
    install(root, "--release", "r1", *offline, str(make_wheel(tmp_path / "r1")))
    data = root / "var/lib/kiosk"
    db = sqlite_utils.Database(data / "kiosk.db")  # r1's schema, and a sale
    MIGRATIONS.apply(db)
    db.execute("INSERT INTO sales (order_id, sale, paid_at) VALUES ('K1', '{}', '2026-11-29')")
    db.conn.commit()
    db.close()
    migrations = (ROOT / "app/storage/migrations.py").read_bytes() + (
        b"\n\n@MIGRATIONS()\ndef m999_next_release(db: sqlite_utils.Database) -> None:\n"
        b"    db.execute('CREATE TABLE next_release (x INTEGER)')\n")
    r2 = make_wheel(tmp_path / "r2", {"app/storage/migrations.py": migrations})

    out = install(root, "--release", "r2", *offline, str(r2))
    assert "applied m999_next_release" in out, out
    upgrade = json.loads((root / "opt/kiosk/releases/r2/upgrade.json").read_text())
    assert upgrade["applied"] == ["m999_next_release"]
    assert "m999_next_release" not in applied(root / upgrade["backup"].lstrip("/"))

    install(root, "--rollback")
    assert "m999_next_release" not in applied(data / "kiosk.db")
    conn = sqlite3.connect(data / "kiosk.db")
    assert conn.execute("SELECT order_id FROM sales").fetchall() == [("K1",)]
    conn.close()


def verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    # --man=no: no man pages in a container; --generators=no: no system generators run.
    # Without --root the unit's executables are looked up on this machine, which is why
    # the units are written with the scratch root's paths (see the test).
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no",
         *(str(unit_dir / name) for name in (files.KIOSK_UNIT, files.X_UNIT))],
        capture_output=True, text=True, env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or shutil.which("Xorg") is None,
                    reason="needs systemd-analyze (apt systemd) and Xorg "
                    "(apt xserver-xorg-core): ./run.sh test installs both")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    """What verify checks: every section and key is known and every value parses (a typo
    is an error here, a silent default on the kiosk), every Exec*= command exists and is
    executable, the dependency (Requires=kiosk-x.service) resolves, and a start job for
    each unit can be built. The kiosk's executable is the scratch install's layout:
    ``Layout(prefix=<tmp>)`` with a ``kiosk`` script there."""
    prefix = tmp_path / "opt" / "kiosk"
    kiosk = prefix / "current" / "venv" / "bin" / "kiosk"
    kiosk.parent.mkdir(parents=True)
    kiosk.write_text("#!/bin/sh\n")
    kiosk.chmod(0o755)
    from pathlib import PurePosixPath
    layout = files.Layout(prefix=PurePosixPath(prefix), data_dir=PurePosixPath(tmp_path))
    units = tmp_path / "units"
    units.mkdir()
    (units / files.KIOSK_UNIT).write_text(files.kiosk_unit(layout))
    (units / files.X_UNIT).write_text(files.x_unit(layout))
    ran = verify(units)
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr

    # The check can fail: a misspelt key and a bad value are reported.
    (units / files.KIOSK_UNIT).write_text(files.kiosk_unit(layout).replace(
        "WatchdogSec=30s", "WatchdogSec=thirty").replace("KillMode=", "KilMode="))
    ran = verify(units)
    assert "Failed to parse sec value" in ran.stderr and "Unknown key 'KilMode'" in ran.stderr
