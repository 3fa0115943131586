"""Shared fixtures: a kiosk on a real SQLite file in a temporary data directory."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app import bootstrap
from app.config import load_settings
from app.domain.clock import FixedClock

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI))


@pytest.fixture
def kiosk(data_dir: Path, clock: FixedClock):
    settings = load_settings(data_dir=data_dir, environ={})
    k = bootstrap.build(settings, clock=clock)
    yield k
    k.close()


@pytest.fixture
def demo_kiosk(kiosk):
    bootstrap.seed_demo_store(kiosk)
    return kiosk


@pytest.fixture
def sim():
    """The payment provider simulator (`kiosk sim pay`) on a free port of 127.0.0.1."""
    from devices.sim.payprovider import PayServer

    server = PayServer(0).start()
    yield server
    server.stop()
