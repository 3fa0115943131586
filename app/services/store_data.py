"""The lane's store data versions (issue 22, docs/store-sync.md): verify, stage, apply
between shoppers in one transaction, roll back, and say where the lane stands.

Head office publishes the catalogue, promotions and lane keys as signed, numbered
versions (app/domain/store_data.py). The sync thread (``StoreSync``, another module) asks
``have`` and ``plan`` what to download, and hands each download to ``stage``; the lane's
own thread calls ``apply_due`` at the attract screen (no session, no payment open), which
applies every due staged version of every kind in **one** SQLite transaction, so the lane
is on one whole version of each kind, before or after, never between.

Rules this module keeps:

- **Nothing unsigned or unchecked changes anything.** Every manifest is verified with the
  pinned head-office key (Ed25519 over the manifest's exact bytes) and must name this
  store, its currency and the kind asked for; every payload must match the signed size and
  SHA-256, decode, have the rows the manifest counts, in key order, each of the right
  shape; a delta must be against a version the lane holds. A refusal raises
  ``StoreDataRefused`` with the reason, is recorded for device health, and leaves the
  catalogue, the promotions, the keys and the staged versions as they were.
- **Staging never holds the write lock long** (issue 16): a full catalogue is built in the
  side table ``products_hq_staged`` and a delta's rows in ``catalogue_delta_staged``, in
  short transactions, while the lane sells; ``apply_due``'s transaction is then a table
  switch (two renames) and/or set-based upserts and deletes.
- **Rollback** goes back one version: a catalogue delta is undone from the before-images
  taken in the apply transaction (``catalogue_undo``); a full switch by switching back to
  the table it replaced (kept as ``products_hq_prev`` until the next full switch); the
  small kinds from the rows kept in the version's ``undo``. A rolled-back version is
  never applied (nor planned) again; newer ones are, as full snapshots when their delta's
  base is the rolled-back one.
- **A local import after sync** (``kiosk catalog import`` / ``kiosk promotions import``)
  wins: the catalogue's ``source`` meta row (``promotions_source`` for promotions) no
  longer names the head-office version, so the lane's version of that kind becomes
  "local": ``None`` in ``versions()``, ``"local"`` in sale records and reports, and
  ``have`` returns no version for it, so the next head-office version arrives as a full
  snapshot and replaces the local data when it is applied. A staged delta whose base
  was replaced locally is never applied (superseded, with the reason).
- **Lane keys**: the table ``lane_keys`` changes in the transaction; the key file
  (``exit_pass.public_keys_file``) is rewritten after it commits (temporary file, fsync,
  rename), every lane's line plus this lane's own line as the file had it (its private key
  is the lane's, not head office's). A lane killed between the two rewrites the file when
  ``StoreData`` is next built.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.domain import store_data as sd
from app.domain.clock import Clock
from app.domain.promotions import promotion_from_dict, promotion_to_dict
from app.storage.audit import AuditLog
from app.storage.catalogue_repo import ImportRunning, SqliteCatalogue
from app.storage.db import write_transaction
from app.storage.store_data_repo import (
    OLD_TABLE,
    PREV_TABLE,
    STAGED_FULL,
    StoreDataRepo,
    VersionRow,
    current_versions,
    hq_source,
)

log = logging.getLogger(__name__)
_UNITS = ("each", "kg")
# Monotonic time of the last good contact, per database file: the sync thread and the
# lane's thread each hold a StoreData on their own connection (sqlite3 connections stay
# on their thread), and both must measure the same age on the monotonic clock.
_CONTACT_MONO: dict[str, float] = {}


class StoreDataRefused(ValueError):
    """A download or manifest was refused; nothing changed. ``reason`` says why (for
    people: device health, the log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class KindStatus:
    """Where the lane stands for one kind. ``applied``: the head-office version in effect
    (None: never applied, or replaced by a local import); ``applied_at`` (ISO, wall clock)
    when it was applied; ``effective_at`` its manifest's time; ``staged``: versions waiting,
    oldest first; ``previous``: what ``rollback`` would go back to (None: nothing);
    ``rolled_back``: versions staff rolled back (never applied again); ``last_refusal``:
    the newest refusal's reason."""

    kind: str
    applied: int | None
    applied_at: str | None
    effective_at: str | None
    staged: tuple[int, ...]
    previous: int | None
    rolled_back: tuple[int, ...]
    last_refusal: str | None
    local: bool = False  # a local import replaced the head-office version
    # When each staged version may be applied (its manifest's effective_at, ISO), in
    # ``staged``'s order: staff mode and ``kiosk sync status`` say "waiting, from ...".
    staged_effective: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataStatus:
    """The lane's store data for health, heartbeat and staff. ``checked_at``: the last
    successful contact with head office (wall clock, for showing); ``age_s`` seconds since
    it (None: none yet); ``stale``: older than ``stale_after_s`` (or none within that time
    of start-up) while sync is set up; ``last_error``: the last failed contact's error."""

    kinds: dict[str, KindStatus]
    checked_at: datetime | None
    age_s: float | None
    stale: bool
    last_error: str | None

    def versions(self) -> dict[str, int | None]:
        """kind -> applied version (None: never, or local)."""
        return {k: s.applied for k, s in self.kinds.items()}

    def staged(self) -> dict[str, int]:
        """kind -> the newest staged version, for the kinds with one staged."""
        return {k: s.staged[-1] for k, s in self.kinds.items() if s.staged}


class StoreData:
    """The lane's side of store sync (see the module docstring)."""

    def __init__(self, db: sqlite_utils.Database, catalogue: SqliteCatalogue, *,
                 store_id: str, currency: str, public_key: str | None,
                 keys_file: Path | None, lane_id: str, stale_after_s: float, clock: Clock,
                 audit: AuditLog | None) -> None:
        """``public_key``: head office's pinned Ed25519 key, base64 of the raw 32 bytes
        (setting ``sync.hq_public_key``); None: sync is not set up and every manifest is
        refused. ``keys_file``: the exit-pass key file a lane-keys version rewrites
        (None: the table only). ``stale_after_s``: seconds without a good contact before
        ``status`` says stale. ValueError for a public key that is not one."""
        self.db, self.catalogue = db, catalogue
        self.repo = StoreDataRepo(db)
        self.store_id, self.currency, self.lane_id = store_id, currency, lane_id
        self.keys_file, self.stale_after_s = keys_file, stale_after_s
        self.clock, self.audit = clock, audit
        self._key: Ed25519PublicKey | None = None
        self._key_id = ""
        if public_key:
            try:
                raw = base64.b64decode(public_key, validate=True)
                self._key = Ed25519PublicKey.from_public_bytes(raw)
            except (ValueError, binascii.Error):
                raise ValueError("sync.hq_public_key is not base64 of a 32-byte Ed25519 "
                                 "public key") from None
            self._key_id = sd.key_id(raw)
        self._started = self._mono()
        self._db_key = self.repo.path() or f"memory:{id(db)}"
        if keys_file is not None and self.repo.lane_keys():
            self._write_keys_file()  # a lane killed between commit and file: catch up

    # -- time ------------------------------------------------------------------------------
    def _mono(self) -> float:
        mono: Callable[[], float] | None = getattr(self.clock, "monotonic", None)
        return mono() if mono is not None else time.monotonic()

    def _now_text(self) -> str:
        return self.clock.now().isoformat()

    # -- what the lane holds ---------------------------------------------------------------
    def _local(self, kind: str) -> bool:
        return current_versions(self.db).get(kind) == "local"

    def _live_staged(self, kind: str) -> list[VersionRow]:
        """The staged versions of ``kind`` that can still apply, oldest first: newer than the
        applied version, each delta on the one before it (the applied version or a live
        staged one). A delta whose base a local import replaced is left out (``apply_due``
        marks it superseded): naming it to head office would get 304s for ever, and every
        later delta would be on a base the lane cannot use."""
        applied = self.repo.applied(kind)
        cur = applied.version if applied is not None and not self._local(kind) else None
        live: list[VersionRow] = []
        chain = {cur}
        for r in self.repo.rows(kind, ("staged",)):
            if cur is not None and r.version <= cur:
                continue
            if r.format == "delta" and r.version - 1 not in chain:
                continue
            if r.format == "full" and kind == "catalogue" \
                    and not self.repo.has_table(STAGED_FULL):
                continue
            live.append(r)
            chain.add(r.version)
        return live

    def _held(self, kind: str) -> set[int]:
        held = {r.version for r in self._live_staged(kind)}
        applied = self.repo.applied(kind)
        if applied is not None and not self._local(kind):
            held.add(applied.version)
        return held

    def have(self, kind: str) -> int | None:
        """The version to name in ``If-None-Match``: the newest staged or applied (not
        local) version of ``kind``; None when it holds none (then head office lists all)."""
        held = self._held(kind)
        return max(held) if held else None

    # -- verifying -------------------------------------------------------------------------
    def _refuse(self, kind: str, version: int | None, reason: str) -> StoreDataRefused:
        self.repo.refuse(kind, version, reason, self._now_text())
        return StoreDataRefused(reason)

    def verify(self, manifest_raw: bytes, signature: bytes, kind: str | None = None
               ) -> sd.Manifest:
        """The manifest of ``manifest_raw`` if head office's pinned key signed exactly these
        bytes and it is for this store, currency and (if given) ``kind``; otherwise
        ``StoreDataRefused`` (recorded) with the reason."""
        shown = kind or "unknown"
        if self._key is None:
            raise self._refuse(shown, None, "store sync is not set up: no head-office key "
                               "is pinned (sync.hq_public_key)")
        try:
            m = sd.manifest_from_bytes(manifest_raw)
        except sd.StoreDataError as exc:
            raise self._refuse(shown, None, f"the manifest is not valid: {exc}") from None
        label = f"{m.kind} version {m.version}"
        if m.key_id != self._key_id:
            raise self._refuse(kind or m.kind, m.version,
                               f"{label} is signed by another key (key id {m.key_id}; this "
                               f"lane trusts {self._key_id}, sync.hq_public_key)")
        try:
            self._key.verify(signature, manifest_raw)
        except InvalidSignature:
            raise self._refuse(kind or m.kind, m.version,
                               f"{label}: the signature does not match the manifest "
                               "(altered, or not signed by head office)") from None
        if kind is not None and m.kind != kind:
            raise self._refuse(kind, m.version, f"asked for {kind}, head office sent {label}")
        if m.store_id != self.store_id:
            raise self._refuse(m.kind, m.version, f"{label} is for store {m.store_id!r}; "
                               f"this lane is in store {self.store_id!r} (sync.store_id)")
        if m.currency != self.currency:
            raise self._refuse(m.kind, m.version, f"{label} is in {m.currency}; this store "
                               f"sells in {self.currency} (store.currency)")
        return m

    def plan(self, kind: str, listing: list[tuple[bytes, bytes]]) -> list[tuple[sd.Manifest, str]]:
        """What to download for ``kind`` from head office's listing (manifest bytes,
        signature), in order: ``(manifest, "delta")`` when the lane holds the delta's base
        (applied or staged), else ``(manifest, "full")`` of the newest listed version
        already effective (the oldest listed if none is yet), then deltas of later ones.
        Versions held, the applied one and older (even when a local import replaced it),
        or rolled back are left out.
        ``StoreDataRefused`` (recorded) if any manifest is refused."""
        manifests = sorted((self.verify(raw, sig, kind) for raw, sig in listing),
                           key=lambda m: m.version)
        held = self._held(kind)
        applied = self.repo.applied(kind)
        # Even when a local import replaced it, the applied version and older ones are not
        # fetched again: the stage would refuse them ("already applied") on every poll. The
        # next newer version comes in full (the lane names no version, so none is held).
        floor = applied.version if applied is not None else 0
        skip = {r.version for r in self.repo.rows(kind, ("rolled_back",))}
        todo = [m for m in manifests
                if m.version > floor and m.version not in held and m.version not in skip]
        now = self.clock.now()
        out: list[tuple[sd.Manifest, str]] = []
        i = 0
        while i < len(todo):
            m = todo[i]
            if m.delta is not None and m.delta.base in held:
                out.append((m, "delta"))
                held.add(m.version)
                i += 1
                continue
            # No base: one full snapshot, of the newest version effective now among the rest
            # (older ones would never be in effect), or of the next one if none is.
            rest = todo[i:]
            effective = [j for j, r in enumerate(rest) if r.effective() <= now]
            j = i + (effective[-1] if effective else 0)
            out.append((todo[j], "full"))
            held.add(todo[j].version)
            i = j + 1
        return out

    # -- staging -----------------------------------------------------------------------------
    def stage(self, manifest_raw: bytes, signature: bytes, format: str,  # noqa: A002
              payload: bytes) -> sd.Manifest:
        """Verify and keep one downloaded payload (``format`` "full" or "delta") as a staged
        version: the signature again, size and SHA-256 against the manifest, every row's
        shape, the row count, key order, and (delta) that the lane holds its base. Rows go
        to staged tables in short transactions; the live catalogue is untouched. Returns
        the manifest. ``StoreDataRefused`` (recorded) with the reason; a refusal leaves
        everything as it was."""
        m = self.verify(manifest_raw, signature)
        label = f"{m.kind} version {m.version}"
        existing = self.repo.get(m.kind, m.version)
        if existing is not None and existing.state in ("applied", "rolled_back"):
            raise self._refuse(m.kind, m.version, f"{label} is already "
                               f"{existing.state.replace('_', ' ')}; not staged again")
        expected = m.payload(format) if format in sd.FORMATS else None
        if expected is None:
            raise self._refuse(m.kind, m.version, f"{label} has no {format} payload")
        try:
            sd.check_payload(payload, expected)
        except sd.StoreDataError as exc:
            raise self._refuse(m.kind, m.version, f"{label}: {exc}") from None
        if format == "delta" and expected.base not in self._held(m.kind):
            held = sorted(self._held(m.kind))
            raise self._refuse(m.kind, m.version, (
                f"{label} is a delta against version {expected.base}, which this lane does "
                f"not hold (it holds {', '.join(map(str, held)) or 'none'}); a full "
                "snapshot is needed"))
        # First pass: check everything, writing nothing (a bad row refuses the version).
        try:
            count = sum(1 for _ in self._rows(m, format, payload))
        except sd.StoreDataError as exc:
            raise self._refuse(m.kind, m.version, f"{label}: {exc}") from None
        if count != expected.rows:
            raise self._refuse(m.kind, m.version, f"{label}: the {format} payload has "
                               f"{count} rows, the manifest says {expected.rows}")
        self.tidy()
        if m.kind == "catalogue":
            if format == "full":
                # One side table: an older staged full catalogue (and deltas on it) goes.
                for r in self.repo.rows("catalogue", ("staged",)):
                    if r.version < m.version:
                        self.repo.set_state("catalogue", r.version, "superseded",
                                            reason=f"version {m.version} staged in full")
                self.repo.stage_full_catalogue(tuple(r) for r in self._rows(m, format, payload))
            else:
                self.repo.stage_catalogue_delta(m.version, (
                    tuple(r) for r in self._rows(m, format, payload)))
        else:
            self.repo.stage_small(m.kind, m.version, list(self._rows(m, format, payload)))
        self.repo.add_version(m.kind, m.version, format, m.effective_at, manifest_raw,
                              signature, self._now_text())
        return m

    def _rows(self, m: sd.Manifest, format: str, payload: bytes  # noqa: A002
              ) -> Iterator[list[Any]]:
        """The payload's rows, each checked (StoreDataError names the line and reason)."""
        last: Any = None
        for number, row in enumerate(sd.decode_lines(payload), start=1):
            if format == "delta":
                op = row[0]
                if op == "-" and len(row) == 2:
                    body = None
                elif op == "+":
                    body = row[1:]
                else:
                    raise sd.StoreDataError(f"delta line {number} is neither ['+', row] "
                                            "nor ['-', key]")
                key = row[1] if len(row) > 1 else None
            else:
                body, key = row, row[0]
            if not isinstance(key, str) or not key:
                raise sd.StoreDataError(f"line {number}: the key must be text")
            if last is not None and key <= last:
                raise sd.StoreDataError(f"line {number}: key {key!r} is out of order")
            last = key
            if body is not None:
                problem = _row_problem(m.kind, body, m.currency)
                if problem:
                    raise sd.StoreDataError(f"line {number} ({key}): {problem}")
            yield row

    def tidy(self) -> None:
        """Empty what applies and rollbacks left (staged rows of applied versions, old
        undo rows, a replaced catalogue table) in short transactions; the sync thread calls
        it (``stage`` does too), never the lane's thread in the middle of a shopper."""
        self.repo.tidy()

    # -- applying ----------------------------------------------------------------------------
    def due(self, now: datetime) -> bool:
        """Whether some staged version is effective at ``now`` (aware)."""
        return any(self._due_chain(kind, now)[0] for kind in sd.KINDS)

    def _due_chain(self, kind: str, now: datetime) -> tuple[list[VersionRow], list[VersionRow]]:
        """(the staged versions of ``kind`` to apply at ``now``, in order; those that can
        never apply: older than the applied one, or a delta on a base the lane no longer
        has)."""
        applied = self.repo.applied(kind)
        local = self._local(kind)
        cur = applied.version if applied is not None and not local else None
        chain: list[VersionRow] = []
        dead: list[VersionRow] = []
        staged = self.repo.rows(kind, ("staged",))
        # Up to the newest version effective at ``now``: one that is not yet effective but
        # comes before it goes with it (the newer version is what head office wants in
        # effect now; as plan() says, the older one would never be in effect), so a version
        # published for a date far ahead never holds back a later one effective now.
        due = [i for i, r in enumerate(staged) if sd.parse_instant(r.effective_at) <= now]
        for r in staged[:due[-1] + 1] if due else []:
            if cur is not None and r.version <= cur:
                dead.append(r)
                continue
            if r.format == "delta" and r.version - 1 != cur:
                dead.append(r)
                continue
            if r.format == "full" and not self.repo.has_table(STAGED_FULL) \
                    and kind == "catalogue":
                dead.append(r)
                continue
            chain.append(r)
            cur = r.version
        return chain, dead

    def apply_due(self, now: datetime) -> list[tuple[str, int]]:
        """Apply every staged version effective at ``now``, of every kind, in ONE write
        transaction; returns the (kind, version) applied, in order. The caller guarantees
        no session or payment is open (docs/pricing.md, "A session's prices": an open cart
        keeps the prices it was scanned with, so versions change only between shoppers).
        Audited (``store_data_applied``). Staged versions that can never apply (their base
        was replaced) are marked superseded with the reason. While a ``kiosk catalog
        import`` runs, nothing is applied (returns []): the import copies the live
        catalogue in batches, and a version applied between two would leave a mix."""
        try:
            with self.catalogue.import_lock():
                return self._apply_due(now)
        except ImportRunning:
            log.debug("store data: a catalogue import is running; applying after it")
            return []

    def _apply_due(self, now: datetime) -> list[tuple[str, int]]:
        if self.repo.has_table(OLD_TABLE) and any(
                r.format == "full" for r in self._due_chain("catalogue", now)[0]):
            self.repo.clear_table(OLD_TABLE)  # tidy has not run since the last switch
        done: list[tuple[str, int]] = []
        at = now.isoformat()
        keys_changed = False
        with write_transaction(self.db):
            # What is due is read inside the transaction: the sync thread stages on its own
            # connection, and a staged version's row is written only once its rows are
            # complete (and an older staged full catalogue is superseded before its side
            # table is rebuilt), so what is read here is whole.
            chains = {kind: self._due_chain(kind, now) for kind in sd.KINDS}
            for kind, (_chain, dead) in chains.items():
                for r in dead:
                    self.repo.set_state(kind, r.version, "superseded",
                                        reason="its base is no longer this lane's version")
            if any(r.format == "full" for r in chains["catalogue"][0]) \
                    and self.repo.has_table(OLD_TABLE):
                self.repo.drop_old()  # raced with a switch: rare, correct, slower
            for kind in sd.KINDS:
                chain = chains[kind][0]
                if not chain:
                    continue
                applied = self.repo.applied(kind)
                cur = applied.version if applied is not None and not self._local(kind) \
                    else None
                for r in chain:
                    undo = self._apply_one(kind, r, cur)
                    if applied is not None:
                        self.repo.set_state(kind, applied.version, "superseded")
                    self.repo.set_state(kind, r.version, "applied", applied_at=at,
                                        undo=json.dumps(undo))
                    applied, cur = self.repo.get(kind, r.version), r.version
                    done.append((kind, r.version))
                if kind == "catalogue":
                    self.catalogue.set_meta({"source": hq_source(kind, chain[-1].version),
                                             "currency": self.currency})
                keys_changed |= kind == "lane-keys"
            if not done:
                return []
            if self.audit is not None:
                self.audit.append("store_data_applied", "head office", {
                    "lane": self.lane_id, "applied": [f"{k} {v}" for k, v in done]}, now)
        if keys_changed and self.keys_file is not None:
            self._write_keys_file()
        return done

    def _apply_one(self, kind: str, r: VersionRow, cur: int | None) -> dict[str, Any]:
        """One version, inside the apply transaction; returns its undo record."""
        if kind == "catalogue":
            if r.format == "full":
                if self.repo.has_table(PREV_TABLE):
                    self.repo.retire(PREV_TABLE)
                self.catalogue.switch_in(STAGED_FULL, PREV_TABLE)
                self.repo.forget_full_undo(kind, r.version)
                return {"before": cur, "table": PREV_TABLE}
            self.repo.capture_undo(r.version)
            self.catalogue.apply_staged_delta(r.version)
            return {"before": cur}
        rows = self.repo.staged_rows(kind, r.version)
        current = self._small_rows(kind)
        if r.format == "full":
            new = {row[0]: tuple(row) for row in rows}
        else:
            new = sd.apply_ops(current, [tuple(op) for op in rows])
        self._put_small(kind, new, r.version)
        return {"before": cur, "rows": [list(v) for _, v in sorted(current.items())]}

    def _small_rows(self, kind: str) -> dict[Any, tuple[Any, ...]]:
        if kind == "promotions":
            return {p.promo_id: (p.promo_id, promotion_to_dict(p))
                    for p in self.catalogue.promotions()}
        return {lane: (lane, key) for lane, key in self.repo.lane_keys().items()}

    def _put_small(self, kind: str, rows: dict[Any, tuple[Any, ...]], version: int) -> None:
        if kind == "promotions":
            self.catalogue.replace_promotions(
                [promotion_from_dict(d, self.currency) for _, (_, d) in sorted(rows.items())],
                source=hq_source(kind, version))
        else:
            self.repo.replace_lane_keys({str(k): str(v[1]) for k, v in rows.items()}, version)

    # -- rolling back ----------------------------------------------------------------------
    def _previous(self, kind: str, applied: VersionRow | None) -> int | None:
        if applied is None or applied.undo is None or self._local(kind):
            return None
        undo = json.loads(applied.undo)
        before = undo.get("before")
        if before is None:
            return None
        if kind == "catalogue":
            if applied.format == "full" and not self.repo.has_table(PREV_TABLE):
                return None
            if applied.format == "delta" and not self.repo.has_undo(applied.version):
                return None
        prev = self.repo.get(kind, int(before))
        if prev is not None and sd.parse_instant(prev.effective_at) > self.clock.now():
            # Taken along by a newer version effective sooner (apply_due): it was never in
            # effect, and going back to it would put its prices in force early.
            return None
        return int(before)

    def rollback(self, kind: str, staff: str) -> tuple[int, int]:
        """Go back from the applied version of ``kind`` to the one before it, in one
        transaction, audited (``store_data_rolled_back``, by ``staff``); returns (from,
        to). The rolled-back version is never applied again; newer ones are. ValueError
        with the reason when there is nothing to roll back to, or (catalogue) while a
        catalogue import runs."""
        if kind not in sd.KINDS:
            raise ValueError(f"{kind!r} is not one of {', '.join(sd.KINDS)}")
        if kind != "catalogue":
            return self._rollback(kind, staff)
        try:  # as apply_due: never between an import's batches
            with self.catalogue.import_lock():
                return self._rollback(kind, staff)
        except ImportRunning:
            raise ValueError("a catalogue import is running on this lane (or the lane is "
                             "applying a version); nothing changed. Roll back when it has "
                             "finished") from None

    def _rollback(self, kind: str, staff: str) -> tuple[int, int]:
        last = self.repo.applied(kind)
        if kind == "catalogue" and last is not None and last.format == "full" \
                and self.repo.has_table(OLD_TABLE):
            self.repo.clear_table(OLD_TABLE)  # in short transactions, before the switch
        now = self.clock.now()
        # Checked again inside the transaction: another process (`kiosk` CLI) or thread may
        # have applied or rolled back since.
        with write_transaction(self.db):
            applied = self.repo.applied(kind)
            if applied is None:
                raise ValueError(f"no head-office {kind} version is applied on this lane")
            if self._local(kind):
                raise ValueError(f"a local import replaced {kind} version {applied.version}; "
                                 "there is no head-office version to roll back")
            to = self._previous(kind, applied)
            if to is None:
                raise ValueError(f"{kind} version {applied.version} has nothing to roll back "
                                 "to (it is the first version this lane applied, what came "
                                 "before it is no longer kept, or is not in effect yet)")
            undo = json.loads(applied.undo or "{}")
            if kind == "catalogue":
                if applied.format == "full":
                    if self.repo.has_table(OLD_TABLE):
                        self.repo.drop_old()  # raced with tidy: rare, correct, slower
                    self.catalogue.switch_in(PREV_TABLE, OLD_TABLE)
                else:
                    self.catalogue.restore_undo(applied.version)
                self.catalogue.set_meta({"source": hq_source(kind, to)})
            else:
                rows = {row[0]: tuple(row) for row in undo.get("rows", [])}
                self._put_small(kind, rows, to)
            self.repo.set_state(kind, applied.version, "rolled_back",
                                reason=f"rolled back by {staff}", keep_undo=False)
            self.repo.set_state(kind, to, "applied")
            if self.audit is not None:
                self.audit.append("store_data_rolled_back", staff, {
                    "lane": self.lane_id, "kind": kind, "from": applied.version, "to": to},
                    now)
        if kind == "lane-keys" and self.keys_file is not None:
            self._write_keys_file()
        return applied.version, to

    # -- contact and status ----------------------------------------------------------------
    def contacted(self, ok: bool, error: str | None = None) -> None:
        """The sync thread's report of one contact with head office: ``ok`` for an answer
        (200, 304, 404), else ``error`` (what went wrong)."""
        if ok:
            _CONTACT_MONO[self._db_key] = self._mono()
        self.repo.contacted(self._now_text(), None if ok else (error or "no answer"))

    def status(self) -> DataStatus:
        """Every kind's ``KindStatus`` and the age of the last good contact."""
        versions = current_versions(self.db)
        kinds: dict[str, KindStatus] = {}
        for kind in sd.KINDS:
            applied = self.repo.applied(kind)
            local = versions.get(kind) == "local"
            refusal = self.repo.last_refusal(kind)
            staged = self._live_staged(kind)
            kinds[kind] = KindStatus(
                kind,
                None if applied is None or local else applied.version,
                applied.applied_at if applied is not None and not local else None,
                applied.effective_at if applied is not None and not local else None,
                tuple(r.version for r in staged),
                self._previous(kind, applied),
                tuple(r.version for r in self.repo.rows(kind, ("rolled_back",))),
                refusal[1] if refusal else None,
                local, tuple(r.effective_at for r in staged))
        checked_text, error, _error_at = self.repo.contact()
        checked = datetime.fromisoformat(checked_text) if checked_text else None
        mono = _CONTACT_MONO.get(self._db_key)
        if mono is not None:
            age: float | None = self._mono() - mono
        elif checked is not None:  # contact before this start: the wall clock is all there is
            age = max(0.0, (self.clock.now() - checked).total_seconds())
        else:
            age = None
        waited = age if age is not None else self._mono() - self._started
        stale = self._key is not None and waited > self.stale_after_s
        return DataStatus(kinds, checked, age, stale, error)

    # -- the key file ------------------------------------------------------------------------
    def _write_keys_file(self) -> None:
        """Rewrite ``keys_file`` from ``lane_keys``, keeping this lane's own line as the file
        had it: temporary file, fsync, rename (a crash leaves the old file or the new)."""
        assert self.keys_file is not None
        keys = self.repo.lane_keys()
        own = None
        try:
            data = tomllib.loads(self.keys_file.read_text(encoding="utf-8"))
            own = data.get("lanes", data).get(self.lane_id)
        except (FileNotFoundError, tomllib.TOMLDecodeError):
            pass
        if isinstance(own, str):
            keys[self.lane_id] = own
        text = "".join(f'"{lane}" = "{key}"\n' for lane, key in sorted(keys.items()))
        self.keys_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.keys_file.with_name(self.keys_file.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.keys_file)


def _row_problem(kind: str, row: list[Any], currency: str) -> str:
    """What is wrong with one payload row of ``kind`` ('' when nothing)."""
    if kind == "catalogue":
        if len(row) != 11:
            return f"a product row has 11 fields, this one {len(row)}"
        code, zh, en, price, member, unit, tax, age, limit, dept, image = row
        if not all(isinstance(x, str) for x in (code, zh, en, tax, dept, image)):
            return "code, names, tax class, department and image must be text"
        if not isinstance(price, int) or isinstance(price, bool) or price < 0:
            return "price must be a whole number of minor units >= 0"
        if member is not None and (not isinstance(member, int) or member < 0):
            return "member price must be a whole number of minor units >= 0 or null"
        if unit not in _UNITS:
            return f"unit must be {' or '.join(_UNITS)}"
        if not isinstance(age, int) or age < 0:
            return "min_age must be a whole number >= 0"
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return "quantity_limit must be a whole number >= 1 or null"
        return ""
    if kind == "promotions":
        if len(row) != 2 or not isinstance(row[1], dict):
            return "a promotion row is [promo_id, definition]"
        try:
            promo = promotion_from_dict(row[1], currency)
        except (ValueError, KeyError, TypeError) as exc:
            return f"not a promotion: {exc}"
        return "" if promo.promo_id == row[0] else "the row's key is not its promo_id"
    if len(row) != 2 or not isinstance(row[1], str):
        return "a lane-key row is [lane_id, base64 key]"
    try:
        sd.check_store_id(row[0])
        if len(base64.b64decode(row[1], validate=True)) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        return "a lane id and a base64 32-byte Ed25519 public key"
    return ""


def parse_time(text: str | None) -> datetime | None:
    """An ISO time from the status (None stays None), as an aware datetime (UTC if naive)."""
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


__all__ = ["DataStatus", "KindStatus", "StoreData", "StoreDataRefused", "parse_time"]
