"""The event uploader killed mid-upload (SIGKILL) and restarted: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from app.domain.events import EventType, new_event
from app.storage.db import open_database
from app.storage.outbox import Outbox
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer

pytestmark = pytest.mark.slow
KIOSK = str(Path(sys.executable).with_name("kiosk"))
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture
def backend(tmp_path):
    server = BackendServer(0, tmp_path / "backend.db").start()
    yield server
    server.stop()


def test_killed_mid_upload_then_restarted_delivers_everything_once(tmp_path, backend):
    data = tmp_path / "data"
    data.mkdir()
    box = Outbox(open_database(data / "kiosk.db"))
    ids = []
    for i in range(1200):  # three batches of up to 500
        e = new_event(EventType.HELP_REQUESTED, occurred_at=T0 + timedelta(seconds=i),
                      session_id=f"s{i}", payload={"reason": "test"})
        box.record(e)
        ids.append(e.event_id)
    env = {**os.environ, "KIOSK_DATA_DIR": str(data),
           "KIOSK_MEMBERSHIP__BASE_URL": backend.url,
           "KIOSK_MEMBERSHIP__TOKEN": DEFAULT_TOKEN}
    requests.post(f"{backend.url}/sim/mode", json={"slow": 1.0}, timeout=5)
    flusher = subprocess.Popen([KIOSK, "outbox", "flush"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 30  # wait until a batch is in flight (start-up may be slow)
    while time.monotonic() < end and not (box.status().in_flight > 0 and backend.arrivals):
        time.sleep(0.05)
    flusher.send_signal(signal.SIGKILL)
    flusher.wait()
    assert box.status().in_flight > 0  # caught mid-send
    requests.post(f"{backend.url}/sim/mode", json={"slow": 0}, timeout=5)
    out = subprocess.run([KIOSK, "outbox", "flush"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    # In the order they first arrived, not sorted: every event once, in seq order.
    assert backend.arrivals == ids
    status = json.loads(subprocess.run([KIOSK, "outbox", "status", "--json"], env=env,
                                       capture_output=True, text=True).stdout)
    assert status["pending"] == 0 and status["in_flight"] == 0 and status["dead_letters"] == 0
    assert status["last_upload"] is not None
    box.db.close()


def test_flush_without_a_backend_says_which_setting(tmp_path):
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path)}
    out = subprocess.run([KIOSK, "outbox", "flush"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "membership.base_url" in out.stderr


def test_flush_against_a_dead_backend_keeps_everything(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    box = Outbox(open_database(data / "kiosk.db"))
    box.record(new_event(EventType.HELP_REQUESTED, occurred_at=T0, session_id="s",
                         payload={"reason": "x"}))
    env = {**os.environ, "KIOSK_DATA_DIR": str(data),
           "KIOSK_MEMBERSHIP__BASE_URL": "http://127.0.0.1:9"}
    out = subprocess.run([KIOSK, "outbox", "flush", "--timeout", "2"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "1 waiting" in out.stdout
    assert box.status().pending == 1
    box.db.close()
