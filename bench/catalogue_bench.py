"""Catalogue benchmark: 1M-row CSV import and lookup latency, each beside plain sqlite3.

    .venv/bin/python -m bench.catalogue_bench [--rows 1000000] [--repeat 3]

Baselines, measured in the same run on the same file and schema:
* import: ``csv.reader`` straight into ``executemany`` (no validation) in one
  transaction, with the same pragmas (WAL, synchronous=FULL);
* lookup: a primary-key ``SELECT`` on the same table, row fetched, no object built.
Runs alternate baseline/kiosk so machine noise hits both alike; the table shows
medians and the kiosk/baseline ratio. Targets (issue 2): import within 2x,
lookup p99 within 2x.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.domain.gtin import check_digit  # noqa: E402
from app.services.catalogue import (  # noqa: E402
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    import_catalogue,
)
from app.storage.catalogue_repo import SqliteCatalogue  # noqa: E402
from app.storage.db import open_database  # noqa: E402
from app.storage.migrations import PRODUCTS_COLUMNS  # noqa: E402

HEADER = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]  # the catalogue file format
TAX = frozenset({"standard", "food", "zero"})


def gtin13(i: int) -> str:
    payload = f"69{i:010d}"
    return payload + str(check_digit(payload))


def make_csv(path: Path, rows: int) -> list[str]:
    rnd = random.Random(42)
    codes = []
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for i in range(rows):
            code = gtin13(i)
            codes.append(code.zfill(14))
            price = rnd.randint(100, 99999)
            member = f"{(price * 9 // 10) / 100:.2f}" if i % 7 == 0 else ""
            w.writerow(
                [
                    code,
                    f"商品{i}号 500g",
                    f"Product {i} 500g",
                    f"{price // 100}.{price % 100:02d}",
                    member,
                    "each",
                    "food" if i % 3 else "standard",
                    "18" if i % 97 == 0 else "0",
                    "6" if i % 89 == 0 else "",
                    f"dept{i % 20}",
                    "",
                ]
            )
    return codes


def baseline_import(csv_path: Path, db_path: Path) -> float:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"CREATE TABLE products ({PRODUCTS_COLUMNS}) WITHOUT ROWID")
    start = time.perf_counter()
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?,?,?)", reader)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def kiosk_import(csv_path: Path, db_path: Path) -> float:
    db = open_database(db_path)
    catalogue = SqliteCatalogue(db, "CNY")
    start = time.perf_counter()
    import_catalogue(catalogue, csv_path, tax_classes=TAX, replace=True)
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lookups(db_path: Path, keys: list[str]) -> dict[str, list[float]]:
    db = open_database(db_path)
    catalogue = SqliteCatalogue(db, "CNY")
    conn = sqlite3.connect(db_path)
    sql = "SELECT * FROM products WHERE code = ?"
    clock = time.perf_counter_ns
    base: list[float] = []
    ours: list[float] = []
    for key in keys:  # interleaved, so both see the same cache and noise
        t0 = clock()
        conn.execute(sql, (key,)).fetchone()
        t1 = clock()
        product = catalogue.get(key)
        t2 = clock()
        assert product is not None
        base.append((t1 - t0) / 1000)
        ours.append((t2 - t1) / 1000)
    return {"baseline": base, "kiosk": ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=50_000)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        csv_path = tmpdir / "catalogue.csv"
        print(f"generating {args.rows:,} rows ...", file=sys.stderr)
        codes = make_csv(csv_path, args.rows)
        base_times, kiosk_times = [], []
        for n in range(args.repeat):
            base_times.append(baseline_import(csv_path, tmpdir / f"base{n}.db"))
            kiosk_times.append(kiosk_import(csv_path, tmpdir / f"kiosk{n}.db"))
            print(
                f"run {n + 1}: baseline {base_times[-1]:.2f}s kiosk {kiosk_times[-1]:.2f}s",
                file=sys.stderr,
            )
            if n < args.repeat - 1:
                (tmpdir / f"base{n}.db").unlink()
        keys = random.Random(7).choices(codes, k=args.lookups)
        lat = lookups(tmpdir / f"kiosk{args.repeat - 1}.db", keys)
    bi, ki = statistics.median(base_times), statistics.median(kiosk_times)
    b50, b99 = percentile(lat["baseline"], 0.5), percentile(lat["baseline"], 0.99)
    k50, k99 = percentile(lat["kiosk"], 0.5), percentile(lat["kiosk"], 0.99)
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"{args.rows:,} rows, median of {args.repeat} runs; {args.lookups:,} lookups\n")
    print("| measure | kiosk | plain sqlite3 baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| catalogue import ({args.rows:,} rows, validated) | {ki:.2f} s | {bi:.2f} s | "
        f"{ki / bi:.2f}x | within 2x |"
    )
    print(f"| lookup p50 | {k50:.1f} µs | {b50:.1f} µs | {k50 / b50:.2f}x | |")
    print(f"| lookup p99 | {k99:.1f} µs | {b99:.1f} µs | {k99 / b99:.2f}x | within 2x |")
    if args.json:
        args.json.write_text(json.dumps({
            "rows": args.rows, "import_s": ki, "import_baseline_s": bi,
            "lookup_p50_us": k50, "lookup_p50_baseline_us": b50,
            "lookup_p99_us": k99, "lookup_p99_baseline_us": b99}))


if __name__ == "__main__":
    main()
