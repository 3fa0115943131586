"""``check_credentials`` (the port's harmless signed request, for ``kiosk doctor``) in every
built-in adapter, over real HTTP against the payment simulator's gateway contract, WeChat
Pay v3 and Alipay endpoints: accepted, refused for a wrong key or secret, a reply signed
with a key the kiosk does not hold, a provider that is down, and the reply's Date header
(which the simulator can be told to skew)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devices.payment.alipay import AlipayAdapter
from devices.payment.gateway import GatewayAdapter, SimulatorAdapter
from devices.payment.wechatpay import WeChatPayAdapter
from devices.sim.payprovider import PayServer


@pytest.fixture(scope="module")
def sim():
    server = PayServer(0).start()
    yield server
    server.stop()


def gateway(sim, secret=None):
    if secret is None:
        return SimulatorAdapter.from_options({"base_url": sim.url}, "lane-01")
    return GatewayAdapter.from_options({"base_url": sim.url, "secret": secret}, "lane-01")


def wechat(sim, **options):
    return WeChatPayAdapter.from_options(sim.keys.wechat_options | options, "lane-01")


def alipay(sim, **options):
    return AlipayAdapter.from_options(sim.keys.alipay_options | options, "lane-01")


ADAPTERS = {"simulator": gateway, "wechatpay": wechat, "alipay": alipay}


def other_private_key(tmp_path):
    """A private key the provider never saw (a merchant key from another account)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "someone-elses.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


def other_public_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    path = tmp_path / "someone-elses-public.pem"
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_good_credentials_are_accepted_with_the_replys_date(sim, name):
    checked = ADAPTERS[name](sim).check_credentials()
    assert checked.reached and checked.accepted, checked.detail
    assert "no such order, as expected" in checked.detail
    assert checked.sent_at <= checked.received_at
    server = parsedate_to_datetime(checked.server_date).timestamp()
    assert checked.sent_at - 1 <= server <= checked.received_at + 1  # the true clock


def test_a_wrong_gateway_secret_is_refused_naming_the_setting(sim):
    checked = gateway(sim, secret="an-old-secret").check_credentials()
    assert checked.reached and not checked.accepted
    assert "401" in checked.detail and checked.setting == "payment.options.secret"


def test_a_wechat_merchant_key_the_provider_does_not_know_is_refused(sim, tmp_path):
    checked = wechat(sim, private_key_file=other_private_key(tmp_path)).check_credentials()
    assert checked.reached and not checked.accepted
    assert "SIGN_ERROR" in checked.detail or "401" in checked.detail, checked.detail


def test_an_alipay_app_key_the_provider_does_not_know_is_refused(sim, tmp_path):
    checked = alipay(sim, app_private_key_file=other_private_key(tmp_path)).check_credentials()
    assert checked.reached and not checked.accepted
    assert "invalid-signature" in checked.detail, checked.detail


def test_a_reply_the_kiosk_cannot_verify_is_not_accepted(sim, tmp_path):
    """Alipay answers, but with its real key, not the one in the kiosk's settings: the
    provider is reached and the kiosk's set-up is still wrong."""
    checked = alipay(sim, alipay_public_key_file=other_public_key(tmp_path)
                     ).check_credentials()
    assert checked.reached and not checked.accepted
    assert checked.setting == "payment.options.alipay_public_key_file"


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_provider_that_is_down_is_not_reached(name, tmp_path):
    server = PayServer(0, keys_dir=tmp_path / "keys").start()
    provider = ADAPTERS[name](server)
    server.stop()  # the port is closed: connection refused
    checked = provider.check_credentials()
    assert not checked.reached and not checked.accepted
    assert checked.server_date == ""


def test_the_simulator_skews_only_its_date_header(sim):
    assert requests.post(f"{sim.url}/sim/clock", json={"date_skew_s": 600}, timeout=5).ok
    try:
        checked = gateway(sim).check_credentials()
        assert checked.accepted  # its signed timestamps stay true
        server = parsedate_to_datetime(checked.server_date).timestamp()
        assert checked.sent_at + 599 <= server <= checked.received_at + 601
    finally:
        requests.post(f"{sim.url}/sim/clock", json={"date_skew_s": 0}, timeout=5)
    assert requests.post(f"{sim.url}/sim/clock", json={"date_skew_s": "soon"},
                         timeout=5).status_code == 400
