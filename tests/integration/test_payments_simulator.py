"""The simulator and gateway adapters over real HTTP against `kiosk sim pay`'s server."""

from __future__ import annotations

import json
import time

import pytest
import requests

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState
from app.services.payments import InvalidNotification
from devices.payment import AdapterNotFound, available, load_adapter
from devices.payment.gateway import SIMULATOR_SECRET, GatewayAdapter, SimulatorAdapter
from tests.unit.factories import paid_sale


@pytest.fixture
def desk(kiosk, sim):
    done = []
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=1.0)
    d = bootstrap.build_payment_desk(kiosk, provider, on_completed=done.append)
    d.completed = done
    return d


def script(sim, outcome: str, seconds: float = 0, amount: int | None = None, order="*"):
    body = {"order": order, "outcome": outcome, "seconds": seconds}
    if amount is not None:
        body["amount"] = amount
    assert requests.post(f"{sim.url}/sim/script", json=body, timeout=5).ok


def charges(sim) -> dict[str, int]:
    return requests.get(f"{sim.url}/sim/state", timeout=5).json()["charges"]


def poll_until(desk, no, states, timeout=5.0):
    end = time.monotonic() + timeout
    p = desk.poll(no)
    while p.state not in states and time.monotonic() < end:
        time.sleep(0.1)
        p = desk.poll(no)
    return p


def test_all_adapters_are_registered_as_entry_points():
    assert {"simulator", "gateway", "wechatpay", "alipay"} <= set(available())
    adapter = load_adapter("simulator", {}, "lane-01")
    assert isinstance(adapter, SimulatorAdapter) and adapter.base_url.startswith("http://127")
    with pytest.raises(AdapterNotFound, match="installed: "):
        load_adapter("cash", {}, "lane-01")
    with pytest.raises(ValueError, match="payment.options.secret"):
        load_adapter("gateway", {"base_url": "https://pay.example"}, "lane-01")


def test_a_sale_is_paid_through_the_simulator_and_its_receipt_is_queued(desk, sim, kiosk):
    script(sim, "approve", 0.3)
    p = desk.start("cart-1", paid_sale(), "test")
    assert p.state is PaymentState.PENDING and p.qr_payload.endswith(p.out_trade_no)
    assert desk.start("cart-1", paid_sale(), "test").out_trade_no == p.out_trade_no
    p = poll_until(desk, p.out_trade_no, {PaymentState.PAID})
    assert p.state is PaymentState.PAID and p.paid_minor == paid_sale().total.minor
    (done,) = desk.completed
    assert done.sale.order_id == p.out_trade_no and done.sale.provider_ref.startswith("SIM")
    assert charges(sim) == {p.out_trade_no: 1}
    assert desk.start("cart-1", paid_sale(), "again").state is PaymentState.PAID  # no 2nd order
    assert requests.get(f"{sim.url}/sim/state").json()["orders"][p.out_trade_no]["creates"] == 1


def test_a_declined_payment_fails(desk, sim):
    script(sim, "decline")
    p = desk.start("cart-2", paid_sale(), "test")
    assert poll_until(desk, p.out_trade_no, {PaymentState.FAILED}).state is PaymentState.FAILED


def test_cancel_closes_the_order_and_the_shopper_can_no_longer_pay(desk, sim):
    p = desk.start("cart-3", paid_sale(), "test")
    assert desk.cancel(p.out_trade_no).state is PaymentState.CANCELLED
    paid = requests.post(f"{sim.url}/sim/orders/{p.out_trade_no}/pay", timeout=5)
    assert paid.status_code == 409 and charges(sim) == {}


def test_paying_just_as_the_kiosk_closes_completes_the_sale_and_alerts_staff(desk, sim):
    script(sim, "pay_on_close")
    p = desk.start("cart-4", paid_sale(), "test")
    p = desk.cancel(p.out_trade_no)
    assert p.state is PaymentState.PAID and "paid after the kiosk gave up" in p.staff_flag
    assert len(desk.completed) == 1
    assert (p.out_trade_no, p.staff_flag) in desk.repo.alerts()


def test_the_wrong_amount_is_recorded_as_paid_and_flagged(desk, sim):
    script(sim, "wrong_amount", amount=1)
    p = desk.start("cart-5", paid_sale(), "test")
    p = poll_until(desk, p.out_trade_no, {PaymentState.PAID})
    assert p.state is PaymentState.PAID and p.paid_minor == 1
    assert "amount mismatch" in p.staff_flag


def test_replies_with_a_bad_signature_are_not_believed(desk, sim):
    p = desk.start("cart-6", paid_sale(), "test")
    script(sim, "bad_signature", order=p.out_trade_no)
    requests.post(f"{sim.url}/sim/orders/{p.out_trade_no}/pay", timeout=5)
    after = desk.poll(p.out_trade_no)
    assert after.state is PaymentState.PENDING and "bad signature" in after.last_error
    script(sim, "manual", order=p.out_trade_no)  # the reply path is mended
    assert desk.poll(p.out_trade_no).state is PaymentState.PAID


def test_a_create_whose_reply_never_comes_is_not_created_twice(desk, sim):
    script(sim, "never_answer", seconds=3)
    p = desk.start("cart-7", paid_sale(), "test")
    assert p.state is PaymentState.UNKNOWN and not p.qr_payload
    script(sim, "manual", order=p.out_trade_no)
    again = desk.start("cart-7", paid_sale(), "test")  # the same out_trade_no, asked again
    assert again.out_trade_no == p.out_trade_no and again.state is PaymentState.PENDING
    state = requests.get(f"{sim.url}/sim/state").json()["orders"]
    assert list(state) == [p.out_trade_no] and state[p.out_trade_no]["creates"] == 2


