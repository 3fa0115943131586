"""Events benchmark: durable enqueue rate and backlog drain, each beside a baseline in the same run.

    .venv/bin/python -m bench.events_bench [--events 100000] [--enqueue 5000]

- Enqueue: events written one per transaction, as checkout writes them
  (``BEGIN IMMEDIATE``, WAL, ``synchronous=FULL``), through ``Outbox.record``
  against plain ``sqlite3`` inserts of the same rows in the same mode.
- Drain: a backlog delivered to the reference backend (``kiosk sim backend``)
  by the uploader (batches of 500, status rows updated) against plain
  ``requests`` POSTs of the same batches to the same backend.

Targets (issue 6): enqueue within 2x of plain sqlite3, drain within 1.5x of
plain POSTs. The machine is shared and noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from app.domain.clock import FixedClock  # noqa: E402
from app.domain.events import EventType, new_event  # noqa: E402
from app.services.uploads import EventUploader  # noqa: E402
from app.storage.db import open_database, write_transaction  # noqa: E402
from app.storage.outbox import Outbox  # noqa: E402
from bench.scanning_bench import machine  # noqa: E402
from devices.membership import MembershipBackend  # noqa: E402
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer  # noqa: E402

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def event(i: int):
    return new_event(EventType.ITEM_SCANNED, occurred_at=T0 + timedelta(seconds=i),
                     session_id=f"s{i // 20}", payload={
                         "code": f"6900000{i:06d}", "product": "Whole Milk 250ml",
                         "price_minor": 650, "how": "camera"})


def enqueue_kiosk(path: Path, n: int) -> float:
    db = open_database(path)
    box = Outbox(db)
    events = [event(i) for i in range(n)]
    start = time.perf_counter()
    for e in events:
        with write_transaction(db):  # the checkout's own transaction
            box.record(e)
    seconds = time.perf_counter() - start
    db.close()
    return n / seconds


def enqueue_baseline(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS e (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "event_id TEXT UNIQUE, type TEXT, occurred_at TEXT, session_id TEXT, "
                 "payload TEXT)")
    events = [event(i) for i in range(n)]
    start = time.perf_counter()
    for e in events:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO e (event_id, type, occurred_at, session_id, payload) "
                     "VALUES (?, ?, ?, ?, ?)", [e.event_id, e.type.value,
                                                e.occurred_at.isoformat(), e.session_id,
                                                str(e.payload)])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return n / seconds


def fill(path: Path, n: int) -> None:
    db = open_database(path)
    box = Outbox(db)
    with write_transaction(db):
        for i in range(n):
            box.record(event(i))
    db.close()


def drain_kiosk(tmp: Path, n: int) -> float:
    path = tmp / f"kiosk-{uuid.uuid4().hex}.db"
    fill(path, n)
    backend = BackendServer(0, tmp / f"backend-{uuid.uuid4().hex}.db").start()
    uploader = EventUploader(MembershipBackend(backend.url, DEFAULT_TOKEN, "lane-01", "store-001"),
                             path, FixedClock(T0), rng=random.Random(1))
    box = Outbox.open(path)
    start = time.perf_counter()
    while uploader.drain_once(box) == 0.0:
        pass
    seconds = time.perf_counter() - start
    assert box.status().delivered == n, box.status()
    box.db.close()
    backend.stop()
    return seconds


def drain_baseline(tmp: Path, n: int) -> float:
    path = tmp / f"kiosk-{uuid.uuid4().hex}.db"
    fill(path, n)
    box = Outbox.open(path)
    batches = []
    while (batch := box.next_batch()) is not None:  # the same batches, made up front
        batches.append(batch)
    box.db.close()
    backend = BackendServer(0, tmp / f"backend-{uuid.uuid4().hex}.db").start()
    http = requests.Session()
    start = time.perf_counter()
    for batch in batches:
        http.post(f"{backend.url}/v1/events", json={
            "kiosk_id": "lane-01", "store_id": "store-001",
            "sent_at": datetime.now(UTC).isoformat(), "events": batch.events},
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}",
                     "Idempotency-Key": batch.batch_id}, timeout=30).raise_for_status()
    seconds = time.perf_counter() - start
    backend.stop()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="backlog to drain")
    parser.add_argument("--enqueue", type=int, default=3_000, help="events to enqueue")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    kiosk_rate, base_rate, kiosk_drain, base_drain = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for r in range(args.repeat):  # alternate, so noise hits both alike
            base_rate.append(enqueue_baseline(tmp / f"b{r}.db", args.enqueue))
            kiosk_rate.append(enqueue_kiosk(tmp / f"k{r}.db", args.enqueue))
            base_drain.append(drain_baseline(tmp, args.events))
            kiosk_drain.append(drain_kiosk(tmp, args.events))
    kr, br = statistics.median(kiosk_rate), statistics.median(base_rate)
    kd, bd = statistics.median(kiosk_drain), statistics.median(base_drain)
    print(f"Machine: {machine()}; median of {args.repeat} runs\n")
    print("| measure | kiosk | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| durable enqueue, events/s (one transaction each) | {kr:,.0f} | {br:,.0f} "
          f"(plain sqlite3) | {br / kr:.2f}x slower | within 2x |")
    print(f"| drain {args.events:,} events to the reference backend | {kd:.1f} s | {bd:.1f} s "
          f"(plain requests POSTs) | {kd / bd:.2f}x | within 1.5x |")
    if args.json:
        args.json.write_text(json.dumps({
            "enqueue_per_s": kr, "enqueue_baseline_per_s": br, "drain_events": args.events,
            "drain_s": kd, "drain_baseline_s": bd}))


if __name__ == "__main__":
    main()
