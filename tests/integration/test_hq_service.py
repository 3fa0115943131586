"""The head-office service (package ``hq``) on the embedded store: real ``kiosk hq serve``
processes on 127.0.0.1 over one SQLite file, the real uploader's requests."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid

import pytest
import requests

from hq.service import HqServer
from hq.sqlite_store import SqliteStore
from tests.helpers import run_kiosk, wait_for
from tests.openapi import check, response_schema

TOKEN = "hq-test-token"  # noqa: S105 - a test's own token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _batch(kiosk: str, seqs: range) -> dict:
    return {"kiosk_id": kiosk, "store_id": "store-001", "events": [
        {"event_id": f"{kiosk}-{i}", "seq": i, "type": "item_scanned",
         "occurred_at": "2026-11-30T09:00:00+08:00", "session_id": "s1",
         "payload": {"code": "6900000000017"}} for i in seqs]}


def _post(url: str, body: dict, key: str) -> requests.Response:
    return requests.post(f"{url}/v1/events", json=body, timeout=10, headers={
        "Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key})


class Service:
    """One ``kiosk hq serve`` process."""

    def __init__(self, store: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "hq", "serve", "--store", store, "--port",
             str(port), "--token", TOKEN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert wait_for(self._up, timeout=30), self.proc.stderr and self.proc.stderr.read()

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/v1/keys/member", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.fixture
def two_services(tmp_path):
    store = f"sqlite:{tmp_path / 'hq.db'}"
    services = [Service(store, _free_port()), Service(store, _free_port())]
    yield services
    for s in services:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def test_two_instances_over_one_store_answer_alike_and_keep_each_event_once(two_services,
                                                                              tmp_path):
    a, b = two_services
    key_a = requests.get(f"{a.url}/v1/keys/member", timeout=5).json()
    key_b = requests.get(f"{b.url}/v1/keys/member", timeout=5).json()
    assert key_a == key_b  # one member key per store, not per process

    body, key = _batch("lane-01", range(1, 11)), str(uuid.uuid4())
    first = _post(a.url, body, key)
    assert first.status_code == 200
    check("membership-api.yaml", first.json(),
          response_schema("membership-api.yaml", "post", "/v1/events", 200))
    assert len(first.json()["accepted"]) == 10
    again = _post(b.url, body, key)  # the load balancer sent the resend elsewhere
    assert again.json() == first.json()  # the same key: the same answer
    # The same events under a new key (the lane re-batched after a crash): duplicates.
    rebatched = _post(b.url, _batch("lane-01", range(5, 13)), str(uuid.uuid4())).json()
    assert rebatched["duplicates"] == [f"lane-01-{i}" for i in range(5, 11)]
    assert rebatched["accepted"] == ["lane-01-11", "lane-01-12"]

    assert a.stop() == 0 and b.stop() == 0  # SIGTERM: a clean stop
    held = sqlite3.connect(tmp_path / "hq.db").execute(
        "SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert held == (12, 12)


def test_members_and_audit_heads_are_answered_from_the_store(two_services):
    a, b = two_services
    auth = {"Authorization": f"Bearer {TOKEN}"}
    member = requests.get(f"{a.url}/v1/members/M000001", headers=auth, timeout=5)
    assert member.status_code == 200 and member.json()["tier"] == "gold"
    check("membership-api.yaml", member.json(),
          response_schema("membership-api.yaml", "get", "/v1/members/{member_id}", 200))
    assert requests.get(f"{a.url}/v1/members?phone=13900139000", headers=auth,
                        timeout=5).json() == {"member_id": "M000002"}
    assert requests.get(f"{a.url}/v1/members/M404", headers=auth, timeout=5).status_code == 404
    assert requests.get(f"{a.url}/v1/members/M000001", timeout=5).status_code == 401

    body = dict(_batch("lane-07", range(1, 3)), audit_head={"seq": 42, "hash": "ab" * 32})
    assert _post(a.url, body, str(uuid.uuid4())).status_code == 200
    head = requests.get(f"{b.url}/v1/kiosks/lane-07/audit-head", headers=auth, timeout=5)
    assert head.json() == {"seq": 42, "hash": "ab" * 32, "heads": [{"seq": 42,
                                                                     "hash": "ab" * 32}]}


def test_a_store_that_cannot_answer_gets_503_with_retry_after_and_keeps_nothing(tmp_path):
    path = tmp_path / "hq.db"
    store = SqliteStore(path, busy_timeout_ms=200)
    server = HqServer(store, token=TOKEN).start()
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
        body, key = _batch("lane-02", range(1, 4)), str(uuid.uuid4())
        refused = _post(server.url, body, key)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        blocker.execute("ROLLBACK")
        assert store.total() == 0
        # The lane's retry, with the same key, is stored: the refusal was not remembered.
        taken = _post(server.url, body, key)
        assert taken.status_code == 200 and len(taken.json()["accepted"]) == 3
    finally:
        server.stop()
        store.close()


def test_a_locked_store_is_503_for_a_batch_with_its_audit_head_too(tmp_path):
    """Lanes send their audit head with every batch, and the head is kept first: while
    another writer held the file, that write's "database is locked" dropped the lane's
    connection without an answer instead of 503 + Retry-After."""
    path = tmp_path / "hq.db"
    store = SqliteStore(path, busy_timeout_ms=200)
    server = HqServer(store, token=TOKEN).start()
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        body = dict(_batch("lane-03", range(1, 4)), audit_head={"seq": 7, "hash": "cd" * 32})
        refused = _post(server.url, body, str(uuid.uuid4()))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        blocker.execute("ROLLBACK")
        assert store.total() == 0 and store.audit_heads("lane-03") == []
    finally:
        server.stop()
        store.close()


def test_malformed_requests_get_an_answer_not_a_dropped_connection(tmp_path):
    """A Content-Length that is not a number, an audit head whose seq SQLite cannot hold:
    both raised inside the handler, and the connection closed with no answer at all (for
    the head, a batch the lane would resend forever)."""
    store = SqliteStore(tmp_path / "hq.db")
    server = HqServer(store, token=TOKEN).start()
    try:
        host, port = server.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as c:
            c.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n"
                      b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.0 400")
        body = dict(_batch("lane-04", range(1, 3)), audit_head={"seq": 2 ** 70, "hash": "ab"})
        taken = _post(server.url, body, str(uuid.uuid4()))
        assert taken.status_code == 200 and len(taken.json()["accepted"]) == 2
        assert store.audit_heads("lane-04") == []
    finally:
        server.stop()
        store.close()


def test_bad_batches_are_refused_with_a_reason_and_stored_events_stay(tmp_path):
    store = SqliteStore(tmp_path / "hq.db")
    server = HqServer(store, token=TOKEN).start()
    try:
        no_key = requests.post(f"{server.url}/v1/events", json=_batch("l", range(1, 2)),
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["error"]
        garbage = requests.post(f"{server.url}/v1/events", data=b"{not json", timeout=5,
                                headers={"Authorization": f"Bearer {TOKEN}",
                                         "Idempotency-Key": str(uuid.uuid4())})
        assert garbage.status_code == 400
        mixed = _batch("l", range(1, 3))
        mixed["events"].append({"event_id": "", "seq": 3})
        mixed["events"].append({"event_id": "x", "seq": True})  # a bool is not a seq
        answer = _post(server.url, mixed, str(uuid.uuid4())).json()
        assert answer["accepted"] == ["l-1", "l-2"]
        assert [r["reason"] for r in answer["rejected"]] == ["missing event_id or seq"] * 2
        assert store.events("l") == [(1, "l-1"), (2, "l-2")]
        assert json.loads(store.conn.execute("SELECT body FROM events WHERE event_id = 'l-1'")
                          .fetchone()[0])["payload"] == {"code": "6900000000017"}
    finally:
        server.stop()
        store.close()


def test_serve_refuses_an_unknown_store_address_clearly():
    ran = run_kiosk("hq", "serve", "--store", "mysql://x", "--token", "t")
    assert ran.returncode == 1 and "sqlite:PATH" in ran.stderr
    ran = run_kiosk("hq", "serve", "--store", "sqlite:", "--token", "t")
    assert ran.returncode == 1 and "file path" in ran.stderr


def test_serve_needs_a_token(tmp_path):
    ran = run_kiosk("hq", "serve", "--store", f"sqlite:{tmp_path / 'x.db'}")
    assert ran.returncode == 2 and "--token" in ran.stderr
