"""Head office answering lanes that poll for store data (issue 22 target): requests per
second one ``kiosk hq serve`` process sustains on the embedded (SQLite) and the JetStream
store, beside a baseline measured in the same run.

    .venv/bin/python -m bench.sync_poll_bench [--seconds 10] [--clients 8] [--json OUT]

- Poll: ``GET /v1/stores/store-001/data/{kind}`` with the lane's ``If-None-Match``; 19 of
  20 name the newest version (``304 Not Modified``), 1 of 20 an older one (``200`` with
  the newer manifests), kinds in turn, as 1,000 lanes polling every 30 s would (the
  target is 1,000 / 30 = 34 requests/s, with room to spare).
- Heartbeat: ``POST /v1/stores/store-001/lanes/{lane}/heartbeat`` from 1,000 lanes.
- Baseline: ``GET /v1/keys/member`` on the same process (answered from memory, no store
  read): the floor of this HTTP server on this machine.

Each is run by ``--clients`` threads for ``--seconds``; the figures are requests/s and the
95th percentile latency. The machine is shared and noisy (2 cores): read the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.hq_bench import TOKEN, Service
from bench.scanning_bench import machine
from hq.cluster import LocalCluster
from hq.store_address import open_store
from tests.store_versions import make_version, rows

AUTH = {"Authorization": f"Bearer {TOKEN}"}
STORE = "store-001"
KINDS = ("catalogue", "promotions", "lane-keys")
LANES = 1000
TARGET_RPS = LANES / 30


def publish(address: str) -> None:
    """Three versions of each kind for the store (catalogue: 2,000 products)."""
    store = open_store(address)
    try:
        for kind in KINDS:
            previous = None
            for v in (1, 2, 3):
                now = rows(2000 if kind == "catalogue" else 20, price=v)
                store.publish_version(*make_version(STORE, kind, v, now, previous))
                previous = now
    finally:
        store.close()


def heartbeat(lane: str) -> dict[str, Any]:
    return {"lane_id": lane, "store_id": STORE, "sent_at": "2026-12-01T00:59:00Z",
            "versions": {"catalogue": 3, "promotions": 3, "lane-keys": 3}, "staged": {},
            "data_checked_at": "2026-12-01T00:58:30Z",
            "health": {"state": "ok", "summary": "all devices ok"},
            "outbox": {"pending": 0, "dead": 0, "oldest_pending_at": None}, "alerts": []}


def load(url: str, request: Callable[[requests.Session, int], requests.Response],
         expect: set[int], seconds: float, clients: int) -> dict[str, float]:
    """Requests/s and p95 latency (ms) of ``request`` from ``clients`` threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []
    end = time.monotonic() + seconds

    def client(seed: int) -> None:
        http = requests.Session()
        rng = random.Random(seed)
        mine = []
        while time.monotonic() < end:
            started = time.perf_counter()
            r = request(http, rng.randrange(LANES))
            mine.append(time.perf_counter() - started)
            if r.status_code not in expect:
                errors.append(f"{r.status_code} {r.text[:100]}")
                return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    if errors:
        raise RuntimeError(f"{url}: {errors[0]}")
    latencies.sort()
    return {"rps": len(latencies) / elapsed,
            "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else 0.0}


def run_store(address: str, seconds: float, clients: int) -> dict[str, dict[str, float]]:
    publish(address)
    service = Service(address)
    url = service.url
    try:
        def member_key(http: requests.Session, _lane: int) -> requests.Response:
            return http.get(f"{url}/v1/keys/member", timeout=30)

        counter = iter(range(10**9))

        def poll(http: requests.Session, _lane: int) -> requests.Response:
            n = next(counter)
            kind = KINDS[n % 3]
            held = 1 if n % 20 == 0 else 3  # 1 in 20 lanes is behind
            return http.get(f"{url}/v1/stores/{STORE}/data/{kind}", timeout=30,
                            headers={**AUTH, "If-None-Match": f'"{kind}-{held}"'})

        def beat(http: requests.Session, lane: int) -> requests.Response:
            name = f"lane-{lane:04d}"
            return http.post(f"{url}/v1/stores/{STORE}/lanes/{name}/heartbeat",
                             json=heartbeat(name), headers=AUTH, timeout=30)

        return {"baseline": load(url, member_key, {200}, seconds, clients),
                "poll": load(url, poll, {200, 304}, seconds, clients),
                "heartbeat": load(url, beat, {200}, seconds, clients)}
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "target_rps": TARGET_RPS}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run_store(f"sqlite:{Path(tmp) / 'hq.db'}", args.seconds,
                                      args.clients)
        cluster = LocalCluster(Path(tmp) / "nats", size=1)
        cluster.start()
        try:
            results["nats"] = run_store(cluster.urls[0], args.seconds, args.clients)
        finally:
            cluster.stop()
    print(f"machine: {results['machine']}; {args.clients} clients, {args.seconds:g} s each")
    print("| store | what | requests/s | p95 ms | baseline (member key) requests/s | ratio |"
          " target |")
    print("|---|---|---|---|---|---|---|")
    for store in ("sqlite", "nats"):
        base = results[store]["baseline"]["rps"]
        for what in ("poll", "heartbeat"):
            r = results[store][what]
            print(f"| {store} | {what} | {r['rps']:,.0f} | {r['p95_ms']:.1f} | {base:,.0f} | "
                  f"{r['rps'] / base:.2f}x | >= {TARGET_RPS:.0f}/s |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
