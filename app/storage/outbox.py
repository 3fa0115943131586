"""The event outbox: behaviour events kept on the kiosk until the membership backend has them.

Rows carry a status (pending -> in_flight -> delivered, or dead), as in
persist-queue's ack queue: a batch is marked in flight before it is sent, so
rows caught mid-send by a crash are found at start-up (``requeue_in_flight``)
and sent again; the backend dedupes by ``event_id``. ``record`` joins the
caller's transaction, so an event is written with the change it records or
not at all. At its size cap the outbox evicts its oldest pending behaviour
events and leaves a gap marker (``Outbox.record``); it never refuses an event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from app.domain.events import EVICTABLE, Event, EventType, new_event, wire_text
from app.storage.alerts import StaffAlerts
from app.storage.db import open_database, write_transaction


@dataclass(frozen=True)
class Batch:
    batch_id: str
    event_ids: list[str]
    wire: list[str]  # each event as its JSON text (docs/membership-api.yaml), in seq order

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events as objects (tests and tools; sending uses ``wire`` as it is)."""
        return [json.loads(w) for w in self.wire]


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    in_flight: int
    dead: int
    delivered: int
    bytes_queued: int
    oldest_pending: str | None  # occurred_at of the oldest undelivered event
    last_upload: str | None  # when a batch was last accepted


