"""Head office answering a chain's lanes that poll for store data: requests per second one
service process sustains, on the embedded (SQLite) and the JetStream store.

    .venv/bin/python -m bench.sync_poll_bench [--seconds 20] [--lanes 1000]

The lanes' load (docs/store-sync.md): every ``poll_s`` (30 s) each lane asks for each of
the three kinds with ``If-None-Match`` naming the newest version (so head office answers
``304 Not Modified``), and every ``heartbeat_s`` (60 s) it posts a heartbeat: 3.5 requests
per lane per 30 s, 117 requests/s for 1,000 lanes. One poll in 20 comes from a lane that
is behind (``200`` with the newer manifest), the rest get ``304``. Each request opens its
own connection, as a lane does after 30 s idle.

Measured: one ``kiosk hq serve`` process, driven flat out by two load processes
(``--concurrency`` connections at a time between them) for ``--seconds``: requests/s
answered and the latency percentiles; then driven at exactly the chain's rate for
``--seconds``: latency p50/p95 at that load. Baseline in the same run: the same HTTP stack
(``http.server.ThreadingHTTPServer``, the service's base class) answering 304 with no
store behind it, driven the same way: the floor of this machine for this path.

The machine is shared and noisy (2 cores, load generators on the same cores): read the
ratios.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hq_bench import TOKEN, Service  # noqa: E402
from bench.scanning_bench import machine  # noqa: E402
from hq.cluster import LocalCluster  # noqa: E402

STORE = "store-001"
KINDS = ("catalogue", "promotions", "lane-keys")
POLL_S, HEARTBEAT_S = 30.0, 60.0


def requests_per_lane_s() -> float:
    return len(KINDS) / POLL_S + 1 / HEARTBEAT_S


def _heartbeat(lane: int, versions: dict[str, int]) -> bytes:
    return json.dumps({
        "lane_id": f"lane-{lane:04d}", "store_id": STORE, "sent_at": "2026-12-01T01:00:00Z",
        "versions": versions, "staged": {}, "data_checked_at": "2026-12-01T00:59:30Z",
        "health": {"state": "ok", "summary": "all devices ok"},
        "outbox": {"pending": 3, "dead": 0, "oldest_pending_at": "2026-12-01T00:59:00Z"},
        "alerts": []}).encode()


def _one(port: int, i: int, versions: dict[str, int]) -> int:
    """One lane request (new connection): three listings in four, one heartbeat in
    seven, as the mix 3 : 0.5 says; returns the HTTP status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        if i % 7 == 6:
            lane = i % 1000
            conn.request("POST", f"/v1/stores/{STORE}/lanes/lane-{lane:04d}/heartbeat",
                         body=_heartbeat(lane, versions),
                         headers={**auth, "Content-Type": "application/json"})
        else:
            kind = KINDS[i % 3]
            # 1 poll in 20 from a lane that is behind (a 200 listing the newer version),
            # the rest from lanes that hold the newest (304).
            have = versions[kind] - 1 if i % 20 == 19 else versions[kind]
            conn.request("GET", f"/v1/stores/{STORE}/data/{kind}", headers={
                **auth, "If-None-Match": f'"{kind}-{have}"'})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _load(port: int, seconds: float, threads: int, rate: float | None,
          versions: dict[str, int], out: Any, start_at: float) -> None:
    """A load process: ``threads`` workers until ``seconds`` pass; flat out, or each
    keeping ``rate`` requests/s in total between them. Sends (statuses, latencies ms)."""
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.monotonic() + seconds
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        i = w
        gap = threads / rate if rate else 0.0
        next_at = time.monotonic() + (gap * w / threads if rate else 0.0)
        while True:
            if rate:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                next_at += gap
            now = time.monotonic()
            if now >= end:
                return
            try:
                status = _one(port, i, versions)
            except OSError:
                status = 0
            took = (time.monotonic() - now) * 1000
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(took)
            i += threads

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.send((statuses, latencies))
    out.close()


