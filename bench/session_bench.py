"""Long-session benchmark: resident memory and scan cost over 10,000 scans, headless.

    .venv/bin/python -m bench.session_bench [--scans 10000] [--json PATH]

The lane (the same object the screen drives) takes ``--scans`` typed scans in
sessions of 20, each paid through the payment simulator on 127.0.0.1 with its
receipt queued, as a long day at one lane would. Resident memory (VmRSS) is
read after the first 500 scans (the baseline: warmed up) and at the end; the
scan cost (session write + event in one SQLite transaction) is timed beside a
plain sqlite3 INSERT per scan in the same mode, in the same run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from app import bootstrap  # noqa: E402
from app.config import load_settings  # noqa: E402
from bench.scanning_bench import machine  # noqa: E402
from bench.ui_bench import rss_kib  # noqa: E402
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter  # noqa: E402
from devices.sim.payprovider import PayServer  # noqa: E402

CODES = ["6900000000014", "6900000000045", "6900000001561", "6900000000021", "2100109012343"]


def baseline_insert_ms(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT, payload TEXT)")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (code, payload) VALUES (?, ?)", [CODES[i % 5], "x" * 200])
        conn.execute("COMMIT")
        times.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return times


def run(scans: int) -> dict[str, object]:
    pay = PayServer(0).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(data_dir=Path(tmp), environ={})
            settings.payment.wallets = []
            kiosk = bootstrap.build(settings)
            bootstrap.seed_demo_store(kiosk)
            provider = SimulatorAdapter(pay.url, "lane-01", SIMULATOR_SECRET)
            lane = bootstrap.build_lane(kiosk, provider=provider, receipt_notice=lambda: None)
            lane.boot()
            scan_ms: list[float] = []
            rss_base = 0
            requests.post(f"{pay.url}/sim/script", json={"order": "*", "outcome": "approve"},
                          timeout=5)
            for i in range(scans):
                t0 = time.perf_counter()
                lane.typed_code(CODES[i % len(CODES)])
                scan_ms.append((time.perf_counter() - t0) * 1000)
                if (i + 1) % 20 == 0:
                    lane.pay()
                    for _ in range(50):
                        lane.p.desk.poll(lane.view.payment.out_trade_no)
                        if lane.view.screen.value == "receipt":
                            break
                        time.sleep(0.01)
                    lane.done()
                if i + 1 == 500:
                    rss_base = rss_kib()
            rss_end = rss_kib()
            base = baseline_insert_ms(Path(tmp) / "base.db", min(scans, 3000))
            sales = kiosk.db.execute("SELECT count(*) FROM sales").fetchone()[0]
            kiosk.close()
    finally:
        pay.stop()
    return {"scans": scans, "sales": sales, "rss_after_500_mib": rss_base / 1024,
            "rss_end_mib": rss_end / 1024,
            "scan_ms_p50": statistics.median(scan_ms),
            "scan_ms_p95": sorted(scan_ms)[int(len(scan_ms) * 0.95)],
            "baseline_insert_ms_p50": statistics.median(base)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    r = run(args.scans)
    print(f"Machine: {machine()}")
    print(f"{r['scans']:,} scans in sessions of 20, {r['sales']} sales paid")
    print(f"resident memory: {r['rss_after_500_mib']:.1f} MiB after 500 scans, "
          f"{r['rss_end_mib']:.1f} MiB at the end")
    print(f"scan (cart + event, one transaction): p50 {r['scan_ms_p50']:.2f} ms, "
          f"p95 {r['scan_ms_p95']:.2f} ms; plain sqlite3 insert p50 "
          f"{r['baseline_insert_ms_p50']:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(r))


if __name__ == "__main__":
    main()
