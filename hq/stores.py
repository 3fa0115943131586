"""What the head-office service keeps, whatever holds it: the :class:`HqStore` protocol
the answers it gives.

The service itself is stateless (any number of instances behind a load balancer): every
fact it must remember (events, batch answers, audit heads, members, the member key) is in
the store, so two instances over one store answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class BatchAnswer:
    """The answer to one ``POST /v1/events`` (the contract's ``BatchResult``): event ids
    stored now, ids already held (both count as delivered), and ``{event_id, reason}``
    for each refused event."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The body the contract names."""
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchAnswer:
        """Read back an answer kept for an ``Idempotency-Key``."""
        return cls(list(data["accepted"]), list(data["duplicates"]), list(data["rejected"]))


@dataclass(frozen=True)
class Member:
    """A member as the contract's ``Member`` schema shows it."""

    member_id: str
    name: str
    tier: str
    points: int

    def as_json(self) -> dict[str, Any]:
        return {"member_id": self.member_id, "name": self.name, "tier": self.tier,
                "points": self.points}


class StoreUnavailable(Exception):
    """The store cannot answer now (e.g. NATS unreachable): the service answers 503 with
    ``Retry-After`` and acknowledges nothing it has not stored."""


# -- store data versions (issue 22, docs/store-sync.md) -------------------------------------
class VersionTaken(Exception):
    """(store, kind, version) is already published: another publisher got there first."""


#: How long head office keeps a lane's latest heartbeat (``hq.heartbeat_ttl_s``,
#: docs/store-sync.md): a lane silent longer leaves the fleet view.
HEARTBEAT_TTL_S = 7 * 86400
# -- end store data versions ----------------------------------------------------------------


class HqStore(Protocol):
    """Where the head office keeps what lanes send. Every method may raise
    :class:`StoreUnavailable`; none acknowledges what it has not durably stored."""

    #: Seconds a lane's latest heartbeat is kept after it was received.
    heartbeat_ttl_s: float

    def ingest(self, key: str, kiosk_id: str, store_id: str,
               events: list[dict[str, Any]],
               refuse_types: frozenset[str] = frozenset()) -> BatchAnswer:
        """Store one batch exactly once. ``key`` is the batch's ``Idempotency-Key``: the
        same key gets the same answer. Events are deduplicated by ``event_id``; an event
        without ``event_id`` or a positive 63-bit ``seq``, or of a type in
        ``refuse_types``, is rejected with a reason."""
        ...

    def keep_audit_head(self, kiosk_id: str, seq: int, digest: str) -> None:
        """Keep one audit-log head a lane reported (append-only; the same head twice is
        kept once)."""
        ...

    def audit_heads(self, kiosk_id: str) -> list[tuple[int, str]]:
        """Every head the lane reported, as ``(seq, hash)`` in seq order."""
        ...

    def member(self, member_id: str) -> Member | None:
        """The member, or None; ``points`` are those enrolled with plus those earned by
        paid visits (:meth:`member_totals`)."""
        ...

    def member_totals(self, member_id: str) -> tuple[int, int, int]:
        """``(visits, spend_minor, points)`` from the member's paid sales
        (``session_ended`` events with their ``member_id``), each event counted once."""
        ...

    def member_by_phone(self, phone: str) -> str | None:
        """The member id enrolled with this phone number, or None."""
        ...

    def enrol(self, member_id: str, name: str, tier: str, phone: str, points: int = 0) -> None:
        """Add or update a member, as the membership app's sign-up would."""
        ...

    def member_key_pem(self) -> bytes:
        """The Ed25519 private key (PKCS#8 PEM) that signs member credentials: created once
        per store, the same for every service instance over it."""
        ...

    def events(self, kiosk_id: str) -> list[tuple[int, str]]:
        """The lane's stored events as ``(seq, event_id)``, each once, in seq order."""
        ...

    def counts(self) -> dict[str, int]:
        """Events held per lane id."""
        ...

    def total(self) -> int:
        """Events held from every lane, each once."""
        ...

    # -- store data versions (issue 22, docs/store-sync.md) ---------------------------------
    def publish_version(self, manifest: bytes, signature: bytes, full: bytes,
                        delta: bytes | None) -> None:
        """Keep one version: ``manifest`` its bytes exactly as signed
        (``store_data.manifest_bytes``; store, kind and version are read from them),
        ``signature`` the Ed25519 signature over them, ``full`` and ``delta`` the gzip
        payloads (``delta`` None for version 1). Compare-and-set on (store_id, kind,
        version): :class:`VersionTaken` if it exists. Payloads first, manifest last, so a
        reader never sees a manifest whose payload is missing."""
        ...

    def latest_version(self, store_id: str, kind: str) -> int | None:
        """The newest published version of ``kind`` for the store, or None."""
        ...

    def versions_after(self, store_id: str, kind: str,
                       after: int | None) -> list[tuple[bytes, bytes]]:
        """Kept versions newer than ``after`` (all kept when None) as
        (manifest bytes, signature), oldest first."""
        ...

    def payload(self, store_id: str, kind: str, version: int,
                format: str) -> bytes | None:  # noqa: A002 - the contract's name
        """A kept version's ``full`` or ``delta`` payload bytes; None when pruned or absent."""
        ...

    def prune_versions(self, store_id: str, kind: str, keep: int) -> int:
        """Drop all but the newest ``keep`` versions (manifests and payloads); how many
        were dropped."""
        ...

    # -- end store data versions ------------------------------------------------------------

    def close(self) -> None:
        """Let go of files and connections."""
        ...

    # -- lane heartbeats (docs/store-sync.md; issue 22) ----------------------------------
    def keep_heartbeat(self, store_id: str, lane_id: str, body: dict[str, Any],
                       received_at: str) -> None:
        """Keep a lane's latest heartbeat ``body`` (a checked heartbeat object) with the
        time it was received (RFC 3339 UTC, ``...Z``), replacing the lane's previous one.
        It expires ``heartbeat_ttl_s`` after ``received_at``."""
        ...

    def heartbeats(self, store_id: str | None) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Unexpired latest heartbeats as (store_id, lane_id, received_at, body), of one
        store or (None) of every store, sorted by store and lane."""
        ...
