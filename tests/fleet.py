"""Simulated lanes for head-office tests and benchmarks: each lane is a real kiosk
outbox (a SQLite file written by ``app.storage.outbox``) holding a shopper day's events,
sent by the real uploader (``EventUploader`` + ``MembershipBackend``) or drained batch
by batch by a pool (1,000 lanes do not need 1,000 threads)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from app.domain.clock import FixedClock
from app.domain.events import EventType, new_event
from app.services.uploads import EventUploader
from app.storage.db import open_database, write_transaction
from app.storage.outbox import Outbox
from devices.membership import MembershipBackend

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)
MEMBERS = [f"M{i:06d}" for i in range(1, 41)]  # a chain's regulars, shared by lanes
EVENTS_PER_SALE = 9


class SimLane:
    """One lane's outbox at ``folder/<lane_id>.db``."""

    def __init__(self, folder: Path, lane_id: str, store_id: str, url: str, token: str,
                 *, seed: int = 0) -> None:
        self.lane_id, self.store_id, self.url, self.token = lane_id, store_id, url, token
        self.path = folder / f"{lane_id}.db"
        open_database(self.path).close()
        self.outbox = Outbox.open(self.path)
        self.rng = random.Random(seed)
        self.sales_made = 0
        self.uploader: EventUploader | None = None

    def sell(self, sales: int, start: datetime = T0) -> None:
        """Record ``sales`` shoppers' sessions: started, member (2 in 3), four scans,
        payment started and paid, ended with total and points (9 events each)."""
        for _ in range(sales):
            n = self.sales_made = self.sales_made + 1
            at = start + timedelta(seconds=40 * n)
            session = f"{self.lane_id}-s{n}"
            member = self.rng.choice(MEMBERS) if self.rng.random() < 2 / 3 else None
            total = self.rng.randrange(100, 50000)
            points = total // 100 if member else 0
            events = [new_event(EventType.SESSION_STARTED, occurred_at=at, session_id=session,
                                payload={"how": "product_scan"})]
            if member:
                events.append(new_event(EventType.MEMBER_IDENTIFIED, occurred_at=at,
                                        session_id=session, member_id=member,
                                        payload={"how": "member_qr", "provisional": False}))
            else:
                events.append(new_event(EventType.HELP_REQUESTED, occurred_at=at,
                                        session_id=session, payload={"reason": "none"}))
            for i in range(4):
                events.append(new_event(EventType.ITEM_SCANNED, occurred_at=at,
                                        session_id=session, member_id=member, payload={
                                            "code": f"690000000{i:04d}", "product": "Milk",
                                            "price_minor": total // 4, "how": "camera"}))
            order = f"{session}-o"
            events += [
                new_event(EventType.PAYMENT_STARTED, occurred_at=at, session_id=session,
                          member_id=member, payload={"order_id": order, "amount_minor": total,
                                                     "method": "wechat"}),
                new_event(EventType.PAYMENT_PAID, occurred_at=at, session_id=session,
                          member_id=member, payload={"order_id": order, "amount_minor": total,
                                                     "provider_ref": f"w{n}"}),
                new_event(EventType.SESSION_ENDED, occurred_at=at, session_id=session,
                          member_id=member, payload={"order_id": order, "total_minor": total,
                                                     "item_count": 4,
                                                     "points_earned": points})]
            with write_transaction(self.outbox.db):  # one sale, one transaction
                for e in events:
                    self.outbox.record(e)

    def client(self, url: str | None = None) -> MembershipBackend:
        return MembershipBackend(url or self.url, self.token, self.lane_id, self.store_id,
                                 connect_timeout=2.0, read_timeout=10.0)

    def start_uploader(self, *, max_events: int = 200) -> EventUploader:
        """The real uploader thread, with short waits (a test's patience)."""
        self.uploader = EventUploader(self.client(), self.path, FixedClock(T0),
                                      max_events=max_events, backoff_base=0.1,
                                      backoff_cap=1.0, idle_s=0.1,
                                      rng=random.Random(self.lane_id))
        self.uploader.start()
        return self.uploader

    def stop_uploader(self) -> None:
        if self.uploader is not None:
            self.uploader.stop()

    def undelivered(self) -> int:
        status = self.outbox.status()
        return status.pending + status.in_flight

    def in_flight(self) -> int:
        return self.outbox.status().in_flight

    def _rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.path) as db:  # the lane's own database, read as it is
            return db.execute(sql).fetchall()

    def event_ids(self) -> list[tuple[int, str]]:
        """Every event the lane holds, as ``(seq, event_id)``."""
        return [(int(a), str(b)) for a, b in
                self._rows("SELECT seq, event_id FROM outbox ORDER BY seq")]

    def member_totals(self) -> dict[str, tuple[int, int, int]]:
        """Per member ``(visits, spend_minor, points)`` from the lane's paid sales."""
        out: dict[str, tuple[int, int, int]] = {}
        for member, total, points in self._rows(
                "SELECT member_id, json_extract(payload, '$.total_minor'), "
                "json_extract(payload, '$.points_earned') FROM outbox "
                "WHERE type = 'session_ended' AND member_id IS NOT NULL"):
            v, s, p = out.get(member, (0, 0, 0))
            out[member] = (v + 1, s + int(total), p + int(points))
        return out

    def close(self) -> None:
        self.stop_uploader()
        self.outbox.db.close()


def chain_totals(lanes: Iterable[SimLane]) -> dict[str, tuple[int, int, int]]:
    """What the lanes' own databases say each member did, summed over lanes."""
    out: dict[str, tuple[int, int, int]] = {}
    for lane in lanes:
        for member, (v, s, p) in lane.member_totals().items():
            a, b, c = out.get(member, (0, 0, 0))
            out[member] = (a + v, b + s, c + p)
    return out


def drain(lanes: list[SimLane], *, workers: int = 32, max_events: int = 500) -> int:
    """Send every lane's backlog with the real uploader's ``drain_once``, ``workers``
    lanes at a time; returns the batches sent. A failed batch is retried at once (the
    lanes' backoff is what the fault tests exercise, not this)."""

    def one(lane: SimLane) -> int:
        uploader = EventUploader(lane.client(), lane.path, FixedClock(T0),
                                 max_events=max_events, backoff_base=0.05, backoff_cap=0.5)
        outbox = Outbox.open(lane.path)
        sent = 0
        try:
            while True:
                status = outbox.status()
                if status.pending + status.in_flight == 0:
                    break
                uploader.drain_once(outbox)
                sent += 1
        finally:
            outbox.db.close()
        return sent

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, lanes))
