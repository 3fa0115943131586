"""The kiosk under a service manager (issue 20): readiness, watchdog, a clean stop on SIGTERM.

A real Unix datagram socket stands in for systemd's ``NOTIFY_SOCKET``; the kiosk is the
real ``kiosk run`` (``tests/faults/service_kiosk.py``: the Kivy screen under Xvfb, the
lane on its own thread, the payment simulator on 127.0.0.1 in this process) started
with ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` as systemd sets them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.config import load_settings
from app.logs import fields_of
from app.storage.db import open_database
from app.storage.payments_repo import PaymentsRepo
from app.storage.sales_repo import Sales

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def display():
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: ./run.sh test runs the suite under Xvfb")


class NotifySocket:
    """A bound ``SOCK_DGRAM`` Unix socket reading sd_notify messages, as systemd does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, dict[str, str]]] = []

    def read(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key: str, timeout: float = 90) -> dict[str, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            fields = self.read(max(0.01, end - time.monotonic()))
            if fields is not None and key in fields:
                return fields
        raise AssertionError(f"no {key} in {timeout} s; got {self.messages}")

    def drain(self) -> list[dict[str, str]]:
        out = []
        while (fields := self.read(0.01)) is not None:
            out.append(fields)
        return out

    def close(self) -> None:
        self.sock.close()


class Kiosk:
    """``python -m tests.faults.service_kiosk DATA`` with systemd's variables set."""

    def __init__(self, tmp_path: Path, data: Path, notify: NotifySocket,
                 watchdog_usec: int | None = None, journal: bool = False) -> None:
        env = {**os.environ, "KIVY_HOME": str(tmp_path / "kivy"), "KIVY_NO_ARGS": "1",
               "KIVY_LOG_MODE": "PYTHON", "NOTIFY_SOCKET": str(notify.path)}
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.journal_log = tmp_path / f"journal-{time.monotonic_ns()}.log"
        stderr: int | object = subprocess.PIPE
        if journal:  # stderr to a file named by JOURNAL_STREAM, as journald's stream is
            stderr = self.journal_log.open("w")
            st = os.fstat(stderr.fileno())  # type: ignore[attr-defined]
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            env.pop("KIVY_LOG_MODE")  # as under systemd: `kiosk run` routes Kivy's log itself
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.service_kiosk", str(data)], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        if journal:
            stderr.close()  # type: ignore[attr-defined]

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self, key: str) -> object:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the kiosk ended: {self.stderr()}")
            if line.startswith("{"):
                data = json.loads(line)
                if key in data:
                    return data[key]

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stderr is None:
            return self.journal_log.read_text()[-4000:]
        return self.proc.stderr.read()[-4000:]

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as ``systemctl stop``; the exit status (a hang is a failure)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s after SIGTERM: "
                                 f"{self.stderr()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def kiosk_toml(data: Path, sim_url: str, secret: str = "", more: str = "") -> Path:
    data.mkdir(exist_ok=True)
    secret = f', secret = "{secret}"' if secret else ""
    (data / "kiosk.toml").write_text(
        f'[payment]\nadapter = "simulator"\nwallets = []\npoll_ms = 300\n'
        f'options = {{ base_url = "{sim_url}"{secret} }}\n[camera]\nsource = "none"\n'
        f'[ui]\nsounds = false\n{more}', encoding="utf-8")
    return data


@pytest.fixture
def data(tmp_path, sim):
    return kiosk_toml(tmp_path / "data", sim.url)


@pytest.fixture
def kiosks():
    started: list[Kiosk] = []
    yield started
    for k in started:
        k.kill()


def start(kiosks, tmp_path, data, notify, **kw) -> Kiosk:
    k = Kiosk(tmp_path, data, notify, **kw)
    kiosks.append(k)
    return k


