"""The embedded head-office store: one SQLite file (WAL), what the demo, the reference
backend (``kiosk sim backend``) and a single store use.

Exactly once: ``events.event_id`` is the primary key (``INSERT OR IGNORE``), and each
batch's answer is kept under its ``Idempotency-Key`` in the same transaction, so a batch
resent at any time later gets the first answer and stores nothing twice.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain.store_data import FORMATS, check_store_id, manifest_from_bytes
from hq.stores import HEARTBEAT_TTL_S, BatchAnswer, Member, StoreUnavailable, VersionTaken

#: The demo's members, enrolled in every new store (docs/members.md).
#: Seconds after which a temporary payload file is an orphan (a killed publisher's): a
#: live publisher renames its own within the busy timeout of claiming its version.
ORPHAN_AGE_S = 3600.0

DEMO_MEMBERS = (("M000001", "王小明", "gold", 1200, "13800138000"),
                ("M000002", "Alice Chen", "silver", 300, "13900139000"))


def event_problem(event: Any, refuse_types: frozenset[str]) -> str | None:
    """Why an event of a batch cannot be stored, or None: the contract's rules (an object
    with an ``event_id`` and a ``seq`` in 1..2**63-1), and types the store refuses."""
    if not isinstance(event, dict):
        return "not an event object"
    if event.get("type") in refuse_types:
        return "type not accepted"
    seq = event.get("seq")
    if not event.get("event_id") or isinstance(seq, bool) or not isinstance(seq, int) \
            or not 0 < seq < 2 ** 63:
        return "missing event_id or seq"
    return None


class SqliteStore:
    """:class:`hq.stores.HqStore` in one SQLite file. Thread-safe (one lock: SQLite
    serialises writers anyway). ``Path(':memory:')`` keeps everything in memory."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000,
                 heartbeat_ttl_s: float = HEARTBEAT_TTL_S) -> None:
        self.path = path
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # Two service processes may share the file: wait for the other's write this long,
        # then answer 503 (the lane retries) rather than hold the lane's request forever.
        self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, kiosk_id TEXT, "
            "store_id TEXT, seq INTEGER, type TEXT, occurred_at TEXT, body TEXT, "
            "received_at TEXT)")
        self.conn.execute("CREATE INDEX IF NOT EXISTS events_by_lane ON events (kiosk_id, seq)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS batches (idempotency_key TEXT PRIMARY KEY, "
                          "response TEXT)")
        # Every audit head a kiosk reported, kept: a log cut short and then grown again
        # reaches the newest head but no longer holds an older one.
        self.conn.execute("CREATE TABLE IF NOT EXISTS audit_heads (kiosk_id TEXT NOT NULL, "
                          "seq INTEGER NOT NULL, hash TEXT NOT NULL, received_at TEXT, "
                          "PRIMARY KEY (kiosk_id, seq, hash))")
        self.conn.execute("CREATE TABLE IF NOT EXISTS members (member_id TEXT PRIMARY KEY, "
                          "name TEXT, tier TEXT, points INTEGER, phone TEXT)")
        # The latest heartbeat of each lane (store sync, docs/store-sync.md).
        self.conn.execute("CREATE TABLE IF NOT EXISTS lane_heartbeats (store_id TEXT NOT NULL, "
                          "lane_id TEXT NOT NULL, received_at TEXT NOT NULL, body TEXT NOT NULL, "
                          "PRIMARY KEY (store_id, lane_id))")
        self.conn.execute("CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, pem BLOB)")
        self.conn.executemany("INSERT OR IGNORE INTO members VALUES (?, ?, ?, ?, ?)",
                              DEMO_MEMBERS)
        # Created once: INSERT OR IGNORE then read, so a second service process on the
        # same file signs with the same key (compare-and-set in SQL).
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        self.conn.execute("INSERT OR IGNORE INTO keys VALUES ('member', ?)", [pem])
        self._open_versions()

    def ingest(self, key: str, kiosk_id: str, store_id: str, events: list[dict[str, Any]],
               refuse_types: frozenset[str] = frozenset()) -> BatchAnswer:
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked past the busy timeout
                raise StoreUnavailable(str(exc)) from exc
            try:
                done = self.conn.execute("SELECT response FROM batches WHERE "
                                         "idempotency_key = ?", [key]).fetchone()
                if done:
                    self.conn.execute("ROLLBACK")
                    return BatchAnswer.from_json(json.loads(done[0]))
                answer = self._store_batch(key, kiosk_id, store_id, events, refuse_types)
            except sqlite3.OperationalError as exc:  # disk full, I/O error: nothing kept
                self.conn.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc
            except Exception:
                self.conn.execute("ROLLBACK")  # one bad event must not wedge the store
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self.conn.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc
            return answer

    def _store_batch(self, key: str, kiosk_id: str, store_id: str,
                     events: list[dict[str, Any]], refuse_types: frozenset[str]) -> BatchAnswer:
        now = datetime.now(UTC).isoformat()
        answer = BatchAnswer()
        for e in events:
            problem = event_problem(e, refuse_types)
            event_id = str(e.get("event_id", "")) if isinstance(e, dict) else ""
            if problem:
                answer.rejected.append({"event_id": event_id, "reason": problem})
                continue
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [event_id, kiosk_id, store_id, e["seq"], str(e.get("type")),
                 str(e.get("occurred_at")), json.dumps(e, ensure_ascii=False), now])
            (answer.accepted if cursor.rowcount else answer.duplicates).append(event_id)
        self.conn.execute("INSERT INTO batches VALUES (?, ?)",
                          [key, json.dumps(answer.as_json())])
        return answer

    def keep_audit_head(self, kiosk_id: str, seq: int, digest: str) -> None:
        with self.lock:
            try:
                self.conn.execute("INSERT OR IGNORE INTO audit_heads VALUES (?, ?, ?, ?)",
                                  [kiosk_id, seq, digest, datetime.now(UTC).isoformat()])
            except sqlite3.OperationalError as exc:  # locked past the busy timeout: 503
                raise StoreUnavailable(str(exc)) from exc

    def audit_heads(self, kiosk_id: str) -> list[tuple[int, str]]:
        with self.lock:
            rows = self.conn.execute("SELECT seq, hash FROM audit_heads WHERE kiosk_id = ? "
                                     "ORDER BY seq", [kiosk_id]).fetchall()
        return [(int(a), str(b)) for a, b in rows]

    def member(self, member_id: str) -> Member | None:
        """The member as enrolled, with the points from their paid visits added."""
        with self.lock:
            row = self.conn.execute("SELECT member_id, name, tier, points FROM members "
                                    "WHERE member_id = ?", [member_id]).fetchone()
        if row is None:
            return None
        return Member(row[0], row[1], row[2], int(row[3] or 0) + self.member_totals(member_id)[2])

    def member_totals(self, member_id: str) -> tuple[int, int, int]:
        """``(visits, spend_minor, points)`` from the member's paid sales (``session_ended``
        events), each event once."""
        with self.lock:
            row = self.conn.execute(
                "SELECT count(*), coalesce(sum(json_extract(body, '$.payload.total_minor')), 0),"
                " coalesce(sum(json_extract(body, '$.payload.points_earned')), 0) FROM events "
                "WHERE type = 'session_ended' AND json_extract(body, '$.member_id') = ?",
                [member_id]).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def member_by_phone(self, phone: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT member_id FROM members WHERE phone = ?",
                                    [phone]).fetchone()
        return None if row is None else str(row[0])

    def enrol(self, member_id: str, name: str, tier: str, phone: str, points: int = 0) -> None:
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, ?)",
                              [member_id, name, tier, points, phone])

    def member_key_pem(self) -> bytes:
        with self.lock:
            return bytes(self.conn.execute("SELECT pem FROM keys WHERE name = 'member'")
                         .fetchone()[0])

    def events(self, kiosk_id: str) -> list[tuple[int, str]]:
        with self.lock:
            return self.conn.execute("SELECT seq, event_id FROM events WHERE kiosk_id = ? "
                                     "ORDER BY seq", [kiosk_id]).fetchall()

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.conn.execute(
                "SELECT kiosk_id, count(*) FROM events GROUP BY kiosk_id").fetchall())

    def total(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    # -- lane heartbeats (docs/store-sync.md) ------------------------------------------------
    def _heartbeat_cutoff(self) -> str:
        """The received_at below which a heartbeat has expired (the same ``...Z`` text the
        rows hold, so the comparison is SQL's text order)."""
        oldest = datetime.now(UTC).timestamp() - self.heartbeat_ttl_s
        return datetime.fromtimestamp(oldest, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def keep_heartbeat(self, store_id: str, lane_id: str, body: dict[str, Any],
                       received_at: str) -> None:
        """Keep the lane's latest heartbeat (replacing its previous one) and drop the
        expired ones of every lane, so the table stays one row per live lane."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("INSERT OR REPLACE INTO lane_heartbeats VALUES (?, ?, ?, ?)",
                                  [store_id, lane_id, received_at,
                                   json.dumps(body, ensure_ascii=False)])
                self.conn.execute("DELETE FROM lane_heartbeats WHERE received_at < ?",
                                  [self._heartbeat_cutoff()])
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # locked past the busy timeout: 503
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc

    def heartbeats(self, store_id: str | None) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Unexpired heartbeats (expiry checked on read: a lane silent past the TTL is
        gone even before the next heartbeat prunes it)."""
        sql = ("SELECT store_id, lane_id, received_at, body FROM lane_heartbeats "
               "WHERE received_at >= ?")
        args: list[Any] = [self._heartbeat_cutoff()]
        if store_id is not None:
            sql += " AND store_id = ?"
            args.append(store_id)
        with self.lock:
            try:
                rows = self.conn.execute(sql + " ORDER BY store_id, lane_id", args).fetchall()
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
        return [(str(a), str(b), str(c), dict(json.loads(d))) for a, b, c, d in rows]

    # -- store data versions (issue 22, docs/store-sync.md) ---------------------------------
    # Manifests in the table ``store_versions``; payloads as files beside the database
    # (``<db>.versions/<store>/<kind>/<version>.<format>.jsonl.gz``): a million-product
    # catalogue is tens of MB per version, which would bloat the WAL of the file every
    # lane's events go through.

    def _open_versions(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS store_versions (store_id TEXT NOT NULL, "
            "kind TEXT NOT NULL, version INTEGER NOT NULL, manifest BLOB NOT NULL, "
            "signature BLOB NOT NULL, published_at TEXT NOT NULL, "
            "PRIMARY KEY (store_id, kind, version))")
        self._scratch: str | None = None
        if str(self.path) == ":memory:":  # a throwaway store: throwaway payload files too
            self._scratch = tempfile.mkdtemp(prefix="hq-versions-")
            self.versions_dir = Path(self._scratch)
        else:
            self.versions_dir = Path(f"{self.path}.versions")

    def _payload_path(self, store_id: str, kind: str, version: int, fmt: str) -> Path:
        return self.versions_dir / store_id / kind / f"{version}.{fmt}.jsonl.gz"

    def publish_version(self, manifest: bytes, signature: bytes, full: bytes,
                        delta: bytes | None) -> None:
        """Keep one version (docs/store-sync.md). The payloads are written to temporary
        names and fsynced outside the database lock (they may be tens of MB); then, in
        one ``BEGIN IMMEDIATE`` transaction (the lock every process on this file shares),
        the version is checked free, the files renamed to their names and the row
        inserted. A second publisher of the same version waits for the lock, finds the
        row and gets :class:`VersionTaken` without touching the first one's files.
        ValueError for a manifest that is not well formed, whose payloads do not match
        what is given, or whose version is not the next one."""
        m = manifest_from_bytes(manifest)
        check_store_id(m.store_id)
        if (delta is None) != (m.delta is None):
            raise ValueError("the delta given and the manifest's delta disagree")
        folder = self.versions_dir / m.store_id / m.kind
        folder.mkdir(parents=True, exist_ok=True)
        temps: list[tuple[Path, Path]] = []
        try:
            for fmt, data in (("full", full), ("delta", delta)):
                if data is None:
                    continue
                tmp = folder / f".{m.version}.{fmt}.{uuid.uuid4().hex}.tmp"
                with tmp.open("wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                temps.append((tmp, self._payload_path(m.store_id, m.kind, m.version, fmt)))
            self._claim_version(m.store_id, m.kind, m.version, manifest, signature, temps,
                                folder)
        finally:
            for tmp, _final in temps:
                tmp.unlink(missing_ok=True)  # gone already once renamed

    def _claim_version(self, store_id: str, kind: str, version: int, manifest: bytes,
                       signature: bytes, temps: list[tuple[Path, Path]], folder: Path) -> None:
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked past the busy timeout
                raise StoreUnavailable(str(exc)) from exc
            try:
                latest = self.conn.execute(
                    "SELECT max(version) FROM store_versions WHERE store_id = ? AND kind = ?",
                    [store_id, kind]).fetchone()[0] or 0
                if version <= latest:
                    raise VersionTaken(f"{kind} version {version} of store {store_id} is "
                                       f"already published (the newest is {latest})")
                if version != latest + 1:
                    raise ValueError(f"{kind} version {version} of store {store_id} would "
                                     f"leave a gap: the newest is {latest}")
                for tmp, final in temps:
                    os.replace(tmp, final)  # a crash before COMMIT leaves files no row names
                dir_fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)  # the renames are durable before the row says so
                finally:
                    os.close(dir_fd)
                self.conn.execute(
                    "INSERT INTO store_versions VALUES (?, ?, ?, ?, ?, ?)",
                    [store_id, kind, version, manifest, signature,
                     datetime.now(UTC).isoformat()])
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # disk full, I/O error: nothing kept
                self.conn.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def latest_version(self, store_id: str, kind: str) -> int | None:
        with self.lock:
            try:
                row = self.conn.execute(
                    "SELECT max(version) FROM store_versions WHERE store_id = ? AND kind = ?",
                    [store_id, kind]).fetchone()
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
        return None if row[0] is None else int(row[0])

    def versions_after(self, store_id: str, kind: str,
                       after: int | None) -> list[tuple[bytes, bytes]]:
        with self.lock:
            try:
                rows = self.conn.execute(
                    "SELECT manifest, signature FROM store_versions WHERE store_id = ? AND "
                    "kind = ? AND version > ? ORDER BY version",
                    [store_id, kind, 0 if after is None else after]).fetchall()
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
        return [(bytes(m), bytes(sig)) for m, sig in rows]

    def payload(self, store_id: str, kind: str, version: int,
                format: str) -> bytes | None:  # noqa: A002 - the contract's name
        if format not in FORMATS:
            return None
        with self.lock:
            try:
                kept = self.conn.execute(
                    "SELECT 1 FROM store_versions WHERE store_id = ? AND kind = ? AND "
                    "version = ?", [store_id, kind, version]).fetchone()
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
        if kept is None:  # files without a row: a publisher that crashed mid-way
            return None
        try:
            return self._payload_path(store_id, kind, version, format).read_bytes()
        except FileNotFoundError:  # pruned since, or version 1's delta
            return None

    def prune_versions(self, store_id: str, kind: str, keep: int) -> int:
        if keep < 1:
            raise ValueError("keep at least the newest version")
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
            try:
                old = [int(v) for (v,) in self.conn.execute(
                    "SELECT version FROM store_versions WHERE store_id = ? AND kind = ? "
                    "ORDER BY version DESC LIMIT -1 OFFSET ?", [store_id, kind, keep])]
                self.conn.executemany(
                    "DELETE FROM store_versions WHERE store_id = ? AND kind = ? AND version = ?",
                    [(store_id, kind, v) for v in old])
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self.conn.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc
            except BaseException:
                self.conn.execute("ROLLBACK")  # never leave the write lock held
                raise
        # Rows first, files after: a reader may still find a pruned row's file for a
        # moment, never a row without its file.
        for version in old:
            for fmt in FORMATS:
                self._payload_path(store_id, kind, version, fmt).unlink(missing_ok=True)
        self._sweep_orphans(self.versions_dir / store_id / kind)
        return len(old)

    def _sweep_orphans(self, folder: Path) -> None:
        """Remove temporary payload files older than :data:`ORPHAN_AGE_S`: a publisher
        killed between writing its payloads and claiming the version leaves them, and no
        row ever names them (a live publisher's are seconds old)."""
        cutoff = time.time() - ORPHAN_AGE_S
        for tmp in folder.glob(".*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except FileNotFoundError:  # its publisher renamed or removed it meanwhile
                pass

    # -- end store data versions ------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            self.conn.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
