"""Every benchmark in one command, and one table: ``.venv/bin/python -m bench [--quick]``.

Runs each benchmark in bench/ as its own process (so one's memory and caches do
not colour another's), each writing its figures as JSON, then prints one
Markdown table: every figure beside the baseline measured in the same run, the
ratio, the target, and the machine. The README's benchmark table comes from
it. The screen benchmark needs a display: without $DISPLAY it is run under
``xvfb-run``. ``--quick`` runs smaller sizes (minutes, not a quarter hour).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench(name: str, args: list[str], out: Path, display: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)]
    if display and not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            print(f"{name}: skipped, no display and no xvfb-run", file=sys.stderr)
            return {}
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *command]
    started = time.monotonic()
    print(f"running bench.{name} {' '.join(args)} ...", file=sys.stderr, flush=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    print(f"  {time.monotonic() - started:.0f} s", file=sys.stderr)
    if result.returncode != 0 or not out.exists():
        print(f"{name} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
        return {}
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(r: dict[str, dict[str, Any]]) -> str:
    rows = ["| measure | kiosk | baseline (same run) | ratio | target |", "|---|---|---|---|---|"]
    s = r.get("scanning", {})
    lat = s.get("latency", {}).get("combined")
    if lat:
        for key in ("p50 ms", "p95 ms"):
            rows.append(f"| scan-to-cart {key[:3]}, 30 fps camera | {lat[key]} ms | zxing-cpp "
                        f"alone {s['latency']['zxing'][key]} ms | "
                        f"{ratio(lat[key], s['latency']['zxing'][key])} | p95 <= 100 ms |")
    photos = s.get("photos")
    if photos:
        c, z, b = photos["combined"], photos["zxing"], photos["zbar"]
        n = c["images"]
        read = (len(c["read"]) if isinstance(c["read"], list) else c["read"])
        zread = (len(z["read"]) if isinstance(z["read"], list) else z["read"])
        bread = (len(b["read"]) if isinstance(b["read"], list) else b["read"])
        rows.append(f"| photo set read, of {n} | {read} | zxing-cpp {zread}, pyzbar {bread} | "
                    f"{ratio(read, zread)} | >= 285 |")
        rows.append(f"| photo set median ms | {c['median_ms']} | zxing-cpp {z['median_ms']}, "
                    f"pyzbar {b['median_ms']} | {ratio(c['median_ms'], z['median_ms'])} | |")
    elif s:
        rows.append("| photo set | not run: no ../shared/samples/barcodes | | | >= 285 |")
    for name, frame in s.get("frames", {}).items():
        rows.append(f"| {name} 1280x720 frame | {frame['combined ms']} ms "
                    f"({frame['combined core']:.0%} of a core at 30 fps) | zxing-cpp whole frame "
                    f"{frame['zxing whole frame ms']} ms | "
                    f"{ratio(frame['combined ms'], frame['zxing whole frame ms'])} | "
                    f"still <= 6 ms, changing <= 25% core |")
    c = r.get("catalogue")
    if c:
        rows.append(f"| catalogue import, {c['rows']:,} rows | {c['import_s']:.2f} s | plain "
                    f"sqlite3 {c['import_baseline_s']:.2f} s | "
                    f"{ratio(c['import_s'], c['import_baseline_s'])} | within 2x |")
        rows.append(f"| catalogue lookup p99 | {c['lookup_p99_us']:.1f} µs | plain sqlite3 "
                    f"{c['lookup_p99_baseline_us']:.1f} µs | "
                    f"{ratio(c['lookup_p99_us'], c['lookup_p99_baseline_us'])} | within 2x |")
    e = r.get("events")
    if e:
        rows.append(f"| event enqueue, durable | {e['enqueue_per_s']:,.0f}/s | plain sqlite3 "
                    f"{e['enqueue_baseline_per_s']:,.0f}/s | "
                    f"{ratio(e['enqueue_baseline_per_s'], e['enqueue_per_s'])} slower | "
                    f"within 2x |")
        rows.append(f"| drain {e['drain_events']:,} events | {e['drain_s']:.1f} s | plain POSTs "
                    f"{e['drain_baseline_s']:.1f} s | {ratio(e['drain_s'], e['drain_baseline_s'])}"
                    f" | within 1.5x |")
    u = r.get("ui")
    if u:
        st = u["startup"]
        rows.append(f"| start-up to the attract screen, median | {st['kiosk_s']:.2f} s "
                    f"(max {st['kiosk_max_s']:.2f}) | bare Kivy app {st['bare_s']:.2f} s | "
                    f"{ratio(st['kiosk_s'], st['bare_s'])} | <= 3 s |")
    m = r.get("session")
    if m:
        rows.append(f"| resident memory, {m['scans']:,}-scan session ({m['sales']} sales) | "
                    f"{m['rss_end_mib']:.1f} MiB | after 500 scans {m['rss_after_500_mib']:.1f} "
                    f"MiB | {ratio(m['rss_end_mib'], m['rss_after_500_mib'])} | flat |")
        rows.append(f"| scan, cart + event in one transaction, p50 | {m['scan_ms_p50']:.2f} ms | "
                    f"plain sqlite3 insert {m['baseline_insert_ms_p50']:.2f} ms | "
                    f"{ratio(m['scan_ms_p50'], m['baseline_insert_ms_p50'])} | |")
    h = r.get("hq")
    if h:
        a, b = h["ingest"], h["catch_up"]
        rows.append(f"| head-office ingest, R3 on 3 loopback nodes, one service process | "
                    f"{a['service_per_s']:,.0f} events/s | nats-py alone "
                    f"{a['raw_per_s']:,.0f} events/s | "
                    f"{ratio(a['raw_per_s'], a['service_per_s'])} slower | >= 10,000/s, "
                    f"within 2x |")
        rows.append(f"| catch-up, {b['lanes']:,} lanes' backlog ({b['events']:,} events), 2 "
                    f"service processes | drained {b['drain_s']:.1f} s, consumer done "
                    f"{b['consumer_done_s']:.1f} s | | | |")
    y = r.get("sync")
    if y:
        d = y["delta_sync"]
        rows.append(f"| store sync, {y['rows']:,} products with {y['changed']:,} prices "
                    f"changed: delta size | {y['delta_bytes'] / 1e3:,.0f} kB | full snapshot "
                    f"{y['full_bytes'] / 1e6:.1f} MB | "
                    f"{y['delta_bytes'] / y['full_bytes']:.2%} | |")
        rows.append(f"| store sync: the lane downloads, verifies, stages and applies the delta "
                    f"| {d['lane_total_s']:.2f} s (apply {d['apply_s'] * 1000:.0f} ms) | "
                    f"`catalog import --replace` {y['import_replace_s']:.1f} s | "
                    f"{ratio(d['lane_total_s'], y['import_replace_s'])} | |")
        sm = y["scan_ms"]
        rows.append(f"| scan to cart line (lookup, line, event) p95 while the lane syncs | "
                    f"{sm['during_delta_sync']['p95']} ms (delta), "
                    f"{sm['during_full_sync']['p95']} ms (full) | idle {sm['idle']['p95']} ms "
                    f"| {ratio(sm['during_full_sync']['p95'], sm['idle']['p95'])} | "
                    f"within the 100 ms scan budget |")
    p = r.get("poll")
    if p:
        for store in ("sqlite", "jetstream"):
            f = p[store]["flat_out"]
            rows.append(f"| head office answering lanes' polls (mostly 304) and heartbeats, "
                        f"{store} | {f['per_s']:,.0f} requests/s | bare HTTP stack "
                        f"{p['floor']['per_s']:,.0f}/s | {ratio(f['per_s'], p['floor']['per_s'])}"
                        f" | >= {p['needed_per_s']:.0f}/s ({p['lanes']:,} lanes) |")
    g = r.get("produce", {}).get("produce_grid")
    if g:
        k, b = g["kiosk"], g["baseline"]
        rows.append(f"| Find produce grid, p99 | {k['p99_ms']:.2f} ms | full scan "
                    f"{b['p99_ms']:.1f} ms | {ratio(k['p99_ms'], b['p99_ms'])} | |")
    for name in ("scanning", "catalogue", "events", "ui", "session", "hq", "sync", "poll",
                 "produce"):
        if name in r and not r[name]:
            rows.append(f"| bench.{name} | FAILED or skipped: see its output above | | | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", nargs="*", help="run only these (scanning catalogue "
                        "events ui session hq sync poll produce)")
    args = parser.parse_args()
    q = args.quick
    plan = {
        "scanning": (["--quick"] if q else [], False),
        "catalogue": (["--rows", "200000" if q else "1000000", "--repeat", "1" if q else "3",
                       "--lookups", "20000"], False),
        "events": (["--events", "20000" if q else "100000", "--repeat", "1" if q else "3"],
                   False),
        "ui": (["--runs", "3" if q else "5", "--sessions", "12"], True),
        "session": (["--scans", "2000" if q else "10000"], False),
        "hq": (["--events", "20000" if q else "100000", "--lanes", "100" if q else "1000"],
               False),
        "sync": (["--rows", "100000" if q else "1000000"], False),
        "poll": (["--seconds", "5" if q else "20"], False),
        "produce": (["--rows", "100000" if q else "1000000"], False),
    }
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (bench_args, display) in plan.items():
            if args.only and name not in args.only:
                continue
            module = {"scanning": "scanning_bench", "catalogue": "catalogue_bench",
                      "events": "events_bench", "ui": "ui_bench",
                      "session": "session_bench", "hq": "hq_bench",
                      "sync": "store_sync_bench", "poll": "sync_poll_bench",
                      "produce": "produce_bench"}[name]
            results[name] = bench(module, bench_args, Path(tmp) / f"{name}.json", display)
    from bench.scanning_bench import machine

    print(f"Machine: {machine()}; {time.strftime('%Y-%m-%d')}; "
          f"{'quick sizes' if q else 'full sizes'}\n")
    print(table(results))


if __name__ == "__main__":
    main()
