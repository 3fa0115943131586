"""Exit pass bytes, signatures and every way a pass can be invalid."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from app.domain.exit_pass import ExitPass, PassInvalid, decode, encode
from app.services.exit_pass import (
    KeyFileError,
    PassSigner,
    load_or_create_private_key,
    load_public_keys,
    public_key_text,
    verify,
)

PASS = ExitPass("lane-01", "K20261125L01-000123", 6213, "CNY", 4, 1_764_037_805, True)


@pytest.fixture(scope="module")
def lanes():
    return {name: Ed25519PrivateKey.generate() for name in ("lane-01", "lane-02")}


def public(lanes):
    return {name: key.public_key() for name, key in lanes.items()}


def test_a_signed_pass_verifies_and_says_what_it_holds(lanes):
    text = PassSigner(lanes["lane-01"]).sign(PASS)
    verdict = verify(text, public(lanes))
    assert verdict.valid and verdict.code == "valid" and verdict.exit_pass == PASS


def test_a_pass_is_small_and_uses_only_qr_alphanumeric_characters(lanes):
    text = PassSigner(lanes["lane-01"]).sign(PASS)
    assert len(text) < 200
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def test_an_altered_total_is_caught(lanes):
    text = PassSigner(lanes["lane-01"]).sign(PASS)
    _, _, signature = decode(text)
    forged = ExitPass(PASS.lane_id, PASS.order_id, 1, PASS.currency, PASS.item_count,
                      PASS.issued_at, PASS.exit_audit)
    verdict = verify(encode(forged, signature), public(lanes))
    assert not verdict.valid and verdict.code == "bad_signature"


def test_a_pass_claiming_another_lane_is_called_altered(lanes):
    signed_by_2 = PassSigner(lanes["lane-02"]).sign(PASS)  # lane-02's key, lane-01's name
    verdict = verify(signed_by_2, public(lanes))
    assert verdict.code == "altered" and "lane-02" in verdict.message


def test_an_unknown_kiosk_and_a_malformed_pass_say_so(lanes):
    other = ExitPass("lane-99", "X1", 100, "CNY", 1, 1_764_037_805)
    text = PassSigner(Ed25519PrivateKey.generate()).sign(other)
    assert verify(text, public(lanes)).code == "unknown_kiosk"
    for bad in ("hello", "EP1:", "EP1:!!!", "EP1:AAAA", "EP1:" + "A" * 200):
        verdict = verify(bad, public(lanes))
        assert not verdict.valid and verdict.code == "malformed", bad


@given(st.text(max_size=300))
def test_decoding_anything_raises_only_pass_invalid(text):
    try:
        decode(text)
    except PassInvalid:
        pass


@given(st.binary(min_size=0, max_size=200))
def test_decoding_any_bytes_after_the_prefix_raises_only_pass_invalid(raw):
    import base64

    try:
        decode("EP1:" + base64.b32encode(raw).decode().rstrip("="))
    except PassInvalid:
        pass


def test_the_private_key_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "keys" / "exit-pass.pem"
    first = load_or_create_private_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_private_key(path)
    assert public_key_text(first.public_key()) == public_key_text(again.public_key())


def test_bad_key_files_name_the_file_and_setting(tmp_path):
    bad = tmp_path / "exit-pass.pem"
    bad.write_text("not a key")
    with pytest.raises(KeyFileError, match="exit_pass.private_key_file"):
        load_or_create_private_key(bad)
    keys = tmp_path / "store-keys.toml"
    keys.write_text('lane-01 = "not base64!"\n')
    with pytest.raises(KeyFileError, match="lane-01"):
        load_public_keys(keys)
    with pytest.raises(KeyFileError, match="exit_pass.public_keys_file"):
        load_public_keys(tmp_path / "missing.toml")


def test_values_no_real_pass_holds_are_malformed(lanes):
    far_future = ExitPass("lane-01", "X1", 100, "CNY", 1, 2**62)
    text = PassSigner(lanes["lane-01"]).sign(far_future)
    assert verify(text, public(lanes)).code == "malformed"


def test_a_lane_whose_key_file_entry_does_not_match_is_refused_at_start(tmp_path):
    from app import bootstrap
    from app.config import load_settings

    settings = load_settings(data_dir=tmp_path, environ={})
    bootstrap.build_signer(settings)  # creates the key and its key-file line
    other = public_key_text(Ed25519PrivateKey.generate().public_key())
    settings.public_keys_path.write_text(f'"lane-01" = "{other}"\n')
    with pytest.raises(KeyFileError, match="another key for lane"):
        bootstrap.build_signer(settings)
