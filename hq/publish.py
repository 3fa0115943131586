"""Publishing a store's data at head office: one file in, one signed version out.

:func:`publish` reads a catalogue CSV, a promotions TOML or a lane-keys TOML, validates
it with the kiosk's own rules (``app.domain.catalogue_file``, ``promotions_file``,
``lane_keys``: the code ``kiosk catalog import`` and ``kiosk promotions import`` run),
builds the version's full payload (rows sorted by key, exactly as a lane stores them) and
its delta against the newest published version (``store_data.diff``), signs the manifest
with head office's Ed25519 key and keeps it in the store (docs/store-sync.md).

A bad file refuses the whole version: :class:`PublishRefused` names the line and the
reason, and nothing is stored. Two publishers racing for the same version: the second
gets :class:`hq.stores.VersionTaken` and stores nothing.

The publishing key stays with the publisher (``kiosk hq publish --key FILE``): a service
instance never holds it, so a compromised service cannot sign a price list.

Memory: a 1,000,000-product catalogue is held as its encoded payload lines (bytes, ~150
bytes each), sorted, never as a million tuples; the previous version's full payload is
read back as its gzip bytes and walked line by line.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain import store_data
from app.domain.catalogue_file import MAX_REPORTED_ERRORS, RowError, validated_file_rows
from app.domain.lane_keys import parse_lane_keys
from app.domain.money import exponent_of
from app.domain.promotions import promotion_to_dict
from app.domain.promotions_file import parse_promotions
from app.domain.store_data import KINDS, Manifest, Payload
from hq.stores import HqStore, StoreUnavailable, VersionTaken

log = logging.getLogger(__name__)

#: A lane id as a lane's own setting allows it (``kiosk.lane_id``, app/config.py).
_LANE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")
#: Versions kept per store and kind unless told otherwise (docs/store-sync.md).
DEFAULT_KEEP = 10
#: Kinds whose empty version would stop every lane of the store, and why (refused
#: unless ``allow_empty``).
EMPTY_REFUSED = {
    "catalogue": "no products: applied, it would empty every lane's catalogue (if that is "
                 "meant, publish with --allow-empty)",
    "lane-keys": "no lane keys: applied, every lane would refuse every exit pass (if that "
                 "is meant, publish with --allow-empty)",
}


class PublishRefused(ValueError):
    """The file was refused; nothing was published. ``errors``: the first bad lines
    (``RowError``: line, reason; line 0 when the problem is the whole file),
    ``error_count``: all of them."""

    def __init__(self, kind: str, errors: list[RowError], error_count: int) -> None:
        shown = "\n".join(str(e) if e.line else e.reason for e in errors)
        more = error_count - len(errors)
        super().__init__(f"{kind} not published: {error_count} problem(s); nothing was "
                         f"stored\n{shown}" + (f"\n... and {more} more" if more > 0 else ""))
        self.kind = kind
        self.errors = errors
        self.error_count = error_count


# -- keys ------------------------------------------------------------------------------------

def public_key_raw(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public half of a publishing key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public key as lanes pin it (``sync.hq_public_key``): base64 of the raw bytes."""
    return base64.b64encode(public_key_raw(key)).decode("ascii")


def create_key_file(path: Path) -> Ed25519PrivateKey:
    """Make a new publishing key in ``path`` (PKCS#8 PEM, created 0600 so it never exists
    readable by others). FileExistsError if the file exists: a key is never overwritten
    (lanes pinned its public half)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """The publishing key in ``path``. ValueError naming the file when it is not an
    Ed25519 PEM private key; FileNotFoundError when it is missing."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key


# -- payload rows ----------------------------------------------------------------------------