def test_ready_then_watchdog_pings_at_half_the_interval_and_none_once_the_lane_hangs(
        tmp_path, data, notify, kiosks, display):
    k = start(kiosks, tmp_path, data, notify, watchdog_usec=1_000_000)
    ready = notify.wait_for("READY")
    assert ready["READY"] == "1" and ready["STATUS"].startswith("selling")
    pings = []
    while len(pings) < 6:
        notify.wait_for("WATCHDOG", timeout=30)
        pings.append(notify.messages[-1][0])
    # Sent at half of WATCHDOG_USEC (0.5 s), never more often: 6 pings span at least
    # about 5 half-intervals (the reader may receive two queued pings together).
    assert pings[-1] - pings[0] >= 5 * 0.5 - 0.3
    k.send("hang")
    assert k.answer("hung") is True
    time.sleep(0.6)  # a ping already on its way (the lane beat just before it hung)
    notify.drain()
    time.sleep(4)  # eight half-intervals: a live lane would have pinged about eight times
    assert [m for m in notify.drain() if "WATCHDOG" in m] == []


def test_no_watchdog_pings_without_watchdog_usec(tmp_path, data, notify, kiosks, display):
    k = start(kiosks, tmp_path, data, notify)
    notify.wait_for("READY")
    k.send("report")
    assert k.answer("report")["screen"] == "attract"
    time.sleep(2)
    assert [m for m in notify.drain() if "WATCHDOG" in m] == []
    assert k.terminate() == 0


def test_sigterm_mid_session_stops_cleanly_and_the_restart_has_the_same_cart(
        tmp_path, data, notify, kiosks, display):
    first = start(kiosks, tmp_path, data, notify)
    notify.wait_for("READY")
    first.send("shop")
    shopping = first.answer("report")
    assert shopping["screen"] == "shopping" and len(shopping["lines"]) == 2
    assert first.terminate() == 0
    assert notify.wait_for("STOPPING")["STOPPING"] == "1"

    second = start(kiosks, tmp_path, data, notify)
    notify.wait_for("READY")
    second.send("report")
    assert second.answer("report") == shopping


def test_sigterm_with_a_payment_open_leaves_it_for_the_restart_which_recovers_it(
        tmp_path, data, notify, kiosks, display, sim):
    first = start(kiosks, tmp_path, data, notify)
    notify.wait_for("READY")
    first.send("shop")
    cart = first.answer("report")["lines"]
    first.send("pay")
    paying = first.answer("report")
    order = paying["payment"]
    assert paying["screen"] == "pay" and order
    assert first.terminate() == 0
    notify.wait_for("STOPPING")
    settings = load_settings(data_dir=data, environ={})
    db = open_database(settings.database_path)
    try:  # left open for the next start: not closed at the provider, not cancelled
        assert [p.out_trade_no for p in PaymentsRepo(db).all_open()] == [order]
    finally:
        db.close()
    state = requests.get(f"{sim.url}/sim/state", timeout=5).json()
    assert state["orders"][order]["status"] not in ("closed",)

    # The shopper pays on the phone while the kiosk is down; the restart finds it paid.
    requests.post(f"{sim.url}/sim/orders/{order}/pay", timeout=5).raise_for_status()
    second = start(kiosks, tmp_path, data, notify)
    notify.wait_for("READY")
    end = time.monotonic() + 60
    while True:
        second.send("report")
        now = second.answer("report")
        if now["sale"] or time.monotonic() > end:
            break
        time.sleep(0.3)
    assert now["sale"] == order
    assert second.terminate() == 0
    db = open_database(settings.database_path)
    try:
        sales = Sales(db).recent(5)
        assert [o for o, _sale in sales] == [order]
        assert sales[0][1].item_count == sum(q for _code, q in cart)
        assert PaymentsRepo(db).all_open() == []
    finally:
        db.close()
    state = requests.get(f"{sim.url}/sim/state", timeout=5).json()
    assert state["charges"] == {order: 1}
    assert state["orders"][order]["creates"] == 1


