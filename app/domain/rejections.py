"""Why a scan or an action was refused, in words a shopper or clerk can act on.

Every refusal carries a stable ``code`` (for events and tests) and a message in
Chinese and English that says what to do next. ``preview`` is a safe, escaped,
truncated rendering of the offending input: raw scanner bytes are never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREVIEW_LIMIT = 40


# A run of this many digits or more may be (part of) a wallet's payment code, a bearer
# credential (app.domain.payment_code: every published range is 16+ digits, a store's own
# 10+): a preview keeps its first two digits and its length only, so a scanner's partial
# or unterminated read of a payment code never reaches a log line (issue 18).
_DIGIT_RUN = re.compile(r"[0-9]{10,}")


def _mask_digits(text: str) -> str:
    return _DIGIT_RUN.sub(lambda m: f"{m.group()[:2]}<{len(m.group())} digits>", text)


def safe_preview(raw: str | bytes) -> str:
    """An escaped, shortened rendering of untrusted input, safe for logs and screens: at
    most ``PREVIEW_LIMIT`` characters of it, control characters escaped, runs of 10 or more
    digits (what may be a payment code) reduced to their first two digits and length."""
    if isinstance(raw, bytes):
        text = raw[:PREVIEW_LIMIT].decode("ascii", errors="backslashreplace")
    else:
        text = raw[:PREVIEW_LIMIT]
    escaped = _mask_digits(text.encode("unicode_escape").decode("ascii"))
    longer = len(raw) > PREVIEW_LIMIT
    return escaped + ("…" if longer else "")


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message_en: str
    message_zh: str
    preview: str = ""

    def message(self, language: str) -> str:
        return self.message_zh if language.startswith("zh") else self.message_en


class Refused(Exception):
    """Raised when the store's rules refuse something; carries the ``Refusal``."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.code}: {refusal.message_en}")
        self.refusal = refusal


def refuse(code: str, en: str, zh: str, raw: str | bytes = "") -> Refused:
    return Refused(Refusal(code, en, zh, safe_preview(raw) if raw else ""))
