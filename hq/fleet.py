"""Lanes reporting back (docs/store-sync.md, issue 22): the heartbeat a lane sends and the
fleet rows head office shows from the latest one of each lane.

A heartbeat is checked strictly (:func:`heartbeat_problem`): head office keeps what it
shows staff, so a body that is not the contract's heartbeat is refused with the reason
(``400``) rather than kept half-understood. Fleet rows (:func:`fleet_rows`) are the same
for ``GET /v1/stores/{store_id}/lanes`` and ``kiosk hq fleet``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain import store_data
from hq.stores import HqStore

HEALTH_STATES = ("ok", "degraded", "out_of_order")
#: The heartbeat's fields (docs/store-sync.md "Heartbeat body"); the first ones required.
REQUIRED = ("lane_id", "store_id", "sent_at", "versions", "health", "outbox", "alerts")
OPTIONAL = ("staged", "data_checked_at")
#: Bounds that keep one lane's heartbeat small (NATS keeps it as one message).
MAX_ALERTS = 100
MAX_TEXT = 500
MAX_BODY_BYTES = 64 * 1024


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63


def _instant(value: Any) -> bool:
    """An RFC 3339 date-time with an offset (``Z`` or ``+08:00``)."""
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _versions_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{name} must be an object of kind -> version"
    for kind, version in value.items():
        if kind not in store_data.KINDS:
            return f"{name} names {kind!r}, not one of {', '.join(store_data.KINDS)}"
        if version is not None and not (_count(version) and version >= 1):
            return f"{name}.{kind} must be a version number (1 or more) or null"
    return None


def heartbeat_problem(body: Any, store_id: str, lane_id: str) -> str | None:
    """Why ``body`` (parsed JSON) is not a heartbeat of lane ``lane_id`` in store
    ``store_id`` (the request's path), or None. The rules are the contract's
    (docs/store-sync.md, docs/membership-api.yaml ``Heartbeat``): the fields named there
    and no others, ids matching the path, versions whole numbers or null per known kind,
    times RFC 3339 with an offset, ``health.state`` one of :data:`HEALTH_STATES`, counts
    whole and not negative, at most :data:`MAX_ALERTS` alerts of text."""
    if not isinstance(body, dict):
        return "the body must be a JSON object (a heartbeat)"
    missing = [k for k in REQUIRED if k not in body]
    if missing:
        return f"missing {', '.join(missing)}"
    unknown = sorted(set(body) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        return f"unknown field {', '.join(map(repr, unknown))}"
    if body["lane_id"] != lane_id:
        return f"lane_id {body['lane_id']!r} is not the path's {lane_id!r}"
    if body["store_id"] != store_id:
        return f"store_id {body['store_id']!r} is not the path's {store_id!r}"
    if not _instant(body["sent_at"]):
        return "sent_at must be an RFC 3339 time with an offset"
    if body.get("data_checked_at") is not None and not _instant(body["data_checked_at"]):
        return "data_checked_at must be an RFC 3339 time with an offset, or null"
    for name in ("versions", "staged"):
        if name in body and (problem := _versions_problem(name, body[name])):
            return problem
    health = body["health"]
    if not isinstance(health, dict) or set(health) != {"state", "summary"}:
        return "health must be {state, summary}"
    if health["state"] not in HEALTH_STATES:
        return f"health.state must be one of {', '.join(HEALTH_STATES)}"
    if not isinstance(health["summary"], str) or len(health["summary"]) > MAX_TEXT:
        return f"health.summary must be text of at most {MAX_TEXT} characters"
    outbox = body["outbox"]
    if not isinstance(outbox, dict) or set(outbox) != {"pending", "dead", "oldest_pending_at"}:
        return "outbox must be {pending, dead, oldest_pending_at}"
    if not (_count(outbox["pending"]) and _count(outbox["dead"])):
        return "outbox.pending and outbox.dead must be whole numbers, 0 or more"
    if outbox["oldest_pending_at"] is not None and not _instant(outbox["oldest_pending_at"]):
        return "outbox.oldest_pending_at must be an RFC 3339 time with an offset, or null"
    alerts = body["alerts"]
    if not isinstance(alerts, list) or len(alerts) > MAX_ALERTS or not all(
            isinstance(a, str) and len(a) <= MAX_TEXT for a in alerts):
        return f"alerts must be a list of at most {MAX_ALERTS} texts"
    return None


def latest_versions(store: HqStore, store_id: str) -> dict[str, int | None]:
    """The newest published version of each kind for the store (None: none yet)."""
    return {kind: store.latest_version(store_id, kind) for kind in store_data.KINDS}


def due_versions(store: HqStore, store_id: str, now: datetime) -> dict[str, int | None]:
    """The newest version of each kind already in effect at ``now`` (its ``effective_at``
    passed; None: none is). A lane waiting for a version published for a later date is
    on time, not behind: it applies that version at its effective time
    (docs/store-sync.md)."""
    due: dict[str, int | None] = {}
    for kind in store_data.KINDS:
        due[kind] = None
        for raw, _signature in store.versions_after(store_id, kind, None):
            manifest = store_data.manifest_from_bytes(raw)
            if manifest.effective() <= now:
                due[kind] = max(due[kind] or 0, manifest.version)
    return due


def fleet_rows(store: HqStore, store_id: str | None, now: datetime) -> list[dict[str, Any]]:
    """The fleet view: one row per lane with an unexpired heartbeat, of one store or of
    every store (None), sorted by store and lane. Row shape (docs/store-sync.md "Fleet
    row"): ``store_id, lane_id, last_seen`` (when head office received the heartbeat,
    ``...Z``), ``silent_s`` (whole seconds from then to ``now``, an aware datetime),
    ``versions, latest, behind`` (kinds whose applied version is below the newest one
    already in effect (``due_versions``), a lane without one counting as below; a version
    published for a later date makes no lane behind before that date), ``staged, health, outbox,
    alerts``. Raises StoreUnavailable as the store does."""
    latest: dict[str, dict[str, int | None]] = {}
    due: dict[str, dict[str, int | None]] = {}
    rows = []
    for sid, lane_id, received_at, body in store.heartbeats(store_id):
        if sid not in latest:
            latest[sid] = latest_versions(store, sid)
            due[sid] = due_versions(store, sid, now)
        newest, in_effect = latest[sid], due[sid]
        versions = {kind: body.get("versions", {}).get(kind) for kind in store_data.KINDS}
        behind = [kind for kind in store_data.KINDS if in_effect[kind] is not None
                  and (versions[kind] is None or versions[kind] < in_effect[kind])]
        seen = store_data.parse_instant(received_at)
        rows.append({
            "store_id": sid, "lane_id": lane_id, "last_seen": received_at,
            "silent_s": max(0, int((now - seen).total_seconds())),
            "versions": versions, "latest": newest, "behind": behind,
            "staged": dict(body.get("staged") or {}), "health": body["health"],
            "outbox": body["outbox"], "alerts": list(body["alerts"]),
        })
    return rows