def test_sigterm_stops_a_command_without_a_screen_as_ctrl_c_does(tmp_path):
    # `kiosk sim pay` serves until Ctrl-C; SIGTERM (a service manager's stop) used to kill
    # it outright (status -15, the port freed only by the kernel).
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--data-dir", str(tmp_path / "data"), "sim", "pay",
         "--port", "0", "--keys", str(tmp_path / "keys")], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "payment simulator on http://127.0.0.1:" in line, line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_restart_loop_holds_on_the_out_of_order_screen_until_staff_clear_it(
        tmp_path, notify, kiosks, display, sim):
    data = kiosk_toml(tmp_path / "data", sim.url, more="[kiosk]\nrestart_limit = 2\n")
    for _ in range(2):  # two starts that die (SIGKILL: a crash, the watchdog's abort)
        k = start(kiosks, tmp_path, data, notify)
        assert notify.wait_for("READY")["STATUS"].startswith("selling")
        k.kill()
    held = start(kiosks, tmp_path, data, notify, watchdog_usec=1_000_000)
    status = notify.wait_for("READY")["STATUS"]
    assert status.startswith("out of order: restarting repeatedly (2 starts in a row"), status
    notify.wait_for("WATCHDOG", timeout=30)  # the held screen is alive: not restarted
    alerts = (data / "ALERTS.txt").read_text(encoding="utf-8")
    assert "restarting repeatedly" in alerts and "journalctl -u kiosk" in alerts
    assert held.terminate() == 0
    # Still held after a clean stop and a restart: nothing is tried until staff clear it.
    again = start(kiosks, tmp_path, data, notify)
    assert "restarting repeatedly" in notify.wait_for("READY")["STATUS"]

    def kiosk_cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "app.cli", "--data-dir", str(data),
                                 "restarts", *args], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout
    assert json.loads(kiosk_cli("show", "--json"))["holding"] is True
    assert "cleared" in kiosk_cli("clear")
    # The held kiosk sees the hold lifted and ends (status 0), for systemd to start afresh.
    assert notify.wait_for("STOPPING")["STATUS"] == "stopping: to start afresh"
    assert again.proc.wait(60) == 0
    selling = start(kiosks, tmp_path, data, notify)
    assert notify.wait_for("READY")["STATUS"].startswith("selling")
    selling.send("report")
    assert selling.answer("report")["screen"] == "attract"
    assert selling.terminate() == 0
    assert json.loads(kiosk_cli("show", "--json"))["unclean"] == 0


def test_the_journal_gets_one_structured_line_per_record_and_no_secret(tmp_path, notify,
                                                                        kiosks, display):
    from devices.sim.payprovider import PayServer

    canary = "CANARY-pay-secret-0b5e77"
    pay = PayServer(0, secret=canary).start()
    try:
        data = kiosk_toml(tmp_path / "data", pay.url, secret=canary)
        k = start(kiosks, tmp_path, data, notify, journal=True)
        notify.wait_for("READY")
        k.send("shop")
        k.answer("report")
        k.send("pay")
        order = k.answer("report")["payment"]
        requests.post(f"{pay.url}/sim/orders/{order}/pay", timeout=5).raise_for_status()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            k.send("report")
            if k.answer("report")["sale"]:
                break
            time.sleep(0.3)
        assert k.terminate() == 0
    finally:
        pay.stop()
    lines = k.journal_log.read_text(encoding="utf-8").splitlines()
    parsed = [fields_of(line) for line in lines]  # ValueError on a line of another shape
    assert all(0 <= f["priority"] <= 7 and f["level"] and f["logger"] for f in parsed)
    loggers = {f["logger"] for f in parsed}
    assert {"kivy", "app.bootstrap"} <= loggers, loggers  # Kivy's own lines come through
    assert any("SIGTERM" in f["msg"] for f in parsed)
    assert canary not in "\n".join(lines)
