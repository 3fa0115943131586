"""The audit log: every staff action and payment outcome, append-only and hash-chained.

Each row's hash is SHA-256 over the previous row's hash and the row's own
canonical content (sequence number, time, kind, actor, detail as sorted
JSON). Editing, deleting or reordering rows anywhere breaks the chain at that
row; ``verify`` names the first bad one. Cutting rows off the *end* leaves a
valid but shorter chain, so the newest (sequence, hash) is also carried off
the kiosk: written to a head file beside the database after every append, sent
with every event upload, and printed on every Z report. ``verify`` compares the
chain with whichever of those it is given.

Never put a secret in ``detail``: the log is printed, exported and shown.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from app.storage.db import write_transaction

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    kind: str
    actor: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "actor": self.actor,
                "detail": self.detail, "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    reason: str = ""


def row_hash(prev_hash: str, seq: int, at: str, kind: str, actor: str, detail: str) -> str:
    canonical = json.dumps([seq, at, kind, actor, json.loads(detail)], sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, db: sqlite_utils.Database, head_file: Path | None = None) -> None:
        self.db = db
        self.head_file = head_file

    def append(self, kind: str, actor: str, detail: dict[str, Any], now: datetime) -> AuditEntry:
        """Add one row (inside the caller's transaction, if there is one)."""
        body = json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        at = now.isoformat()
        with write_transaction(self.db):
            last = self.db.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            digest = row_hash(prev, seq, at, kind, actor, body)
            self.db.execute("INSERT INTO audit_log (seq, at, kind, actor, detail, prev_hash, "
                            "hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [seq, at, kind, actor, body, prev, digest])
        return AuditEntry(seq, at, kind, actor, detail, prev, digest)

    def publish_head(self) -> bool:
        """Write the committed head to the head file (the kiosk calls this every few
        seconds, outside any transaction). Only ever forward, and only from a chain that
        still holds the head already written: a truncated or rewritten log is never
        blessed by overwriting the evidence. False when the file disagrees."""
        if self.head_file is None:
            return True
        seq, digest = self.head()
        if seq == 0:
            return True  # nothing logged yet: nothing to carry
        on_file = self.file_head()
        if on_file is not None and on_file[0] < 0:
            return False  # unreadable: alert, and leave it for staff to look at
        if on_file is not None and on_file[0] > 0:
            if on_file == (seq, digest):
                return True
            known = self.db.execute("SELECT hash FROM audit_log WHERE seq = ?",
                                    [on_file[0]]).fetchone()
            if on_file[0] > seq or known is None or known[0] != on_file[1]:
                return False
        # Atomic replace: a crash leaves the old head or the new one, never half of one.
        tmp = self.head_file.with_suffix(".tmp")
        with tmp.open("w", encoding="ascii") as f:
            f.write(f"{seq} {digest}\n")
            f.flush()
            os.fsync(f.fileno())  # a power cut leaves the old head or the new, never nothing
        os.replace(tmp, self.head_file)
        return True

    def head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
                              ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def count_kinds(self, after: int, upto: int) -> dict[str, int]:
        """How many rows of each kind have ``after < seq <= upto`` (a report period)."""
        return {str(k): int(n) for k, n in self.db.execute(
            "SELECT kind, count(*) FROM audit_log WHERE seq > ? AND seq <= ? GROUP BY kind",
            [after, upto]).fetchall()}

    def entries(self, since: datetime | None = None) -> list[AuditEntry]:
        sql = "SELECT seq, at, kind, actor, detail, prev_hash, hash FROM audit_log"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE at >= ?"
            args.append(since.isoformat())
        rows = self.db.execute(sql + " ORDER BY seq", args).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def file_head(self) -> tuple[int, str] | None:
        """The head file's (seq, hash); None if there is none. An unreadable file reads
        as (-1, reason): it disagrees with every chain, and nothing here crashes on it."""
        if self.head_file is None or not self.head_file.exists():
            return None
        try:
            seq, digest = self.head_file.read_text(encoding="ascii").split()
            if not seq.isdigit() or len(digest) != 64:
                raise ValueError("not 'SEQ HASH'")
            return int(seq), digest
        except (OSError, ValueError) as exc:
            return -1, f"unreadable head file: {exc}"

    def verify(self, known_heads: list[tuple[int, str]] | None = None) -> Verdict:
        """Walk the chain; then check it still reaches every head carried off the kiosk."""
        prev, expected_seq, rows = GENESIS, 1, 0
        hashes: dict[int, str] = {}
        for seq, at, kind, actor, detail, prev_hash, digest in self.db.execute(
                "SELECT seq, at, kind, actor, detail, prev_hash, hash FROM audit_log "
                "ORDER BY rowid"):
            rows += 1
            if seq != expected_seq:
                reason = "a row is missing before it" if seq > expected_seq else \
                    "rows are out of order"
                return Verdict(False, rows, expected_seq - 1, prev, seq, reason)
            try:
                recomputed = row_hash(prev_hash, seq, at, kind, actor, detail)
            except (ValueError, TypeError):
                return Verdict(False, rows, seq - 1, prev, seq, "its detail is not JSON")
            if prev_hash != prev:
                return Verdict(False, rows, seq - 1, prev, seq,
                               "it does not follow the row before it")
            if recomputed != digest:
                return Verdict(False, rows, seq - 1, prev, seq, "its content was changed")
            hashes[seq] = digest
            prev, expected_seq = digest, seq + 1
        head_seq = expected_seq - 1
        heads = list(known_heads or [])
        on_file = self.file_head()
        if on_file is not None:
            heads.append(on_file)
        for seq, digest in heads:
            if seq < 0:
                return Verdict(False, rows, head_seq, prev, None, digest)
            if seq > head_seq:
                return Verdict(False, rows, head_seq, prev, head_seq + 1,
                               f"the log ends at row {head_seq} but row {seq} was recorded "
                               "off the kiosk: rows were cut off the end")
            if hashes.get(seq, GENESIS if seq == 0 else None) != digest:
                return Verdict(False, rows, head_seq, prev, seq,
                               "it differs from the copy recorded off the kiosk")
        return Verdict(True, rows, head_seq, prev)


__all__ = ["GENESIS", "AuditEntry", "AuditLog", "Verdict", "row_hash"]
