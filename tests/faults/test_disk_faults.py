"""A full or read-only disk (issue 16, fault 5): the kiosk says what is wrong, it never
shows a traceback or a comforting lie.

A read-only data directory is a real read-only bind mount, made in a private mount
namespace (``unshare -rm``) around the ``kiosk`` process only, so the test needs no
privileges and leaves the machine's mounts alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
KIOSK = str(Path(sys.executable).with_name("kiosk"))


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(
    not _namespaces_work(), reason="needs unprivileged user and mount namespaces (unshare -rm)")


def run_read_only(data: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``kiosk <command>`` with ``data`` bind-mounted read-only in a private namespace."""
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
              'touch "$1/.probe" 2>/dev/null && exit 99; shift; exec "$@"')
    env = {**os.environ, "KIOSK_DATA_DIR": str(data)}
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(data), KIOSK,
                           *command], env=env, capture_output=True, text=True, timeout=120)


@needs_unshare
@pytest.mark.parametrize("with_database", [True, False], ids=["existing-kiosk", "new-kiosk"])
def test_a_read_only_data_directory_is_named_without_a_traceback(tmp_path, with_database):
    data = tmp_path / "data"
    data.mkdir()
    if with_database:
        made = subprocess.run([KIOSK, "db", "status"], capture_output=True, text=True,
                              env={**os.environ, "KIOSK_DATA_DIR": str(data)})
        assert made.returncode == 0, made.stderr
    for command in (["db", "status"], ["run"]):  # a tool, and the lane itself
        out = run_read_only(data, *command)
        assert out.returncode == 1, (out.returncode, out.stderr)  # 99: the mount was writable
        assert "Traceback" not in out.stderr
        assert f"the data directory {data} cannot be written" in out.stderr
        assert "read-only" in out.stderr


def run_on_a_small_disk(tmp_path: Path, reserve_mb: int) -> dict[str, object]:
    """``tests/faults/full_disk_lane.py`` with its data directory on a 32 MB tmpfs of its
    own (a private mount namespace), which it fills while the shopper's QR is up."""
    data = tmp_path / "small-disk"
    data.mkdir()
    script = 'mount -t tmpfs -o size=32m tmpfs "$1" && shift && exec "$@"'
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "KIVY_NO_ARGS": "1"}
    out = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(data),
                          sys.executable, "-m", "tests.faults.full_disk_lane", str(data),
                          str(reserve_mb)], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@needs_unshare
def test_a_disk_that_fills_while_the_qr_is_up_still_records_the_paid_sale(tmp_path):
    """The reserve (payment.reserve_mb) is released, the sale written at once, staff
    told; the next shopper is refused until space is back, then the reserve is remade."""
    r = run_on_a_small_disk(tmp_path, reserve_mb=2)
    assert r["reserve_made"] is True and r["filled_bytes"] > 0
    assert "tick_raised" not in r
    assert r["paid_screen"] == "receipt" and r["receipt_order"] == r["order"]
    assert r["exit_pass"] is True
    assert r["sales"] == 1 and r["payment_state"] == ["paid", ""]  # not "paid after gave up"
    assert r["session_state"] == "paid" and r["events"] == ["payment_paid", "session_ended"]
    (alert,) = r["alerts"]
    assert "reserve was used" in alert and "free space now" in alert
    assert r["reserve_after_sale"] is False
    assert r["next_screen"] == "shopping" and r["next_notice"] == "disk_full"
    assert r["next_qr"] is False
    assert r["after_space_screen"] == "pay" and r["after_space_qr"] is True
    assert r["reserve_remade"] is True


@needs_unshare
def test_a_paid_sale_the_full_disk_cannot_take_is_told_truthfully_and_recorded_later(
        tmp_path):
    """No reserve (payment.reserve_mb = 0): the shopper reads that the payment went
    through, with the order number, never an error or "payment failed"; the screen stays
    (no Back, no abandon) and the sale is recorded, with its receipt, once space is back."""
    r = run_on_a_small_disk(tmp_path, reserve_mb=0)
    assert r["paid_screen"] == "error" and r["paid_notice"] == "paid_not_recorded"
    assert r["paid_notice_values"] == {"order_id": r["order"]}
    assert r["sales"] == 0  # the disk really took nothing
    assert r["after_wait_screen"] == "error" and r["after_wait_notice"] == "paid_not_recorded"
    assert r["freed_screen"] == "receipt" and r["freed_receipt_order"] == r["order"]
    assert r["freed_sales"] == 1 and r["freed_payment_state"] == ["paid", ""]


@needs_unshare
def test_restore_onto_a_read_only_data_directory_is_named_without_a_traceback(tmp_path):
    """``kiosk db restore`` is the command staff type on a bad day: a read-only data
    directory is named like every other command's, not an ``OSError`` traceback from
    taking the data directory's lock."""
    data = tmp_path / "data"
    env = {**os.environ, "KIOSK_DATA_DIR": str(data)}
    backup = tmp_path / "backup.db"
    made = subprocess.run([KIOSK, "db", "backup", str(backup)], capture_output=True,
                          text=True, env=env)
    assert made.returncode == 0, made.stderr
    out = run_read_only(data, "db", "restore", str(backup))
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    assert f"the data directory {data} cannot be written" in out.stderr
    assert "read-only" in out.stderr


def run_on_a_full_disk(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``kiosk <command>`` on a copy of a working data directory, on a 4 MB tmpfs filled
    to the last byte (in a private mount namespace, around this process only)."""
    data = tmp_path / "data"
    env = {**os.environ, "KIOSK_DATA_DIR": str(data)}
    made = subprocess.run([KIOSK, "db", "status"], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr
    disk = tmp_path / "disk"
    disk.mkdir()
    script = ('mount -t tmpfs -o size=4m tmpfs "$1" && cp -a "$2" "$1/data" && '
              '{ dd if=/dev/zero of="$1/fill" bs=4k 2>/dev/null; true; } && '
              'KIOSK_DATA_DIR="$1/data" && export KIOSK_DATA_DIR && shift 2 && exec "$@"')
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(disk), str(data),
                           KIOSK, *command], env=env, capture_output=True, text=True,
                          timeout=120)


@needs_unshare
@pytest.mark.parametrize("command", [["db", "status"], ["run"]], ids=["tool", "lane"])
def test_a_full_disk_at_start_is_named_not_taken_for_a_damaged_database(tmp_path, command):
    """A disk full at start is the disk, not the database: before, SQLite's "disk I/O
    error" (it cannot size its ``-shm`` file) was reported as a database that "cannot be
    read" with the advice to restore a backup, which throws away a sound database's
    newest sales; ``kiosk run`` died in a traceback writing its lock file."""
    out = run_on_a_full_disk(tmp_path, *command)
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    assert "cannot be written" in out.stderr and "the disk is full" in out.stderr
    assert "restore" not in out.stderr
