"""``kiosk install``'s plan (app/install/plan.py): the dry run against a golden listing, and
what an upgrade, a reinstall, a rollback and an uninstall plan hold.

The golden listing is ``kiosk install --dry-run --show-files`` into an empty scratch root:
every file (path, mode, owner, size, sha256 and text), directory and command. After a
deliberate change, regenerate it with ``KIOSK_UPDATE_GOLDEN=1`` and read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from app.install import files
from app.install import plan as p
from app.install.execute import describe
from tests.helpers import run_kiosk

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "install-dry-run.txt"
OPTS = p.Options(release="0.2.0-new", source="/src/kiosk")


def test_the_dry_run_lists_every_file_and_command_as_the_golden_listing(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    ran = run_kiosk("install", "--dry-run", "--show-files", "--root", str(root),
                    "--release", "0.1.0-golden", "--source", "/src/kiosk",
                    "--python", "/usr/bin/python3")
    assert ran.returncode == 0, ran.stderr
    listing = ran.stdout.replace(str(root), "<root>")
    if os.environ.get("KIOSK_UPDATE_GOLDEN"):
        GOLDEN.write_text(listing, encoding="utf-8")
    assert listing == GOLDEN.read_text(encoding="utf-8")
    assert list(root.iterdir()) == []  # a dry run changes nothing


def test_the_plan_is_the_same_for_the_same_options_and_machine():
    assert p.install_plan(OPTS, p.Found()) == p.install_plan(OPTS, p.Found())


def test_the_units_carry_what_supervision_needs():
    unit = files.kiosk_unit(files.Layout())
    for line in ("Type=notify", "NotifyAccess=main", f"WatchdogSec={files.WATCHDOG_SEC}s",
                 "Restart=always", "RestartSec=2s", "KillMode=mixed", "User=kiosk",
                 "ExecStart=/opt/kiosk/current/venv/bin/kiosk run", "StartLimitBurst=5"):
        assert line in unit.splitlines(), line
    assert files.RESTART_SEC < 5  # restarted within 5 s of a crash (issue 20)
    x_unit = files.x_unit(files.Layout())
    assert "-nocursor" in x_unit and "-novtswitch" in x_unit and "-s 0 -dpms" in x_unit


def test_an_upgrade_stops_the_kiosk_before_migrating_and_switches_current_after():
    found = p.Found(user_exists=True, current="0.1.0-old", releases=("0.1.0-old",),
                    config_exists=True)
    steps = p.install_plan(OPTS, found)
    lines = [describe(s) for s in steps]
    stop = lines.index("run     systemctl stop kiosk.service  # the database is migrated "
                       "with the kiosk stopped")
    migrate = next(i for i, s in enumerate(steps) if isinstance(s, p.Migrate))
    link = next(i for i, s in enumerate(steps) if isinstance(s, p.Link))
    venv = next(i for i, line in enumerate(lines) if "-m venv" in line)
    assert venv < stop < migrate < link  # the old release sells while the new one builds
    assert steps[link] == p.Link(PurePosixPath("/opt/kiosk/current"), "releases/0.2.0-new")
    record = next(s for s in steps if isinstance(s, p.WriteFile)
                  and s.path.name == "release.json")
    assert '"previous": "0.1.0-old"' in record.content
    assert not any(isinstance(s, p.WriteFile) and s.path.name == "kiosk.toml" for s in steps)
    assert any("usermod" in line for line in lines) and not any("useradd" in x for x in lines)


def test_reinstalling_the_same_release_keeps_its_venv_and_its_previous():
    found = p.Found(user_exists=True, current="0.2.0-new", releases=("0.1.0-old", "0.2.0-new"),
                    current_record={"previous": "0.1.0-old"})
    steps = p.install_plan(OPTS, found)
    assert not any(isinstance(s, p.Run) and "venv" in s.argv for s in steps)
    record = next(s for s in steps if isinstance(s, p.WriteFile)
                  and s.path.name == "release.json")
    assert '"previous": "0.1.0-old"' in record.content
    # The kiosk is still stopped around the migration step (which will find nothing to run).
    assert any(isinstance(s, p.Run) and s.argv[:2] == ("systemctl", "stop") for s in steps)


def test_rollback_restores_the_pre_migration_backup_and_points_current_back():
    found = p.Found(current="0.2.0-new", releases=("0.1.0-old", "0.2.0-new"),
                    current_record={"previous": "0.1.0-old"},
                    current_upgrade={"backup": "/var/lib/kiosk/backups/pre-upgrade-x.db"})
    steps = p.rollback_plan(files.Layout(), found)
    assert [describe(s) for s in steps] == [
        "run     systemctl stop kiosk.service",
        "restore /var/lib/kiosk/backups/pre-upgrade-x.db -> /var/lib/kiosk/kiosk.db"
        "  # the current file kept aside",
        "chown   /var/lib/kiosk  kiosk:kiosk (recursive)",
        "link    /opt/kiosk/current -> releases/0.1.0-old",
        "run     systemctl start kiosk.service",
    ]
    # No migration ran: the database is left as it is (sales since the upgrade kept).
    steps = p.rollback_plan(files.Layout(), p.Found(
        current="0.2.0-new", releases=("0.1.0-old", "0.2.0-new"),
        current_record={"previous": "0.1.0-old"}, current_upgrade={"backup": ""}))
    assert not any(isinstance(s, p.Restore) for s in steps)


@pytest.mark.parametrize("found", [
    p.Found(),
    p.Found(current="0.2.0-new", releases=("0.2.0-new",), current_record={"previous": None}),
    p.Found(current="0.2.0-new", releases=("0.2.0-new",),
            current_record={"previous": "0.1.0-gone"}),
])
def test_rollback_without_a_previous_release_is_refused(found):
    with pytest.raises(p.PlanError):
        p.rollback_plan(files.Layout(), found)


def test_uninstall_keeps_the_data_directory_unless_purged():
    keep = p.uninstall_plan(files.Layout(), purge=False)
    assert p.Remove(PurePosixPath("/var/lib/kiosk"), tree=True) not in keep
    assert p.Remove(PurePosixPath("/opt/kiosk"), tree=True) in keep
    assert all(p.Remove(path) in keep for path in files.SYSTEM_FILES)
    purge = p.uninstall_plan(files.Layout(), purge=True)
    assert p.Remove(PurePosixPath("/var/lib/kiosk"), tree=True) in purge
    assert p.Run(("userdel", "kiosk"), system=True) in purge


def test_a_second_uninstall_does_not_stop_units_that_are_gone(tmp_path):
    # `--uninstall --purge` after a plain `--uninstall` (docs/install.md): the units were
    # removed by the first; `systemctl disable --now` on them fails ("Unit kiosk.service
    # not loaded"), which stopped the purge at its first step.
    listing = run_kiosk("install", "--uninstall", "--purge", "--dry-run",
                        "--root", str(tmp_path)).stdout
    assert "systemctl disable" not in listing and "already removed" in listing
    unit = tmp_path / "etc/systemd/system/kiosk.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    listing = run_kiosk("install", "--uninstall", "--dry-run", "--root", str(tmp_path)).stdout
    assert "systemctl disable --now kiosk.service kiosk-x.service" in listing


def test_purge_without_uninstall_and_rollback_with_uninstall_are_usage_errors(tmp_path):
    assert run_kiosk("install", "--purge", "--dry-run", "--root", str(tmp_path)).returncode == 2
    assert run_kiosk("install", "--rollback", "--uninstall", "--dry-run",
                     "--root", str(tmp_path)).returncode == 2
    ran = run_kiosk("install", "--rollback", "--dry-run", "--root", str(tmp_path))
    assert ran.returncode == 1 and "nothing to roll back" in ran.stderr


def test_a_real_install_needs_root_a_dry_run_does_not(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # an ordinary user
    ran = run_kiosk("install", "--release", "r")
    assert ran.returncode == 1 and "run it as root" in ran.stderr
    assert run_kiosk("install", "--dry-run", "--release", "r",
                     "--root", str(tmp_path)).returncode == 0


def test_the_settings_file_it_writes_passes_the_doctor_once_it_holds_a_secret(tmp_path):
    # docs/install.md step 3: the store adds the payment secret with sudoedit, which keeps
    # the file's mode; kiosk doctor then requires 0600/0400 for a settings file holding a
    # secret (its "key settings" check). A 0640 file made every fresh lane fail the doctor.
    from app.services.doctor import check_key_file

    step = next(s for s in p.install_plan(OPTS, p.Found()) if isinstance(s, p.WriteFile)
                and s.path.name == "kiosk.toml")
    written = tmp_path / "kiosk.toml"
    written.write_text(step.content + '\n[payment.options]\nsecret = "s3cret-from-store"\n')
    written.chmod(step.mode)
    result = check_key_file("settings", written, os.geteuid(), required=True)
    assert result.severity.value == "pass", result.result


def test_the_install_guides_kiosk_user_helper_has_the_services_display_and_data():
    # docs/install.md runs every command as the kiosk's user through `sudo -u kiosk`, which
    # clears DISPLAY: `kiosk doctor` run that way (step 4) failed its display and OpenGL
    # checks on a good machine. The helper must carry what kiosk.service sets.
    import re

    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    helper = re.search(r"^k\(\) \{ (.*) \}$", text, re.M)
    assert helper is not None
    given = dict(re.findall(r"\b([A-Z_]+)=(\S+)", helper.group(1)))
    unit = dict(re.findall(r"\b([A-Z_]+)=(\S+)", "\n".join(
        line for line in files.kiosk_unit(files.Layout()).splitlines()
        if line.startswith("Environment="))))
    for name in ("KIOSK_DATA_DIR", "DISPLAY"):
        assert given.get(name) == unit[name], name
    assert "sudo -u kiosk kiosk doctor" not in text  # the helper, not a bare sudo
