"""`kiosk staff`, `kiosk audit` and `kiosk report` as a store manager runs them: real
processes on a real data directory, the database file tampered with directly."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIOSK = str(Path(sys.executable).with_name("kiosk"))


def kiosk(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir)}
    return subprocess.run([KIOSK, *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=60)


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
