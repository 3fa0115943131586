"""The reference membership backend: ``kiosk sim backend``, on 127.0.0.1.

It implements docs/membership-api.yaml: ``POST /v1/events`` (bearer token,
``Idempotency-Key``), storing events in its own SQLite file and deduping by
``event_id``, and ``GET /v1/members/{id}``. A status page at ``/`` counts
what each kiosk delivered. It can be told to misbehave while running,
``POST /sim/mode`` with any of::

    {"status": 503 | 500 | 429 | 200, "retry_after": N, "slow": S,
     "reject_types": ["help_requested"], "token": "..."}

and stopped and started again on the same file and port to be "down"
(connections refused).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain.member_code import PREFIX, Credential, encode
from app.domain.varint import encode_uvarint

DEFAULT_TOKEN = "kiosk-sim-token"  # noqa: S105 - the simulator's public test token


@dataclass
class Mode:
    status: int = 200
    retry_after: int | None = None
    slow: float = 0.0
    reject_types: list[str] = field(default_factory=list)
    token: str = DEFAULT_TOKEN


class Store:
    """The backend's own SQLite file."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, kiosk_id TEXT, "
            "store_id TEXT, seq INTEGER, type TEXT, occurred_at TEXT, body TEXT, "
            "received_at TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS batches (idempotency_key TEXT PRIMARY KEY, "
                          "response TEXT)")
        # Every audit head a kiosk reported, kept: a log cut short and then grown again
        # reaches the newest head but no longer holds an older one.
        self.conn.execute("CREATE TABLE IF NOT EXISTS audit_heads (kiosk_id TEXT NOT NULL, "
                          "seq INTEGER NOT NULL, hash TEXT NOT NULL, received_at TEXT, "
                          "PRIMARY KEY (kiosk_id, seq, hash))")
        self.conn.execute("CREATE TABLE IF NOT EXISTS members (member_id TEXT PRIMARY KEY, "
                          "name TEXT, tier TEXT, points INTEGER, phone TEXT)")
        self.conn.execute("INSERT OR IGNORE INTO members VALUES "
                          "('M000001', '王小明', 'gold', 1200, '13800138000'), "
                          "('M000002', 'Alice Chen', 'silver', 300, '13900139000')")

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.conn.execute(
                "SELECT kiosk_id, count(*) FROM events GROUP BY kiosk_id").fetchall())

    def total(self) -> int:
        """How many events the backend holds, from every kiosk (each once)."""
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        """Let go of the backend's database file (after ``BackendServer.stop``)."""
        with self.lock:
            self.conn.close()

    def events(self, kiosk_id: str) -> list[tuple[int, str]]:
        with self.lock:
            return self.conn.execute("SELECT seq, event_id FROM events WHERE kiosk_id = ? "
                                     "ORDER BY seq", [kiosk_id]).fetchall()


