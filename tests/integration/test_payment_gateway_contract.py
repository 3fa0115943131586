"""What the kiosk's gateway adapter and the payment simulator really exchange over HTTP on
127.0.0.1, checked against docs/payment-gateway.yaml with an OpenAPI 3.0 schema validator:
every request body, every response status (it must be documented) and every response body.
Then the contract's 400 rules: the simulator refuses exactly what the request schema
refuses, and every refusal carries the contract's ``Error`` body."""

from __future__ import annotations

import json
import re
import time

import jsonschema
import pytest
import requests

from app.domain.payment import PaymentError, ProviderRefused, ProviderStatus
from devices.payment.gateway import SIMULATOR_SECRET, GatewayAdapter, SimulatorAdapter, sign
from tests.openapi import check, request_schema, response_schema, spec

G = "payment-gateway.yaml"


def template_of(path: str) -> str:
    """The contract's path template a concrete path matches; KeyError if none does."""
    for template in spec(G)["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return str(template)
    raise KeyError(f"{path} is not in the contract")


class Exchanges:
    """Every request the adapter sent and the response it got, as seen on the wire
    (a requests response hook: the bytes that went over the socket)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes, int, bytes]] = []

    def __call__(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        request = response.request
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        path = requests.utils.urlparse(request.url).path
        self.seen.append((str(request.method), path, body, response.status_code,
                          response.content))

    def check_all(self) -> list[str]:
        """Validate every exchange; returns 'METHOD template status' for each."""
        done = []
        for method, path, body, status, reply in self.seen:
            template = template_of(path)
            operation = spec(G)["paths"][template][method.lower()]
            if "requestBody" in operation:
                check(G, json.loads(body), request_schema(G, method, template))
            schema = response_schema(G, method, template, status)  # KeyError: undocumented
            if schema is not None:
                check(G, json.loads(reply), schema)
            done.append(f"{method} {template} {status}")
        return done


@pytest.fixture(params=[SimulatorAdapter, GatewayAdapter])
def adapter(request, sim):
    a = request.param(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    a.exchanges = Exchanges()
    a.http.hooks["response"].append(a.exchanges)
    return a


def order(no: str, amount: int = 1234):
    from datetime import UTC, datetime, timedelta

    from app.services.payment_port import OrderRequest

    return OrderRequest(no, amount, "CNY", "Scan & Go test",
                        datetime.now(UTC) + timedelta(minutes=2))


def pay(sim, no: str) -> None:
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok


def test_every_exchange_of_a_payments_life_follows_the_contract(adapter, sim):
    assert adapter.create(order("CONTRACT0001")).startswith("https://")
    adapter.create(order("CONTRACT0001"))  # the same order again: idempotent
    assert adapter.query("CONTRACT0001").status is ProviderStatus.WAITING
    assert adapter.query("CONTRACTNONE").status is ProviderStatus.NOT_FOUND
    pay(sim, "CONTRACT0001")
    assert adapter.query("CONTRACT0001").status is ProviderStatus.PAID
    assert adapter.close("CONTRACT0001").status is ProviderStatus.PAID  # paid stays paid
    assert adapter.refund("CONTRACT0001", "RF1", 234, 1234, "part").startswith("SIMR")
    assert adapter.refund("CONTRACT0001", "RF1", 234, 1234, "again")  # idempotent
    assert adapter.refund("CONTRACT0001", "RF2", 1000, 1234, "rest")
    assert adapter.query("CONTRACT0001").status is ProviderStatus.REFUNDED
    adapter.create(order("CONTRACT0002"))
    assert adapter.close("CONTRACT0002") is None  # closed
    assert adapter.query("CONTRACT0002").status is ProviderStatus.CLOSED
    assert adapter.close("CONTRACTNONE") is None  # 404: never created
    refusals = [lambda: adapter.refund("CONTRACT0002", "RF3", 1, 1, "not paid"),
                lambda: adapter.refund("CONTRACT0001", "RF4", 1, 1234, "too much"),
                lambda: adapter.refund("CONTRACTNONE", "RF5", 1, 1, "no order"),
                lambda: adapter.create(order("CONTRACT0001", amount=999))]
    codes = []
    for refused in refusals:
        with pytest.raises(ProviderRefused) as caught:
            refused()
        assert caught.value.maybe_done is False  # a 4xx: the gateway did nothing
        codes.append(caught.value.code)
    assert codes == ["NOT_PAID", "REFUND_EXCEEDS_PAID", "ORDER_NOT_EXIST", "ORDER_MISMATCH"]
    seen = adapter.exchanges.check_all()
    assert {"POST /v1/orders 201", "GET /v1/orders/{out_trade_no} 200",
            "POST /v1/orders/{out_trade_no}/close 200",
            "POST /v1/orders/{out_trade_no}/close 404",
            "POST /v1/orders/{out_trade_no}/refunds 200",
            "POST /v1/orders/{out_trade_no}/refunds 404",
            "POST /v1/orders/{out_trade_no}/refunds 409", "POST /v1/orders 409"} <= set(seen)


def test_the_simulators_notification_follows_the_contract(adapter, sim):
    adapter.create(order("CONTRACT0003"))
    pay(sim, "CONTRACT0003")
    notice = requests.get(f"{sim.url}/sim/orders/CONTRACT0003/notification", timeout=5).json()
    body = notice["body"].encode()
    check(G, json.loads(body), spec(G)["components"]["schemas"]["Notification"])
    parsed = adapter.parse_notification(notice["headers"], body)
    assert parsed.view.status is ProviderStatus.PAID and parsed.out_trade_no == "CONTRACT0003"


def signed_post(sim, path: str, body: bytes, *, secret: str = SIMULATOR_SECRET,
                timestamp: int | None = None) -> requests.Response:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return requests.post(sim.url + path, data=body, timeout=5, headers={
        "Content-Type": "application/json", "X-Kiosk-Id": "lane-01", "X-Kiosk-Timestamp": ts,
        "X-Kiosk-Signature": sign(secret, "POST", path, ts, body)})


GOOD_ORDER = {"out_trade_no": "RULES000001", "amount_minor": 100, "currency": "CNY",
              "description": "x", "expires_at": "2030-01-01T00:00:00+08:00"}
BAD_ORDERS = [  # each breaks one rule of the create request's schema
    {k: v for k, v in GOOD_ORDER.items() if k != "out_trade_no"},
    {k: v for k, v in GOOD_ORDER.items() if k != "amount_minor"},
    {k: v for k, v in GOOD_ORDER.items() if k != "currency"},
    GOOD_ORDER | {"out_trade_no": "SHORT"},
    GOOD_ORDER | {"out_trade_no": "has space 0001"},
    GOOD_ORDER | {"out_trade_no": "X" * 33},
    GOOD_ORDER | {"amount_minor": 0},
    GOOD_ORDER | {"amount_minor": -100},
    GOOD_ORDER | {"amount_minor": 12.5},
    GOOD_ORDER | {"amount_minor": "100"},
    GOOD_ORDER | {"amount_minor": 10_000_000_001},
    GOOD_ORDER | {"currency": 156},
    GOOD_ORDER | {"expires_at": "tomorrow"},
    GOOD_ORDER | {"description": 7},
]
GOOD_REFUND = {"refund_no": "RF1", "amount_minor": 50, "total_minor": 100, "reason": "r"}
BAD_REFUNDS = [
    {k: v for k, v in GOOD_REFUND.items() if k != "refund_no"},
    {k: v for k, v in GOOD_REFUND.items() if k != "amount_minor"},
    GOOD_REFUND | {"refund_no": ""},
    GOOD_REFUND | {"amount_minor": 0},
    GOOD_REFUND | {"amount_minor": -1},
    GOOD_REFUND | {"amount_minor": 0.5},
    GOOD_REFUND | {"total_minor": "100"},
]


@pytest.fixture(scope="module")
def rules_sim():
    """One simulator for the many small 400 cases (each uses its own order ids)."""
    from devices.sim.payprovider import PayServer

    server = PayServer(0).start()
    yield server
    server.stop()


def orders_on(sim) -> dict[str, dict[str, object]]:
    return dict(requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"])


@pytest.mark.parametrize("body", BAD_ORDERS, ids=lambda b: json.dumps(b)[:60])
def test_the_simulator_refuses_with_400_what_the_create_schema_refuses(rules_sim, body):
    sim, before = rules_sim, orders_on(rules_sim)
    schema = request_schema(G, "post", "/v1/orders")
    with pytest.raises(jsonschema.ValidationError):
        check(G, body, schema)  # the contract refuses it...
    reply = signed_post(sim, "/v1/orders", json.dumps(body).encode())
    assert reply.status_code == 400, reply.text  # ...and so does the simulator
    check(G, reply.json(), response_schema(G, "post", "/v1/orders", 400))
    assert reply.json()["code"] == "PARAM_ERROR"
    assert orders_on(sim) == before  # nothing was created


@pytest.mark.parametrize("case", range(len(BAD_REFUNDS)))
def test_the_simulator_refuses_with_400_what_the_refund_schema_refuses(rules_sim, case):
    sim, body, no = rules_sim, BAD_REFUNDS[case], f"REFUNDRULES{case:03d}"
    path = f"/v1/orders/{no}/refunds"
    paid = GOOD_ORDER | {"out_trade_no": no}
    assert signed_post(sim, "/v1/orders", json.dumps(paid).encode()).status_code == 201
    pay(sim, no)
    with pytest.raises(jsonschema.ValidationError):
        check(G, body, request_schema(G, "post", "/v1/orders/{out_trade_no}/refunds"))
    reply = signed_post(sim, path, json.dumps(body).encode())
    assert reply.status_code == 400, reply.text
    check(G, reply.json(), response_schema(G, "post", "/v1/orders/{out_trade_no}/refunds",
                                           400))
    assert orders_on(sim)[no]["status"] == "paid"  # nothing was refunded


def test_what_the_schemas_accept_the_simulator_accepts(sim):
    check(G, GOOD_ORDER, request_schema(G, "post", "/v1/orders"))
    assert signed_post(sim, "/v1/orders", json.dumps(GOOD_ORDER).encode()).status_code == 201
    minimal = {"out_trade_no": "RULES000002", "amount_minor": 1, "currency": "CNY"}
    check(G, minimal, request_schema(G, "post", "/v1/orders"))
    assert signed_post(sim, "/v1/orders", json.dumps(minimal).encode()).status_code == 201
    pay(sim, "RULES000001")
    refund = {"refund_no": "RF1", "amount_minor": 100}
    check(G, refund, request_schema(G, "post", "/v1/orders/{out_trade_no}/refunds"))
    reply = signed_post(sim, "/v1/orders/RULES000001/refunds", json.dumps(refund).encode())
    assert reply.status_code == 200, reply.text
    check(G, reply.json(), response_schema(G, "post", "/v1/orders/{out_trade_no}/refunds", 200))
    for not_json in (b"{", b"[1, 2]"):
        reply = signed_post(sim, "/v1/orders", not_json)
        assert reply.status_code == 400 and reply.json()["code"] == "PARAM_ERROR"


def test_a_wrong_secret_or_a_clock_off_is_refused_with_its_code_and_setting(sim):
    wrong = GatewayAdapter(sim.url, "lane-01", "not-the-secret")
    with pytest.raises(ProviderRefused) as caught:
        wrong.query("CONTRACT0009")
    assert (caught.value.code, caught.value.setting) == ("SIGN_ERROR", "payment.options.secret")
    assert caught.value.maybe_done is False and "unsigned" in str(caught.value)
    stale = signed_post(sim, "/v1/orders", json.dumps(GOOD_ORDER).encode(),
                        timestamp=int(time.time()) - 600)
    assert stale.status_code == 401 and stale.json()["code"] == "TIMESTAMP_EXPIRED"
    check(G, stale.json(), response_schema(G, "post", "/v1/orders", 401))
    bad = signed_post(sim, "/v1/orders", json.dumps(GOOD_ORDER).encode(), secret="nope")
    assert bad.status_code == 401 and bad.json()["code"] == "SIGN_ERROR"


# -- payment codes (issue 18): the code-charge and reverse operations ---------------------------

def issue(sim, wallet: str = "wechat", then: str = "approve") -> str:
    reply = requests.post(f"{sim.url}/sim/wallets/code", json={"wallet": wallet, "then": then},
                          timeout=5)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["code"])


def code_charge(no: str, digits: str, amount: int = 1234):
    from app.domain.payment_code import payment_code
    from app.services.payment_port import CodeCharge

    code = payment_code(digits)
    assert code is not None
    return CodeCharge(no, amount, "CNY", "Scan & Go test", code)


def test_every_exchange_of_a_code_charge_follows_the_contract(adapter, sim):
    paid = adapter.charge_code(code_charge("CODECONTRACT1", issue(sim, "alipay")))
    assert paid.status is ProviderStatus.PAID and paid.paid_minor == 1234
    waiting = adapter.charge_code(code_charge("CODECONTRACT2", issue(sim, then="never")))
    assert waiting.status is ProviderStatus.PAYING
    poor = adapter.charge_code(code_charge("CODECONTRACT3", issue(sim, "unionpay",
                                                                   "insufficient")))
    assert (poor.status, poor.decline) == (ProviderStatus.DECLINED, "insufficient_funds")
    with pytest.raises(PaymentError) as mid_password:
        adapter.reverse("CODECONTRACT2")  # 409 USERPAYING: ask again
    assert mid_password.value.maybe_done and mid_password.value.code == "USERPAYING"
    assert adapter.reverse("CODECONTRACT2") is None  # closed
    assert adapter.reverse("CODECONTRACT1").status is ProviderStatus.REFUNDED
    assert adapter.reverse("CODECONTRACTX") is None  # 404: never charged
    with pytest.raises(ProviderRefused) as mismatch:
        adapter.charge_code(code_charge("CODECONTRACT1", issue(sim), amount=1))
    assert mismatch.value.code == "ORDER_MISMATCH" and not mismatch.value.maybe_done
    seen = adapter.exchanges.check_all()
    assert {"POST /v1/orders/{out_trade_no}/code-charge 200",
            "POST /v1/orders/{out_trade_no}/code-charge 409",
            "POST /v1/orders/{out_trade_no}/reverse 200",
            "POST /v1/orders/{out_trade_no}/reverse 404",
            "POST /v1/orders/{out_trade_no}/reverse 409"} <= set(seen)


GOOD_CHARGE = {"amount_minor": 100, "currency": "CNY", "description": "x", "wallet": "wechat",
               "auth_code": "134567890123456789"}
BAD_CHARGES = [  # each breaks one rule of the code-charge request's schema
    {k: v for k, v in GOOD_CHARGE.items() if k != "amount_minor"},
    {k: v for k, v in GOOD_CHARGE.items() if k != "currency"},
    {k: v for k, v in GOOD_CHARGE.items() if k != "wallet"},
    {k: v for k, v in GOOD_CHARGE.items() if k != "auth_code"},
    GOOD_CHARGE | {"amount_minor": 0},
    GOOD_CHARGE | {"amount_minor": 1.5},
    GOOD_CHARGE | {"amount_minor": 10_000_000_001},
    GOOD_CHARGE | {"auth_code": "13456789012345678X"},
    GOOD_CHARGE | {"auth_code": "123456789"},
    GOOD_CHARGE | {"auth_code": 134567890123456789},
    GOOD_CHARGE | {"wallet": "WeChat Pay"},
    GOOD_CHARGE | {"wallet": ""},
    GOOD_CHARGE | {"description": 7},
]
CHARGE_PATH = "/v1/orders/{out_trade_no}/code-charge"


@pytest.mark.parametrize("case", range(len(BAD_CHARGES)))
def test_the_simulator_refuses_with_400_what_the_code_charge_schema_refuses(rules_sim, case):
    sim, body, no = rules_sim, BAD_CHARGES[case], f"CODERULES{case:03d}"
    with pytest.raises(jsonschema.ValidationError):
        check(G, body, request_schema(G, "post", CHARGE_PATH))
    reply = signed_post(sim, f"/v1/orders/{no}/code-charge", json.dumps(body).encode())
    assert reply.status_code == 400, reply.text
    check(G, reply.json(), response_schema(G, "post", CHARGE_PATH, 400))
    assert reply.json()["code"] == "PARAM_ERROR"
    assert "134567890123456789" not in reply.text  # the refusal never quotes the code
    assert no not in orders_on(sim)  # nothing was charged


def test_what_the_code_charge_schema_accepts_the_simulator_accepts(sim):
    code = issue(sim, "wechat")
    body = GOOD_CHARGE | {"auth_code": code}
    check(G, body, request_schema(G, "post", CHARGE_PATH))
    reply = signed_post(sim, "/v1/orders/CODEGOOD0001/code-charge", json.dumps(body).encode())
    assert reply.status_code == 200 and reply.json()["status"] == "paid", reply.text
    check(G, reply.json(), response_schema(G, "post", CHARGE_PATH, 200))
    minimal = {k: v for k, v in body.items() if k != "description"}
    check(G, minimal, request_schema(G, "post", CHARGE_PATH))
    reply = signed_post(sim, "/v1/orders/CODEGOOD0002/code-charge",
                        json.dumps(minimal | {"auth_code": issue(sim)}).encode())
    assert reply.status_code == 200 and reply.json()["status"] == "paid", reply.text
