"""Identifying a member: the membership app's QR (checked offline), or a phone number.

``MemberCodes.verify`` checks a member QR (app.domain.member_code) with only
the backend's public member key: the backend's signature on the app's
credential, the credential's end date, the app's signature on the moment
the code was shown, and that moment within ``max_age_s`` (two minutes):
a screenshot is useless afterwards. A code seen once is not accepted again
at this kiosk while it is still fresh.

``identify_by_phone`` asks the backend; when the backend cannot be reached
the shopper is accepted *provisionally* (member prices apply; the id is a
keyed hash of the number, never the number) and the backend confirms later
from the ``member_identified`` event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.domain.member_code import CodeInvalid, decode


@dataclass(frozen=True)
class MemberIdentity:
    member_id: str
    how: str  # "member_qr" or "phone"
    provisional: bool = False


class BackendUnavailable(Exception):
    """The membership backend could not be asked (network down, timeout, 5xx)."""


def _verify(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


class MemberCodes:
    def __init__(self, backend_key: Ed25519PublicKey, max_age_s: int = 120) -> None:
        self.backend_key = backend_key
        self.max_age_s = max_age_s
        self._seen: dict[bytes, int] = {}

    @classmethod
    def from_base64(cls, text: str, max_age_s: int = 120) -> MemberCodes:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except ValueError:
            raise ValueError("membership.member_key must be the backend's base64 Ed25519 "
                             "public member key") from None
        return cls(key, max_age_s)

    def verify(self, text: str, now: int) -> MemberIdentity:
        """The member a code names, or ``CodeInvalid`` saying why not."""
        code = decode(text)
        if not _verify(self.backend_key, code.backend_sig, code.credential_bytes):
            raise CodeInvalid("bad_signature", "this member code was not issued by our store")
        if code.credential.valid_until < now:
            raise CodeInvalid("credential_expired",
                              "this membership app needs to sign in again")
        app_key = Ed25519PublicKey.from_public_bytes(code.credential.app_key)
        if not _verify(app_key, code.app_sig, code.app_message()):
            raise CodeInvalid("bad_signature", "this member code was altered")
        if abs(now - code.shown_at) > self.max_age_s:
            raise CodeInvalid("expired", "this member code has expired: show the live code "
                                         "in the app")
        # Remember a used code for as long as it could still be accepted: until its own
        # shown-at time plus the window (a phone clock ahead of ours stretches that).
        self._seen = {sig: until for sig, until in self._seen.items() if until >= now}
        if code.app_sig in self._seen:
            raise CodeInvalid("expired", "this member code was already used: show the live "
                                         "code in the app")
        self._seen[code.app_sig] = max(now, code.shown_at) + self.max_age_s
        return MemberIdentity(code.credential.member_id, "member_qr")


def normalise_phone(text: str) -> str:
    """A mainland China mobile number as 11 digits, or ValueError."""
    digits = "".join(c for c in text if c.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) != 11 or not digits.startswith("1"):
        raise ValueError("a mobile number has 11 digits and starts with 1")
    return digits


def mask_phone(phone: str) -> str:
    """An 11-digit mobile number (``normalise_phone``'s form) with its middle four digits
    hidden, as Chinese apps and receipts show it: "13812345678" -> "138****5678".
    Raises ValueError for anything ``normalise_phone`` refuses."""
    digits = normalise_phone(phone)
    return f"{digits[:3]}****{digits[7:]}"


def provisional_id(phone: str, secret: str) -> str:
    """A keyed hash of the number: the backend (which shares ``secret``, the kiosk's
    token) can match it to the member; nobody can brute-force 11 digits back from it."""
    return "P" + hmac.new(secret.encode(), phone.encode(), hashlib.sha256).hexdigest()[:15]


def identify_by_phone(text: str, lookup: Callable[[str], str | None],
                      secret: str) -> MemberIdentity | None:
    """The member with this phone number, provisional if the backend is unreachable;
    None if the backend says there is no such member."""
    phone = normalise_phone(text)
    try:
        member_id = lookup(phone)
    except BackendUnavailable:
        return MemberIdentity(provisional_id(phone, secret), "phone", provisional=True)
    return MemberIdentity(member_id, "phone") if member_id else None
