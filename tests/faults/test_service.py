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
                 watchdog_usec: int | None = None) -> None:
        env = {**os.environ, "KIVY_HOME": str(tmp_path / "kivy"), "KIVY_NO_ARGS": "1",
               "KIVY_LOG_MODE": "PYTHON", "NOTIFY_SOCKET": str(notify.path)}
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.service_kiosk", str(data)], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

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
        return self.proc.stderr.read()[-4000:] if self.proc.stderr else ""

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


@pytest.fixture
def data(tmp_path, sim):
    data = tmp_path / "data"
    data.mkdir()
    (data / "kiosk.toml").write_text(
        f'[payment]\nadapter = "simulator"\nwallets = []\npoll_ms = 300\n'
        f'options = {{ base_url = "{sim.url}" }}\n[camera]\nsource = "none"\n'
        f'[ui]\nsounds = false\n', encoding="utf-8")
    return data


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
