"""The restart-loop record (app.storage.starts) on a real file in a data directory."""

from __future__ import annotations

import json

from app.storage.starts import STARTS_FILE, StartRecord

WINDOW = 600.0  # 10 min


def test_the_limit_holds_after_that_many_unclean_ends_in_a_row(tmp_path):
    record = StartRecord(tmp_path)
    t = 1_800_000_000.0
    for n in range(3):  # three starts, each killed (never marked clean)
        v = record.begin(t + n * 10, pid=100 + n, limit=3, window_s=WINDOW)
        assert (v.unclean, v.holding) == (n, False)
    held = record.begin(t + 40, pid=200, limit=3, window_s=WINDOW)
    assert held.holding and held.unclean == 3 and held.since == t + 40
    assert "3 starts in a row ended uncleanly within 10 min" in held.reason
    # Sticky: a later start, even hours later or after a clean stop of the held screen,
    # is still held until staff clear it.
    assert record.begin(t + 99_999, pid=201, limit=3, window_s=WINDOW).holding
    assert record.clear(t + 100_000)
    v = record.begin(t + 100_001, pid=202, limit=3, window_s=WINDOW)
    assert (v.unclean, v.holding) == (0, False)


def test_a_clean_stop_or_a_start_outside_the_window_breaks_the_row(tmp_path):
    record = StartRecord(tmp_path)
    t = 1_800_000_000.0
    record.begin(t, pid=1, limit=2, window_s=WINDOW)
    record.begin(t + 1, pid=2, limit=2, window_s=WINDOW)
    record.end_clean(2)  # SIGTERM: stopped in order
    v = record.begin(t + 2, pid=3, limit=2, window_s=WINDOW)
    assert (v.unclean, v.holding) == (0, False)
    record.begin(t + 3, pid=4, limit=2, window_s=WINDOW)  # pid 3 died: 1 unclean
    v = record.begin(t + 3 + WINDOW + 1, pid=5, limit=2, window_s=WINDOW)
    assert v.unclean == 0  # pid 4 started more than the window ago (pid 3 too)
    assert not v.holding


def test_a_damaged_record_is_started_afresh(tmp_path):
    (tmp_path / STARTS_FILE).write_text("{not json", encoding="utf-8")
    v = StartRecord(tmp_path).begin(1_800_000_000.0, pid=1, limit=2, window_s=WINDOW)
    assert (v.unclean, v.holding) == (0, False)
    assert json.loads((tmp_path / STARTS_FILE).read_text())["runs"][-1]["pid"] == 1


def test_staff_device_health_counts_unclean_restarts_and_points_to_the_journal(demo_kiosk):
    import os
    import time

    from app import bootstrap

    data = demo_kiosk.settings.data_dir
    StartRecord(data).begin(time.time() - 60, pid=1, limit=5, window_s=WINDOW)
    StartRecord(data).begin(time.time() - 30, pid=2, limit=5, window_s=WINDOW)
    StartRecord(data).begin(time.time(), pid=os.getpid(), limit=5, window_s=WINDOW)  # this one
    runtime = bootstrap.build_runtime(demo_kiosk, threaded=False)
    health = {h.device: h for h in runtime.device_health()}
    assert health["kiosk"].state == "restarted"
    assert health["kiosk"].line == ("Kiosk: 2 unclean restart(s) in a row (limit 3 in 10 min); "
                                    "log: journalctl -u kiosk")
