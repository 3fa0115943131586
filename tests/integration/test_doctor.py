"""`kiosk doctor` against the simulated store: a good machine, then the common faults.

Each test starts the simulated store (devices/sim/store.py: the payment provider and the
membership backend on 127.0.0.1, the virtual ESC/POS printer on a real pty), writes the
kiosk's settings file pointing at it, makes a real data directory (database, exit-pass
key, staff secret, a backup), breaks one thing the way it breaks in a store, and runs the
real command (click's runner, in-process). The OpenGL probe is a real subprocess and the
camera the generated source at its real rate, so every check runs.
"""

from __future__ import annotations

import importlib
import json
import os
import pwd
import re
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from app.config import load_settings
from devices.sim.serial_scanner import VirtualSerialScanner
from devices.sim.store import SimStore
from tests.helpers import Ran, run_kiosk

ROOT = Path(__file__).resolve().parents[2]
# The module, not the click command of the same name that app.cli exports.
doctor_cli = importlib.import_module("app.cli.doctor")
NO_CJK_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# What a good machine may still warn about here: the test machine draws with Mesa's
# software renderer (llvmpipe) under Xvfb, which a kiosk PC should not.
ENVIRONMENT_WARNINGS = {"opengl"}
CAMERA_FPS = 8


class Machine:
    """A kiosk data directory and settings file aimed at a running simulated store."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(mode=0o700)
        os.chmod(data_dir, 0o700)
        self.settings = load_settings(None, data_dir, environ={})
        self.store = SimStore(data_dir).start(self.settings)
        # A serial scanner at a stable name, as udev's /dev/serial/by-id links give one.
        by_id = data_dir.parent / "serial-by-id"
        by_id.mkdir(exist_ok=True)
        self.scanner = VirtualSerialScanner(by_id / "usb-Scanner_Serial-if00")

    def stop(self) -> None:
        self.scanner.close()
        self.store.stop()

    @property
    def config(self) -> Path:
        return self.data_dir / "kiosk.toml"

    def write_config(self, **sections: dict[str, object]) -> None:
        """kiosk.toml pointing at the store; ``sections`` override or add keys."""
        assert self.store.backend is not None and self.store.printer is not None
        values: dict[str, dict[str, object]] = {
            "payment": {"adapter": "simulator",
                        "options": {"base_url": self.store.pay_url}},
            "printer": {"port": self.store.printer.port},
            "membership": {"base_url": self.store.backend.url,
                           "token": self.settings.membership.token},
            # The generated camera renders every frame on the CPU: a small, slow camera,
            # so a loaded test machine still delivers the rate asked for.
            "camera": {"source": "generated", "fps": CAMERA_FPS, "width": 640, "height": 360},
            "scanner": {"serial_port": str(self.scanner.link)},
        }
        for name, keys in sections.items():
            values.setdefault(name, {}).update(keys)
        lines = []
        for name, keys in values.items():
            lines.append(f"[{name}]")
            for key, value in keys.items():
                lines.append(f"{key} = {toml(value)}")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.chmod(self.config, 0o600)

    def doctor(self, *args: str) -> Ran:
        return run_kiosk("--data-dir", str(self.data_dir), "doctor", *args)


def toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A good machine: every check passes (the clock's sync is read from a timesyncd flag
    file, since this test machine runs no systemd)."""
    flag = tmp_path / "timesync" / "synchronized"
    flag.parent.mkdir()
    flag.touch()
    monkeypatch.setattr(doctor_cli, "TIMEDATECTL", "no-timedatectl-here")
    monkeypatch.setattr(doctor_cli, "TIMESYNC_DIR", flag.parent)
    monkeypatch.setattr(doctor_cli, "TIMESYNC_FLAG", flag)
    m = Machine(tmp_path / "data")
    try:
        m.write_config()
        for args in (("db", "status"), ("pass", "key"), ("db", "backup"),
                     ("staff", "add", "Ann", "--role", "manager", "--pin", "2468")):
            ran = run_kiosk("--data-dir", str(m.data_dir), *args)
            assert ran.returncode == 0, ran.stdout
        yield m
    finally:
        m.stop()


