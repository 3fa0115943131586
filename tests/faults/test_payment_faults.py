"""Payment faults with the kiosk's checkout in a child process, killed and restarted.

The provider simulator runs here, on 127.0.0.1; the kiosk runs as the
`kiosk pay` commands in child processes on a real data directory, exactly
as in a store. Each test tallies the three numbers the issue asks for:
double charges, paid sales lost, forged notifications accepted. All must be 0.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devices.sim.payprovider import PayServer

pytestmark = pytest.mark.slow
KIOSK = str(Path(sys.executable).with_name("kiosk"))


@pytest.fixture
def sim():
    server = PayServer(0).start()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path, sim):
    return {**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "data"),
            "KIOSK_PAYMENT__OPTIONS": f'{{base_url = "{sim.url}", read_timeout_s = 1.0}}',
            "KIOSK_PAYMENT__POLL_MS": "200", "KIOSK_PAYMENT__EXPIRE_S": "30"}


def kiosk(env, *args, check=True):
    out = subprocess.run([KIOSK, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode in (0, 1), out.stderr
    return out


def start(env, cart: str) -> dict:
    return json.loads(kiosk(env, "pay", "start", "--cart", cart, "--amount", "62.13",
                            "--json").stdout)


def db(env) -> sqlite3.Connection:
    return sqlite3.connect(Path(env["KIOSK_DATA_DIR"]) / "kiosk.db")


def tally(env, sim) -> dict[str, int]:
    """Double charges and paid sales lost, from the provider's truth and the kiosk's books."""
    state = requests.get(f"{sim.url}/sim/state", timeout=5).json()
    with db(env) as conn:
        carts = dict(conn.execute("SELECT out_trade_no, cart_id FROM payments").fetchall())
        sales = {r[0] for r in conn.execute("SELECT order_id FROM sales")}
    paid = [no for no, o in state["orders"].items() if o["status"] in ("paid", "refunded")]
    per_cart: dict[str, int] = {}
    for no in paid:
        per_cart[carts[no]] = per_cart.get(carts[no], 0) + 1
    return {
        "double charges": sum(n - 1 for n in per_cart.values()) +
        sum(c - 1 for c in state["charges"].values()),
        "paid sales lost": sum(1 for no in paid if no not in sales),
    }


def pay(sim, no: str) -> int:
    return requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).status_code


def test_killed_while_pending_then_paid_is_completed_at_restart(env, sim):
    payment = start(env, "cart-1")
    assert payment["state"] == "pending"
    waiter = subprocess.Popen([KIOSK, "pay", "wait", payment["out_trade_no"]], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    waiter.send_signal(signal.SIGKILL)  # the kiosk dies with the QR on screen
    waiter.wait()
    assert pay(sim, payment["out_trade_no"]) == 200  # the shopper pays anyway
    settled = [json.loads(line) for line in
               kiosk(env, "pay", "recover", "--json").stdout.splitlines()]
    assert [(p["out_trade_no"], p["state"]) for p in settled] == [
        (payment["out_trade_no"], "paid")]
    with db(env) as conn:
        assert conn.execute("SELECT count(*) FROM print_jobs").fetchone()[0] == 1
    assert tally(env, sim) == {"double charges": 0, "paid sales lost": 0}


def test_killed_while_pending_and_not_paid_is_closed_at_restart(env, sim):
    payment = start(env, "cart-2")
    waiter = subprocess.Popen([KIOSK, "pay", "wait", payment["out_trade_no"]], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    waiter.send_signal(signal.SIGKILL)
    waiter.wait()
    settled = json.loads(kiosk(env, "pay", "recover", "--json").stdout.splitlines()[0])
    assert settled["state"] == "expired"
    assert pay(sim, payment["out_trade_no"]) == 409  # too late: the order is closed
    assert tally(env, sim) == {"double charges": 0, "paid sales lost": 0}


def test_killed_between_writing_the_order_and_asking_the_provider(env, sim):
    # SIGKILL the starting process while the provider holds its create request.
    requests.post(f"{sim.url}/sim/script", json={"outcome": "slow", "seconds": 3}, timeout=5)
    starter = subprocess.Popen([KIOSK, "pay", "start", "--cart", "cart-3", "--amount", "9.99"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    with db(env) as conn:
        (no, state), = conn.execute("SELECT out_trade_no, state FROM payments").fetchall()
    assert state == "created"  # written before the network call
    requests.post(f"{sim.url}/sim/script", json={"order": no, "outcome": "manual"}, timeout=5)
    kiosk(env, "pay", "recover")
    with db(env) as conn:
        assert conn.execute("SELECT state FROM payments").fetchone()[0] == "expired"
    orders = requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]
    assert list(orders) == [no] and orders[no]["status"] == "closed"
    assert tally(env, sim) == {"double charges": 0, "paid sales lost": 0}


def test_a_create_whose_reply_is_lost_makes_one_order_and_no_charge(env, sim):
    requests.post(f"{sim.url}/sim/script", json={"outcome": "never_answer", "seconds": 3},
                  timeout=5)
    payment = start(env, "cart-4")
    assert payment["state"] == "unknown" and not payment["qr_payload"]
    requests.post(f"{sim.url}/sim/script", json={"order": payment["out_trade_no"],
                                                 "outcome": "manual"}, timeout=5)
    resumed = start(env, "cart-4")  # the kiosk asks again: the same order id
    assert resumed["out_trade_no"] == payment["out_trade_no"] and resumed["state"] == "pending"
    assert pay(sim, payment["out_trade_no"]) == 200
    final = json.loads(kiosk(env, "pay", "wait", payment["out_trade_no"], "--json").stdout)
    assert final["state"] == "paid"
    orders = requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]
    assert list(orders) == [payment["out_trade_no"]]
    assert tally(env, sim) == {"double charges": 0, "paid sales lost": 0}


def test_paid_between_the_last_query_and_the_close_is_completed_and_flagged(env, sim):
    requests.post(f"{sim.url}/sim/script", json={"outcome": "pay_on_close"}, timeout=5)
    payment = start(env, "cart-5")
    cancelled = json.loads(kiosk(env, "pay", "cancel", payment["out_trade_no"],
                                 "--json").stdout)
    assert cancelled["state"] == "paid" and "paid after the kiosk gave up" in \
        cancelled["staff_flag"]
    alerts = kiosk(env, "pay", "alerts").stdout
    assert payment["out_trade_no"] in alerts
    assert tally(env, sim) == {"double charges": 0, "paid sales lost": 0}


def test_paid_late_after_the_kiosk_timed_out_is_completed(env, sim):
    requests.post(f"{sim.url}/sim/script", json={"outcome": "pay_late", "seconds": 0},
                  timeout=5)
    env = dict(env, KIOSK_PAYMENT__EXPIRE_S="30")
    payment = start(env, "cart-6")
    # Jump past the expiry: the provider pays on the first look after it.
    with db(env) as conn:
        conn.execute("UPDATE payments SET expires_at = '2000-01-01T00:00:00+00:00'")
    sim.provider.orders[payment["out_trade_no"]].expires = time.time() - 1
    settled = json.loads(kiosk(env, "pay", "recover", "--json").stdout.splitlines()[0])
    assert settled["state"] == "paid"
    assert tally(env, sim) == {"double charges": 0, "paid sales lost": 0}


def test_forged_and_replayed_notifications_have_no_effect(tmp_path, sim):
    from app import bootstrap
    from app.config import load_settings
    from app.services.payments import InvalidNotification
    from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
    from tests.unit.factories import paid_sale

    k = bootstrap.build(load_settings(data_dir=tmp_path / "n", environ={}))
    desk = bootstrap.build_payment_desk(
        k, SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET))
    p = desk.start("cart-7", paid_sale(), "test")
    accepted_forgeries = 0
    genuine = requests.get(f"{sim.url}/sim/orders/{p.out_trade_no}/notification").json()
    body = genuine["body"].replace('"status":"waiting"', '"status":"paid"')
    for headers in (genuine["headers"], {}, {"X-Gateway-Signature": "0" * 64,
                                            "X-Gateway-Timestamp": str(int(time.time()))}):
        try:
            desk.notify(headers, body.encode())
            accepted_forgeries += 1
        except InvalidNotification:
            pass
    assert desk.repo.get(p.out_trade_no).state.value == "pending"
    assert accepted_forgeries == 0
    k.close()
