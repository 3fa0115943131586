"""Member identification: the app's QR checked offline, and phone numbers with the backend
up (a member) or down (a provisional member confirmed later)."""

from __future__ import annotations

import time

import pytest
import requests

from app.domain.member_code import CodeInvalid, decode
from app.services.members import (
    MemberCodes,
    identify_by_phone,
    normalise_phone,
    provisional_id,
)
from devices.membership import MemberClient
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    server = BackendServer(0, tmp_path_factory.mktemp("b") / "backend.db").start()
    yield server
    server.stop()


@pytest.fixture
def codes(backend):
    key = requests.get(f"{backend.url}/v1/keys/member", timeout=5).json()["member_key"]
    return MemberCodes.from_base64(key)


def test_a_live_member_code_is_accepted_offline(backend, codes):
    code = requests.get(f"{backend.url}/sim/member-code/M000001", timeout=5).json()["code"]
    assert code.startswith("MQ1:") and len(code) < 300  # fits a QR a camera reads easily
    identity = codes.verify(code, int(time.time()))
    assert (identity.member_id, identity.how, identity.provisional) == ("M000001", "member_qr",
                                                                        False)


def test_a_code_from_a_phone_whose_clock_runs_ahead_is_not_accepted_twice(backend, codes):
    now = int(time.time())
    ahead = backend.member_code("M000001", shown_at=now + 100)
    codes.verify(ahead, now)
    with pytest.raises(CodeInvalid, match="already used"):
        codes.verify(ahead, now + 121)  # still within the code's own window


def test_a_screenshot_is_refused_once_stale_and_a_reuse_at_once(backend, codes):
    now = int(time.time())
    old = backend.member_code("M000001", shown_at=now - 600)  # ten minutes ago
    with pytest.raises(CodeInvalid) as stale:
        codes.verify(old, now)
    assert stale.value.code == "expired"
    fresh = backend.member_code("M000001")
    codes.verify(fresh, now)
    with pytest.raises(CodeInvalid, match="already used"):
        codes.verify(fresh, now + 5)


def test_altered_foreign_and_malformed_codes_are_refused(backend, codes):
    now = int(time.time())
    genuine = decode(backend.member_code("M000001"))
    from app.domain.member_code import Credential, encode

    forged_cred = Credential("M000002", genuine.credential.app_key,
                             genuine.credential.valid_until).encode()
    forged = encode(forged_cred, genuine.backend_sig, genuine.shown_at, genuine.app_sig)
    with pytest.raises(CodeInvalid) as bad:
        codes.verify(forged, now)
    assert bad.value.code == "bad_signature"
    other_store = BackendServer(0)
    foreign = other_store.member_code("M000001")
    other_store.server_close()
    with pytest.raises(CodeInvalid, match="not issued by our store"):
        codes.verify(foreign, now)
    for junk in ("hello", "MQ1:", "MQ1:AAAA", "EP1:ABC"):
        with pytest.raises(CodeInvalid) as malformed:
            codes.verify(junk, now)
        assert malformed.value.code == "malformed"


def test_an_expired_credential_asks_the_member_to_sign_in_again(backend, codes):
    now = int(time.time())
    code = backend.member_code("M000001", valid_days=-1)
    with pytest.raises(CodeInvalid) as expired:
        codes.verify(code, now)
    assert expired.value.code == "credential_expired"


def test_phone_numbers_with_the_backend_up_and_down(backend):
    client = MemberClient(backend.url, DEFAULT_TOKEN)
    member = identify_by_phone("138 0013 8000", client.member_for_phone, DEFAULT_TOKEN)
    assert member is not None and (member.member_id, member.provisional) == ("M000001", False)
    assert identify_by_phone("13700000000", client.member_for_phone, DEFAULT_TOKEN) is None
    down = MemberClient("http://127.0.0.1:9", DEFAULT_TOKEN, timeout=(0.5, 0.5))
    offline = identify_by_phone("+86 138-0013-8000", down.member_for_phone, DEFAULT_TOKEN)
    assert offline is not None and offline.provisional
    assert offline.member_id == provisional_id("13800138000", DEFAULT_TOKEN)
    assert provisional_id("13800138000", "another store") != offline.member_id  # keyed
    assert "13800138000" not in offline.member_id  # the number itself is not kept


def test_bad_phone_numbers_and_keys_say_what_is_wrong():
    with pytest.raises(ValueError, match="11 digits"):
        normalise_phone("12345")
    with pytest.raises(ValueError, match="membership.member_key"):
        MemberCodes.from_base64("not a key")
