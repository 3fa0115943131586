"""What head office answered a lane's store-data sync, in the kiosk's words.

``devices.hq_sync`` reads the HTTP replies of the store-data endpoints
(docs/store-sync.md, "HTTP") into an :class:`Answer`; the sync policy
(``app.services.store_sync``) decides from it what to do next: nothing new, download
and stage, wait with backoff, or pause for staff (a refused token). Kept in the domain
(no I/O) so both sides share it without the device reaching the kiosk's storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AnswerKind(StrEnum):
    NOT_MODIFIED = "not_modified"  # 304: the lane has the newest version
    ANSWERED = "answered"  # 200: versions listed, or a heartbeat kept
    NOTHING = "nothing"  # 404: nothing published for this store and kind
    REFUSED = "refused"  # 400/404 for what the lane sent or asked (a heartbeat refused, a
    #                      payload pruned): not the network's fault, not retried at once
    UNAUTHORIZED = "unauthorized"  # 401/403: the lane's token was refused
    TRANSIENT = "transient"  # unreachable, timed out, 429/5xx, or not the contract


@dataclass(frozen=True)
class Answer:
    """One answer. ``versions``: for a listing, every (manifest bytes as signed,
    signature bytes) head office listed, oldest first; ``etag``: the ETag header;
    ``retry_after_s``: the wait head office asked for (429, 503); ``error``: what went
    wrong, in words for staff and the log; ``status``: the HTTP status (0: no answer)."""

    kind: AnswerKind
    status: int = 0
    versions: tuple[tuple[bytes, bytes], ...] = ()
    etag: str | None = None
    retry_after_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Head office answered as the contract says (304, 200, or 404 nothing published)."""
        return self.kind in (AnswerKind.NOT_MODIFIED, AnswerKind.ANSWERED, AnswerKind.NOTHING)


class DownloadFailed(Exception):
    """A payload could not be downloaded whole; nothing was staged. ``answer`` says why
    (its kind, status, ``Retry-After`` and words)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error)
        self.answer = answer


__all__ = ["Answer", "AnswerKind", "DownloadFailed"]
