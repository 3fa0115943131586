"""The reference membership backend: ``kiosk sim backend``, on 127.0.0.1.

It is the head-office service (:mod:`hq.service`) over the embedded SQLite store
(:mod:`hq.sqlite_store`), implementing docs/membership-api.yaml, plus what a test rig
needs: it can be told to misbehave while running, ``POST /sim/mode`` with any of::

    {"status": 503 | 500 | 429 | 200, "retry_after": N, "slow": S,
     "reject_types": ["help_requested"], "token": "..."}

The status switch covers the store-data and heartbeat endpoints (``/v1/stores/...``)
too. ``GET /sim/member-code/<id>`` issues a member QR as the membership app would, and
``GET /sim/counts`` counts what each kiosk delivered. Stopped and started again on the
same file and port, it is "down" (connections refused) in between.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain.member_code import PREFIX, Credential, encode
from app.domain.varint import encode_uvarint
from hq.service import HqHandler, HqServer
from hq.sqlite_store import SqliteStore
from hq.stores import HqStore

DEFAULT_TOKEN = "kiosk-sim-token"  # noqa: S105 - the simulator's public test token


@dataclass
class Mode:
    status: int = 200
    retry_after: int | None = None
    slow: float = 0.0
    reject_types: list[str] = field(default_factory=list)
    token: str = DEFAULT_TOKEN


class Handler(HqHandler):
    server: BackendServer

    def authorised(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.server.mode.token}"

    def _down(self, path: str) -> bool:
        """The status switch covers the store-data and heartbeat endpoints too (a head
        office that is down is down for every lane's request)."""
        mode = self.server.mode
        if not path.startswith("/v1/stores/") or mode.status == 200:
            return False
        headers = {"Retry-After": str(mode.retry_after)} if mode.retry_after else {}
        self.reply(mode.status, {"error": "simulated failure"}, headers)
        return True

    def extra_get(self, path: str, query: str) -> bool:
        if self._down(path):
            return True
        if path.startswith("/sim/member-code/"):
            self.reply(200, {"code": self.server.member_code(path.rsplit("/", 1)[1])})
            return True
        if path == "/sim/counts":
            self.reply(200, self.server.store.counts())
            return True
        return False

    def extra_post(self, path: str, raw: bytes) -> bool:
        if self._down(path):
            return True
        if path != "/sim/mode":
            return False
        data = json.loads(raw or b"{}")
        mode = self.server.mode
        for key in ("status", "retry_after", "slow", "reject_types", "token"):
            if key in data:
                setattr(mode, key, data[key])
        self.reply(200, mode.__dict__)
        return True

    def before_ingest(self) -> bool:
        mode = self.server.mode
        if mode.slow:
            time.sleep(mode.slow)
        if mode.status != 200:
            headers = {"Retry-After": str(mode.retry_after)} if mode.retry_after else {}
            self.reply(mode.status, {"error": "simulated failure"}, headers)
            return True
        return False

    def refused_types(self) -> frozenset[str]:
        return frozenset(self.server.mode.reject_types)


class BackendServer(HqServer):
    """The reference backend on 127.0.0.1:``port`` over the SQLite file ``db`` (in memory
    when None), or over ``store`` when given (e.g. a :class:`hq.nats_store.NatsStore`: the
    contract tests run against both)."""

    def __init__(self, port: int = 8766, db: Path | None = None, *,
                 store: HqStore | None = None) -> None:
        self.db_path = db or Path(":memory:")
        self.mode = Mode()
        self.arrivals: list[str] = []  # event ids in the order they were first stored
        super().__init__(store or SqliteStore(self.db_path), token=DEFAULT_TOKEN, port=port,
                         handler=Handler)

    def ingested(self, event_ids: list[str]) -> None:
        self.arrivals.extend(event_ids)

    def add_member(self, member_id: str, name: str, tier: str, phone: str,
                   points: int = 0) -> None:
        """Enrol (or update) a member, as the membership app's sign-up would."""
        self.store.enrol(member_id, name, tier, phone, points)

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

    def keep_audit_head(self, kiosk_id: str, seq: int, digest: str) -> None:
        """Every head a kiosk reports is kept (append-only)."""
        self.store.keep_audit_head(kiosk_id, seq, digest)
