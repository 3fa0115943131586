"""Store-data versions as a publisher makes them, for head-office store and service tests
(docs/store-sync.md): real manifests and gzip payloads from app/domain/store_data.py, with
64 random bytes standing for the signature (a store keeps it without checking it)."""

from __future__ import annotations

import os
from typing import Any

from app.domain import store_data

KEY_ID = "0123456789abcdef"
Version = tuple[bytes, bytes, bytes, bytes | None]  # manifest, signature, full, delta


def make_version(store_id: str, kind: str, version: int, rows: list[tuple[Any, ...]],
                 previous: list[tuple[Any, ...]] | None = None, note: str = "",
                 effective_at: str = "2026-11-01T01:00:00Z") -> Version:
    """A version's (manifest bytes, signature, full payload, delta payload or None): the
    delta against ``previous`` rows when given (then ``version`` must be 2 or more)."""
    full, n = store_data.encode_lines(rows)
    delta = None
    delta_payload = None
    if previous is not None:
        delta, d = store_data.encode_lines(store_data.diff(previous, rows))
        delta_payload = store_data.Payload("delta", store_data.digest(delta), len(delta), d,
                                           version - 1)
    m = store_data.Manifest(store_id, kind, version, effective_at,
                            "2026-11-30T12:00:00Z", "CNY",
                            store_data.Payload("full", store_data.digest(full), len(full), n),
                            delta_payload, KEY_ID, note)
    return store_data.manifest_bytes(m), os.urandom(64), full, delta


def rows(n: int, price: int = 100) -> list[tuple[Any, ...]]:
    """``n`` rows ``(code, name, price)`` in key order."""
    return [(f"{i:013d}", f"product {i}", price + i) for i in range(n)]
