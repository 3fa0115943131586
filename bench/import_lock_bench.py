"""Import-lock benchmark: how long a 1M-row catalogue import makes the lane's writes wait.

    .venv/bin/python -m bench.import_lock_bench [--rows 1000000]

On a database that already holds a catalogue of ``--rows`` products, a
``--replace`` import of a file of as many rows runs twice in the same run: the old
way (baseline: the whole load in one write transaction, as before issue 16 fault 2)
and the kiosk's way (``SqliteCatalogue.load``: short batches beside the live table,
one short switch). Meanwhile a second process writes as the lane does (one small
``BEGIN IMMEDIATE``/``INSERT``/``COMMIT`` every ~10 ms, synchronous=FULL, busy
timeout 60 s so it waits instead of failing) and records how long each write took
from ``BEGIN`` to ``COMMIT``: the longest is the longest write-lock hold it met.
An idle run (no import) gives the floor. Also times the start-up ``PRAGMA
quick_check`` (``open_database``) on the 1M-row database.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services.catalogue import import_catalogue  # noqa: E402
from app.storage.catalogue_repo import ProductRow, SqliteCatalogue  # noqa: E402
from app.storage.db import integrity_problems, open_database, write_transaction  # noqa: E402
from app.storage.migrations import create_products_table  # noqa: E402
from bench.catalogue_bench import TAX, make_csv, percentile  # noqa: E402

PROBE_EVERY_S = 0.010


class SingleTransactionCatalogue(SqliteCatalogue):
    """The load as it was before issue 16 fault 2: everything in one write transaction."""

    def load(self, rows: Iterable[ProductRow], *, replace: bool, meta: dict[str, str]) -> int:
        with write_transaction(self._db):
            self._conn.execute("DROP TABLE IF EXISTS products_next")
            create_products_table(self._db, "products_next")
            cursor = self._conn.executemany(
                "INSERT INTO products_next VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._conn.execute("DROP TABLE products")
            self._conn.execute("ALTER TABLE products_next RENAME TO products")
            self._conn.executemany(
                "INSERT OR REPLACE INTO catalogue_meta (key, value) VALUES (?, ?)",
                list(meta.items()))
        return int(cursor.rowcount)


def probe(db_path: str, ready: Any, stop: Any, out: Any) -> None:
    """The lane's writes: one row every PROBE_EVERY_S; sends the list of waits (s)."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
    waits: list[float] = []
    ready.set()
    while not stop.is_set():
        t0 = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO probe VALUES (1)")
        conn.execute("COMMIT")
        waits.append(time.monotonic() - t0)
        time.sleep(PROBE_EVERY_S)
    conn.close()
    out.send(waits)


def run(db_path: Path, work: Any) -> tuple[float, list[float]]:
    """Run ``work()`` while the probe writes; returns (seconds work took, probe waits)."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    receive, send = ctx.Pipe(duplex=False)
    prober = ctx.Process(target=probe, args=(str(db_path), ready, stop, send))
    prober.start()
    ready.wait()
    time.sleep(0.2)
    start = time.monotonic()
    work()
    elapsed = time.monotonic() - start
    time.sleep(0.2)
    stop.set()
    waits: list[float] = receive.recv()
    prober.join()
    return elapsed, waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        csv_path = tmpdir / "catalogue.csv"
        print(f"generating {args.rows:,} rows ...", file=sys.stderr)
        make_csv(csv_path, args.rows)
        db_path = tmpdir / "kiosk.db"
        db = open_database(db_path)
        import_catalogue(SqliteCatalogue(db, "CNY"), csv_path, tax_classes=TAX, replace=True)
        db.close()
        t0 = time.monotonic()
        db = open_database(db_path)  # the kiosk's start-up open, quick_check included
        open_s = time.monotonic() - t0
        t0 = time.monotonic()
        assert integrity_problems(db) == []
        check_s = time.monotonic() - t0
        size_mb = db_path.stat().st_size / 1e6
        results: dict[str, tuple[float, list[float]]] = {}
        results["idle (no import)"] = run(db_path, lambda: time.sleep(3))
        for name, cls in (("old: one transaction", SingleTransactionCatalogue),
                          ("kiosk: batches + switch", SqliteCatalogue)):
            catalogue = cls(db, "CNY")
            print(f"{name} ...", file=sys.stderr)
            results[name] = run(db_path, lambda c=catalogue: import_catalogue(  # type: ignore[misc]
                c, csv_path, tax_classes=TAX, replace=True))
            assert catalogue.count() == args.rows
        db.close()
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"{args.rows:,}-row --replace import over a {args.rows:,}-row catalogue; the lane's "
          f"write every {PROBE_EVERY_S * 1000:.0f} ms\n")
    print("| import | import time | lane write wait: median | p99 | max | writes |")
    print("|---|---|---|---|---|---|")
    for name, (elapsed, waits) in results.items():
        shown = "" if name.startswith("idle") else f"{elapsed:.2f} s"
        print(f"| {name} | {shown} | {statistics.median(waits) * 1000:.1f} ms | "
              f"{percentile(waits, 0.99) * 1000:.1f} ms | {max(waits) * 1000:.1f} ms | "
              f"{len(waits)} |")
    old = results["old: one transaction"][0]
    new = results["kiosk: batches + switch"][0]
    print(f"\nimport time kiosk/old: {new / old:.2f}x")
    print(f"start-up quick_check on the {size_mb:.0f} MB database: {check_s:.2f} s "
          f"(whole open_database: {open_s:.2f} s)")


if __name__ == "__main__":
    main()
