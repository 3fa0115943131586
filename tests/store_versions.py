"""Signed store data versions for tests (issue 22): what head office would publish.

``make_version`` builds one version of a kind (its manifest, signed with an Ed25519 key,
its full payload and, given the previous rows, its delta) with the domain's own
``store_data.encode_lines`` and ``diff``, so tests on either side of the contract use the
same bytes. ``product_row`` and ``gtin13`` make catalogue rows; ``listing`` is what
``GET /v1/stores/{store}/data/{kind}`` would carry, as ``StoreData.plan`` takes it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain import store_data as sd
from app.domain.gtin import check_digit

STORE = "store-01"


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_b64(key: Ed25519PrivateKey) -> str:
    """The line a lane pins (``sync.hq_public_key``): base64 of the raw 32 bytes."""
    return base64.b64encode(raw_public(key)).decode("ascii")


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def gtin13(n: int, prefix: str = "690") -> str:
    """A valid EAN-13 from a number: ``prefix`` + n (zero-padded) + check digit."""
    body = f"{prefix}{n:0{12 - len(prefix)}d}"
    return body + str(check_digit(body))


def product_row(code13: str, price: int, name: str = "Item", *, member: int | None = None,
                dept: str = "grocery") -> tuple[Any, ...]:
    """A catalogue payload row (11 columns) for an EAN-13 ``code13``, keyed as the
    catalogue keys it (GTIN-14: a leading 0)."""
    return ("0" + code13, f"商品{name}", name, price, member, "each", "food", 0, None, dept, "")


@dataclass(frozen=True)
class Version:
    """One published version: ``manifest_raw`` (the signed bytes), ``signature``, the
    ``full`` and ``delta`` payloads (delta None for version 1 or when not asked)."""

    manifest: sd.Manifest
    manifest_raw: bytes
    signature: bytes
    full: bytes
    delta: bytes | None

    def payload(self, format: str) -> bytes:  # noqa: A002
        data = self.full if format == "full" else self.delta
        assert data is not None
        return data

    def listed(self) -> tuple[bytes, bytes]:
        return self.manifest_raw, self.signature


def make_version(key: Ed25519PrivateKey, *, rows: list[tuple[Any, ...]],
                 previous: list[tuple[Any, ...]] | None = None, kind: str = "catalogue",
                 version: int = 1, store_id: str = STORE, currency: str = "CNY",
                 effective_at: datetime | str = "2026-01-01T00:00:00Z",
                 published_at: str = "2026-01-01T00:00:00Z",
                 sign_with: Ed25519PrivateKey | None = None, note: str = "") -> Version:
    """Version ``version`` of ``kind`` holding ``rows`` (sorted here by key); with
    ``previous`` (version − 1's rows) it carries a delta too. ``sign_with``: sign with
    another key than ``key`` (whose key id the manifest still names, as a forger would)."""
    rows = sorted(rows, key=lambda r: r[0])
    full, full_rows = sd.encode_lines(rows)
    delta_payload = None
    delta_bytes = None
    if previous is not None:
        ops = list(sd.diff(sorted(previous, key=lambda r: r[0]), rows))
        delta_bytes, n = sd.encode_lines(ops)
        delta_payload = sd.Payload("delta", sd.digest(delta_bytes), len(delta_bytes), n,
                                   version - 1)
    when = effective_at if isinstance(effective_at, str) else sd.instant_text(effective_at)
    manifest = sd.Manifest(store_id, kind, version, when, published_at, currency,
                           sd.Payload("full", sd.digest(full), len(full), full_rows),
                           delta_payload, sd.key_id(raw_public(key)), note)
    raw = sd.manifest_bytes(manifest)
    return Version(manifest, raw, (sign_with or key).sign(raw), full, delta_bytes)


def resigned(key: Ed25519PrivateKey, v: Version, **changes: Any) -> Version:
    """``v`` with manifest fields changed and signed again by ``key``."""
    manifest = replace(v.manifest, **changes)
    raw = sd.manifest_bytes(manifest)
    return replace(v, manifest=manifest, manifest_raw=raw, signature=key.sign(raw))


def listing(*versions: Version) -> list[tuple[bytes, bytes]]:
    return [v.listed() for v in versions]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


__all__ = ["STORE", "Version", "gtin13", "listing", "make_version", "new_key",
           "product_row", "public_b64", "raw_public", "resigned", "utc"]
