"""The membership backend client: HTTP to the backend, and nothing else.

- ``MembershipBackend`` posts batches of behaviour events (``POST /v1/events``,
  docs/membership-api.yaml) and says what the backend answered: the contract's
  answer (accepted, duplicates, rejected with reasons), the batch refused
  (400/413/422), the token refused (401/403), or a transient failure (timeout,
  refused connection, 429/5xx with ``Retry-After`` as seconds or an HTTP date,
  a reply that is not the contract). Batching, backoff, dead letters and
  pruning are the upload policy's (``app.services.uploads``), which reads the
  outbox; this module never touches the database.
- ``MemberClient`` looks members up by phone number.
"""

from __future__ import annotations

import email.utils
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from app.domain.upload import BackendReply, ReplyKind


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class MembershipBackend:
    """The event batch endpoint (``POST /v1/events``): the uploader's port
    (``app.services.uploads.EventBackend``). One ``requests.Session``; connect and
    read timeouts (seconds) always set. It says what the backend answered and
    decides nothing: the upload policy is ``app.services.uploads``."""

    def __init__(self, base_url: str, token: str, kiosk_id: str, store_id: str, *,
                 connect_timeout: float = 3.0, read_timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token, self.kiosk_id, self.store_id = token, kiosk_id, store_id
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()

    def body(self, events: Sequence[str], audit_head: tuple[int, str] | None = None) -> bytes:
        """The request body: the envelope around the events' stored JSON, as it is."""
        envelope: dict[str, object] = {"kiosk_id": self.kiosk_id, "store_id": self.store_id,
                                       "sent_at": datetime.now(UTC).isoformat()}
        if audit_head is not None:
            envelope["audit_head"] = {"seq": audit_head[0], "hash": audit_head[1]}
        head = json.dumps(envelope, ensure_ascii=False)
        return (head[:-1] + ',"events":[' + ",".join(events) + "]}").encode()

    def envelope(self, events: Sequence[str],
                 audit_head: tuple[int, str] | None = None) -> dict[str, Any]:
        """The request body as an object (for checking it against the contract)."""
        return dict(json.loads(self.body(events, audit_head)))

    def post_events(self, batch_id: str, events: Sequence[str],
                    audit_head: tuple[int, str] | None) -> BackendReply:
        """POST one batch; what the backend answered (never raises for HTTP or network)."""
        headers = {"Authorization": f"Bearer {self.token}",
                   "Idempotency-Key": batch_id or str(uuid.uuid4()),
                   "Content-Type": "application/json"}
        try:
            response = self.http.post(f"{self.base_url}/v1/events",
                                      data=self.body(events, audit_head), headers=headers,
                                      timeout=self.timeout)
        except requests.RequestException as exc:
            return BackendReply(ReplyKind.TRANSIENT,
                                error=f"backend unreachable: {exc.__class__.__name__}")
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
                delivered = [str(e) for e in data.get("accepted", [])] + \
                    [str(e) for e in data.get("duplicates", [])]
                rejected = {str(r["event_id"]): str(r.get("reason", "rejected"))
                            for r in data.get("rejected", [])}
            except (ValueError, KeyError, TypeError, AttributeError):
                return BackendReply(ReplyKind.TRANSIENT, status,
                                    error="backend reply is not the contract's JSON")
            return BackendReply(ReplyKind.ANSWERED, status, tuple(delivered), rejected)
        if status in (400, 413, 422):
            return BackendReply(ReplyKind.BATCH_REFUSED, status,
                                error=f"backend refused a batch ({status})")
        if status in (401, 403):
            return BackendReply(ReplyKind.UNAUTHORIZED, status,
                                error=f"backend refused the token ({status})")
        # Retry-After means "wait this long" on 429 and 503; elsewhere it is not a promise.
        hint = retry_after_seconds(response.headers.get("Retry-After")) \
            if status in (429, 503) else None
        return BackendReply(ReplyKind.TRANSIENT, status, retry_after_s=hint,
                            error=f"backend answered {status}")


class MemberClient:
    """Member look-ups on the membership backend (``GET /v1/members?phone=``)."""

    def __init__(self, base_url: str, token: str, timeout: tuple[float, float] = (2.0, 3.0)
                 ) -> None:
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout
        self.http = requests.Session()

    def member_for_phone(self, phone: str) -> str | None:
        """The member id, None if there is no such member; ``BackendUnavailable`` offline."""
        from app.services.members import BackendUnavailable

        try:
            response = self.http.get(f"{self.base_url}/v1/members", params={"phone": phone},
                                     headers={"Authorization": f"Bearer {self.token}"},
                                     timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendUnavailable(str(exc)) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise BackendUnavailable(f"membership backend answered {response.status_code}")
        try:
            return str(response.json()["member_id"])
        except (ValueError, KeyError, TypeError):
            raise BackendUnavailable("membership backend reply is not JSON") from None

    def check_access(self, kiosk_id: str) -> tuple[str, str]:
        """Whether the backend is reachable and takes the kiosk's token (``kiosk doctor``):
        the harmless, authenticated ``GET /v1/kiosks/{id}/audit-head``. Returns (outcome,
        detail): outcome ``accepted`` (200, or 404: no head yet), ``refused`` (401/403:
        the token), ``error`` (any other status) or ``unreachable`` (no answer)."""
        try:
            r = self.http.get(f"{self.base_url}/v1/kiosks/{kiosk_id}/audit-head",
                              headers={"Authorization": f"Bearer {self.token}"},
                              timeout=self.timeout)
        except requests.RequestException as exc:
            return "unreachable", f"no answer from {self.base_url}: {exc}"
        if r.status_code in (200, 404):
            return "accepted", f"{self.base_url} accepted the kiosk's token"
        if r.status_code in (401, 403):
            return "refused", f"{self.base_url} refused the kiosk's token (HTTP {r.status_code})"
        return "error", f"{self.base_url} answered HTTP {r.status_code}"

    def audit_heads(self, kiosk_id: str) -> list[tuple[int, str]] | None:
        """Every audit head (seq, hash) the backend holds for ``kiosk_id``
        (``GET /v1/kiosks/{id}/audit-head``): [] if it holds none, None if it could not be
        asked (unreachable, or an answer that is not the contract's)."""
        try:
            r = self.http.get(f"{self.base_url}/v1/kiosks/{kiosk_id}/audit-head",
                              headers={"Authorization": f"Bearer {self.token}"},
                              timeout=(2, 5))
            if r.status_code == 404:
                return []
            if r.status_code != 200:
                return None
            return [(int(h["seq"]), str(h["hash"])) for h in r.json()["heads"]]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None
