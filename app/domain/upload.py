"""What the membership backend answered to a batch of behaviour events, in the kiosk's words.

``devices.membership`` reads the HTTP reply (status, JSON body, ``Retry-After``)
into a ``BackendReply``; the upload policy (``app.services.uploads``) decides
from it what happens to the batch: delivered, set aside, sent smaller, sent
again later, or uploading paused for staff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ReplyKind(StrEnum):
    ANSWERED = "answered"  # the contract's answer: accepted/duplicates and rejected events
    BATCH_REFUSED = "batch_refused"  # the backend refused the batch as a whole (400, 413, 422)
    UNAUTHORIZED = "unauthorized"  # the kiosk's token was refused (401, 403)
    TRANSIENT = "transient"  # unreachable, timed out, 429/5xx, or a reply that is not the contract


@dataclass(frozen=True)
class BackendReply:
    kind: ReplyKind
    status: int = 0  # the HTTP status; 0 when nothing was answered
    delivered: tuple[str, ...] = ()  # event ids the backend holds now (accepted or duplicates)
    rejected: Mapping[str, str] = field(default_factory=dict)  # event id -> the backend's reason
    retry_after_s: float | None = None  # the backend asked for this wait (seconds; 429, 503)
    error: str = ""  # what went wrong, in words for staff (TRANSIENT)


__all__ = ["BackendReply", "ReplyKind"]
