"""The event outbox on a real SQLite file, and the uploader against the reference backend."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from app.domain.clock import FixedClock
from app.domain.events import BadEvent, EventType, new_event
from app.services.uploads import EventUploader
from app.storage.db import open_database, write_transaction
from app.storage.outbox import Outbox
from devices.membership import MembershipBackend, retry_after_seconds
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer
from hq.cluster import LocalCluster
from hq.nats_store import NatsStore
from hq.sqlite_store import SqliteStore
from hq.stores import HqStore
from tests.helpers import wait_for

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=SHANGHAI)


def event(i: int, at: datetime = T0, kind: EventType = EventType.ITEM_SCANNED):
    payload = {"code": f"69000000{i:05d}", "product": "Whole Milk 250ml", "price_minor": 650,
               "how": "camera"} if kind is EventType.ITEM_SCANNED else {"reason": "help"}
    return new_event(kind, occurred_at=at, session_id=f"s{i // 10}", payload=payload)


@pytest.fixture
def db_path(tmp_path) -> Path:
    path = tmp_path / "kiosk.db"
    open_database(path).close()
    return path


@pytest.fixture
def outbox(db_path):
    box = Outbox.open(db_path)
    yield box
    box.db.close()


def test_events_need_their_payload_fields():
    with pytest.raises(BadEvent, match="needs payload fields"):
        new_event(EventType.ITEM_SCANNED, occurred_at=T0, session_id="s", payload={})
    with pytest.raises(BadEvent, match="offset"):
        new_event(EventType.HELP_REQUESTED, occurred_at=T0.replace(tzinfo=None),
                  session_id="s", payload={"reason": "x"})


def test_seq_only_grows_across_restarts_and_pruning(db_path, outbox):
    first = [outbox.record(event(i)) for i in range(3)]
    batch = outbox.next_batch()
    outbox.settle(batch, batch.event_ids, {}, T0 + timedelta(days=30))
    outbox.prune(7, T0 + timedelta(days=60))  # every delivered row removed
    outbox.db.close()
    again = Outbox.open(db_path)  # a restart
    later = again.record(event(3, at=T0 - timedelta(days=1)))  # the clock went back
    assert later > max(first)
    again.db.close()


def test_an_event_is_written_with_its_change_or_not_at_all(outbox):
    with pytest.raises(RuntimeError):
        with write_transaction(outbox.db):
            outbox.record(event(1))
            raise RuntimeError("the change failed")
    assert outbox.status().pending == 0


def test_batches_respect_the_event_and_byte_limits(outbox):
    for i in range(1200):
        outbox.record(event(i))
    assert len(outbox.next_batch(max_events=500).events) == 500
    small = outbox.next_batch(max_events=500, max_bytes=20_000)
    assert 0 < len(small.events) < 100
    seqs = [e["seq"] for e in small.events]
    assert seqs == sorted(seqs)


def test_rows_caught_mid_send_are_sent_again(outbox):
    outbox.record(event(1))
    outbox.next_batch()
    assert outbox.status().in_flight == 1
    assert outbox.requeue_in_flight() == 1 and outbox.status().pending == 1


def paid(i: int):
    return new_event(EventType.PAYMENT_PAID, occurred_at=T0, session_id=f"p{i}",
                     payload={"order_id": f"K{i}", "amount_minor": 100, "provider_ref": f"T{i}"})


def test_at_the_cap_the_oldest_behaviour_events_go_and_one_gap_marker_names_them(db_path):
    # Issue 16, fault 4: at the cap events were refused (QueueFull) and selling stopped.
    box = Outbox.open(db_path, max_bytes=5000)
    box.record(paid(0))  # seq 1: a money event among the oldest
    for i in range(1, 20):
        box.record(event(i))  # seq 2..20, about 290 bytes each: the cap is passed at seq 20
    rows = box.db.execute("SELECT seq, type, payload FROM outbox ORDER BY seq").fetchall()
    (marker_seq, _, body), = [r for r in rows if r[1] == "events_evicted"]
    gap = json.loads(body)
    kept = [r[0] for r in rows if r[1] == "item_scanned"]
    assert gap["count"] >= 1 and gap["first_seq"] == 2  # the oldest behaviour event first
    assert gap["count"] == gap["last_seq"] - gap["first_seq"] + 1
    # The newest kept, in order (19 events, the marker and the payment: seqs 1..21).
    assert kept == [s for s in range(gap["last_seq"] + 1, 22) if s != marker_seq]
    assert marker_seq > gap["last_seq"]
    assert rows[0][:2] == (1, "payment_paid")  # older, but money: never evicted
    assert box.bytes_queued() <= 5000
    (message,) = [m for (m,) in box.db.execute(
        "SELECT message FROM staff_alerts WHERE kind = 'outbox' AND ref = 'evicted'")]
    assert f"seq {gap['first_seq']}-{gap['last_seq']}" in message
    assert "membership.max_mb" in message and "outbox.max_mb" not in message
    box.db.close()


def test_money_receipt_audit_and_staff_events_are_never_evicted(db_path):
    box = Outbox.open(db_path, max_bytes=3000)
    keep = [paid(0),
            new_event(EventType.RECEIPT_FAILED, occurred_at=T0, session_id="p0",
                      payload={"order_id": "K0", "reason": "paper out"}),
            new_event(EventType.EXIT_AUDIT_FLAGGED, occurred_at=T0, session_id="p0",
                      payload={"order_id": "K0", "reasons": ["random"]}),
            new_event(EventType.STAFF_ACTION, occurred_at=T0, session_id="p0",
                      payload={"action": "void", "staff": "S1"}),
            new_event(EventType.SESSION_ENDED, occurred_at=T0, session_id="p0",
                      payload={"order_id": "K0", "total_minor": 100, "item_count": 1})]
    for e in keep:
        box.record(e)
    for i in range(1, 60):
        box.record(event(i))  # many passes of eviction
    for i in range(1, 20):
        box.record(paid(i))  # money alone past the cap: still written, the cap gives way
    types = box.types()
    for e in keep:
        assert e.type.value in types
    assert types.count("payment_paid") == 20
    assert box.bytes_queued() > 3000
    gaps = [json.loads(p) for (p,) in box.db.execute(
        "SELECT payload FROM outbox WHERE type = 'events_evicted' ORDER BY seq")]
    assert len(gaps) >= 2 and sum(g["count"] for g in gaps) == 59 - types.count("item_scanned")
    assert all(a["last_seq"] < b["first_seq"] for a, b in zip(gaps, gaps[1:], strict=False))
    box.db.close()


def test_retry_after_as_seconds_or_date():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


# --- the uploader against the reference backend ------------------------------------------------
class Rig:
    """The uploader and the reference backend over one of the head office's stores:
    ``sqlite`` (a file) or ``nats`` (a real single-node JetStream server)."""

    def __init__(self, tmp_path: Path, db_path: Path, store_kind: str = "sqlite") -> None:
        self.port = _free_port()
        self.backend_db = tmp_path / "backend.db"
        self.backend: BackendServer | None = None
        self.cluster: LocalCluster | None = None
        self.store: HqStore | None = None
        if store_kind == "nats":
            self.cluster = LocalCluster(tmp_path / "nats", size=1)
            self.cluster.start()
            self.store = NatsStore(self.cluster.urls)
        self.alerts: list[str] = []
        self.client = MembershipBackend(f"http://127.0.0.1:{self.port}", DEFAULT_TOKEN,
                                        "lane-01", "store-001", read_timeout=1.0)
        self.uploader = EventUploader(self.client, db_path, FixedClock(T0), backoff_base=0.05,
                                      backoff_cap=0.3, idle_s=0.05, pause_s=0.3,
                                      rng=random.Random(1), on_alert=self.alerts.append)

    def up(self) -> BackendServer:
        if self.store is None:
            self.store = SqliteStore(self.backend_db)
        self.backend = BackendServer(self.port, store=self.store).start()
        return self.backend

    def down(self) -> None:
        if self.backend is not None:
            self.backend.stop()
            self.backend = None

    def mode(self, **kw) -> None:
        assert self.backend is not None
        requests.post(f"{self.backend.url}/sim/mode", json=kw, timeout=5)

    def close(self) -> None:
        self.uploader.stop()
        self.down()
        if self.store is not None:
            self.store.close()
        if self.cluster is not None:
            self.cluster.stop()

    def delivered(self) -> list[tuple[int, str]]:
        assert self.backend is not None
        return self.backend.store.events("lane-01")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "nats"])
def rig(request, tmp_path, db_path):
    r = Rig(tmp_path, db_path, request.param)
    yield r
    r.close()


def test_three_days_offline_then_every_event_arrives_once_in_order(rig, outbox):
    rig.uploader.start()  # the backend is down: connections refused
    ids = []
    for i in range(3000):  # three days of shopping, 1000 events a day
        e = event(i, at=T0 + timedelta(days=i // 1000, minutes=i % 1000))
        outbox.record(e)
        ids.append(e.event_id)
    assert wait_for(lambda: rig.uploader.health().state == "backing_off")
    status = outbox.status()  # one look: rows move between pending and in flight meanwhile
    assert status.pending + status.in_flight == 3000  # nothing lost
    rig.up()
    rig.uploader.wake()
    assert wait_for(lambda: outbox.status().delivered == 3000, 30)
    assert rig.backend.arrivals == ids  # first arrivals, unsorted: each once, in seq order


def test_429_with_retry_after_and_500s_are_retried_without_loss(rig, outbox):
    rig.up()
    rig.mode(status=429, retry_after=1)
    rig.uploader.start()
    for i in range(50):
        outbox.record(event(i))
    assert wait_for(lambda: rig.uploader.health().state == "backing_off")
    assert rig.uploader.health().next_try_in_s >= 1.0  # Retry-After honoured
    rig.mode(status=500)
    assert wait_for(lambda: "500" in rig.uploader.health().last_error)
    rig.mode(status=200)
    assert wait_for(lambda: outbox.status().delivered == 50, 10)
    assert len(rig.delivered()) == 50


def test_slow_replies_time_out_and_the_resend_is_deduplicated(rig, outbox):
    rig.up()
    rig.mode(slow=1.5)  # longer than the uploader's 1 s read timeout
    for i in range(20):
        outbox.record(event(i))
    rig.uploader.start()
    assert wait_for(lambda: "Timeout" in rig.uploader.health().last_error, 10)
    rig.mode(slow=0)
    assert wait_for(lambda: outbox.status().delivered == 20, 10)
    assert len(rig.delivered()) == 20  # stored once, though sent more than once


def test_rejected_events_become_dead_letters_for_staff(rig, outbox):
    rig.up()
    rig.mode(reject_types=["help_requested"])
    outbox.record(event(1))
    outbox.record(event(2, kind=EventType.HELP_REQUESTED))
    rig.uploader.start()
    assert wait_for(lambda: outbox.status().dead == 1 and outbox.status().delivered == 1)
    assert outbox.dead_letters()[0][2:] == ("help_requested", "type not accepted")
    # The alert follows the settle's commit on the uploader's thread: wait for it too.
    assert wait_for(lambda: any("rejected" in a for a in rig.alerts))
    rig.mode(reject_types=[])
    assert outbox.retry_dead() == 1
    rig.uploader.wake()
    assert wait_for(lambda: outbox.status().delivered == 2)


def test_a_refused_token_pauses_uploading_and_alerts_staff(rig, outbox):
    rig.up()
    rig.mode(token="rotated")
    outbox.record(event(1))
    rig.uploader.start()
    assert wait_for(lambda: rig.uploader.health().state == "paused")
    # The alert is raised just after the state flips, on the uploader's thread.
    assert wait_for(lambda: any("token" in a for a in rig.alerts))
    assert outbox.status().pending == 1  # kept
    rig.mode(token=DEFAULT_TOKEN)
    rig.uploader.resume()
    assert wait_for(lambda: outbox.status().delivered == 1)


def test_the_contract_file_matches_what_is_sent_and_answered(rig, outbox):
    import jsonschema
    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" /
                           "membership-api.yaml").read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]

    def check(instance, name):
        schema = dict(schemas[name], components={"schemas": schemas})
        jsonschema.validate(instance, schema)

    rig.up()
    outbox.record(event(1))
    outbox.record(event(2, kind=EventType.HELP_REQUESTED))
    batch = outbox.next_batch()
    body = rig.client.envelope(batch.wire)
    check(body, "EventBatch")
    reply = requests.post(f"{rig.backend.url}/v1/events", json=body, timeout=5, headers={
        "Authorization": f"Bearer {DEFAULT_TOKEN}", "Idempotency-Key": batch.batch_id}).json()
    check(reply, "BatchResult")
    with pytest.raises(jsonschema.ValidationError):
        check({"kiosk_id": "k", "events": []}, "EventBatch")  # the check can fail
    assert reply["rejected"] == []


def test_the_gap_marker_is_in_the_contract_and_the_backend_takes_it(rig, db_path):
    import jsonschema
    import yaml

    schemas = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" /
                              "membership-api.yaml").read_text(encoding="utf-8")
                             )["components"]["schemas"]
    rig.up()
    box = Outbox.open(db_path, max_bytes=2000)
    for i in range(12):
        box.record(event(i))
    batch = box.next_batch()
    (gap,) = [e for e in batch.events if e["type"] == "events_evicted"]
    body = rig.client.envelope(batch.wire)
    jsonschema.validate(body, dict(schemas["EventBatch"], components={"schemas": schemas}))
    reply = requests.post(f"{rig.backend.url}/v1/events", json=body, timeout=5, headers={
        "Authorization": f"Bearer {DEFAULT_TOKEN}", "Idempotency-Key": batch.batch_id}).json()
    assert gap["event_id"] in reply["accepted"] and reply["rejected"] == []
    box.db.close()


def test_uploading_never_blocks_writing_events(rig, outbox, db_path):
    rig.up()
    rig.mode(slow=0.8)
    outbox.record(event(0))
    rig.uploader.start()
    done = threading.Event()

    def write():  # the checkout's thread, with its own connection
        box = Outbox.open(db_path)
        for i in range(1, 200):
            box.record(event(i))
        box.db.close()
        done.set()

    threading.Thread(target=write).start()
    assert done.wait(5)  # writes finish while the uploader waits on a slow backend


def test_staff_are_alerted_once_as_the_outbox_fills(db_path):
    box = Outbox.open(db_path, max_bytes=3500)
    for i in range(11):  # about 290 bytes each: past 75% at the 10th
        box.record(event(i))
    alerts = box.db.execute("SELECT kind, message FROM staff_alerts").fetchall()
    assert len(alerts) == 1 and alerts[0][0] == "outbox" and "% full" in alerts[0][1]
    box.db.close()


def test_delivered_events_are_pruned_by_the_uploader_after_keep_days(rig, outbox):
    rig.up()
    for i in range(5):
        outbox.record(event(i))
    clock = FixedClock(T0)
    rig.uploader.clock, rig.uploader.keep_days = clock, 2
    rig.uploader.prune_every_s = 0.0  # prune on every loop, for the test
    rig.uploader.start()
    assert wait_for(lambda: outbox.status().delivered == 5)
    clock.advance(days=1)
    rig.uploader.wake()
    assert not wait_for(lambda: outbox.status().delivered == 0, 0.5)  # kept: one day old
    clock.advance(days=2)
    rig.uploader.wake()
    assert wait_for(lambda: outbox.status().delivered == 0)  # three days old: removed
    assert len(rig.delivered()) == 5


def test_a_full_outbox_evicts_nothing_once_emptied(db_path):
    box = Outbox.open(db_path, max_bytes=1500)
    for i in range(20):
        box.record(event(i))
    batch = box.next_batch()
    box.settle(batch, batch.event_ids, {}, T0)  # the uploader emptied it (other connection)
    before = box.types().count("events_evicted")
    box.record(event(99))  # counted again before evicting anything
    assert box.types().count("events_evicted") == before
    box.db.close()


def test_a_reply_that_acknowledges_nothing_makes_the_uploader_wait_not_spin(rig, outbox):
    import http.server

    calls = []

    class Empty(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            calls.append(1)
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", rig.port), Empty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outbox.record(event(1))
        rig.uploader.start()
        assert wait_for(lambda: "acknowledged none" in rig.uploader.health().last_error)
        count = len(calls)
        threading.Event().wait(0.5)
        assert len(calls) - count < 10  # backing off, not hammering
        st = outbox.status()  # one look: two could straddle a send and count it twice or not
        assert st.pending + st.in_flight == 1
    finally:
        rig.uploader.stop()
        server.shutdown()
        server.server_close()


def test_a_batch_the_backend_refuses_is_split_and_the_bad_event_set_aside(rig, outbox):
    import http.server
    import json as json_module

    class Picky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            data = json_module.loads(self.rfile.read(int(self.headers["Content-Length"])))
            events = data["events"]
            if any(e["type"] == "help_requested" for e in events):
                status, body = 422, b'{"error": "cannot take help_requested"}'
            else:
                status = 200
                body = json_module.dumps({"accepted": [e["event_id"] for e in events],
                                          "duplicates": [], "rejected": []}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", rig.port), Picky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for i in range(8):
            outbox.record(event(i, kind=EventType.HELP_REQUESTED if i == 5 else
                                EventType.ITEM_SCANNED))
        rig.uploader.start()
        assert wait_for(lambda: outbox.status().delivered == 7 and outbox.status().dead == 1,
                        15)
        assert "422" in outbox.dead_letters()[0][3]
    finally:
        rig.uploader.stop()
        server.shutdown()
        server.server_close()