def drive(port: int, seconds: float, concurrency: int, rate: float | None,
          versions: dict[str, int]) -> dict[str, Any]:
    """Two load processes against ``port``; requests/s answered and latency figures."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # both processes start together, after spawning
    pipes, procs = [], []
    for _ in range(2):
        receive, send = context.Pipe(duplex=False)
        p = context.Process(target=_load, args=(port, seconds, concurrency // 2,
                                                rate / 2 if rate else None, versions, send,
                                                start_at))
        p.start()
        send.close()
        pipes.append(receive)
        procs.append(p)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    for receive in pipes:
        s, lat = receive.recv()
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
        latencies += lat
    for p in procs:
        p.join()
    latencies.sort()
    answered = sum(v for k, v in statuses.items() if k in (200, 304))
    return {"seconds": seconds, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "per_s": answered / seconds,
            "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
            "p95_ms": round(latencies[int(len(latencies) * 0.95)], 2) if latencies else None,
            "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2) if latencies else None}


class _Floor(BaseHTTPRequestHandler):
    """The HTTP stack alone: 304 to every GET, 200 to every POST, no store."""

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(304)
        self.send_header("ETag", '"catalogue-1"')
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"kept":true,"expires_in_s":604800}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _floor_process(port_out: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Floor)
    port_out.send(server.server_address[1])
    server.serve_forever()


def publish_all(address: str, key: Path, tmp: Path) -> dict[str, int]:
    """Publish one version of each kind (the demo store's files) with ``kiosk hq
    publish``; the versions the lanes then hold."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "app.cli", "hq", "keygen", "--key", str(key)],
                   check=True, env=env, capture_output=True)
    lane_keys = tmp / "lane-keys.toml"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hq.publish import public_key_text

    lane_keys.write_text(
        "[lanes]\n" + "".join(f'lane-{i:04d} = "{public_key_text(Ed25519PrivateKey.generate())}"\n'
                               for i in range(20)))
    files = {"catalogue": ROOT / "seeds" / "catalogue.csv",
             "promotions": ROOT / "seeds" / "promotions.toml", "lane-keys": lane_keys}
    for kind, path in files.items():
        subprocess.run([sys.executable, "-m", "app.cli", "hq", "publish", kind, str(path),
                        "--store", STORE, "--key", str(key), "--store-address", address],
                       check=True, env=env, capture_output=True)
    return {kind: 1 for kind in KINDS}


def measure(address: str, key: Path, tmp: Path, seconds: float, concurrency: int,
            lanes: int) -> dict[str, Any]:
    versions = publish_all(address, key, tmp)
    service = Service(address)
    try:
        flat = drive(service.port, seconds, concurrency, None, versions)
        paced = drive(service.port, seconds, concurrency, lanes * requests_per_lane_s(),
                      versions)
    finally:
        service.stop()
    return {"flat_out": flat, "at_chain_rate": paced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--lanes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    need = args.lanes * requests_per_lane_s()
    results: dict[str, Any] = {"lanes": args.lanes, "needed_per_s": need}
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    floor = context.Process(target=_floor_process, args=(send,), daemon=True)
    floor.start()
    floor_port = receive.recv()
    results["floor"] = drive(floor_port, args.seconds, args.concurrency, None,
                             {k: 1 for k in KINDS})
    floor.terminate()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        results["sqlite"] = measure(f"sqlite:{t / 'hq.db'}", t / "k1.pem", t, args.seconds,
                                    args.concurrency, args.lanes)
        cluster = LocalCluster(t / "nats", 3)
        cluster.start()
        try:
            results["jetstream"] = measure(cluster.address, t / "k2.pem", t, args.seconds,
                                           args.concurrency, args.lanes)
        finally:
            cluster.stop()
    f = results["floor"]["per_s"]
    print(f"{args.lanes:,} lanes polling every {POLL_S:.0f} s need {need:.0f} requests/s")
    print(f"HTTP stack alone (baseline): {f:,.0f} requests/s flat out, "
          f"p95 {results['floor']['p95_ms']} ms")
    for name in ("sqlite", "jetstream"):
        r = results[name]
        print(f"{name}: {r['flat_out']['per_s']:,.0f} requests/s flat out "
              f"({r['flat_out']['per_s'] / f:.2f}x the baseline, "
              f"{r['flat_out']['per_s'] / need:.1f}x what the chain needs), statuses "
              f"{r['flat_out']['statuses']}; at the chain's rate p50 "
              f"{r['at_chain_rate']['p50_ms']} ms, p95 {r['at_chain_rate']['p95_ms']} ms")
    print(machine())
    results["machine"] = machine()
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