def lines_of(ran: Ran) -> dict[str, tuple[str, str, str]]:
    """{check name: (SEVERITY, result, fix)} from the doctor's text output."""
    found: dict[str, tuple[str, str, str]] = {}
    last = ""
    for line in ran.stdout.splitlines():
        m = re.match(r"^(PASS|WARN|FAIL)  (.{14}) (.*)$", line)
        if m:
            last = m.group(2).strip()
            found[last] = (m.group(1), m.group(3), "")
        elif line.startswith("      fix: ") and last:
            sev, result, _ = found[last]
            found[last] = (sev, result, line.removeprefix("      fix: "))
    return found


def failing(ran: Ran) -> set[str]:
    return {name for name, (sev, _, _) in lines_of(ran).items() if sev == "FAIL"}


# --- a good machine --------------------------------------------------------------------------
def test_a_good_machine_passes_every_check_and_exits_0(machine):
    ran = machine.doctor()
    found = lines_of(ran)
    assert ran.returncode == 0, ran.stdout
    expected = {"versions", "font", "opengl", "display", "camera", "printer", "scanners",
                "data dir", "database", "backups", "clock sync", "payment", "clock offset",
                "membership", "key exit-pass", "key staff", "key settings"}
    assert set(found) == expected, ran.stdout
    not_passing = {n for n, (sev, _, _) in found.items() if sev != "PASS"}
    assert not_passing <= ENVIRONMENT_WARNINGS, ran.stdout
    assert "renders Chinese" in found["font"][1]
    assert re.search(r"30 frames, 640x360, \d+\.\d fps", found["camera"][1]), found["camera"]
    assert found["printer"][1].endswith(": ok")
    assert found["scanners"][1] == f"{machine.scanner.link} opens"
    assert "no such order, as expected" in found["payment"][1]
    assert "0 failed: ready" in ran.stdout
    assert "journalctl -u kiosk" in ran.stdout  # where the logs are


def test_json_report_has_the_documented_stable_shape(machine):
    ran = machine.doctor("--json")
    assert ran.returncode == 0, ran.stdout
    report = json.loads(ran.stdout)
    assert set(report) == {"schema", "lane_id", "checked_at", "status", "exit_status",
                           "counts", "checks"}
    assert report["schema"] == 1 and report["lane_id"] == "lane-01"
    assert report["exit_status"] == 0 and report["status"] in ("pass", "warn")
    assert set(report["counts"]) == {"pass", "warn", "fail"}
    assert sum(report["counts"].values()) == len(report["checks"])
    for check in report["checks"]:
        assert set(check) == {"name", "severity", "result", "fix", "details"}
        assert check["severity"] in ("pass", "warn", "fail")
        assert (check["fix"] == "") == (check["severity"] == "pass")
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["camera"]["details"]["frames"] == 30
    assert by_name["camera"]["details"]["expected_fps"] == CAMERA_FPS
    assert by_name["data dir"]["details"]["mode"] == "0700"
    assert abs(by_name["clock offset"]["details"]["offset_s"]) < 2
    # The documented shape in docs/install.md names every top-level key.
    guide = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    for key in report:
        assert f'"{key}"' in guide, key


def test_checks_can_be_chosen_or_left_out(machine):
    ran = machine.doctor("--skip", "opengl", "--skip", "camera")
    assert ran.returncode == 0 and not {"opengl", "camera"} & set(lines_of(ran))
    assert "display" in lines_of(ran)  # its size then unknown: a warning, said so
    ran = machine.doctor("--check", "clock offset")
    assert set(lines_of(ran)) == {"payment", "clock offset"}  # the offset needs the reply
    ran = machine.doctor("--check", "printr")
    assert ran.returncode == 2 and "printr" in ran.stderr


def test_the_command_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^\| `kiosk doctor[ `]", readme, re.M)


# --- the common faults -----------------------------------------------------------------------
def fails_alone(ran: Ran, name: str) -> tuple[str, str]:
    """The fault's own line (result, fix): it fails, exit 1, and no unrelated check fails."""
    found = lines_of(ran)
    assert ran.returncode == 1, ran.stdout
    assert found[name][0] == "FAIL", ran.stdout
    assert failing(ran) == {name}, ran.stdout
    assert found[name][2], "a failure comes with its fix"
    return found[name][1], found[name][2]


