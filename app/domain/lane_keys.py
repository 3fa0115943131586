"""The lane-keys file's rules: which lane signs exit passes with which Ed25519 key.

The file (``exit_pass.public_keys_file``) is TOML, one ``lane-id = "base64"`` line per
lane (or the same lines under a ``[lanes]`` table), each value the base64 of a raw
32-byte Ed25519 public key (what ``kiosk pass key`` prints). One rule for the store's
exit check (``app.services.exit_pass.load_public_keys``) and for ``kiosk hq publish
lane-keys`` at head office. Pure: it takes the text and returns raw key bytes; turning
them into key objects is the caller's (the domain does no cryptography).
"""

from __future__ import annotations

import base64
import binascii
import tomllib

#: Bytes in a raw Ed25519 public key (RFC 8032).
KEY_BYTES = 32


def parse_lane_keys(text: str) -> dict[str, bytes]:
    """lane id -> raw 32-byte public key, in file order, from a lane-keys TOML text.

    ValueError with the reason: not TOML (``not valid TOML: ...``), or a value that is
    not base64 of 32 bytes (``the key for 'lane-01' is not a base64 Ed25519 public key``).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    table = data.get("lanes", data)
    if not isinstance(table, dict):
        raise ValueError("'lanes' must be a table of lane-id = \"base64\" lines")
    keys: dict[str, bytes] = {}
    for lane, value in table.items():
        try:
            raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise ValueError(f"the key for {lane!r} is not a base64 Ed25519 public key")
        keys[lane] = raw
    return keys
