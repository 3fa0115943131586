"""Store data versions: what head office publishes to lanes, as bytes both sides agree on.

Head office publishes the store's **catalogue**, **promotions** and **lane keys** (the
exit-pass public keys of every lane) as numbered versions (1, 2, 3 ... per store and
kind). A version is a signed :class:`Manifest` and two payloads: the **full** snapshot
and, from version 2 on, the **delta** against the version before it
(docs/store-sync.md). Lanes download the delta when they hold its base, the full
snapshot otherwise, check the payload's SHA-256 and size against the signed manifest,
and apply it between shoppers at or after ``effective_at``.

Payloads are gzip-compressed UTF-8 JSON Lines, one row per line, sorted by key:

- full: ``[key, field, ...]``: for ``catalogue`` the 11 columns of a product row
  (``COLUMNS`` in app/domain/catalogue_file.py order, ``code`` being the key, already
  normalised by the kiosk's import rules); for ``promotions`` ``[promo_id,
  definition]`` (``promotion_to_dict``); for ``lane-keys`` ``[lane_id, public_key]``
  (base64 of the raw 32-byte Ed25519 key);
- delta: ``["+", key, field, ...]`` (added or changed; the whole row) or ``["-", key]``
  (removed), in key order.

The manifest's signed bytes are its canonical JSON (:func:`manifest_bytes`: sorted
keys, no spaces, UTF-8); the signature (Ed25519, by head office's key, which lanes pin at
setup) is over exactly those bytes. Signing and checking live outside the domain
(``hq.publish`` and ``app.services.store_data``); this module has no I/O and no clock.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KINDS = ("catalogue", "promotions", "lane-keys")
FORMATS = ("full", "delta")
#: Manifest format; a lane refuses a manifest of a format it does not know.
MANIFEST_FORMAT = 1
_STORE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: "$" takes a final newline
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
#: The longest payload line read (a product row is a few hundred bytes, a promotion a few
#: kilobytes).
MAX_LINE_BYTES = 1024 * 1024
_ETAG = re.compile(r'^(?:W/)?"([a-z-]+)-([0-9]{1,18})"\Z')

Row = tuple[Any, ...]  # (key, field, ...): a payload line
Op = tuple[Any, ...]  # ("+", key, field, ...) or ("-", key)


class StoreDataError(ValueError):
    """A manifest or payload is not what the format says; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Payload:
    """One payload of a version: ``format`` "full" or "delta"; ``sha256`` (hex) and
    ``size`` (bytes) of the gzip bytes as downloaded; ``rows``: lines in it; ``base``: the
    version a delta applies to (None for a full snapshot)."""

    format: str
    sha256: str
    size: int
    rows: int
    base: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"format": self.format, "sha256": self.sha256, "size": self.size,
                "rows": self.rows, "base": self.base}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one version is. ``effective_at`` and ``published_at`` are UTC instants
    written RFC 3339 with a ``Z`` (``2026-12-01T01:00:00Z``); ``currency`` is the ISO 4217
    code the prices are in (lanes refuse another); ``key_id`` names the signing key
    (:func:`key_id`); ``note`` is free text for people ("price change, week 49")."""

    store_id: str
    kind: str
    version: int
    effective_at: str
    published_at: str
    currency: str
    full: Payload
    delta: Payload | None
    key_id: str
    note: str = ""

    def payload(self, format: str) -> Payload | None:  # noqa: A002 - the field's name
        """The full or delta payload (None: this version has no delta)."""
        return self.full if format == "full" else self.delta

    def effective(self) -> datetime:
        """``effective_at`` as an aware UTC datetime."""
        return parse_instant(self.effective_at)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT, "store_id": self.store_id, "kind": self.kind,
            "version": self.version, "effective_at": self.effective_at,
            "published_at": self.published_at, "currency": self.currency,
            "full": self.full.as_json(),
            "delta": self.delta.as_json() if self.delta else None,
            "key_id": self.key_id, "note": self.note,
        }


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical bytes of a manifest: what is signed and what is sent."""
    return json.dumps(manifest.as_json(), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _int(data: dict[str, Any], name: str, *, minimum: int = 0, none: bool = False) -> Any:
    value = data.get(name)
    if value is None and none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise StoreDataError(f"manifest field {name!r} must be a whole number >= {minimum}")
    return value


def _payload(data: Any, format: str) -> Payload:  # noqa: A002
    if not isinstance(data, dict):
        raise StoreDataError(f"manifest field {format!r} must be an object")
    if data.get("format") != format:
        raise StoreDataError(f"manifest {format} payload says format {data.get('format')!r}")
    sha = data.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise StoreDataError(f"manifest {format} payload sha256 must be 64 hex digits")
    base = _int(data, "base", minimum=1, none=format == "full")
    if format == "full" and base is not None:
        raise StoreDataError("a full payload has no base")
    return Payload(format, sha, _int(data, "size", minimum=1), _int(data, "rows"), base)


def manifest_from_bytes(raw: bytes) -> Manifest:
    """Parse a manifest's bytes (as signed). Raises :class:`StoreDataError` with the reason
    for anything that is not a well-formed manifest of :data:`MANIFEST_FORMAT`."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise StoreDataError("the manifest is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise StoreDataError("the manifest is not a JSON object")
    if data.get("format") != MANIFEST_FORMAT:
        raise StoreDataError(f"manifest format {data.get('format')!r} is not "
                             f"{MANIFEST_FORMAT}; update the kiosk")
    kind = data.get("kind")
    if kind not in KINDS:
        raise StoreDataError(f"manifest kind {kind!r} is not one of {', '.join(KINDS)}")
    store_id = data.get("store_id")
    if not isinstance(store_id, str) or not _STORE_ID.match(store_id):
        raise StoreDataError("manifest store_id is missing or not a store id")
    version = _int(data, "version", minimum=1)
    for name in ("effective_at", "published_at"):
        parse_instant(data.get(name))
    currency = data.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise StoreDataError("manifest currency must be an ISO 4217 code like CNY")
    full = _payload(data.get("full"), "full")
    delta = None if data.get("delta") is None else _payload(data["delta"], "delta")
    if delta is not None and delta.base != version - 1:
        raise StoreDataError(f"version {version}'s delta is against {delta.base}, "
                             f"not {version - 1}")
    key = data.get("key_id")
    if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{16}", key):
        raise StoreDataError("manifest key_id must be 16 hex digits")
    note = data.get("note", "")
    if not isinstance(note, str):
        raise StoreDataError("manifest note must be text")
    return Manifest(store_id, kind, version, data["effective_at"], data["published_at"],
                    currency, full, delta, key, note)


def instant_text(when: datetime) -> str:
    """An aware datetime as the manifest writes it: UTC, whole seconds, ``Z``.
    ValueError for a naive datetime (its zone would be a guess)."""
    if when.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; give one")
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: Any) -> datetime:
    """``2026-12-01T01:00:00Z`` -> aware UTC datetime; :class:`StoreDataError` otherwise."""
    if not isinstance(text, str) or not re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text):
        raise StoreDataError(f"{text!r} is not a UTC time like 2026-12-01T01:00:00Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise StoreDataError(f"{text!r} is not a real date and time") from None


def key_id(public_key_raw: bytes) -> str:
    """The 16-hex-digit id of a raw 32-byte Ed25519 public key (first 8 bytes of its
    SHA-256): in the manifest, so a lane says which key signed what it refused."""
    if len(public_key_raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


def etag(kind: str, version: int) -> str:
    """The entity tag of a store's newest ``kind`` version: ``"catalogue-42"`` (quoted)."""
    return f'"{kind}-{version}"'


def version_from_etag(value: str | None, kind: str) -> int | None:
    """The version an ``If-None-Match`` value names for ``kind``; None when it names
    none (absent, ``*``, another kind, malformed)."""
    if not value:
        return None
    for part in value.split(","):
        m = _ETAG.match(part.strip())
        if m and m.group(1) == kind:
            return int(m.group(2))
    return None


def check_store_id(store_id: str) -> str:
    """``store_id`` if it is a store id (letters, digits, ``._-``, 1-64, starting with a
    letter or digit); ValueError otherwise. It is part of URLs and subjects."""
    if not _STORE_ID.match(store_id):
        raise ValueError(f"{store_id!r} is not a store id (letters, digits, '.', '_', '-')")
    return store_id


def is_lane_id(lane_id: str) -> bool:
    """Whether ``lane_id`` may name a lane at head office: 1-64 printable characters, no
    ``/`` (a lane's own setting, ``kiosk.lane_id``, is stricter: 1-32 of
    ``[A-Za-z0-9_-]``; head office also keeps ids with spaces or other scripts)."""
    return 0 < len(lane_id) <= 64 and lane_id.isprintable() and "/" not in lane_id


# -- payload encoding ----------------------------------------------------------------------

def _line(row: Iterable[Any]) -> bytes:
    return json.dumps(list(row), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode_lines(rows: Iterable[Row | Op]) -> tuple[bytes, int]:
    """gzip JSON Lines of ``rows`` (already in key order) -> ``(bytes, row count)``.
    ``mtime=0`` so the same rows give the same bytes (and the same SHA-256)."""
    out = io.BytesIO()
    count = 0
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        for row in rows:
            gz.write(_line(row))
            count += 1
    return out.getvalue(), count


def digest(data: bytes) -> str:
    """SHA-256 of payload bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def check_payload(data: bytes, expected: Payload) -> None:
    """Raise :class:`StoreDataError` unless ``data`` is exactly the payload the signed
    manifest describes (size first, so a truncated download says "truncated")."""
    if len(data) < expected.size:
        raise StoreDataError(f"the {expected.format} download is truncated: "
                             f"{len(data)} of {expected.size} bytes")
    if len(data) != expected.size:
        raise StoreDataError(f"the {expected.format} download is {len(data)} bytes, "
                             f"the manifest says {expected.size}")
    if digest(data) != expected.sha256:
        raise StoreDataError(f"the {expected.format} download's SHA-256 does not match the "
                             "signed manifest (tampered or damaged)")


def decode_lines(data: bytes, max_line: int = MAX_LINE_BYTES) -> Iterator[list[Any]]:
    """The rows of a gzip JSON Lines payload. :class:`StoreDataError` for bytes that are
    not gzip, not UTF-8 JSON arrays, end mid-line, or hold a line longer than
    ``max_line`` bytes (refused as it is read: a payload that inflates to one huge line
    is never held whole)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz:
            number = 0
            while raw := gz.readline(max_line + 1):
                number += 1
                if len(raw) > max_line:
                    raise StoreDataError(f"payload line {number} is longer than {max_line} "
                                         "bytes")
                if not raw.endswith(b"\n"):
                    raise StoreDataError(f"payload line {number} is cut short")
                try:
                    row = json.loads(raw)
                except ValueError:
                    raise StoreDataError(f"payload line {number} is not JSON") from None
                if not isinstance(row, list) or not row:
                    raise StoreDataError(f"payload line {number} is not a row")
                yield row
    except (OSError, EOFError) as exc:
        raise StoreDataError(f"the payload is not a whole gzip stream: {exc}") from None


def diff(old: Iterable[Row], new: Iterable[Row]) -> Iterator[Op]:
    """The delta from ``old`` to ``new``, two row streams each sorted by key (row[0]) with
    unique keys: ``("+", *row)`` for a row added or changed, ``("-", key)`` for one
    removed, in key order. A merge walk: memory stays flat for a million rows.
    ValueError if either stream is out of order."""
    olds, news = iter(old), iter(new)
    o, n = next(olds, None), next(news, None)
    last_o = last_n = None
    while o is not None or n is not None:
        if o is not None and last_o is not None and o[0] <= last_o:
            raise ValueError(f"old rows out of key order at {o[0]!r}")
        if n is not None and last_n is not None and n[0] <= last_n:
            raise ValueError(f"new rows out of key order at {n[0]!r}")
        if n is None or (o is not None and o[0] < n[0]):
            assert o is not None
            yield ("-", o[0])
            last_o, o = o[0], next(olds, None)
        elif o is None or n[0] < o[0]:
            yield ("+", *n)
            last_n, n = n[0], next(news, None)
        else:
            if list(o) != list(n):
                yield ("+", *n)
            last_o, last_n = o[0], n[0]
            o, n = next(olds, None), next(news, None)


def apply_ops(rows: dict[Any, Row], ops: Iterable[Op]) -> dict[Any, Row]:
    """``rows`` (key -> row) with a delta applied, as a new dict: the reference meaning of a
    delta, for tests and small kinds (the lane applies catalogue deltas in SQL).
    StoreDataError for an op that is neither ``+`` nor ``-``."""
    out = dict(rows)
    for op in ops:
        if op[0] == "+" and len(op) >= 2:
            out[op[1]] = tuple(op[1:])
        elif op[0] == "-" and len(op) == 2:
            out.pop(op[1], None)
        else:
            raise StoreDataError(f"delta line {list(op)!r} is neither ['+', row] nor ['-', key]")
    return out
