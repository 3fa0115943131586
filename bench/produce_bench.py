"""The "Find produce" grid's query on a million-row catalogue, beside a full-scan baseline.

    .venv/bin/python -m bench.produce_bench [--rows 1000000] [--plu 1500] [--queries 300]

Builds a catalogue of ``--rows`` barcoded products plus ``--plu`` PLU items (keys
``PLU:nnnn``) over several departments, in the kiosk's own schema (a WITHOUT
ROWID table keyed by code), then times what one grid costs a shopper's tap:

* kiosk: ``app.services.catalogue.produce_grid`` (departments, then items of a
  department and/or a name search): two range seeks of the primary key over the
  PLU items' key range (``catalogue_repo.PLU_RANGE``);
* baseline: the same two answers asked the obvious way, ``code LIKE 'PLU:%'``,
  which SQLite cannot serve from the key (LIKE is case-insensitive), so it reads
  the whole table.

Both answer the same queries, interleaved (kiosk, baseline, kiosk...), and their
answers are compared. Figures: p50 and p99 per grid, in milliseconds, and the
ratio. No target is asserted here; the tests check the plan stays a seek.
"""

from __future__ import annotations

import argparse
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
from app.services.catalogue import GRID_LIMIT, produce_grid  # noqa: E402
from app.storage.catalogue_repo import COLUMNS, SqliteCatalogue  # noqa: E402
from app.storage.db import open_database  # noqa: E402

DEPARTMENTS = ("produce", "bakery", "deli", "dairy", "drinks", "snacks", "grocery", "frozen")
PLU_DEPARTMENTS = ("produce", "bakery", "deli")
WORDS = [("苹果", "Apple"), ("香蕉", "Banana"), ("牛油果", "Avocado"), ("柠檬", "Lemon"),
         ("面包", "Bun"), ("玉米", "Corn"), ("葡萄", "Grape"), ("坚果", "Nut"),
         ("西红柿", "Tomato"), ("洋葱", "Onion")]
SEARCHES = ["", "", "avo", "LEMON", "bun", "苹果", "面包", "grape", "x"]


def build(path: Path, rows: int, plus: int) -> None:
    db = open_database(path)
    rnd = random.Random(19)

    def barcoded():
        for i in range(rows):
            payload = f"69{i:010d}"
            zh, en = WORDS[i % len(WORDS)]
            yield ("0" + payload + str(check_digit(payload)), f"{zh}{i}", f"{en} {i}",
                   rnd.randint(100, 9999), None, "each", "food", 0, None,
                   DEPARTMENTS[i % len(DEPARTMENTS)], "")

    def plu():
        for i in range(plus):
            zh, en = WORDS[i % len(WORDS)]
            yield (f"PLU:{3000 + i}", f"{zh}{i}", f"{en} {i}", rnd.randint(100, 9999), None,
                   "each" if i % 3 else "kg", "food", 0, None,
                   PLU_DEPARTMENTS[i % len(PLU_DEPARTMENTS)], f"p/{3000 + i}.png")

    marks = ", ".join("?" * len(COLUMNS))
    conn = db.conn
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO products VALUES ({marks})", barcoded())
    conn.executemany(f"INSERT INTO products VALUES ({marks})", plu())
    conn.execute("COMMIT")
    conn.close()


def baseline(conn: sqlite3.Connection, department: str, search: str) -> tuple[list, list]:
    departments = conn.execute(
        "SELECT department, count(*) FROM products WHERE code LIKE 'PLU:%' "
        "GROUP BY department ORDER BY department").fetchall()
    where, args = "code LIKE 'PLU:%'", []
    if department:
        where += " AND department = ?"
        args.append(department)
    if search:
        where += " AND (name_zh LIKE ? OR name_en LIKE ?)"
        args += [f"%{search}%", f"%{search}%"]
    items = conn.execute(
        f"SELECT code FROM products WHERE {where} ORDER BY name_en COLLATE NOCASE, code "
        "LIMIT ?", (*args, GRID_LIMIT + 1)).fetchall()
    return departments, [c for (c,) in items][:GRID_LIMIT]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--plu", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kiosk.db"
        started = time.monotonic()
        build(path, args.rows, args.plu)
        print(f"built {args.rows:,} + {args.plu:,} PLU rows in "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)
        db = open_database(path, migrate=False)
        catalogue = SqliteCatalogue(db, "CNY")
        plain = sqlite3.connect(path)
        rnd = random.Random(7)
        times: dict[str, list[float]] = {"kiosk": [], "baseline": []}
        for _ in range(args.queries):
            department = rnd.choice(("", *PLU_DEPARTMENTS))
            search = rnd.choice(SEARCHES)
            t0 = time.perf_counter()
            grid = produce_grid(catalogue, department=department, search=search)
            t1 = time.perf_counter()
            departments, codes = baseline(plain, department, search)
            t2 = time.perf_counter()
            times["kiosk"].append((t1 - t0) * 1000)
            times["baseline"].append((t2 - t1) * 1000)
            if list(grid.departments) != departments or \
                    [p.code for p in grid.items] != codes:
                raise SystemExit(f"answers differ for {department!r} {search!r}")
        plain.close()
        db.conn.close()
    figures = {
        name: {"p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99),
               "mean_ms": statistics.fmean(v)} for name, v in times.items()}
    k, b = figures["kiosk"], figures["baseline"]
    print(f"{args.rows:,} barcoded + {args.plu:,} PLU rows; {args.queries} grids "
          f"(departments + items), interleaved; {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}\n")
    print("| grid query | kiosk (key range seek) | baseline (full scan) | ratio |")
    print("|---|---|---|---|")
    for q in ("p50_ms", "p99_ms"):
        print(f"| {q[:3]} | {k[q]:.2f} ms | {b[q]:.1f} ms | {k[q] / b[q]:.4f}x |")
    if args.json:
        args.json.write_text(json.dumps({"produce_grid": figures}, indent=2))


if __name__ == "__main__":
    main()
