"""Signing exit passes with the kiosk's Ed25519 key, and checking them offline.

Each kiosk has its own private key, created on first use in a file outside
the database (``exit_pass.private_key_file``, mode 0600), so a copied
database cannot mint passes. The store's exit check holds the public keys of
every lane (``exit_pass.public_keys_file``, TOML ``lane-id = "base64 key"``);
``kiosk pass key`` prints this lane's line for it. Verification needs no
network: a shopper's pass is checked against those keys alone.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain.exit_pass import ExitPass, PassInvalid, decode, encode
from app.domain.lane_keys import parse_lane_keys
from app.domain.money import Money


class KeyFileError(ValueError):
    """A key file is missing, unreadable or malformed; the message names the file."""


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path} is not a PEM private key (exit_pass.private_key_file): "
                               f"{exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path} is not an Ed25519 key (exit_pass.private_key_file)")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # Created 0600 from the start: the key never exists readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """lane id -> public key, from a TOML file of ``lane-id = "base64"`` lines (the rule:
    ``app.domain.lane_keys.parse_lane_keys``, which head office publishes with too)."""
    try:
        raw_keys = parse_lane_keys(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"{path} does not exist (exit_pass.public_keys_file)") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    keys = {}
    for lane, raw in raw_keys.items():
        try:
            keys[lane] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise KeyFileError(f"{path}: the key for {lane!r} is not a base64 Ed25519 "
                               "public key") from None
    return keys


class PassSigner:
    """Signs this lane's exit passes."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> PassSigner:
        return cls(load_or_create_private_key(path))

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, exit_pass: ExitPass) -> str:
        return encode(exit_pass, self._key.sign(exit_pass.body()))


@dataclass(frozen=True)
class Verdict:
    """What a scanned pass says, or why it cannot be trusted."""

    valid: bool
    code: str  # "valid", "malformed", "unknown_kiosk", "altered", "bad_signature"
    message: str
    exit_pass: ExitPass | None = None


def verify(text: str, keys: dict[str, Ed25519PublicKey]) -> Verdict:
    try:
        exit_pass, body, signature = decode(text)
    except PassInvalid as exc:
        return Verdict(False, exc.code, str(exc))
    key = keys.get(exit_pass.lane_id)
    if key is None:
        return Verdict(False, "unknown_kiosk",
                       f"no public key for lane {exit_pass.lane_id!r}: not this store's kiosk, "
                       "or its key is missing from the store's key file", exit_pass)
    if _signed_by(key, body, signature):
        return Verdict(True, "valid", "valid exit pass", exit_pass)
    for lane, other in keys.items():
        if lane != exit_pass.lane_id and _signed_by(other, body, signature):
            return Verdict(False, "altered",
                           f"signed by lane {lane!r} but claims lane {exit_pass.lane_id!r}",
                           exit_pass)
    return Verdict(False, "bad_signature",
                   "the signature does not match: the pass was altered or forged", exit_pass)


def lane_signer(private_key_path: Path, public_keys_path: Path, lane_id: str) -> PassSigner:
    """This lane's exit-pass signer. On first use its key is created and its public key is
    added to the store's key file, so the kiosk can verify its own passes at once.

    Raises KeyFileError if the key file holds another key for ``lane_id`` (every pass
    this lane signs would fail to verify)."""
    signer = PassSigner.from_file(private_key_path)
    mine = public_key_text(signer.public_key())
    known = load_public_keys(public_keys_path) if public_keys_path.exists() else {}
    if lane_id not in known:
        public_keys_path.parent.mkdir(parents=True, exist_ok=True)
        with public_keys_path.open("a", encoding="utf-8") as f:
            f.write(f'"{lane_id}" = "{mine}"\n')
    elif public_key_text(known[lane_id]) != mine:
        raise KeyFileError(
            f"{public_keys_path} holds another key for lane {lane_id!r} than "
            f"{private_key_path}: every pass would fail to verify. Fix the key file "
            "(exit_pass.public_keys_file) or restore the lane's private key."
        )
    return signer


FUTURE_TOLERANCE_S = 300.0  # lanes' clocks may differ this much (NTP keeps them closer)


def check_pass(text: str, *, keys_path: Path, now: datetime, max_age_h: float,
               refunded_minor: Callable[[str], int],
               future_tolerance_s: float = FUTURE_TOLERANCE_S,
               zone: tzinfo | None = None) -> tuple[bool, str]:
    """Staff's exit-pass check: (valid, what it holds, as lines staff read).

    Valid means signed by a lane of this store (``keys_path``, the store's key file),
    issued within ``max_age_h`` hours of ``now`` (aware) and not more than
    ``future_tolerance_s`` seconds after it (a pass dated in the future was signed by a
    lane whose clock is wrong, or made to outlive ``max_age_h``: refused, naming the
    clock), and not refunded (``refunded_minor(order_id)``, 0 when the sale is not this
    lane's). Times are shown in ``zone`` (the store's, ``store.time_zone``; None: that of
    ``now``); the pass itself holds Unix seconds, so the zone changes only what is read."""
    shown_in = zone or now.tzinfo
    try:
        keys = load_public_keys(keys_path)
    except KeyFileError as exc:
        return False, f"key file: {exc}"
    verdict = verify(text, keys)
    held = verdict.exit_pass
    if held is None:
        return verdict.valid, verdict.message
    issued = datetime.fromtimestamp(held.issued_at, UTC)
    age_h = (now - issued).total_seconds() / 3600
    total = Money(held.total_minor, held.currency).to_decimal_string()
    items = "1 item" if held.item_count == 1 else f"{held.item_count} items"
    # The lane by its id, not "lane lane-01"; "1 item", not "1 items" (issue 19).
    lines = [verdict.message, f"{held.lane_id}, order / 订单 {held.order_id}",
             f"{items}, {total} {held.currency} / {held.item_count} 件",
             f"issued {issued.astimezone(shown_in):%Y-%m-%d %H:%M %z} ({age_h:.1f} h ago)"]
    valid = verdict.valid
    if valid and age_h > max_age_h:
        valid = False
        lines.append(f"TOO OLD: older than {max_age_h:g} h / 凭证已过期")
    if valid and (issued - now).total_seconds() > future_tolerance_s:
        valid = False
        lines.append(f"DATED IN THE FUTURE: issued after this kiosk's clock "
                     f"({now.astimezone(shown_in):%Y-%m-%d %H:%M %z}); check the issuing "
                     "lane's clock and this one's / 凭证时间晚于本机时间")
    refunded = refunded_minor(held.order_id)
    if valid and refunded:
        valid = False
        lines.append(f"REFUNDED {Money(refunded, held.currency).to_decimal_string()} "
                     "/ 该订单已退款")
    if held.exit_audit:
        lines.append("EXIT CHECK / 出口抽检")
    return valid, "\n".join(lines)


def _signed_by(key: Ed25519PublicKey, body: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, body)
    except InvalidSignature:
        return False
    return True
