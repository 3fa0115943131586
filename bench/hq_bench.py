"""Head-office benchmark: event ingest into JetStream and a chain's catch-up, each beside
a baseline measured in the same run.

    .venv/bin/python -m bench.hq_bench [--events 100000] [--lanes 1000] [--sales 40]

- Ingest: one ``kiosk hq serve`` process over a three-node loopback cluster (R3 stream),
  fed batches of 500 events over HTTP by ``--clients`` threads, against the raw rate of
  publishing the same events (same subjects, same ``Nats-Msg-Id``) with nats-py alone
  from one process: the physical floor for this path on this machine. Target: at least
  10,000 events/s per service process and within 2x of the raw rate.
- Catch-up: ``--lanes`` lanes each holding a backlog of ``--sales`` shoppers (9 events
  each: a busy lane's hour), real outbox files drained by the real uploader's
  ``drain_once`` from a pool, through two service processes, with the member-summary
  consumer running: the drain time, and the end-to-end lag (until the consumer has
  applied the last event). Baseline: the same backlog published raw with nats-py.

The machine is shared and noisy (2 cores): read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
import requests  # noqa: E402

from bench.scanning_bench import machine  # noqa: E402
from hq.cluster import LocalCluster  # noqa: E402
from hq.nats_store import NatsStore  # noqa: E402
from tests.fleet import EVENTS_PER_SALE, SimLane, drain  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - the benchmark's own token
BATCH = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_bytes(pid: int) -> int:
    """A process's resident memory (Linux /proc), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _event(lane: int, i: int) -> dict[str, Any]:
    return {"event_id": f"e{lane}-{i}-{uuid.uuid4().hex[:8]}", "seq": i + 1,
            "type": "item_scanned", "occurred_at": "2026-11-30T09:00:00+08:00",
            "session_id": f"s{i // 9}", "member_id": None,
            "payload": {"code": "6900000000017", "product": "Whole Milk 250ml",
                        "price_minor": 650, "how": "camera"}}