class Handler(BaseHTTPRequestHandler):
    server: BackendServer

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        store = self.server.store
        if self.path == "/":
            rows = "".join(f"<tr><td>{k}</td><td>{n}</td></tr>" for k, n in store.counts().items())
            page = ("<!doctype html><meta charset=utf-8><title>Membership backend</title>"
                    "<h1>Events delivered</h1><table border=1><tr><th>kiosk</th><th>events</th>"
                    f"</tr>{rows}</table>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if self.path == "/v1/keys/member":
            return self._reply(200, {"member_key": self.server.member_key_text()})
        if self.path.startswith("/sim/member-code/"):
            return self._reply(200, {"code": self.server.member_code(
                self.path.rsplit("/", 1)[1])})
        if self.path.startswith("/v1/members?phone="):
            if not self._authorised():
                return self._reply(401, {"error": "bad token"})
            phone = self.path.split("=", 1)[1]
            with store.lock:
                row = store.conn.execute("SELECT member_id FROM members WHERE phone = ?",
                                         [phone]).fetchone()
            if row is None:
                return self._reply(404, {"error": "no such member"})
            return self._reply(200, {"member_id": row[0]})
        if self.path.startswith("/v1/kiosks/") and self.path.endswith("/audit-head"):
            if not self._authorised():
                return self._reply(401, {"error": "bad token"})
            heads = self.server.audit_heads(self.path.split("/")[3])
            if not heads:
                return self._reply(404, {"error": "no audit head from this kiosk yet"})
            return self._reply(200, {"seq": heads[-1][0], "hash": heads[-1][1],
                                     "heads": [{"seq": a, "hash": b} for a, b in heads]})
        if self.path.startswith("/v1/members/"):
            if not self._authorised():
                return self._reply(401, {"error": "bad token"})
            member_id = self.path.rsplit("/", 1)[1]
            with store.lock:
                row = store.conn.execute("SELECT member_id, name, tier, points FROM members "
                                         "WHERE member_id = ?", [member_id]).fetchone()
            if row is None:
                return self._reply(404, {"error": "no such member"})
            return self._reply(200, dict(zip(("member_id", "name", "tier", "points"), row,
                                             strict=True)))
        if self.path == "/sim/counts":
            return self._reply(200, store.counts())
        self._reply(404, {"error": "not found"})

    def _authorised(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.server.mode.token}"

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/sim/mode":
            data = json.loads(raw or b"{}")
            mode = self.server.mode
            for key in ("status", "retry_after", "slow", "reject_types", "token"):
                if key in data:
                    setattr(mode, key, data[key])
            return self._reply(200, mode.__dict__)
        if self.path != "/v1/events":
            return self._reply(404, {"error": "not found"})
        mode = self.server.mode
        if mode.slow:
            time.sleep(mode.slow)
        if not self._authorised():
            return self._reply(401, {"error": "bad or missing bearer token"})
        if mode.status != 200:
            headers = {"Retry-After": str(mode.retry_after)} if mode.retry_after else {}
            return self._reply(mode.status, {"error": "simulated failure"}, headers)
        key = self.headers.get("Idempotency-Key", "")
        try:
            body = json.loads(raw)
            kiosk_id, store_id = str(body["kiosk_id"]), str(body["store_id"])
            events = list(body["events"])
        except (ValueError, KeyError, TypeError):
            return self._reply(400, {"error": "body must be the events envelope"})
        if not key:
            return self._reply(400, {"error": "Idempotency-Key header required"})
        head = body.get("audit_head")
        if isinstance(head, dict) and isinstance(head.get("seq"), int):
            self.server.keep_audit_head(kiosk_id, head["seq"], str(head.get("hash", "")))
        self._reply(200, self.server.accept(key, kiosk_id, store_id, events))


class BackendServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 8766, db: Path | None = None) -> None:
        self.db_path = db or Path(":memory:")
        self.store = Store(self.db_path)
        self.mode = Mode()
        self.member_key = Ed25519PrivateKey.generate()  # signs app credentials
        self.arrivals: list[str] = []  # event ids in the order they were first stored
        super().__init__(("127.0.0.1", port), Handler)

    def member_key_text(self) -> str:
        raw = self.member_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def add_member(self, member_id: str, name: str, tier: str, phone: str,
                   points: int = 0) -> None:
        """Enrol (or update) a member, as the membership app's sign-up would."""
        with self.store.lock:
            self.store.conn.execute("INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, ?)",
                                    [member_id, name, tier, points, phone])

    def member_code(self, member_id: str, shown_at: int | None = None,
                    valid_days: int = 30) -> str:
        """A fresh member QR, as the membership app would show it."""
        app = Ed25519PrivateKey.generate()
        app_pub = app.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        now = int(time.time()) if shown_at is None else shown_at
        credential = Credential(member_id, app_pub, now + valid_days * 86400).encode()
        backend_sig = self.member_key.sign(credential)
        message = PREFIX.encode() + credential + encode_uvarint(now)
        return encode(credential, backend_sig, now, app.sign(message))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep_audit_head(self, kiosk_id: str, seq: int, digest: str) -> None:
        """Every head a kiosk reports is kept (append-only)."""
        with self.store.lock:
            self.store.conn.execute("INSERT OR IGNORE INTO audit_heads VALUES (?, ?, ?, ?)",
                                    [kiosk_id, seq, digest, datetime.now(UTC).isoformat()])

    def audit_heads(self, kiosk_id: str) -> list[tuple[int, str]]:
        with self.store.lock:
            rows = self.store.conn.execute("SELECT seq, hash FROM audit_heads WHERE kiosk_id = ?"
                                           " ORDER BY seq", [kiosk_id]).fetchall()
        return [(int(a), str(b)) for a, b in rows]

    def accept(self, key: str, kiosk_id: str, store_id: str,
               events: list[dict[str, Any]]) -> dict[str, Any]:
        store = self.store
        with store.lock:
            done = store.conn.execute("SELECT response FROM batches WHERE idempotency_key = ?",
                                      [key]).fetchone()
            if done:
                return dict(json.loads(done[0]))  # the same batch again: the same answer
            now = datetime.now(UTC).isoformat()
            store.conn.execute("BEGIN")
            try:
                response = self._store_batch(key, kiosk_id, store_id, events, now)
            except Exception:
                store.conn.execute("ROLLBACK")  # one bad event must not wedge the backend
                raise
            store.conn.execute("COMMIT")
            return response

    def _store_batch(self, key: str, kiosk_id: str, store_id: str,
                     events: list[dict[str, Any]], now: str) -> dict[str, Any]:
        conn = self.store.conn
        accepted: list[str] = []
        duplicates: list[str] = []
        rejected: list[dict[str, str]] = []
        for e in events:
            if not isinstance(e, dict):
                rejected.append({"event_id": "", "reason": "not an event object"})
                continue
            event_id = str(e.get("event_id", ""))
            seq = e.get("seq")
            if e.get("type") in self.mode.reject_types:
                rejected.append({"event_id": event_id, "reason": "type not accepted"})
            elif not event_id or not isinstance(seq, int) or not 0 < seq < 2 ** 63:
                rejected.append({"event_id": event_id, "reason": "missing event_id or seq"})
            else:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [event_id, kiosk_id, store_id, seq, str(e.get("type")),
                     str(e.get("occurred_at")), json.dumps(e, ensure_ascii=False), now])
                (accepted if cursor.rowcount else duplicates).append(event_id)
        response = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        conn.execute("INSERT INTO batches VALUES (?, ?)", [key, json.dumps(response)])
        self.arrivals.extend(accepted)
        return response

    def start(self) -> BackendServer:
        threading.Thread(target=self.serve_forever, name="sim-backend", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