class Outbox:
    # Summing the table on every event made enqueueing O(backlog): 20,000 events took
    # 55 s. The cap needs an estimate, not an exact figure: keep a running total,
    # recounted now and then (the uploader's deliveries shrink it from its own connection).
    RECOUNT_EVERY = 1000
    # At the cap, evict down to this share of it: one gap marker per pass, not per event.
    EVICT_TO = 0.9

    def __init__(self, db: sqlite_utils.Database, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.db = db
        self.staff_alerts = StaffAlerts(db)
        self.max_bytes = max_bytes
        self._queued: int | None = None
        self._since_count = 0

    @classmethod
    def open(cls, path: Path, max_bytes: int = 512 * 1024 * 1024) -> Outbox:
        """An outbox on its own connection, for the uploader's thread.

        This connection only moves rows between pending, in flight, delivered and
        dead, so it commits with ``synchronous=NORMAL``: a power cut can at worst
        undo its last marks, and those events are sent again and deduplicated by
        the backend. Events themselves are written by the checkout's connection,
        with ``synchronous=FULL``. (Measured: two fsyncs per batch made draining
        a 20,000-event backlog 1.9x slower than plain POSTs.)
        """
        db = open_database(path, migrate=False)
        db.execute("PRAGMA synchronous=NORMAL")
        return cls(db, max_bytes)

    def record(self, event: Event) -> int:
        """Write ``event`` (inside the caller's transaction, if any); returns its seq.

        Never refuses an event: selling goes on whatever the backend does. When the
        queued bytes (pending, in flight, dead) would pass ``max_bytes``
        (``membership.max_mb``), the oldest *pending* behaviour events
        (``app.domain.events.EVICTABLE``) are deleted until the queue is back to
        ``EVICT_TO`` of the cap (the recording session's own events are spared: the
        exit-check rules count its removals), one ``events_evicted`` gap marker records
        their count and seq range, and staff get an ``outbox`` alert naming the range. Money,
        receipt, audit and staff events are never evicted; if they alone fill the
        cap, the queue grows past it (a paid sale is never lost to a full outbox).
        """
        payload = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))
        size = len(event.wire(0, payload).encode()) + 20  # what the uploader sends (seq digits)
        with write_transaction(self.db):
            if self._queued is None or self._since_count >= self.RECOUNT_EVERY:
                self._queued, self._since_count = self.bytes_queued(), 0
            if self._queued + size > self.max_bytes:
                # The estimate only grows between recounts; the uploader may have emptied
                # the queue meanwhile, so count again before evicting anything.
                self._queued, self._since_count = self.bytes_queued(), 0
                if self._queued + size > self.max_bytes:
                    self._evict(size, event)
            seq = self._insert(event, payload, size)
            if self._queued >= self.ALERT_AT * self.max_bytes:
                self._alert_filling(event.occurred_at)
            return seq

    def _insert(self, event: Event, payload: str, size: int) -> int:
        cursor = self.db.execute(
            "INSERT INTO outbox (event_id, type, occurred_at, session_id, member_id, "
            "payload, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [event.event_id, event.type.value, event.occurred_at.isoformat(),
             event.session_id, event.member_id, payload, size])
        self._queued = (self._queued or 0) + size
        self._since_count += 1
        return int(cursor.lastrowid or 0)

    def _evict(self, incoming: int, event: Event) -> None:
        """Delete the oldest pending evictable events until ``incoming`` bytes and a gap
        marker fit under ``EVICT_TO`` of the cap; write the marker; alert staff."""
        marker_room = 400  # an events_evicted event on the wire, generously
        target = int(self.EVICT_TO * self.max_bytes) - incoming - marker_room
        excess = (self._queued or 0) - target
        kinds = [t.value for t in EVICTABLE]
        marks = ", ".join("?" for _ in kinds)
        seqs: list[int] = []
        freed = 0
        for seq, size in self.db.execute(
                f"SELECT seq, size FROM outbox WHERE status = 'pending' AND type IN ({marks}) "
                "AND session_id != ? ORDER BY seq", [*kinds, event.session_id]):
            if freed >= excess:
                break
            seqs.append(int(seq))
            freed += int(size)
        if not seqs:
            return  # only events that are never evicted: the cap gives way
        self.db.execute(f"DELETE FROM outbox WHERE status = 'pending' AND type IN ({marks}) "
                        "AND session_id != ? AND seq BETWEEN ? AND ?",
                        [*kinds, event.session_id, seqs[0], seqs[-1]])
        self._queued = (self._queued or 0) - freed
        marker = new_event(EventType.EVENTS_EVICTED, occurred_at=event.occurred_at,
                           session_id=event.session_id,
                           payload={"count": len(seqs), "first_seq": seqs[0],
                                    "last_seq": seqs[-1]})
        body = json.dumps(marker.payload, separators=(",", ":"))
        self._insert(marker, body, len(marker.wire(0, body).encode()) + 20)
        self.staff_alerts.add(
            "outbox", "evicted",
            f"the event outbox reached its cap (membership.max_mb): {len(seqs)} behaviour "
            f"events, seq {seqs[0]}-{seqs[-1]}, were dropped unsent (money, receipt and "
            "audit events are kept); restore the membership backend connection or raise "
            "membership.max_mb", event.occurred_at)

    ALERT_AT = 0.75  # staff are told while there is still a quarter left

    def alert(self, kind: str, message: str, now: datetime) -> None:
        """A staff alert, once while an identical one is unresolved."""
        with write_transaction(self.db):
            if not self.staff_alerts.exists(kind, message=message):
                self.staff_alerts.add(kind, "events", message, now)

    def _alert_filling(self, now: datetime) -> None:
        queued = self._queued or 0
        message = (f"the event outbox is {queued * 100 // self.max_bytes}% full: the "
                   "membership backend has not taken events for a long time")
        if not self.staff_alerts.exists("outbox"):
            self.staff_alerts.add("outbox", "fill", message, now)

    def bytes_queued(self) -> int:
        row = self.db.execute("SELECT coalesce(sum(size), 0) FROM outbox "
                              "WHERE status IN ('pending', 'in_flight', 'dead')").fetchone()
        return int(row[0])

    def fill(self) -> float:
        """How full the outbox is, 0.0-1.0 (staff are alerted as it fills)."""
        return self.bytes_queued() / self.max_bytes if self.max_bytes else 0.0

    def requeue_in_flight(self) -> int:
        """At start-up: rows a crash caught mid-send go back to pending."""
        with write_transaction(self.db):
            return self.db.execute("UPDATE outbox SET status = 'pending', batch_id = NULL "
                                   "WHERE status = 'in_flight'").rowcount

    def next_batch(self, max_events: int = 500, max_bytes: int = 256 * 1024) -> Batch | None:
        """Mark the oldest pending events in flight, up to the limits, and return them."""
        rows = self.db.execute(
            "SELECT seq, event_id, type, occurred_at, session_id, member_id, payload, size "
            "FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT ?", [max_events]).fetchall()
        if not rows:
            return None
        chosen: list[Any] = []
        total = 256  # the envelope around the events
        for row in rows:
            if chosen and total + row[7] + 1 > max_bytes:
                break
            chosen.append(row)
            total += row[7] + 1  # the event and its comma
        batch_id = str(uuid.uuid4())
        with write_transaction(self.db):
            self.db.conn.executemany(
                "UPDATE outbox SET status = 'in_flight', batch_id = ?, attempts = attempts + 1 "
                "WHERE seq = ? AND status = 'pending'", [(batch_id, r[0]) for r in chosen])
        # The payload is stored as JSON text and goes out as it is: decoding and
        # re-encoding every payload was a fifth of the drain time.
        wire = [wire_text(r[1], r[0], r[2], r[3], r[4], r[5], r[6]) for r in chosen]
        return Batch(batch_id, [r[1] for r in chosen], wire)

    def settle(self, batch: Batch, delivered: list[str], rejected: dict[str, str],
               now: datetime) -> None:
        """The backend's answer: delivered (accepted or duplicate) and rejected events;
        anything in the batch it did not mention goes back to pending."""
        with write_transaction(self.db):
            if not rejected and set(delivered) >= set(batch.event_ids):
                self.db.execute(  # the usual case: the whole batch delivered
                    "UPDATE outbox SET status = 'delivered', delivered_at = ? "
                    "WHERE batch_id = ? AND status = 'in_flight'", [now.isoformat(),
                                                                    batch.batch_id])
            else:
                self.db.conn.executemany(
                    "UPDATE outbox SET status = 'delivered', delivered_at = ? WHERE event_id = ? "
                    "AND batch_id = ?", [(now.isoformat(), e, batch.batch_id) for e in delivered])
            self.db.conn.executemany(
                "UPDATE outbox SET status = 'dead', reason = ? WHERE event_id = ? "
                "AND batch_id = ?", [(r, e, batch.batch_id) for e, r in rejected.items()])
            self.db.execute("UPDATE outbox SET status = 'pending' WHERE batch_id = ? "
                            "AND status = 'in_flight'", [batch.batch_id])
            self.db.execute("INSERT OR REPLACE INTO outbox_meta VALUES ('last_upload', ?)",
                            [now.isoformat()])

    def dead(self, event_id: str, reason: str) -> None:
        """Set one event aside for staff (the backend refused it on its own)."""
        with write_transaction(self.db):
            self.db.execute("UPDATE outbox SET status = 'dead', reason = ? WHERE event_id = ?",
                            [reason, event_id])

    def release(self, batch: Batch) -> None:
        """The send failed: the batch goes back to pending, nothing lost."""
        with write_transaction(self.db):
            self.db.execute("UPDATE outbox SET status = 'pending' WHERE batch_id = ? "
                            "AND status = 'in_flight'", [batch.batch_id])

    def dead_letters(self) -> list[tuple[int, str, str, str]]:
        return [(r[0], r[1], r[2], r[3]) for r in self.db.execute(
            "SELECT seq, event_id, type, reason FROM outbox WHERE status = 'dead' ORDER BY seq")]

    def retry_dead(self) -> int:
        with write_transaction(self.db):
            return self.db.execute("UPDATE outbox SET status = 'pending', reason = '' "
                                   "WHERE status = 'dead'").rowcount

    def prune(self, keep_days: int, now: datetime) -> int:
        """Remove delivered events older than ``keep_days``."""
        cutoff = (now - timedelta(days=keep_days)).isoformat()
        with write_transaction(self.db):
            return self.db.execute("DELETE FROM outbox WHERE status = 'delivered' "
                                   "AND delivered_at < ?", [cutoff]).rowcount

    def types(self) -> list[str]:
        """The type of every event on the kiosk (delivered ones until pruned), by seq."""
        return [str(t) for (t,) in self.db.execute("SELECT type FROM outbox ORDER BY seq")]

    def count_by_type(self) -> dict[str, int]:
        """How many events of each type are on the kiosk (delivered ones until pruned)."""
        return {str(t): int(n) for t, n in self.db.execute(
            "SELECT type, count(*) FROM outbox GROUP BY type")}

    def session_events(self, session_id: str,
                       types: Iterable[EventType | str]) -> list[tuple[str, dict[str, Any]]]:
        """The session's events of the given types as (type, payload), in seq order."""
        wanted = [t.value if isinstance(t, EventType) else t for t in types]
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        return [(str(t), dict(json.loads(p))) for t, p in self.db.execute(
            f"SELECT type, payload FROM outbox WHERE session_id = ? AND type IN ({marks}) "
            "ORDER BY seq", [session_id, *wanted])]

    def status(self) -> OutboxStatus:
        counts = dict(self.db.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
        oldest = self.db.execute("SELECT min(occurred_at) FROM outbox "
                                 "WHERE status IN ('pending', 'in_flight')").fetchone()[0]
        last = self.db.execute("SELECT value FROM outbox_meta WHERE key = 'last_upload'"
                               ).fetchone()
        return OutboxStatus(counts.get("pending", 0), counts.get("in_flight", 0),
                            counts.get("dead", 0), counts.get("delivered", 0),
                            self.bytes_queued(), oldest, last[0] if last else None)

