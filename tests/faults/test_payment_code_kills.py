"""A charge by payment code with the kiosk SIGKILLed at each step, then restarted (issue 18).

The kiosk (lane and payment desk, headless: ``tests/faults/code_kiosk.py``) runs in a
real child process on a real data directory and pays by a payment code the payment
simulator's wallets issued; the simulator serves HTTP on 127.0.0.1 in this process.
The child is killed at one step of the charge (it kills itself at the steps inside the
desk; the simulator kills it when the charge or the reverse reaches the provider; this
test kills it while the shopper types the password), then the kiosk is started again on
the same data directory and must query and complete or reverse. Each test checks the
outcome (paid: one sale and one charge kept; or nothing taken, the charge reversed or
never made) and the fault counts of ``bench.payment_code_kills.tally``: double charges,
codes sent twice, trades left waiting, books that disagree, and the code found anywhere
in the data directory or the children's output. ``python -m bench.payment_code_kills``
runs the same rounds 200 times over random points and wallet behaviours.
"""

from __future__ import annotations

import pytest

from bench.payment_code_kills import KillSwitch, run_round

pytestmark = pytest.mark.slow


def charge(sim, tmp_path, point: str, then: str, wallet: str = "wechat"):
    r = run_round(sim, KillSwitch(sim), tmp_path / "data", wallet, then, point)
    assert r.killed, f"the kiosk was not killed at {point}"
    assert dict(r.faults) == {}
    return r


def orders(sim) -> dict[str, str]:
    with sim.provider.lock:
        return {no: o.status for no, o in sim.provider.orders.items()}


@pytest.mark.parametrize("point", ["before_row", "after_row", "after_code_sent"])
def test_killed_before_the_code_reached_the_provider_charges_nothing(sim, tmp_path, point):
    # The code never left the kiosk: the restart ends the payment (after_code_sent: a
    # query finds no such order) and nothing is ever charged; the code is still unused.
    r = charge(sim, tmp_path, point, "approve")
    assert r.outcome == "not charged"
    assert orders(sim) == {}
    assert [c.used_by for c in sim.provider.wallets.codes.values()] == [""]


@pytest.mark.parametrize("point", ["at_provider", "after_reply"])
def test_killed_after_the_charge_was_taken_completes_the_sale_once(sim, tmp_path, point):
    # The wallet approved at once; the kiosk died before (at_provider) or after
    # (after_reply) reading that answer. Restarted, it queries: paid, one sale.
    r = charge(sim, tmp_path, point, "approve", wallet="alipay")
    assert r.outcome == "paid"
    assert list(orders(sim).values()) == ["paid"]
    assert list(sim.provider.charges.values()) == [1]


def test_killed_while_the_shopper_types_the_password_ends_with_one_charge_or_none(
        sim, tmp_path):
    # password:1: approved a second after the charge, while the kiosk is down or coming
    # back; the restarted kiosk polls and finds it paid, or reverses it at the deadline.
    r = charge(sim, tmp_path, "paying", "password:1")
    assert r.outcome in ("paid", "reversed")
    assert set(orders(sim).values()) <= {"paid", "refunded", "closed"}


def test_killed_while_the_shopper_never_answers_is_reversed_after_restart(sim, tmp_path):
    r = charge(sim, tmp_path, "paying", "never", wallet="unionpay")
    assert r.outcome == "reversed"
    assert list(orders(sim).values()) == ["closed"]
    assert sim.provider.charges == {}


@pytest.mark.parametrize("point", ["reverse_arrived", "reverse_done"])
def test_killed_while_the_reverse_is_on_its_way_is_reversed_and_confirmed(sim, tmp_path,
                                                                            point):
    # Nobody answers the password prompt; at the deadline the kiosk reverses and dies
    # with the reverse at the provider (before it acted, or after: reply not read).
    r = charge(sim, tmp_path, point, "never")
    assert r.outcome == "reversed"
    assert list(orders(sim).values()) == ["closed"]
    assert sim.provider.charges == {}
