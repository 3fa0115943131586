"""Rolling-backup benchmark: how long a backup takes, and whether the lane waits for it.

    .venv/bin/python -m bench.backup_bench [--rows 1000000] [--repeat 3]

For the demo store's database and for one holding a ROWS-row catalogue:
* backup: ``app.storage.backups.take_backup`` (SQLite's online backup on its own
  connection, the copy checked with quick_check), beside the baseline of a plain
  ``shutil.copyfile`` of the same (checkpointed) file in the same run;
* the lane's writes: a writer thread doing one small write transaction after
  another (as the lane's sales do) on its own connection; the slowest write while a
  backup runs, beside the slowest over as many writes with no backup running.
Medians of ``--repeat`` runs (monotonic clock). Target: the lane's slowest write
during a backup within a few times its slowest without one (WAL: the copy reads a
snapshot and never takes the write lock).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import bootstrap  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.storage.backups import take_backup  # noqa: E402
from bench.catalogue_bench import kiosk_import, make_csv  # noqa: E402


def writes_during(db_path: Path, action: Callable[[], object]) -> tuple[float, int]:
    """Run ``action()`` while a writer commits small transactions; (slowest write s, n)."""
    stop = threading.Event()
    slowest: list[float] = [0.0, 0.0]

    def writer() -> None:
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (x)")
        while not stop.is_set():
            t0 = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_writes VALUES (?)", [t0])
            conn.execute("COMMIT")
            slowest[0] = max(slowest[0], time.monotonic() - t0)
            slowest[1] += 1
            time.sleep(0.005)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        action()
    finally:
        stop.set()
        thread.join()
    return slowest[0], int(slowest[1])


def measure(name: str, db_path: Path, work: Path, repeat: int) -> dict[str, float]:
    backups, copies, during, idle = [], [], [], []
    for n in range(repeat):
        with sqlite3.connect(db_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        t0 = time.monotonic()
        shutil.copyfile(db_path, work / f"copy-{n}.db")
        copies.append(time.monotonic() - t0)
        directory = work / f"backups-{name}-{n}"
        timing: list[float] = []

        def backup(directory: Path = directory, timing: list[float] = timing) -> None:
            t = time.monotonic()
            take_backup(db_path, directory, datetime.now().astimezone(), 7)
            timing.append(time.monotonic() - t)

        slow, count = writes_during(db_path, backup)
        backups.append(timing[0])
        during.append(slow)
        idle.append(writes_during(db_path, partial(time.sleep, timing[0]))[0])
        print(f"{name}: backup {timing[0]:.3f} s, copy {copies[-1]:.3f} s, slowest write "
              f"{slow * 1000:.1f} ms during ({count} writes), {idle[-1] * 1000:.1f} ms without",
              file=sys.stderr)
    return {"size_mb": db_path.stat().st_size / 1e6,
            "backup_s": statistics.median(backups), "copyfile_s": statistics.median(copies),
            "slowest_write_during_ms": statistics.median(during) * 1000,
            "slowest_write_without_ms": statistics.median(idle) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo = load_settings(data_dir=work / "demo", environ={})
        kiosk = bootstrap.build(demo)
        bootstrap.seed_demo_store(kiosk)
        kiosk.close()
        results["demo"] = measure("demo", demo.database_path, work, args.repeat)
        big = load_settings(data_dir=work / "big", environ={})
        bootstrap.build(big).close()
        print(f"generating and importing {args.rows:,} rows ...", file=sys.stderr)
        make_csv(work / "rows.csv", args.rows)
        kiosk_import(work / "rows.csv", big.database_path)
        results[f"catalogue_{args.rows}"] = measure("big", big.database_path, work,
                                                    args.repeat)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