class Service:
    def __init__(self, address: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "hq", "serve", "--store", address, "--port",
             str(self.port), "--token", TOKEN], env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                requests.get(f"{self.url}/v1/keys/member", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def raw_publish(urls: list[str], batches: list[list[dict[str, Any]]]) -> float:
    """Events/s publishing every batch with nats-py alone (acks awaited per batch, as the
    service does)."""

    async def run() -> float:
        nc = await nats.connect(servers=urls)
        js = nc.jetstream(timeout=30)
        start = time.perf_counter()
        for batch in batches:
            await asyncio.gather(*(js.publish(
                f"events.store-001.raw.{e['event_id']}", json.dumps(e).encode(),
                stream="EVENTS", headers={"Nats-Msg-Id": e["event_id"]}) for e in batch))
        elapsed = time.perf_counter() - start
        await nc.close()
        return sum(len(b) for b in batches) / elapsed

    return asyncio.run(run())


def service_ingest(url: str, batches: list[list[dict[str, Any]]], clients: int) -> float:
    """Events/s through one service process, ``clients`` HTTP senders at once."""
    queue = list(enumerate(batches))
    lock = threading.Lock()

    def sender() -> None:
        http = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                i, batch = queue.pop()
            body = {"kiosk_id": f"lane-{i % 97:03d}", "store_id": "store-001",
                    "events": batch}
            r = http.post(f"{url}/v1/events", json=body, timeout=120, headers={
                "Authorization": f"Bearer {TOKEN}", "Idempotency-Key": str(uuid.uuid4())})
            if r.status_code != 200 or len(r.json()["accepted"]) != len(batch):
                raise RuntimeError(f"batch {i}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=sender) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def ingest(tmp: Path, events: int, clients: int) -> dict[str, Any]:
    cluster = LocalCluster(tmp / "ingest", 3)
    cluster.start()
    try:
        NatsStore(cluster.urls, replicas=3).close()  # the R3 stream and buckets
        service = Service(cluster.address)
        try:
            n = events // BATCH
            raw = raw_publish(cluster.urls, [[_event(0, b * BATCH + i) for i in range(BATCH)]
                                             for b in range(n)])
            via = service_ingest(service.url, [[_event(1, b * BATCH + i)
                                                for i in range(BATCH)] for b in range(n)],
                                 clients)
        finally:
            service.stop()
    finally:
        cluster.stop()
    return {"events": n * BATCH, "service_per_s": via, "raw_per_s": raw, "clients": clients}


def catch_up(tmp: Path, lanes: int, sales: int, workers: int) -> dict[str, Any]:
    cluster = LocalCluster(tmp / "catchup", 3)
    cluster.start()
    consumer = None
    try:
        observer = NatsStore(cluster.urls, replicas=3)
        rss_before = [_rss_bytes(p.pid) for p in cluster.procs.values()]
        services = [Service(cluster.address), Service(cluster.address)]
        consumer = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "hq", "consume", "--store", cluster.address],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        folder = tmp / "lanes"
        folder.mkdir()
        made = time.perf_counter()
        fleet = [SimLane(folder, f"lane-{i:04d}", f"store-{i // 8:03d}",
                         services[i % 2].url, TOKEN, seed=i) for i in range(lanes)]
        for lane in fleet:
            lane.sell(sales)
        made = time.perf_counter() - made
        total = lanes * sales * EVENTS_PER_SALE
        start = time.perf_counter()
        batches = drain(fleet, workers=workers)
        drained = time.perf_counter() - start
        while True:
            status = observer.status()
            if status["stream"]["messages"] >= total and all(
                    c["lag"] == 0 and c["ack_pending"] == 0 for c in status["consumers"]) \
                    and status["consumers"]:
                break
            time.sleep(0.2)
        applied = time.perf_counter() - start
        stream = observer.status()["stream"]
        rss = [_rss_bytes(p.pid) for p in cluster.procs.values()]
        for lane in fleet:
            lane.close()
        for s in services:
            s.stop()
        observer.close()
        return {"lanes": lanes, "events": total, "batches": batches, "drain_s": drained,
                "consumer_done_s": applied, "lag_after_drain_s": applied - drained,
                "setup_s": made, "stream_bytes_per_event": stream["bytes"] / total,
                "node_rss_mib": [round(r / 2**20, 1) for r in rss],
                "rss_baseline_mib": [round(r / 2**20, 1) for r in rss_before]}
    finally:
        if consumer is not None:
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(timeout=60)
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--lanes", type=int, default=1000)
    parser.add_argument("--sales", type=int, default=40, help="per lane (9 events each)")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a = ingest(Path(tmp), args.events, args.clients)
        print(f"ingest, {a['events']:,} events, R3 on 3 loopback nodes: service "
              f"{a['service_per_s']:,.0f}/s ({a['clients']} HTTP clients), nats-py alone "
              f"{a['raw_per_s']:,.0f}/s, ratio {a['raw_per_s'] / a['service_per_s']:.2f}x",
              flush=True)
        b = catch_up(Path(tmp), args.lanes, args.sales, args.workers)
        rate = b["events"] / b["drain_s"]
        print(f"catch-up, {b['lanes']:,} lanes x {args.sales} sales = {b['events']:,} events "
              f"through 2 service processes: drained in {b['drain_s']:.1f} s ({rate:,.0f}/s),"
              f" consumer done at {b['consumer_done_s']:.1f} s (lag after drain "
              f"{b['lag_after_drain_s']:.1f} s); backlog written in {b['setup_s']:.0f} s")
        print(f"stream: {b['stream_bytes_per_event']:.0f} bytes per event stored (each of R3); "
              f"nats-server resident memory {b['rss_baseline_mib']} MiB before, "
              f"{b['node_rss_mib']} MiB after")
    print(machine())
    if args.json:
        args.json.write_text(json.dumps({"ingest": a, "catch_up": b, "machine": machine()}))


if __name__ == "__main__":
    main()