def test_verified_notifications_are_applied_once_and_forgeries_rejected(desk, sim):
    p = desk.start("cart-8", paid_sale(), "test")
    requests.post(f"{sim.url}/sim/orders/{p.out_trade_no}/pay", timeout=5)
    notice = requests.get(f"{sim.url}/sim/orders/{p.out_trade_no}/notification").json()
    headers, body = notice["headers"], notice["body"].encode()
    forged = body.replace(b'"paid_minor":', b'"paid_minor":1')
    with pytest.raises(InvalidNotification, match="bad signature"):
        desk.notify(headers, forged)
    stale = dict(headers, **{"X-Gateway-Timestamp": str(int(time.time()) - 3600)})
    with pytest.raises(InvalidNotification):
        desk.notify(stale, body)
    assert desk.repo.get(p.out_trade_no).state is PaymentState.PENDING
    assert desk.notify(headers, body).state is PaymentState.PAID
    assert desk.notify(headers, body).state is PaymentState.PAID  # a replay: no 2nd effect
    assert len(desk.completed) == 1 and desk.repo.count_sales(p.out_trade_no) == 1


def test_a_refund_goes_through_the_adapter(desk, sim):
    script(sim, "approve")
    p = desk.start("cart-9", paid_sale(), "test")
    poll_until(desk, p.out_trade_no, {PaymentState.PAID})
    assert desk.refund(p.out_trade_no).startswith("SIMR")
    state = requests.get(f"{sim.url}/sim/state").json()["orders"][p.out_trade_no]
    assert state["status"] == "refunded"


def test_the_gateway_adapter_refuses_an_unsigned_or_wrong_secret(sim):
    wrong = GatewayAdapter(sim.url, "lane-01", "not-the-secret")
    with pytest.raises(PaymentError, match="401|signature"):
        wrong.query("nope")


def test_an_unreachable_provider_leaves_the_payment_open(kiosk):
    provider = SimulatorAdapter("http://127.0.0.1:9", "lane-01", SIMULATOR_SECRET,
                                connect_timeout=0.5)
    desk = bootstrap.build_payment_desk(kiosk, provider)
    p = desk.start("cart-x", paid_sale(), "test")
    assert p.open and p.state is PaymentState.CREATED and "unreachable" in p.last_error
    assert json.loads(json.dumps(desk.describe(p.out_trade_no)))["steps"]


def test_the_cart_is_frozen_while_its_payment_is_open(demo_kiosk, sim):
    from app.domain.rejections import Refused

    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET)
    desk = bootstrap.build_payment_desk(demo_kiosk, provider)
    checkout = bootstrap.build_checkout(demo_kiosk)
    checkout.add_scan("6900000000014")
    payment = checkout.start_payment(desk, paid_sale(), "test")
    assert payment.open and checkout.cart.frozen
    with pytest.raises(Refused) as refused:
        checkout.add_scan("6900000000014")
    assert refused.value.refusal.code == "cart_frozen"
    checkout.payment_changed(desk.cancel(payment.out_trade_no))
    assert not checkout.cart.frozen
    checkout.add_scan("6900000000014")  # the shopper can change the cart and pay again
    again = checkout.start_payment(desk, paid_sale(), "test")
    assert again.out_trade_no != payment.out_trade_no and checkout.cart.frozen


def test_each_payment_step_writes_its_event_in_the_same_transaction(desk, sim, kiosk):
    from app.storage.outbox import Outbox

    script(sim, "approve")
    p = desk.start("cart-e", paid_sale(), "test")
    poll_until(desk, p.out_trade_no, {PaymentState.PAID})
    script(sim, "manual")
    q = desk.start("cart-f", paid_sale(), "test")
    desk.cancel(q.out_trade_no)
    box = Outbox(kiosk.db)
    batch = box.next_batch()
    kinds = [(e["type"], e["session_id"], e["payload"]["order_id"]) for e in batch.events]
    assert kinds == [("payment_started", "cart-e", p.out_trade_no),
                     ("payment_paid", "cart-e", p.out_trade_no),
                     ("payment_started", "cart-f", q.out_trade_no),
                     ("payment_cancelled", "cart-f", q.out_trade_no)]
    paid = batch.events[1]["payload"]
    assert paid["amount_minor"] == paid_sale().total.minor and paid["provider_ref"]


def _wait_for_keys(server) -> None:
    """Until the background key maker has finished, whether it wrote its files or not."""
    try:
        _ = server.keys
    except RuntimeError:
        pass  # stopped before its keys were made: nothing was written


def test_the_simulator_deletes_the_key_folder_it_made_and_keeps_one_it_was_given(
        tmp_path, monkeypatch):
    import tempfile

    from devices.sim.payprovider import PayServer

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the temp dir, for this test only

    server = PayServer(0).start()
    _ = server.keys  # the files are written
    assert [p.name for p in scratch.iterdir()] == [server.keys_dir.name]
    assert (server.keys_dir / "wechatpay.toml").is_file()
    server.stop()
    assert list(scratch.iterdir()) == []

    quick = PayServer(0).start()  # stopped while its keys are still being made
    quick.stop()
    _wait_for_keys(quick)
    assert list(scratch.iterdir()) == []

    given = tmp_path / "keys"
    kept = PayServer(0, keys_dir=given).start()
    _ = kept.keys
    kept.stop()
    assert (given / "wechatpay.toml").is_file() and (given / "alipay.toml").is_file()
    assert list(scratch.iterdir()) == []

    with PayServer(0) as holder:  # a port already taken: the refused server leaves nothing
        with pytest.raises(OSError):
            PayServer(holder.server_address[1])
        _wait_for_keys(holder)
    assert list(scratch.iterdir()) == []
