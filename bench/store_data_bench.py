"""Store data benchmark (issue 22): a head-office catalogue version on the lane, beside
``kiosk catalog import --replace`` of the same catalogue in the same run.

    .venv/bin/python -m bench.store_data_bench [--rows 1000000] [--changed 0.01] [--json F]

A catalogue of ``--rows`` products is version 1; version 2 changes the price of
``--changed`` of them. Measured on real SQLite files in a temporary directory:

- payload sizes: version 2's delta beside its full snapshot (gzip JSON Lines);
- the lane taking version 2 as a **delta** (verify the signature, check size and SHA-256,
  decode and check every row, stage in short transactions: ``StoreData.stage``) and
  applying it (``apply_due``: one transaction, the time the write lock is held);
- the lane taking version 2 as a **full** snapshot (stage builds the side table; apply is
  a table switch);
- the baseline: ``import_catalogue(--replace)`` of version 2 as a CSV file, the way a lane
  took a new price list before issue 22 (validate, load in short batches, switch).

Downloading is not included (the sync thread's part; over a LAN it is the payload size
over the link). Figures are seconds on the monotonic clock.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import bootstrap  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.domain.clock import FixedClock  # noqa: E402
from app.services.catalogue import import_catalogue  # noqa: E402
from app.services.store_data import StoreData  # noqa: E402
from bench.catalogue_bench import TAX  # noqa: E402
from tests.store_versions import (  # noqa: E402
    STORE,
    gtin13,
    make_version,
    new_key,
    public_b64,
    utc,
)

LATER = utc("2030-01-01T00:00:00+00:00")


def rows(n: int, changed: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    step = max(1, round(1 / changed)) if changed > 0 else n + 1
    v1 = [("0" + gtin13(i), f"商品{i}号", f"Product {i}", 100 + i % 9000, None, "each",
           "food", 0, None, "grocery", "") for i in range(n)]
    v2 = [(*r[:3], r[3] + 1, *r[4:]) if i % step == 0 else r for i, r in enumerate(v1)]
    return v1, v2


def lane(data: Path, key: Any) -> tuple[Any, StoreData]:
    clock = FixedClock(utc("2026-11-25T10:00:00+08:00"))
    kiosk = bootstrap.build(load_settings(data_dir=data, environ={}), clock)
    store = StoreData(kiosk.db, kiosk.catalogue, store_id=STORE, currency="CNY",
                      public_key=public_b64(key), keys_file=None, lane_id="lane-01",
                      stale_after_s=60, clock=clock, audit=None)
    return kiosk, store


def timed(fn: Any) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    key = new_key()
    v1rows, v2rows = rows(args.rows, args.changed)
    v1 = make_version(key, rows=v1rows, version=1)
    v2 = make_version(key, rows=v2rows, previous=v1rows, version=2)
    assert v2.delta is not None
    out: dict[str, Any] = {"rows": args.rows, "changed": args.changed,
                           "full_bytes": len(v2.full), "delta_bytes": len(v2.delta),
                           "machine": f"{platform.machine()} {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("delta", "full"):
            kiosk, store = lane(Path(tmp) / fmt, key)
            store.stage(v1.manifest_raw, v1.signature, "full", v1.full)
            store.apply_due(LATER)
            store.tidy()
            out[f"{fmt}_stage_s"] = timed(lambda s=store, f=fmt: s.stage(
                v2.manifest_raw, v2.signature, f, v2.payload(f)))
            out[f"{fmt}_apply_s"] = timed(lambda s=store: s.apply_due(LATER))
            out[f"{fmt}_tidy_s"] = timed(store.tidy)
            kiosk.close()
        csv_path = Path(tmp) / "v2.csv"
        with csv_path.open("w", encoding="utf-8") as f:
            f.write("code,name_zh,name_en,price,member_price,unit,tax_class,min_age,"
                    "quantity_limit,department,image\n")
            for r in v2rows:
                f.write(f"{r[0][1:]},{r[1]},{r[2]},{r[3] // 100}.{r[3] % 100:02d},,each,food,"
                        "0,,grocery,\n")
        kiosk, _store = lane(Path(tmp) / "import", key)
        import_catalogue(kiosk.catalogue, csv_path, tax_classes=TAX, replace=True)
        out["import_replace_s"] = timed(lambda: import_catalogue(
            kiosk.catalogue, csv_path, tax_classes=TAX, replace=True))
        kiosk.close()
    print(f"{args.rows:,} products, {args.changed:.0%} changed ({out['machine']})")
    print(f"  payload: full {out['full_bytes']:,} B, delta {out['delta_bytes']:,} B "
          f"({out['delta_bytes'] / out['full_bytes']:.1%} of the full)")
    for fmt in ("delta", "full"):
        print(f"  as {fmt}: verify+stage {out[f'{fmt}_stage_s']:.2f} s, apply (one "
              f"transaction) {out[f'{fmt}_apply_s']:.3f} s, tidy {out[f'{fmt}_tidy_s']:.2f} s")
    print(f"  baseline kiosk catalog import --replace: {out['import_replace_s']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
