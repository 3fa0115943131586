"""A full or read-only disk (issue 16, fault 5): the kiosk says what is wrong, it never
shows a traceback or a comforting lie.

A read-only data directory is a real read-only bind mount, made in a private mount
namespace (``unshare -rm``) around the ``kiosk`` process only, so the test needs no
privileges and leaves the machine's mounts alone.
"""

from __future__ import annotations

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
