"""The simulator's wallets (payment codes with the real prefixes and lengths, valid a
minute, used once, each with a scripted behaviour) and the gateway/simulator adapters'
``charge_code``/``reverse``, over real HTTP on 127.0.0.1, and through the kiosk's
``PaymentDesk`` on a real SQLite file (issue 18)."""

from __future__ import annotations

import pytest
import requests

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState, ProviderStatus
from app.domain.payment_code import DEFAULT_CODE_RANGES, CodeRange, payment_code, wallet_of
from app.services.payment_port import CodeCharge
from devices.payment.gateway import SIMULATOR_SECRET, GatewayAdapter, SimulatorAdapter
from devices.sim.payorders import Behaviour, Wallets
from tests.unit.factories import paid_sale


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wallet_clock(sim) -> FakeClock:
    fake = FakeClock()
    sim.provider.wallets.clock = fake
    return fake


@pytest.fixture
def adapter(sim) -> SimulatorAdapter:
    return SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=1.0)


def issue(sim, wallet: str = "wechat", then: str = "approve") -> dict[str, object]:
    reply = requests.post(f"{sim.url}/sim/wallets/code", json={"wallet": wallet, "then": then},
                          timeout=5)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def charge(no: str, digits: str, amount: int = 500) -> CodeCharge:
    code = payment_code(digits)
    assert code is not None, "the simulator issued a code no wallet range takes"
    return CodeCharge(no, amount, "CNY", "test", code)


def state(sim) -> dict[str, object]:
    return dict(requests.get(f"{sim.url}/sim/state", timeout=5).json())


@pytest.mark.parametrize("wallet", ["wechat", "alipay", "unionpay"])
def test_each_wallet_issues_codes_with_its_published_prefix_and_length(sim, wallet):
    ranges = {r.wallet: r for r in DEFAULT_CODE_RANGES}
    codes = {str(issue(sim, wallet)["code"]) for _ in range(30)}
    assert len(codes) == 30  # fresh every time
    for code in codes:
        assert ranges[wallet].takes(code) and wallet_of(code) == wallet


def test_a_code_issue_says_when_it_expires_and_refuses_unknown_wallets(sim):
    issued = issue(sim, "alipay", "password:4")
    assert issued["then"] == "password:4" and issued["expires_in_s"] == 60.0
    assert str(issued["expires_at"])[:4].isdigit()
    for bad in ({"wallet": "cash"}, {"wallet": "wechat", "then": "maybe"},
                {"wallet": "wechat", "then": "password:soon"}):
        reply = requests.post(f"{sim.url}/sim/wallets/code", json=bad, timeout=5)
        assert reply.status_code == 400, bad


def test_approve_pays_at_once_and_a_repeat_of_the_order_is_never_a_second_charge(sim, adapter):
    code = str(issue(sim)["code"])
    first = adapter.charge_code(charge("CODEAPPROVE1", code))
    assert first.status is ProviderStatus.PAID and first.paid_minor == 500
    again = adapter.charge_code(charge("CODEAPPROVE1", code))  # the reply was "lost"
    assert again == first
    assert state(sim)["charges"] == {"CODEAPPROVE1": 1}
    assert state(sim)["orders"]["CODEAPPROVE1"]["charge_calls"] == 2


def test_a_used_code_is_refused_for_another_order(sim, adapter):
    code = str(issue(sim)["code"])
    assert adapter.charge_code(charge("CODEUSED0001", code)).status is ProviderStatus.PAID
    reused = adapter.charge_code(charge("CODEUSED0002", code))
    assert (reused.status, reused.decline) == (ProviderStatus.DECLINED, "code_used")
    assert state(sim)["charges"] == {"CODEUSED0001": 1}


def test_a_code_expires_sixty_seconds_after_it_was_issued(sim, adapter, wallet_clock):
    code = str(issue(sim)["code"])
    wallet_clock.now += 59.9
    late = str(issue(sim)["code"])
    assert adapter.charge_code(charge("CODEFRESH001", code)).status is ProviderStatus.PAID
    wallet_clock.now += 60.0
    expired = adapter.charge_code(charge("CODEEXPIRED1", late))
    assert (expired.status, expired.decline) == (ProviderStatus.DECLINED, "code_expired")