def _json_line(row: Iterable[Any]) -> bytes:
    # The same encoding as store_data.encode_lines (a test holds them equal).
    return json.dumps(list(row), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _sortable(key: str, row: Iterable[Any]) -> bytes:
    # key, NUL, the payload line: sorting these bytes sorts by key (UTF-8 keeps code point
    # order, and NUL sorts before every character a key may hold), and a million of them
    # cost a fraction of a million tuples of 11 Python objects.
    return key.encode() + b"\0" + _json_line(row)


def line_of(sortable: bytes) -> bytes:
    """The payload line of one of :func:`payload_lines`' items (the key taken off)."""
    return sortable[sortable.index(b"\0") + 1:]


def _catalogue_lines(source: Path, currency: str,
                     tax_classes: frozenset[str]) -> list[bytes]:
    errors: list[RowError] = []
    lines: list[bytes] = []
    with source.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        for row in validated_file_rows(text, exponent_of(currency), tax_classes, errors):
            lines.append(_sortable(row[0], row))
    if errors:
        raise PublishRefused("catalogue", errors[:MAX_REPORTED_ERRORS], len(errors))
    return lines


def _read_text(kind: str, source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PublishRefused(kind, [RowError(0, f"{source} is not UTF-8")], 1) from None


def _promotion_lines(source: Path, currency: str) -> list[bytes]:
    text = _read_text("promotions", source)  # its own PublishRefused, not wrapped twice
    try:
        promotions = parse_promotions(text, currency)
    except ValueError as exc:
        raise PublishRefused("promotions", [RowError(0, f"{source}: {exc}")], 1) from None
    return [_sortable(p.promo_id, (p.promo_id, promotion_to_dict(p))) for p in promotions]


def _lane_key_lines(source: Path) -> list[bytes]:
    text = _read_text("lane-keys", source)
    try:
        keys = parse_lane_keys(text)
    except ValueError as exc:
        raise PublishRefused("lane-keys", [RowError(0, f"{source}: {exc}")], 1) from None
    top = tomllib.loads(text)
    if isinstance(top.get("lanes"), dict) and len(top) > 1:
        # parse_lane_keys reads the [lanes] table alone: lines above it would be dropped
        # without a word, and those lanes' exit passes refused at every other lane.
        others = ", ".join(repr(k) for k in top if k != "lanes")
        raise PublishRefused("lane-keys", [RowError(0, f"{source}: lane keys both above "
                                                       f"and in [lanes] ({others} above "
                                                       "it): put them all in one place")], 1)
    bad = [lane for lane in keys if not _LANE_ID.match(lane)]
    if bad:  # every lane rewrites its key file with these ids: one odd id spoils it
        raise PublishRefused("lane-keys", [RowError(0, f"{source}: {lane[:80]!r} is not a "
                                                       "lane id (kiosk.lane_id: 1-32 ASCII "
                                                       "letters, digits, '-' or '_')")
                                           for lane in bad[:MAX_REPORTED_ERRORS]], len(bad))
    return [_sortable(lane, (lane, base64.b64encode(raw).decode("ascii")))
            for lane, raw in keys.items()]


def payload_lines(kind: str, source: Path, *, currency: str,
                  tax_classes: frozenset[str]) -> list[bytes]:
    """The full payload's lines of a ``kind`` file, sorted by key, each as ``key NUL
    line`` (:func:`line_of` strips the key: done one line at a time as they are written,
    so a million lines are never held twice). The lines are JSON Lines (ending in a
    newline): catalogue rows as the kiosk stores them (``catalogue_file.ProductRow``),
    ``[promo_id, definition]``, ``[lane_id, base64 key]``. :class:`PublishRefused` for a
    bad file; FileNotFoundError for a missing one."""
    if kind == "catalogue":
        lines = _catalogue_lines(source, currency, tax_classes)
    elif kind == "promotions":
        lines = _promotion_lines(source, currency)
    elif kind == "lane-keys":
        lines = _lane_key_lines(source)
    else:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    lines.sort()
    return lines


def gzip_lines(lines: Iterable[bytes]) -> tuple[bytes, int]:
    """gzip of pre-encoded payload lines -> ``(bytes, line count)``: the same bytes as
    ``store_data.encode_lines`` of the rows they encode."""
    out = io.BytesIO()
    count = 0
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        for line in lines:
            gz.write(line)
            count += 1
    return out.getvalue(), count


def _rows(lines: Iterable[bytes]) -> Iterator[tuple[Any, ...]]:
    for line in lines:
        yield tuple(json.loads(line_of(line)))


# -- publishing ------------------------------------------------------------------------------

def publish(store: HqStore, key: Ed25519PrivateKey, store_id: str, kind: str, source: Path,
            *, effective_at: datetime | None = None, currency: str = "CNY",
            tax_classes: frozenset[str] = frozenset(), note: str = "",
            keep: int = DEFAULT_KEEP, now: datetime | None = None,
            allow_empty: bool = False) -> Manifest:
    """Publish ``source`` as the next version of ``kind`` for ``store_id``; its manifest.

    ``effective_at``: an aware datetime from which lanes may apply it (None: ``now``);
    ``currency``: ISO 4217 code the prices are in (lanes refuse another);
    ``tax_classes``: the store's tax class codes a catalogue row may name (the lanes'
    ``store.tax_classes`` keys); ``keep``: versions kept afterwards (older ones pruned);
    ``now``: the wall clock (UTC aware; None: the system's), shown as ``published_at``;
    ``allow_empty``: publish a catalogue with no products or lane keys with no lane (every
    lane would empty its catalogue, or refuse every exit pass, when it applies it);
    refused (:class:`PublishRefused`) unless set: a header-only or truncated file is far
    likelier than a store that sells nothing. Promotions may always be empty (it ends them).

    Raises :class:`PublishRefused` (a bad file: line and reason), ValueError (a bad
    store id, kind, currency or time), :class:`VersionTaken` (another publisher took the
    version meanwhile; publish again), ``StoreUnavailable``. Nothing is stored unless it
    returns (a failed pruning afterwards is logged, not raised: the version is kept).
    """
    store_data.check_store_id(store_id)
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    exponent_of(currency)  # ValueError for a currency the kiosk does not know
    if keep < 1:
        raise ValueError("keep must be at least 1")
    now = now or datetime.now(UTC)
    effective = store_data.instant_text(effective_at or now)
    lines = payload_lines(kind, source, currency=currency, tax_classes=tax_classes)
    if not lines and kind in EMPTY_REFUSED and not allow_empty:
        raise PublishRefused(kind, [RowError(0, f"{source}: {EMPTY_REFUSED[kind]}")], 1)
    full, full_rows = gzip_lines(line_of(line) for line in lines)
    version = (store.latest_version(store_id, kind) or 0) + 1
    delta_bytes: bytes | None = None
    delta: Payload | None = None
    previous = store.payload(store_id, kind, version - 1, "full") if version > 1 else None
    if previous is not None:  # its payload pruned away: lanes take the full snapshot
        old_rows = (tuple(row) for row in store_data.decode_lines(previous))
        delta_bytes, delta_rows = store_data.encode_lines(
            store_data.diff(old_rows, _rows(lines)))
        delta = Payload("delta", store_data.digest(delta_bytes), len(delta_bytes),
                        delta_rows, version - 1)
    del lines  # the payloads are built: let a million lines go before storing
    manifest = Manifest(
        store_id=store_id, kind=kind, version=version, effective_at=effective,
        published_at=store_data.instant_text(now), currency=currency,
        full=Payload("full", store_data.digest(full), len(full), full_rows),
        delta=delta, key_id=store_data.key_id(public_key_raw(key)), note=note)
    signed = store_data.manifest_bytes(manifest)
    try:
        store.publish_version(signed, key.sign(signed), full, delta_bytes)
    except VersionTaken as exc:
        raise VersionTaken(f"{kind} version {version} of store {store_id} was published by "
                           f"another publisher meanwhile ({exc}); nothing was stored from "
                           "this one: publish again") from None
    try:
        store.prune_versions(store_id, kind, keep)
    except (StoreUnavailable, OSError) as exc:
        # The version is kept: raising now would tell the publisher "not published" and
        # have it published again. Older versions stay until the next publish prunes.
        log.warning("%s version %d of store %s is published; pruning older versions "
                    "failed (the next publish tries again): %s", kind, version, store_id, exc)
    return manifest
