"""Misconfiguration shows the provider's code and the setting to change (in the payment's
last error, ``kiosk pay show`` and the health page's payment line), and ``kiosk pay notify``
replays a relayed notification: verified, applied once, audited, refused with a reason.

Against a fake provider raising ``ProviderRefused`` (any adapter's refusal) and against
the payment simulator on 127.0.0.1 (the gateway contract's real refusals and real signed
notifications), with the ``kiosk`` command run in-process (tests/helpers.run_kiosk)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from app import bootstrap
from app.domain.payment import (
    PaymentError,
    PaymentState,
    ProviderRefused,
    ProviderView,
    error_text,
)
from app.services.health import health_lines, provider_reach
from tests.helpers import run_kiosk
from tests.unit.factories import paid_sale

REFUSAL = "refused by the provider: SIGN_ERROR bad merchant serial; " \
    "check setting payment.options.serial_no"


class RefusingProvider:
    """Every call refused as WeChat Pay refuses a wrong merchant serial (401 SIGN_ERROR)."""

    name = "refusing"

    def _refuse(self) -> ProviderRefused:
        return ProviderRefused("bad merchant serial", maybe_done=False, code="SIGN_ERROR",
                               setting="payment.options.serial_no")

    def create(self, order):  # noqa: ANN001, ANN201
        raise self._refuse()

    def query(self, out_trade_no: str) -> ProviderView:
        raise self._refuse()

    def close(self, out_trade_no: str) -> ProviderView | None:
        raise self._refuse()

    def refund(self, *args: object) -> str:
        raise self._refuse()

    def parse_notification(self, headers, body):  # noqa: ANN001, ANN201
        raise AssertionError("not used")


def test_error_text_keeps_the_code_and_the_setting():
    assert error_text(RefusingProvider()._refuse()) == REFUSAL
    assert error_text(ProviderRefused("no", code="X")) == "refused by the provider: X no"
    assert error_text(PaymentError("timed out", code="SYSTEMERROR", setting="payment.a")) \
        == "timed out (SYSTEMERROR); check setting payment.a"
    assert error_text(PaymentError("connection refused")) == "connection refused"


def test_a_refusal_is_kept_as_the_last_error_and_shown_by_pay_show(kiosk, data_dir):
    desk = bootstrap.build_payment_desk(kiosk, RefusingProvider())
    p = desk.start("cart-r1", paid_sale(), "test")
    # The create was refused and did nothing: no order exists, asking again would be refused
    # the same way, so the payment fails at once (the shopper is told, the cart unfreezes).
    assert p.state is PaymentState.FAILED and p.last_error == REFUSAL
    assert desk.repo.get(p.out_trade_no).last_error == REFUSAL
    assert any(REFUSAL in note for _, note in desk.describe(p.out_trade_no)["steps"])
    # An order that was created, whose close is refused (the key changed under it): it stays
    # open and says why.
    creating = RefusingProvider()
    creating.create = lambda order: "weixin://wxpay/bizpayurl?pr=ok"  # type: ignore[method-assign]
    q = bootstrap.build_payment_desk(kiosk, creating).start("cart-r2", paid_sale(), "test")
    closed = bootstrap.build_payment_desk(kiosk, RefusingProvider()).cancel(q.out_trade_no)
    assert closed.open and closed.last_error == REFUSAL
    shown = run_kiosk("pay", "show", p.out_trade_no, env={"KIOSK_DATA_DIR": str(data_dir)})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["last_error"] == REFUSAL


def test_the_health_page_shows_the_code_and_the_setting(kiosk):
    line = provider_reach(RefusingProvider())
    assert line.startswith("answered in ") and line.endswith(REFUSAL)
    lines = health_lines(lambda: [], RefusingProvider(), bootstrap.build_outbox(kiosk),
                         lambda: [])
    assert lines[0].startswith("Payment (refusing): answered in ") and lines[0].endswith(REFUSAL)
    # A technician is pointed to the doctor and the logs (issue 20).
    assert "kiosk doctor" in lines[-1] and "journalctl -u kiosk" in lines[-1]


def sim_env(data_dir: Path, sim, secret: str | None = None) -> dict[str, str]:
    options = f'base_url = "{sim.url}", read_timeout_s = 2.0'
    env = {"KIOSK_DATA_DIR": str(data_dir)}
    if secret is not None:
        env["KIOSK_PAYMENT__ADAPTER"] = "gateway"
        options += f', secret = "{secret}"'
    env["KIOSK_PAYMENT__OPTIONS"] = "{" + options + "}"
    return env


def test_the_simulators_real_refusal_shows_in_pay_show_and_health(tmp_path, sim):
    env = sim_env(tmp_path / "data", sim, secret="not-the-store-secret")
    started = run_kiosk("pay", "start", "--cart", "c1", "--amount", "3.20", "--json", env=env)
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    expected = ("refused by the provider: SIGN_ERROR gateway refused with 401 (unsigned for "
                "this kiosk's secret): X-Kiosk-Signature does not match the kiosk's secret; "
                "check setting payment.options.secret")
    assert record["state"] == "failed" and record["last_error"] == expected
    shown = json.loads(run_kiosk("pay", "show", record["out_trade_no"], env=env).stdout)
    assert shown["last_error"] == expected
    from devices.payment.gateway import GatewayAdapter

    line = provider_reach(GatewayAdapter(sim.url, "lane-01", "not-the-store-secret"))
    assert line.startswith("answered in ") and line.endswith(expected)


# --- kiosk pay notify --------------------------------------------------------------------
def paid_on_the_simulator(env: dict[str, str], sim, cart: str) -> str:
    started = run_kiosk("pay", "start", "--cart", cart, "--amount", "12.30", "--json", env=env)
    assert started.returncode == 0, started.stderr
    no = json.loads(started.stdout)["out_trade_no"]
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
    return str(no)


def notification(sim, no: str) -> tuple[dict[str, str], bytes]:
    notice = requests.get(f"{sim.url}/sim/orders/{no}/notification", timeout=5).json()
    return notice["headers"], notice["body"].encode()


def audit_rows(data_dir: Path) -> list[dict[str, object]]:
    import sqlite_utils

    db = sqlite_utils.Database(data_dir / "kiosk.db")
    rows = [json.loads(detail) | {"actor": actor} for detail, actor in db.execute(
        "SELECT detail, actor FROM audit_log WHERE kind = 'payment_notification_replayed' "
        "ORDER BY seq")]
    db.close()
    return rows


def test_a_relayed_notification_is_applied_once_then_reported_duplicate(tmp_path, sim):
    data_dir = tmp_path / "data"
    env = sim_env(data_dir, sim)
    no = paid_on_the_simulator(env, sim, "c2")
    headers, body = notification(sim, no)
    (tmp_path / "h.json").write_text(json.dumps(headers), encoding="utf-8")
    (tmp_path / "b").write_bytes(body)
    args = ("pay", "notify", "--headers", str(tmp_path / "h.json"), "--body", str(tmp_path / "b"))
    first = run_kiosk(*args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.strip() == f"accepted and applied: {no} pending -> paid"
    shown = json.loads(run_kiosk("pay", "show", no, env=env).stdout)
    assert shown["state"] == "paid"
    again = run_kiosk(*args, "--staff", "ops", env=env)
    assert again.returncode == 0 and again.stdout.startswith(f"duplicate: {no} is paid")
    rows = audit_rows(data_dir)
    assert [(r["outcome"], r["out_trade_no"], r["lane"], r["actor"]) for r in rows] == [
        ("applied", no, "lane-01", "cli"), ("duplicate", no, "lane-01", "ops")]
    assert all(r["notification_id"] == json.loads(body)["notification_id"] for r in rows)
    assert run_kiosk("audit", "verify", env=env).returncode == 0


def test_raw_header_lines_are_read_as_a_proxy_saved_them(tmp_path, sim):
    env = sim_env(tmp_path / "data", sim)
    no = paid_on_the_simulator(env, sim, "c3")
    headers, body = notification(sim, no)
    raw = "POST /notify HTTP/1.1\r\nHost: kiosk.example\r\nContent-Type: application/json\r\n" \
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n" \
        + body.decode()  # the whole request as a proxy saved it: the body after a blank line
    (tmp_path / "h.txt").write_text(raw, encoding="utf-8")
    done = run_kiosk("pay", "notify", "--headers", str(tmp_path / "h.txt"), "--body", "-",
                     env=env, stdin=body)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("accepted and applied")


@pytest.mark.parametrize("damage", ["forged", "stale", "elsewhere", "newline"])
def test_a_notification_that_does_not_check_out_is_refused_and_audited(tmp_path, sim, damage):
    data_dir = tmp_path / "data"
    env = sim_env(data_dir, sim)
    no = paid_on_the_simulator(env, sim, "c4")
    if damage == "elsewhere":  # a genuine notification for an order another lane made
        other = "OTHERLANE0001"
        requests.post(f"{sim.url}/sim/script", json={"order": other, "outcome": "approve"},
                      timeout=5)
        from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
        from tests.integration.test_payment_gateway_contract import order

        SimulatorAdapter(sim.url, "lane-09", SIMULATOR_SECRET).create(order(other))
        headers, body = notification(sim, other)
    else:
        headers, body = notification(sim, no)
    if damage == "forged":
        body = body.replace(b'"paid_minor":1230', b'"paid_minor":1')
    elif damage == "stale":  # genuinely signed, an hour ago: outside the 300 s window
        from devices.payment.gateway import SIMULATOR_SECRET, sign

        old = str(int(time.time()) - 3600)
        headers = {"X-Gateway-Timestamp": old,
                   "X-Gateway-Signature": sign(SIMULATOR_SECRET, "NOTIFY", "/notify", old, body)}
    elif damage == "newline":
        body += b"\n"  # an editor's trailing newline: the bytes are no longer the signed ones
    (tmp_path / "h.json").write_text(json.dumps(headers), encoding="utf-8")
    (tmp_path / "b").write_bytes(body)
    done = run_kiosk("pay", "notify", "--headers", str(tmp_path / "h.json"),
                     "--body", str(tmp_path / "b"), env=env)
    assert done.returncode == 1 and done.stdout.startswith("refused: "), done.stdout
    why = {"forged": "bad signature", "stale": "timestamp", "elsewhere": "no payment",
           "newline": "bad signature"}[damage]
    assert why in done.stdout
    assert json.loads(run_kiosk("pay", "show", no, env=env).stdout)["state"] == "pending"
    assert [r["outcome"] for r in audit_rows(data_dir)] == ["refused"]


def test_unreadable_headers_are_a_usage_error(tmp_path, sim):
    (tmp_path / "h.txt").write_text("Wechatpay-Serial SIMPLATFORM01\n", encoding="utf-8")
    (tmp_path / "b").write_bytes(b"{}")
    done = run_kiosk("pay", "notify", "--headers", str(tmp_path / "h.txt"),
                     "--body", str(tmp_path / "b"), env=sim_env(tmp_path / "data", sim))
    assert done.returncode == 2 and "line 1" in done.stderr