def test_a_code_issued_long_ago_is_expired_at_once(sim, adapter):
    """``age_s`` (a screenshot kept too long, for the scenarios' "expired"): older than its
    minute it is refused as expired; a younger one still pays."""
    old = requests.post(f"{sim.url}/sim/wallets/code", json={"wallet": "wechat", "age_s": 61},
                        timeout=5).json()
    assert old["expires_in_s"] == 60.0
    expired = adapter.charge_code(charge("CODEAGED0001", str(old["code"])))
    assert (expired.status, expired.decline) == (ProviderStatus.DECLINED, "code_expired")
    young = requests.post(f"{sim.url}/sim/wallets/code", json={"wallet": "wechat", "age_s": 50},
                          timeout=5).json()
    assert adapter.charge_code(charge("CODEAGED0002", str(young["code"]))).status \
        is ProviderStatus.PAID


def test_a_code_never_issued_or_of_another_wallet_is_invalid_and_stays_usable(sim, adapter):
    never = adapter.charge_code(charge("CODEINVALID1", "134567890123456789"))
    assert (never.status, never.decline) == (ProviderStatus.DECLINED, "code_invalid")
    code = str(issue(sim, "unionpay")["code"])
    claimed = CodeCharge("CODEINVALID2", 500, "CNY", "t", payment_code(code, [
        CodeRange("storecard", ("62",), (19,))]))
    wrong = adapter.charge_code(claimed)  # the kiosk says "storecard": not the issuer's
    assert (wrong.status, wrong.decline) == (ProviderStatus.DECLINED, "code_invalid")
    assert adapter.charge_code(charge("CODEINVALID3", code)).status is ProviderStatus.PAID


def test_insufficient_funds_declines_at_once(sim, adapter):
    poor = adapter.charge_code(charge("CODEPOOR0001", str(issue(sim, "alipay",
                                                                  "insufficient")["code"])))
    assert (poor.status, poor.decline) == (ProviderStatus.DECLINED, "insufficient_funds")
    assert state(sim)["charges"] == {}


def test_password_then_approve_after_n_seconds(sim, adapter, wallet_clock):
    no = "CODEPASSWORD1"
    assert adapter.charge_code(charge(no, str(issue(sim, then="password:5")["code"]))) \
        .status is ProviderStatus.PAYING
    wallet_clock.now += 4.9
    assert adapter.query(no).status is ProviderStatus.PAYING
    wallet_clock.now += 0.2
    assert adapter.query(no).status is ProviderStatus.PAID


def test_password_then_give_up_declines_and_never_stays_paying(sim, adapter, wallet_clock):
    assert adapter.charge_code(charge("CODEGIVEUP01", str(issue(sim, then="decline:2")
                                                          ["code"]))).status \
        is ProviderStatus.PAYING
    assert adapter.charge_code(charge("CODENEVER001", str(issue(sim, then="never")["code"]))) \
        .status is ProviderStatus.PAYING
    wallet_clock.now += 3600
    gave_up = adapter.query("CODEGIVEUP01")
    assert (gave_up.status, gave_up.decline) == (ProviderStatus.DECLINED, "declined")
    assert adapter.query("CODENEVER001").status is ProviderStatus.PAYING


def test_a_reverse_mid_password_is_refused_then_closes_and_a_paid_one_is_refunded(sim,
                                                                                  adapter):
    adapter.charge_code(charge("CODEREVERSE1", str(issue(sim, then="never")["code"])))
    with pytest.raises(PaymentError) as asked:
        adapter.reverse("CODEREVERSE1")
    assert asked.value.maybe_done and asked.value.code == "USERPAYING"
    assert adapter.reverse("CODEREVERSE1") is None
    assert adapter.query("CODEREVERSE1").status is ProviderStatus.CLOSED
    assert adapter.reverse("CODEREVERSE1") is None  # idempotent
    adapter.charge_code(charge("CODEREVERSE2", str(issue(sim)["code"])))
    assert adapter.reverse("CODEREVERSE2").status is ProviderStatus.REFUNDED
    assert adapter.reverse("CODENEVERMADE") is None


