"""The simulated phone in front of the simulated camera (issue 18): a generated frame of a
phone showing a wallet's payment code (a Code 128 and a QR of it) is read by the kiosk's
real decoders to the code, on two frames in a row as the camera's two-frame rule requires;
and in the simulated store the whole flow runs: the phone's code on the pay screen is
charged once and the sale completes."""

from __future__ import annotations

import time

import pytest
import requests

from app.domain.payment_code import wallet_of
from devices.camera import GeneratedSource
from devices.decoder import Decoder, FrameDecoder
from devices.scanner import ReadAcceptor
from devices.sim.frames import PHONE, Scene, render_phone
from devices.sim.payorders import Wallets

CODES = {w: Wallets().issue(w).code for w in ("wechat", "alipay", "unionpay")}


@pytest.mark.parametrize("size", [(1280, 720), (960, 540), (640, 480)])
@pytest.mark.parametrize("pipeline", ["combined", "zbar"])
@pytest.mark.parametrize("wallet", sorted(CODES))
def test_a_phone_frame_is_read_to_its_code_twice_in_a_row(wallet, pipeline, size):
    code = CODES[wallet]
    camera = GeneratedSource(width=size[0], height=size[1], fps=1000)
    camera.open()
    camera.show(code, 4, PHONE)
    decoder, acceptor = FrameDecoder(Decoder(pipeline)), ReadAcceptor()
    accepted = []
    for n in range(2):
        decoded = decoder.decode(camera.read(), force=True)
        assert decoded is not None
        texts = [r.text for r in decoded.reads]
        assert texts == [code], f"frame {n}: {texts}"  # the bars and the QR agree: one code
        accepted.append(acceptor.feed(texts, float(n)))
    assert accepted == [[], [code]]  # the first read waits, the second confirms
    assert wallet_of(accepted[1][0]) == wallet


def test_the_phone_shows_a_code_128_and_a_qr_of_the_same_code():
    import zxingcpp

    code = CODES["wechat"]
    found = {(r.format.name, r.text) for r in zxingcpp.read_barcodes(render_phone(code))}
    assert found == {("Code128", code), ("QRCode", code)}
    with pytest.raises(ValueError):
        render_phone("")  # nothing to show: refused here, not in the camera thread
    assert Scene(640, 480).frame(code, symbology=PHONE).shape == (480, 640, 3)


@pytest.fixture
def rig(tmp_path):
    from app.harness import Rig

    r = Rig(tmp_path, {})
    yield r
    r.stop()


def pump_until(rig, done, seconds: float = 15.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rig.pump(0.1)
        if done():
            return True
    return False


def test_the_phone_on_the_pay_screen_pays_the_sale_once_in_the_simulated_store(rig):
    from app.lane import Screen

    rig.lane.typed_code("6900000000014")  # a carton of milk
    rig.pump(0.3)
    assert rig.lane.checkout.cart.lines
    rig.lane.pay()
    rig.pump(0.3)
    assert rig.lane.view.screen is Screen.PAY
    code = rig.store.show_payment_code("wechat", "approve", frames=20)
    assert wallet_of(code) == "wechat"
    assert pump_until(rig, lambda: rig.lane.view.screen is Screen.RECEIPT), \
        f"never paid: {rig.lane.view.screen} {rig.lane.view.notice}"
    state = requests.get(f"{rig.pay.url}/sim/state", timeout=5).json()
    charged = {n: o for n, o in state["orders"].items() if o.get("charge_calls")}
    assert len(charged) == 1 and state["charges"] == dict.fromkeys(charged, 1)
    assert next(iter(charged.values()))["charge_calls"] == 1  # the code was sent once
    with pytest.raises(ValueError, match="no wallet"):
        rig.store.show_payment_code("cash")
