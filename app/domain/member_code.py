"""The member QR the membership app shows: its bytes, in and out (signatures: app.services.members).

The backend issues each app a *credential*: the member id, the app's own
Ed25519 public key and an end date, signed with the backend's member key.
The app's QR is a fresh *code* every few seconds: the credential, the
backend's signature, the current time, and the app's signature over that
time. A kiosk checks it offline with only the backend's public key; a code
older than two minutes is refused, so a screenshot cannot be reused later.

Layout: ``MQ1:`` + unpadded base32 of: credential length (1 byte),
credential (member id length + id, 32-byte app key, valid-until varint),
backend signature (64), time (varint, Unix seconds), app signature (64).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from app.domain.varint import decode_uvarint, encode_uvarint

PREFIX = "MQ1:"
SIG = 64


class CodeInvalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "malformed", "bad_signature", "expired", "credential_expired"


@dataclass(frozen=True, slots=True)
class Credential:
    member_id: str
    app_key: bytes  # 32-byte Ed25519 public key
    valid_until: int  # Unix seconds

    def encode(self) -> bytes:
        mid = self.member_id.encode("ascii")
        if not 0 < len(mid) <= 40 or len(self.app_key) != 32:
            raise ValueError("a member id is 1-40 ASCII characters and an app key 32 bytes")
        return bytes([len(mid)]) + mid + self.app_key + encode_uvarint(self.valid_until)


@dataclass(frozen=True, slots=True)
class MemberCode:
    credential: Credential
    credential_bytes: bytes
    backend_sig: bytes
    shown_at: int
    app_sig: bytes

    def app_message(self) -> bytes:
        return PREFIX.encode() + self.credential_bytes + encode_uvarint(self.shown_at)


def encode(credential_bytes: bytes, backend_sig: bytes, shown_at: int, app_sig: bytes) -> str:
    raw = (bytes([len(credential_bytes)]) + credential_bytes + backend_sig
           + encode_uvarint(shown_at) + app_sig)
    return PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=")


def decode(text: str) -> MemberCode:
    text = text.strip()
    if not text.upper().startswith(PREFIX):
        raise CodeInvalid("malformed", "not a member code")
    data = text[len(PREFIX):].upper()
    try:
        raw = base64.b32decode(data + "=" * (-len(data) % 8))
        n = raw[0]
        cred = raw[1:1 + n]
        pos = 1 + n
        backend_sig = raw[pos:pos + SIG]
        shown_at, end = decode_uvarint(raw, pos + SIG)
        app_sig = raw[end:]
        mid_len = cred[0]
        member_id = cred[1:1 + mid_len].decode("ascii")
        app_key = cred[1 + mid_len:1 + mid_len + 32]
        valid_until, cred_end = decode_uvarint(cred, 1 + mid_len + 32)
        ok = (len(backend_sig) == SIG and len(app_sig) == SIG and len(app_key) == 32
              and cred_end == len(cred) and member_id)
    except (binascii.Error, ValueError, IndexError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise CodeInvalid("malformed", "the member code cannot be read")
    return MemberCode(Credential(member_id, app_key, valid_until), cred, backend_sig, shown_at,
                      app_sig)
