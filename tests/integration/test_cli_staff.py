"""`kiosk staff`, `kiosk audit` and `kiosk report` as a store manager runs them, on a real
data directory (in-process, through click's test runner), the database file tampered
with directly; and the same staff actions from the command line and from staff mode
leaving the same audit rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app import bootstrap
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from tests.helpers import Ran, pay_on_the_phone, run_kiosk

MILK = "6900000000014"


def kiosk(data_dir: Path, *args: str, stdin: str | None = None) -> Ran:
    return run_kiosk(*args, env={"KIOSK_DATA_DIR": str(data_dir)}, stdin=stdin)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def test_staff_add_asks_for_the_pin_without_echo_and_never_shows_it(data_dir):
    added = kiosk(data_dir, "staff", "add", "Li Na", "--role", "attendant",
                  stdin="482913\n482913\n")
    assert added.returncode == 0, added.stderr
    assert "482913" not in added.stdout + added.stderr
    assert "badge: KSTAFF:" in added.stdout
    listed = kiosk(data_dir, "staff", "list", "--json")
    assert json.loads(listed.stdout) == [{"name": "Li Na", "role": "attendant"}]
    assert "482913" not in listed.stdout
    bad = kiosk(data_dir, "staff", "add", "Zhao", "--role", "manager", "--pin", "12")
    assert bad.returncode != 0 and "4 to 12 digits" in bad.stderr
    assert kiosk(data_dir, "staff", "remove", "Li Na").returncode == 0
    assert kiosk(data_dir, "staff", "remove", "Li Na").returncode != 0
    shown = kiosk(data_dir, "audit", "show", "--json")
    kinds = [json.loads(line)["kind"] for line in shown.stdout.splitlines()]
    assert kinds == ["staff_added", "staff_removed"]


def test_audit_verify_names_the_first_bad_row(data_dir):
    for n, name in enumerate(("A1", "A2", "A3", "A4")):
        assert kiosk(data_dir, "staff", "add", name, "--role", "attendant",
                     "--pin", f"123{n}").returncode == 0
    ok = kiosk(data_dir, "audit", "verify")
    assert ok.returncode == 0 and "4 rows" in ok.stdout
    conn = sqlite3.connect(data_dir / "kiosk.db")
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET detail = '{\"name\": \"X\", \"role\": \"manager\"}' "
                 "WHERE seq = 3")
    conn.commit()
    conn.close()
    broken = kiosk(data_dir, "audit", "verify")
    assert broken.returncode == 1 and "row 3" in broken.stderr


def test_report_z_json_adds_up_and_closes_the_period(data_dir):
    assert kiosk(data_dir, "staff", "add", "M", "--role", "manager", "--pin",
                 "9999").returncode == 0
    z = kiosk(data_dir, "report", "z", "--json", "--staff", "M")
    assert z.returncode == 0, z.stderr
    body = json.loads(z.stdout)
    assert body["kind"] == "Z" and body["z_number"] == 1
    assert body["net_minor"] == body["sales_minor"] - body["refunds_minor"]
    assert sum(m["minor"] for m in body["by_method"].values()) == body["sales_minor"]
    x = json.loads(kiosk(data_dir, "report", "x", "--json").stdout)
    assert x["opened_at"] == body["closed_at"]
    head = f"{body['audit_seq']}:{body['audit_hash']}"
    assert kiosk(data_dir, "audit", "verify", "--head", head).returncode == 0
    printed = kiosk(data_dir, "report", "z").stdout.splitlines()
    at = next(i for i, line in enumerate(printed) if line.startswith("Audit head: "))
    on_paper = printed[at].removeprefix("Audit head: ") + printed[at + 1] + printed[at + 2]
    assert kiosk(data_dir, "audit", "verify", "--head", on_paper).returncode == 0
    assert kiosk(data_dir, "audit", "verify", "--head", "99:" + "0" * 64).returncode == 1


# -- the same action from staff mode and from `kiosk` ------------------------------------------
@pytest.fixture
def lane(demo_kiosk, sim, clock):
    bootstrap.build_staff_book(demo_kiosk).add("Wang Wei", "manager", "13579", clock.now())
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
    demo_kiosk.settings.payment.wallets = []
    ln = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    ln.boot()
    return ln


def paid_sale(lane, sim, clock) -> str:
    lane.scan(MILK)
    return pay_on_the_phone(lane, sim, clock)


def set_one_event_aside(kiosk) -> None:
    event_id = kiosk.db.execute("SELECT event_id FROM outbox WHERE status = 'pending' "
                                "ORDER BY seq LIMIT 1").fetchone()[0]
    bootstrap.build_outbox(kiosk).dead(event_id, "rejected by the test")


def staff_events(kiosk) -> list[dict]:
    return [json.loads(p) for (p,) in kiosk.db.execute(
        "SELECT payload FROM outbox WHERE type = 'staff_action' ORDER BY seq")]


def test_cli_reprint_z_and_dead_retry_audit_the_lane_like_staff_mode(lane, demo_kiosk, sim,
                                                                     clock, data_dir):
    no = paid_sale(lane, sim, clock)
    lane.scan(MILK)  # a shopper is at the lane while staff act: staff mode tells the session
    lane.staff.open_pin_pad()
    lane.staff.pin("13579")
    lane.staff.do("reprint", no)
    set_one_event_aside(demo_kiosk)
    lane.staff.do("retry_dead")
    lane.staff.do("z_report")
    lane.staff.sign_out()
    in_session = staff_events(demo_kiosk)
    assert [e["action"] for e in in_session] == ["sign_in", "reprint", "retry_dead_letters",
                                                 "sign_out"]

    set_one_event_aside(demo_kiosk)
    assert kiosk(data_dir, "printer", "reprint", no).returncode == 0
    assert kiosk(data_dir, "outbox", "dead", "retry").returncode == 0
    assert kiosk(data_dir, "report", "z", "--staff", "Wang Wei").returncode == 0

    rows = bootstrap.build_audit(demo_kiosk).entries()
    for kind, cli_actor in (("reprint", "cli"), ("retry_dead_letters", "cli"),
                            ("z_report", "Wang Wei")):
        from_staff_mode, from_cli = [e for e in rows if e.kind == kind]
        assert from_staff_mode.actor == "Wang Wei" and from_cli.actor == cli_actor
        assert from_staff_mode.detail["lane"] == from_cli.detail["lane"] == "lane-01", kind
        assert from_staff_mode.detail.keys() == from_cli.detail.keys(), kind
    reprints = [e.detail for e in rows if e.kind == "reprint"]
    assert [d["order_id"] for d in reprints] == [no, no]
    assert reprints[0]["job_id"] != reprints[1]["job_id"]
    assert [e.detail["events"] for e in rows if e.kind == "retry_dead_letters"] == [1, 1]
    assert [e.detail["z_number"] for e in rows if e.kind == "z_report"] == [1, 2]
    # The command line has no shopper session: no staff event, only the audit row.
    assert staff_events(demo_kiosk) == in_session
    assert kiosk(data_dir, "audit", "verify").returncode == 0


def test_cli_staff_changes_audit_the_lane(data_dir):
    assert kiosk(data_dir, "staff", "add", "Li Na", "--role", "attendant",
                 "--pin", "482913").returncode == 0
    assert kiosk(data_dir, "staff", "remove", "Li Na").returncode == 0
    rows = [json.loads(line) for line in kiosk(data_dir, "audit", "show", "--json")
            .stdout.splitlines()]
    assert [(r["kind"], r["actor"], r["detail"]) for r in rows] == [
        ("staff_added", "cli", {"lane": "lane-01", "name": "Li Na", "role": "attendant"}),
        ("staff_removed", "cli", {"lane": "lane-01", "name": "Li Na"})]