def test_printer_not_answering(machine):
    machine.store.printer.set_state(silent=True)  # the port opens; nothing answers
    result, fix = fails_alone(machine.doctor(), "printer")
    assert "does not answer its status request (DLE EOT)" in result
    assert "switch the printer on" in fix and "printer.baudrate" in fix


def test_printer_gone(machine):
    # Named as a store names it, by a /dev/serial/by-id link, which udev removes when the
    # USB adapter is unplugged. (The bare /dev/pts/N closed was flaky: another test
    # process on the machine could get the same pty number and answer.)
    port = machine.data_dir.parent / "serial-by-id" / "usb-Printer_POS-80-if00"
    port.symlink_to(machine.store.printer.port)
    machine.write_config(printer={"port": str(port)})
    machine.store.printer.close()  # the pty is gone, as an unplugged USB adapter
    port.unlink()
    result, fix = fails_alone(machine.doctor(), "printer")
    assert f"{port} does not open" in result
    assert "/dev/serial/by-id/" in fix


def test_printer_held_by_the_running_kiosk_is_a_warning(machine):
    """The doctor run beside a running kiosk: the print thread holds the port (flock), so
    the doctor does not steal its status replies; it says so and exits 0."""
    from app import bootstrap

    link = bootstrap.build_printer_link(machine.settings, machine.store.printer.port)
    link.open()
    try:
        ran = machine.doctor("--check", "printer")
    finally:
        link.close()
    sev, result, fix = lines_of(ran)["printer"]
    assert sev == "WARN" and ran.returncode == 0, ran.stdout
    assert "in use by another program" in result and "systemctl stop kiosk" in fix


def test_scanner_unplugged(machine):
    machine.scanner.unplug()
    result, fix = fails_alone(machine.doctor(), "scanners")
    assert f"{machine.scanner.link} does not open" in result
    assert "scanner.serial_port" in fix


def test_camera_gone(machine):
    machine.write_config(camera={"source": "opencv", "device": "/dev/video-unplugged"})
    result, fix = fails_alone(machine.doctor(), "camera")
    assert "does not open" in result and "/dev/video-unplugged" in result
    assert "/dev/v4l/by-id/" in fix


def test_payment_provider_down(machine):
    machine.store.pay.stop()
    ran = machine.doctor()
    result, fix = fails_alone(ran, "payment")
    assert "does not answer" in result
    assert "payment.options.base_url" in fix
    assert lines_of(ran)["clock offset"][0] == "WARN"  # not measured, not guessed


def test_payment_credentials_rejected(machine):
    machine.write_config(payment={"options": {"base_url": machine.store.pay_url,
                                              "secret": "not-the-kiosk-secret"}})
    result, fix = fails_alone(machine.doctor(), "payment")
    assert "credentials not accepted" in result
    assert "401" in result
    assert fix == "check payment.options.secret"


def test_clock_offset_from_the_providers_date_header(machine):
    # The provider's clock reads 10 minutes later than the kiosk's: the kiosk is behind.
    r = requests.post(f"{machine.store.pay_url}/sim/clock", json={"date_skew_s": 600},
                      timeout=5)
    assert r.ok
    ran = machine.doctor()
    result, fix = fails_alone(ran, "clock offset")
    # The Date header counts whole seconds (RFC 9110): 599 or 600 s, said as measured.
    assert re.search(r"clock is (599|600|601) s behind the payment provider's clock: "
                     r"providers refuse requests more than 300 s off", result), result
    assert "timedatectl set-ntp true" in fix
    assert lines_of(ran)["payment"][0] == "PASS"  # only the Date header was off

    requests.post(f"{machine.store.pay_url}/sim/clock", json={"date_skew_s": -30}, timeout=5)
    ran = machine.doctor("--check", "clock offset")
    assert ran.returncode == 0
    sev, result, _ = lines_of(ran)["clock offset"]
    assert sev == "WARN" and re.search(r"\b(29|30|31) s ahead of", result), result


