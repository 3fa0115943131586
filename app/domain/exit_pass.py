"""The exit pass: a compact, signed summary of a paid sale that the exit check can trust.

Layout (version 1), before signing: version byte, flags (bit 0: picked for an
exit audit), then unsigned LEB128 varints for the issue time (Unix seconds),
the total (minor units) and the item count, the 3-letter currency, then the
lane id and the order id, each prefixed by its length. The Ed25519 signature
(64 bytes) follows, and the whole is written as ``EP1:`` + unpadded base32.

Base32 uses only QR's alphanumeric characters (digits, capitals, ':'), which
a QR stores at 5.5 bits a character against 8 for arbitrary text: a pass is
about 150 characters, a version 6-7 QR at error correction M, easy for a
phone camera and for the kiosk's own camera. Signing and key handling live in
``app.services.exit_pass``; this module only builds and parses the bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from app.domain.varint import decode_uvarint, encode_uvarint

PREFIX = "EP1:"
VERSION = 1
SIGNATURE_BYTES = 64
MAX_ID = 64
MAX_TIME = 1 << 34  # Unix seconds up to the year 2514: anything larger is not a real pass


class PassInvalid(ValueError):
    """A pass that cannot be read or trusted; ``code`` says which way."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "malformed", "unknown_kiosk", "altered", "bad_signature"


@dataclass(frozen=True, slots=True)
class ExitPass:
    lane_id: str
    order_id: str
    total_minor: int
    currency: str
    item_count: int
    issued_at: int  # Unix seconds
    exit_audit: bool = False

    def body(self) -> bytes:
        """The signed bytes."""
        lane, order = self.lane_id.encode("ascii"), self.order_id.encode("ascii")
        if not (0 < len(lane) <= MAX_ID and 0 < len(order) <= MAX_ID):
            raise ValueError("lane and order ids must be 1-64 ASCII characters")
        if len(self.currency) != 3 or not self.currency.isascii():
            raise ValueError("currency must be a 3-letter ISO 4217 code")
        return (
            bytes([VERSION, 1 if self.exit_audit else 0])
            + encode_uvarint(self.issued_at) + encode_uvarint(self.total_minor)
            + encode_uvarint(self.item_count)
            + self.currency.encode("ascii")
            + bytes([len(lane)]) + lane + bytes([len(order)]) + order
        )


def encode(exit_pass: ExitPass, signature: bytes) -> str:
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError("an Ed25519 signature is 64 bytes")
    return PREFIX + base64.b32encode(exit_pass.body() + signature).decode("ascii").rstrip("=")


def decode(text: str) -> tuple[ExitPass, bytes, bytes]:
    """(pass, signed body, signature) from the QR text, or ``PassInvalid('malformed')``."""
    text = text.strip()
    if not text.upper().startswith(PREFIX):
        raise PassInvalid("malformed", f"not an exit pass (it should start with {PREFIX})")
    data = text[len(PREFIX):].upper()
    try:
        raw = base64.b32decode(data + "=" * (-len(data) % 8))
    except (binascii.Error, ValueError):
        raise PassInvalid("malformed", "the pass is not valid base32 (damaged or cut short)") \
            from None
    if len(raw) <= SIGNATURE_BYTES + 2:
        raise PassInvalid("malformed", "the pass is too short to hold a sale and a signature")
    body, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    try:
        return _parse(body), body, signature
    except (IndexError, UnicodeDecodeError, ValueError):
        raise PassInvalid("malformed", "the pass's contents cannot be read") from None


def _parse(body: bytes) -> ExitPass:
    if body[0] != VERSION:
        raise ValueError(f"unknown exit pass version {body[0]}")
    flags = body[1]
    pos = 2
    issued_at, pos = decode_uvarint(body, pos)
    total, pos = decode_uvarint(body, pos)
    items, pos = decode_uvarint(body, pos)
    currency = body[pos:pos + 3].decode("ascii")
    pos += 3
    lane_len = body[pos]
    lane = body[pos + 1:pos + 1 + lane_len].decode("ascii")
    pos += 1 + lane_len
    order_len = body[pos]
    order = body[pos + 1:pos + 1 + order_len].decode("ascii")
    pos += 1 + order_len
    if pos != len(body) or len(currency) != 3 or not lane or len(order) != order_len:
        raise ValueError("trailing or missing bytes")
    if issued_at >= MAX_TIME or total >= 1 << 53 or items > 100_000:
        raise ValueError("values out of range")
    return ExitPass(lane, order, total, currency, items, issued_at, bool(flags & 1))
