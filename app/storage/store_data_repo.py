"""The lane's copies of head office's store data versions (issue 22, docs/store-sync.md).

Owner of ``store_data_versions`` (every verified version this lane holds, by state),
``store_data_refusals`` (what was refused and why), ``catalogue_delta_staged`` (a staged
catalogue delta's rows), ``catalogue_undo`` (before-images of the products an applied
delta changed), ``store_data_staged_rows`` (staged promotions and lane-key rows),
``lane_keys`` (the store's exit-pass keys as head office last sent them),
``sync_contact`` (the last contact with head office) and the side tables
``products_hq_staged`` (a staged full catalogue, built before it is due),
``products_hq_prev`` (the catalogue a full switch replaced, kept for a rollback) and
``products_hq_old`` (a catalogue no longer needed: emptied in short transactions
by ``tidy``).

Staging writes in short transactions of ``LOAD_BATCH_ROWS`` rows with ``LOCK_GAP_S``
between them, as ``SqliteCatalogue.load`` does (issue 16: never hold the write lock
long); the version's row is written last, so a staging killed half-way leaves rows
without a version, which the next staging of that version clears. Applying is one
transaction, run by the service (app/services/store_data.py); the catalogue's own
statements in it are methods of ``SqliteCatalogue`` (the owner of ``products``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

import sqlite_utils

from app.domain.catalogue_file import COLUMNS
from app.storage.catalogue_repo import (
    CLEAR_BATCH_ROWS,
    LOAD_BATCH_ROWS,
    LOCK_GAP_S,
)
from app.storage.db import write_transaction
from app.storage.migrations import create_products_table

STAGED_FULL = "products_hq_staged"
PREV_TABLE = "products_hq_prev"
OLD_TABLE = "products_hq_old"  # a catalogue no longer needed, emptied step by step
STATES = ("staged", "applied", "superseded", "refused", "rolled_back")


@dataclass(frozen=True)
class VersionRow:
    """One row of ``store_data_versions``: times are ISO 8601 (wall clock, as recorded);
    ``manifest`` the exact signed bytes; ``undo`` JSON (what a rollback needs) or None."""

    kind: str
    version: int
    state: str
    format: str
    effective_at: str
    manifest: bytes
    signature: bytes
    staged_at: str
    applied_at: str | None
    reason: str
    undo: str | None


_ROW = ("kind, version, state, format, effective_at, manifest, signature, staged_at, "
        "applied_at, reason, undo")


def _row(r: tuple[Any, ...]) -> VersionRow:
    return VersionRow(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), bytes(r[5]),
                      bytes(r[6]), str(r[7]), r[8], str(r[9]), r[10])


class StoreDataRepo:
    """Repository over the store-data tables listed in the module docstring."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._conn = db.conn
        self._released = 0.0

    # -- reading ---------------------------------------------------------------------------
    def path(self) -> str:
        """The database file's path ('' for an in-memory database)."""
        return next((str(r[2]) for r in self._conn.execute("PRAGMA database_list")
                     if r[1] == "main"), "")

    def get(self, kind: str, version: int) -> VersionRow | None:
        r = self._conn.execute(f"SELECT {_ROW} FROM store_data_versions WHERE kind = ? "
                               "AND version = ?", (kind, version)).fetchone()
        return _row(r) if r else None

    def rows(self, kind: str, states: Iterable[str] = STATES) -> list[VersionRow]:
        """``kind``'s versions in the given states, oldest version first."""
        wanted = list(states)
        marks = ", ".join("?" * len(wanted))
        return [_row(r) for r in self._conn.execute(
            f"SELECT {_ROW} FROM store_data_versions WHERE kind = ? AND state IN ({marks}) "
            "ORDER BY version", (kind, *wanted))]

    def applied(self, kind: str) -> VersionRow | None:
        rows = self.rows(kind, ("applied",))
        return rows[-1] if rows else None

    def applied_versions(self) -> dict[str, int]:
        """kind -> applied version, for the kinds that have one."""
        return {str(k): int(v) for k, v in self._conn.execute(
            "SELECT kind, max(version) FROM store_data_versions WHERE state = 'applied' "
            "GROUP BY kind")}

    def last_refusal(self, kind: str) -> tuple[str, str] | None:
        """(at, reason) of ``kind``'s newest refusal."""
        r = self._conn.execute("SELECT at, reason FROM store_data_refusals WHERE kind = ? "
                               "ORDER BY id DESC LIMIT 1", (kind,)).fetchone()
        return (str(r[0]), str(r[1])) if r else None

    def contact(self) -> tuple[str | None, str | None, str | None]:
        """(checked_at, last_error, last_error_at) of the last contacts with head office."""
        r = self._conn.execute("SELECT checked_at, last_error, last_error_at FROM sync_contact "
                               "WHERE id = 1").fetchone()
        return (r[0], r[1], r[2]) if r else (None, None, None)

    def lane_keys(self) -> dict[str, str]:
        """lane id -> base64 public key, as the applied lane-keys version lists them."""
        return {str(a): str(b) for a, b in self._conn.execute(
            "SELECT lane_id, public_key FROM lane_keys ORDER BY lane_id")}

    def staged_rows(self, kind: str, version: int) -> list[list[Any]]:
        """A staged promotions or lane-keys version's rows, in payload order."""
        return [json.loads(r[0]) for r in self._conn.execute(
            "SELECT row FROM store_data_staged_rows WHERE kind = ? AND version = ? ORDER BY seq",
            (kind, version))]

    def staged_full_catalogue_rows(self) -> int:
        if not self._exists(STAGED_FULL):
            return 0
        return int(self._conn.execute(f"SELECT count(*) FROM {STAGED_FULL}").fetchone()[0])

    def has_table(self, name: str) -> bool:
        return self._exists(name)

    # -- small writes ------------------------------------------------------------------------
    def refuse(self, kind: str, version: int | None, reason: str, at: str) -> None:
        with write_transaction(self.db):
            self._conn.execute("INSERT INTO store_data_refusals (kind, version, at, reason) "
                               "VALUES (?, ?, ?, ?)", (kind, version, at, reason))
            # Keep the newest 200: a lane refusing every minute for days stays small.
            self._conn.execute("DELETE FROM store_data_refusals WHERE id <= "
                               "(SELECT max(id) FROM store_data_refusals) - 200")

    def contacted(self, at: str, error: str | None) -> None:
        """Record a contact: ``error`` None means head office answered (``at`` kept as the
        last good contact); otherwise the error and its time."""
        with write_transaction(self.db):
            self._conn.execute("INSERT OR IGNORE INTO sync_contact (id) VALUES (1)")
            if error is None:
                self._conn.execute("UPDATE sync_contact SET checked_at = ?, last_error = NULL "
                                   "WHERE id = 1", (at,))
            else:
                self._conn.execute("UPDATE sync_contact SET last_error = ?, last_error_at = ? "
                                   "WHERE id = 1", (error, at))

    def add_version(self, kind: str, version: int, fmt: str, effective_at: str,
                    manifest: bytes, signature: bytes, staged_at: str) -> None:
        """The staged version's row (last, after its rows): replaces a superseded or refused
        row of the same version, never an applied or rolled-back one."""
        with write_transaction(self.db):
            self._conn.execute(
                "DELETE FROM store_data_versions WHERE kind = ? AND version = ? "
                "AND state IN ('staged', 'superseded', 'refused')", (kind, version))
            self._conn.execute(
                f"INSERT INTO store_data_versions ({_ROW}) VALUES "
                "(?, ?, 'staged', ?, ?, ?, ?, ?, NULL, '', NULL)",
                (kind, version, fmt, effective_at, manifest, signature, staged_at))

    def set_state(self, kind: str, version: int, state: str, *, applied_at: str | None = None,
                  reason: str | None = None, undo: str | None = None,
                  keep_undo: bool = True) -> None:
        """Change a version's state (inside the caller's transaction, if any)."""
        sets, args = ["state = ?"], [state]
        if applied_at is not None:
            sets.append("applied_at = ?")
            args.append(applied_at)
        if reason is not None:
            sets.append("reason = ?")
            args.append(reason)
        if undo is not None or not keep_undo:
            sets.append("undo = ?")
            args.append(undo)  # type: ignore[arg-type]
        with write_transaction(self.db):
            self._conn.execute(f"UPDATE store_data_versions SET {', '.join(sets)} "
                               "WHERE kind = ? AND version = ?", (*args, kind, version))

    def forget_full_undo(self, kind: str, below: int) -> None:
        """Full versions below ``below`` can no longer be rolled back (their kept table was
        replaced by a newer switch)."""
        with write_transaction(self.db):
            self._conn.execute("UPDATE store_data_versions SET undo = NULL WHERE kind = ? "
                               "AND format = 'full' AND version < ?", (kind, below))

    # -- staging ---------------------------------------------------------------------------
    def stage_small(self, kind: str, version: int, rows: list[list[Any]]) -> None:
        """A promotions or lane-keys version's rows (small: one transaction)."""
        with write_transaction(self.db):
            self._conn.execute("DELETE FROM store_data_staged_rows WHERE kind = ? AND "
                               "version = ?", (kind, version))
            self._conn.executemany(
                "INSERT INTO store_data_staged_rows (kind, version, seq, row) VALUES (?, ?, ?, ?)",
                [(kind, version, i, json.dumps(r, ensure_ascii=False))
                 for i, r in enumerate(rows)])

    def stage_catalogue_delta(self, version: int, ops: Iterable[tuple[Any, ...]]) -> int:
        """A catalogue delta's ops (``("+", *product_row)`` / ``("-", code)``) into
        ``catalogue_delta_staged`` in short transactions; how many. If ``ops`` raises, what
        was written stays without a version row and is cleared by ``clear_staged``."""
        self.clear_staged("catalogue", version)
        source = iter(ops)
        count = 0
        while batch := list(islice(source, LOAD_BATCH_ROWS)):
            with self._short_write():
                self._conn.executemany(
                    "INSERT OR REPLACE INTO catalogue_delta_staged VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(version, op[0], op[1], *(op[2:] if op[0] == "+" else (None,) * 10))
                     for op in batch])
            count += len(batch)
        return count

    def stage_full_catalogue(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """A full catalogue into the side table ``products_hq_staged`` (any older staged
        full catalogue there is dropped first) in short transactions; how many rows."""
        self.clear_table(STAGED_FULL)
        with self._short_write():
            create_products_table(self.db, STAGED_FULL)
        source = iter(rows)
        count = 0
        while batch := list(islice(source, LOAD_BATCH_ROWS)):
            with self._short_write():
                self._conn.executemany(
                    f"INSERT INTO {STAGED_FULL} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch)
            count += len(batch)
        return count

    def clear_staged(self, kind: str, version: int) -> None:
        """Drop the staged rows of one version (short transactions)."""
        if kind == "catalogue":
            while True:
                with self._short_write():
                    n = self._conn.execute(
                        "DELETE FROM catalogue_delta_staged WHERE version = ? AND code IN "
                        "(SELECT code FROM catalogue_delta_staged WHERE version = ? LIMIT ?)",
                        (version, version, CLEAR_BATCH_ROWS)).rowcount
                if n == 0:
                    break
        else:
            with write_transaction(self.db):
                self._conn.execute("DELETE FROM store_data_staged_rows WHERE kind = ? AND "
                                   "version = ?", (kind, version))

    def tidy(self, keep_undo_versions: int = 3) -> None:
        """After an apply or rollback (outside its transaction, short transactions): drop
        staged rows no version row needs, catalogue undo rows older than the newest
        ``keep_undo_versions`` applied, and the rolled-back full catalogue table."""
        live = {v for (v,) in self._conn.execute(
            "SELECT version FROM store_data_versions WHERE kind = 'catalogue' "
            "AND state = 'staged' AND format = 'delta'")}
        for (v,) in self._conn.execute(
                "SELECT DISTINCT version FROM catalogue_delta_staged").fetchall():
            if v not in live:
                self.clear_staged("catalogue", int(v))
        with write_transaction(self.db):
            self._conn.execute(
                "DELETE FROM store_data_staged_rows WHERE NOT EXISTS (SELECT 1 FROM "
                "store_data_versions v WHERE v.kind = store_data_staged_rows.kind AND "
                "v.version = store_data_staged_rows.version AND v.state = 'staged')")
        applied = self.applied_versions().get("catalogue")
        if applied is not None:
            self._clear_where("catalogue_undo", "version <= ?", (applied - keep_undo_versions,))
        undone = [v for (v,) in self._conn.execute(
            "SELECT DISTINCT version FROM catalogue_undo").fetchall()]
        for v in undone:
            row = self.get("catalogue", int(v))
            if row is None or row.state != "applied" and row.state != "superseded":
                self._clear_where("catalogue_undo", "version = ?", (v,))
        self.clear_table(OLD_TABLE)
        if not any(r.state == "staged" and r.format == "full"
                   for r in self.rows("catalogue", ("staged",))):
            self.clear_table(STAGED_FULL)

    # -- inside the apply transaction --------------------------------------------------------
    def capture_undo(self, version: int) -> None:
        """Before catalogue delta ``version`` is applied: the current rows of every code it
        touches (``had`` 1) and the codes it adds (``had`` 0). Inside the apply transaction."""
        self._conn.execute("DELETE FROM catalogue_undo WHERE version = ?", (version,))
        cols = ", ".join("p." + c for c in COLUMNS[1:])
        self._conn.execute(
            f"INSERT INTO catalogue_undo SELECT ?, p.code, 1, {cols} "
            "FROM catalogue_delta_staged s JOIN products p ON p.code = s.code "
            "WHERE s.version = ?", (version, version))
        self._conn.execute(
            "INSERT INTO catalogue_undo (version, code, had) SELECT ?, s.code, 0 "
            "FROM catalogue_delta_staged s WHERE s.version = ? AND s.op = '+' "
            "AND NOT EXISTS (SELECT 1 FROM products p WHERE p.code = s.code)",
            (version, version))

    def retire(self, table: str) -> None:
        """Rename side table ``table`` to ``products_hq_old`` (schema only: short), for
        ``tidy`` to empty later; the caller has made sure no old table is left."""
        with write_transaction(self.db):
            self._conn.execute(f"ALTER TABLE {table} RENAME TO {OLD_TABLE}")

    def has_undo(self, version: int) -> bool:
        return self._conn.execute("SELECT 1 FROM catalogue_undo WHERE version = ? LIMIT 1",
                                  (version,)).fetchone() is not None

    def replace_lane_keys(self, keys: dict[str, str], version: int) -> None:
        with write_transaction(self.db):
            self._conn.execute("DELETE FROM lane_keys")
            self._conn.executemany("INSERT INTO lane_keys VALUES (?, ?, ?)",
                                   [(k, v, version) for k, v in sorted(keys.items())])

    def state_counts(self) -> dict[tuple[str, str], int]:
        return {(str(k), str(s)): int(n) for k, s, n in self._conn.execute(
            "SELECT kind, state, count(*) FROM store_data_versions GROUP BY kind, state")}

    # -- helpers ---------------------------------------------------------------------------
    def _exists(self, table: str) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = ?", (table,)).fetchone() is not None

    def _clear_where(self, table: str, where: str, args: tuple[Any, ...]) -> None:
        while True:
            with self._short_write():
                n = self._conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                    f"WHERE {where} LIMIT ?)" if table != "catalogue_undo" else
                    f"DELETE FROM {table} WHERE (version, code) IN (SELECT version, code "
                    f"FROM {table} WHERE {where} LIMIT ?)", (*args, CLEAR_BATCH_ROWS)).rowcount
            if n == 0:
                return

    def clear_table(self, table: str) -> None:
        """Empty a side table (``products_hq_*``) in short transactions, then drop it: a
        DROP of a million rows in one transaction would hold the lock that long."""
        if table not in (STAGED_FULL, PREV_TABLE, OLD_TABLE) or not self._exists(table):
            return
        while True:
            with self._short_write():
                n = self._conn.execute(
                    f"DELETE FROM {table} WHERE code IN (SELECT code FROM {table} LIMIT ?)",
                    (CLEAR_BATCH_ROWS,)).rowcount
            if n == 0:
                break
        with self._short_write():
            self._conn.execute(f"DROP TABLE IF EXISTS {table}")

    @contextmanager
    def _short_write(self) -> Iterator[None]:
        """A write transaction begun no sooner than ``LOCK_GAP_S`` after the last one
        ended, so a lane writer waiting for the lock gets in (catalogue_repo, issue 16)."""
        wait = self._released + LOCK_GAP_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            with write_transaction(self.db):
                yield
        finally:
            self._released = time.monotonic()


def hq_source(kind: str, version: int) -> str:
    """What ``catalogue_meta`` says (``source`` for the catalogue, ``promotions_source``
    for promotions) while head office's version ``version`` is in effect. A local
    ``kiosk catalog import`` / ``kiosk promotions import`` writes something else there."""
    return f"head office {kind} {version}"


META_KEY = {"catalogue": "source", "promotions": "promotions_source"}


def current_versions(db: sqlite_utils.Database) -> dict[str, int | str | None]:
    """kind -> the head-office version in effect, ``"local"`` when a local import
    replaced it since, None when the kind was never applied (every kind present)."""
    applied = StoreDataRepo(db).applied_versions()
    meta = dict(db.conn.execute("SELECT key, value FROM catalogue_meta").fetchall())
    out: dict[str, int | str | None] = {}
    for kind in ("catalogue", "promotions", "lane-keys"):
        v = applied.get(kind)
        if v is not None and kind in META_KEY and meta.get(META_KEY[kind]) != hq_source(kind, v):
            out[kind] = "local"
        else:
            out[kind] = v
    return out


def versions_json(versions: dict[str, int | str | None]) -> str:
    """The ``sales.data_versions`` text of a versions map (sorted keys)."""
    return json.dumps(versions, sort_keys=True, separators=(",", ":"))


__all__ = ["META_KEY", "OLD_TABLE", "PREV_TABLE", "STAGED_FULL", "StoreDataRepo", "VersionRow",
           "current_versions", "hq_source", "versions_json"]
