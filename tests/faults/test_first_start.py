"""Several commands started at once on a new data directory (issue 16, fault 9).

The first start creates the database and runs every migration. Five commands
started together on an empty data directory must all succeed (none may fail with
``database is locked``), and each migration must be applied exactly once.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.storage.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]
KIOSK = [sys.executable, "-m", "app.cli"]


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_five_commands_started_together_on_a_new_data_directory_all_succeed(
        tmp_path: Path, attempt: int) -> None:
    data_dir = tmp_path / f"data{attempt}"
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    # Each waits for a go file, so all five reach the first migration together.
    go = tmp_path / "go"
    start = ("import pathlib, runpy, sys, time\n"
             f"go = pathlib.Path({str(go)!r})\n"
             "while not go.exists():\n    time.sleep(0.001)\n"
             "sys.argv = ['kiosk', 'db', 'status']\n"
             "runpy.run_module('app.cli', run_name='__main__')\n")
    procs = [subprocess.Popen([sys.executable, "-c", start], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(5)]
    go.touch()
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for code, out, err in results:
        assert code == 0, err
        assert "database is locked" not in err
        assert "migrations" in out
    with sqlite3.connect(data_dir / "kiosk.db") as conn:
        names = [n for (n,) in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'kiosk'")]
    assert sorted(names) == sorted(m.name for m in MIGRATIONS._migrations)  # each once