def test_a_charge_whose_reply_is_lost_is_unknown_and_a_query_finds_it_paid(sim):
    quick = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=0.3)
    requests.post(f"{sim.url}/sim/script", json={"order": "CODELOST0001",
                                                 "outcome": "never_answer", "seconds": 1},
                  timeout=5)
    with pytest.raises(PaymentError) as lost:
        quick.charge_code(charge("CODELOST0001", str(issue(sim)["code"])))
    assert lost.value.maybe_done
    assert state(sim)["charges"] == {"CODELOST0001": 1}


def test_the_gateway_takes_every_wallet_unless_told_which():
    every = GatewayAdapter.from_options({"base_url": "http://127.0.0.1:9", "secret": "s"}, "l")
    assert all(w in every.code_wallets for w in ("wechat", "alipay", "unionpay", "storecard"))
    assert set(every.code_wallets) == {"wechat", "alipay", "unionpay"}
    only = SimulatorAdapter.from_options({"code_wallets": ["wechat"]}, "l")
    assert "wechat" in only.code_wallets and "alipay" not in only.code_wallets
    with pytest.raises(ValueError, match="code_wallets"):
        SimulatorAdapter.from_options({"code_wallets": "wechat"}, "l")


def test_wallets_redeem_marks_a_code_used_once_for_the_wire_twins():
    clock = FakeClock()
    wallets = Wallets(clock)
    issued = wallets.issue("wechat", "password:2")
    assert issued.behaviour == Behaviour("password", 2.0)
    first = wallets.redeem(issued.code, "ORDER1")
    assert first.refused == "" and first.behaviour.then == "password"
    assert wallets.redeem(issued.code, "ORDER2").refused == "code_used"
    assert wallets.codes[issued.code].used_by == "ORDER1"
    fixed = wallets.issue("alipay", "approve", code="2800000000000000")
    assert fixed.code == "2800000000000000"
    with pytest.raises(ValueError):
        wallets.issue("alipay", code="134567890123456789")


# -- the kiosk's PaymentDesk over the simulator adapter, on a real SQLite file ----------------

@pytest.fixture
def desk(kiosk, sim, adapter):
    return bootstrap.build_payment_desk(kiosk, adapter, on_completed=lambda *_: None)


def test_the_desk_charges_a_password_code_and_completes_when_the_shopper_confirms(desk, sim,
                                                                                wallet_clock):
    code = payment_code(str(issue(sim, then="password:3")["code"]))
    p = desk.charge_code("cart-code-1", paid_sale(), "test", code)
    assert p.open and p.by_code and p.code_submitted
    wallet_clock.now += 3.5
    assert desk.poll(p.out_trade_no).state is PaymentState.PAID
    assert state(sim)["charges"] == {p.out_trade_no: 1}
    assert state(sim)["orders"][p.out_trade_no]["charge_calls"] == 1


def test_the_desk_reverses_a_code_nobody_confirms_and_ends_it_cancelled(desk, sim):
    code = payment_code(str(issue(sim, then="never")["code"]))
    p = desk.charge_code("cart-code-2", paid_sale(), "test", code)
    assert p.open
    p = desk.cancel(p.out_trade_no)  # the reverse is refused mid-password: still open
    for _ in range(3):
        if not p.open:
            break
        p = desk.cancel(p.out_trade_no)
    assert p.state is PaymentState.CANCELLED
    assert state(sim)["orders"][p.out_trade_no]["status"] == "closed"
    assert state(sim)["charges"] == {}


def test_the_desk_records_why_a_code_was_declined(desk, sim):
    code = payment_code(str(issue(sim, then="insufficient")["code"]))
    p = desk.charge_code("cart-code-3", paid_sale(), "test", code)
    assert p.state is PaymentState.FAILED and p.decline == "insufficient_funds"


def test_a_declined_qr_order_carries_no_code_decline_reason(sim, adapter):
    """Only a code charge says why it was declined: a QR order the shopper declined is
    plain DECLINED (the lane's 'payment failed', not a payment-code notice)."""
    from datetime import UTC, datetime, timedelta

    from app.services.payment_port import OrderRequest

    adapter.create(OrderRequest("QRDECLINED01", 100, "CNY", "t",
                                datetime.now(UTC) + timedelta(minutes=2)))
    assert requests.post(f"{sim.url}/sim/orders/QRDECLINED01/decline", timeout=5).ok
    view = adapter.query("QRDECLINED01")
    assert (view.status, view.decline) == (ProviderStatus.DECLINED, "")