def test_data_dir_owned_by_another_user(machine):
    other = pwd.getpwuid(65534).pw_name  # nobody: not who owns the data directory
    ran = machine.doctor("--user", other, "--check", "data dir")
    result, fix = fails_alone(ran, "data dir")
    assert f"not the kiosk user {other}" in result
    assert fix == f"sudo chown -R {other}: {machine.data_dir}"


def test_data_dir_open_to_others(machine):
    os.chmod(machine.data_dir, 0o755)
    result, fix = fails_alone(machine.doctor(), "data dir")
    assert "mode 0755" in result and "others can reach the keys" in result
    assert fix == f"chmod 0700 {machine.data_dir}"


def test_damaged_database(machine):
    db = machine.settings.database_path
    with sqlite3.connect(db) as conn:  # every page into the main file, then cut it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    result, fix = fails_alone(machine.doctor(), "database")
    assert "is damaged" in result
    assert "kiosk db restore " + str(machine.data_dir / "backups" / "kiosk-") in fix


def test_database_missing_beside_a_kiosks_key(machine):
    machine.settings.database_path.unlink()
    result, fix = fails_alone(machine.doctor(), "database")
    assert "the kiosk refuses to start" in result and "kiosk db restore" in fix


def test_no_backup_for_too_long_warns_and_exits_0(machine):
    for backup in (machine.data_dir / "backups").glob("kiosk-*.db"):
        old = time.time() - 3 * 24 * 3600  # three days; kiosk.backup_every_h is 24
        os.utime(backup, (old, old))
    ran = machine.doctor()
    sev, result, fix = lines_of(ran)["backups"]
    assert sev == "WARN" and ran.returncode == 0, ran.stdout
    assert re.search(r"newest backup is 7\d\.\d h old", result), result
    assert fix.startswith("take one now: kiosk db backup")


def test_key_file_readable_by_others(machine):
    key = machine.settings.private_key_path
    os.chmod(key, 0o644)
    result, fix = fails_alone(machine.doctor(), "key exit-pass")
    assert f"{key} has mode 0644: others can read it" == result
    assert fix == f"chmod 0600 {key}"


def test_settings_file_with_a_secret_readable_by_others(machine):
    os.chmod(machine.config, 0o644)
    result, fix = fails_alone(machine.doctor(), "key settings")
    assert "mode 0644" in result and fix == f"chmod 0600 {machine.config}"


def test_no_font_with_chinese_glyphs(machine):
    if not NO_CJK_FONT.is_file():
        pytest.skip(f"needs a font without Chinese glyphs at {NO_CJK_FONT} (fonts-dejavu-core)")
    machine.write_config(ui={"font": str(NO_CJK_FONT)})
    result, fix = fails_alone(machine.doctor(), "font")
    assert "has no glyphs for 扫码购付款谢" in result and "boxes" in result
    assert "fonts-wqy-microhei" in fix


def test_membership_token_refused(machine):
    requests.post(f"{machine.store.backend.url}/sim/mode", json={"token": "rotated"},
                  timeout=5)
    result, fix = fails_alone(machine.doctor("--check", "membership"), "membership")
    assert "refused the kiosk's token (HTTP 401)" in result
    assert "membership.token" in fix


def test_membership_backend_down(machine):
    machine.store.backend.stop()
    result, fix = fails_alone(machine.doctor("--check", "membership"), "membership")
    assert "no answer from http://127.0.0.1:" in result
    assert "membership.base_url" in fix and "kiosk outbox status" in fix


def test_a_hung_check_is_abandoned_not_waited_for():
    """The runner's time box: a check that never returns is a failure after its timeout."""
    import threading

    from app.services.doctor import Check, Severity, run_one

    never = threading.Event()

    def hangs():  # noqa: ANN202
        never.wait()

    result = run_one(Check("printer", hangs, timeout_s=0.3))
    assert not never.is_set()  # it returned while the check still hangs
    assert result.severity is Severity.FAIL and "no answer within 0.3 s" in result.result
    assert result.fix
    never.set()
