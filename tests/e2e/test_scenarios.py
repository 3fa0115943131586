"""The end-to-end suite: every scenario in seeds/scenarios, run as `kiosk scenario` runs it
(the real services, the payment simulator and the membership backend on 127.0.0.1, the
virtual printer on a real pty, the camera through the real decoder).

Tests that run a scenario take real time (timeouts, payment polls, the camera
watchdog: 2-15 s each), so they carry the ``slow`` marker; the test command
(`./run.sh test`) selects no markers and runs them all, and
`-m "not slow"` leaves them out locally.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.harness import ScenarioError, load_scenario, run_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "seeds" / "scenarios").glob("*.toml"))


def test_there_are_at_least_twenty_scenarios():
    assert len(SCENARIOS) >= 20


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path, tmp_path):
    transcript = run_scenario(path, tmp_path / "data")
    assert transcript.ok, transcript.text()
    # Every paid sale printed a receipt or put its pass on screen, and nothing was lost.
    paid = [p for p in transcript.payments if p["state"] == "paid"]
    assert len(transcript.exit_passes) >= len(paid)


@pytest.mark.slow
def test_a_failed_expectation_fails_the_scenario_and_says_why(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\ndo = "scan"\ncode = "6900000000014"\nvia = "typed"\n'
                   '[[steps]]\ndo = "expect"\ntotal = "99.99"\n', encoding="utf-8")
    transcript = run_scenario(bad, tmp_path / "data")
    assert not transcript.ok and "expected total = '99.99', got '6.50'" in transcript.failure


def test_a_malformed_scenario_is_refused_before_anything_runs(tmp_path):
    for text, message in (("", "non-empty"), ('[[steps]]\ndo = "fly"\n', "must be one of"),
                          ("steps = 3", "non-empty"), ("[[steps", "not valid TOML")):
        path = tmp_path / "x.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ScenarioError, match=message):
            load_scenario(path)


@pytest.mark.slow
def test_a_step_that_goes_wrong_is_named_not_a_traceback(tmp_path):
    cases = [
        ('[[steps]]\ndo = "quantity"\nline = 7\nquantity = 2\n', "step 1 (quantity)"),
        ('[[steps]]\ndo = "scan"\ncode = "6900000000014"\nvia = "typed"\n'
         '[[steps]]\ndo = "pay"\noutcome = "approved"\n', "step 2 (pay)"),
        ('[[steps]]\ndo = "staff"\npin = "2580"\naction = "teleport"\n', "step 1 (staff)"),
    ]
    for n, (text, where) in enumerate(cases):
        path = tmp_path / f"s{n}.toml"
        path.write_text(text, encoding="utf-8")
        transcript = run_scenario(path, tmp_path / f"d{n}")
        assert not transcript.ok and transcript.failure.startswith(where), transcript.failure


def test_fields_are_checked_before_anything_runs(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[[steps]]\ndo = "scan"\ncod = "6900000000014"\n', encoding="utf-8")
    with pytest.raises(ScenarioError, match="unknown: cod; missing: code"):
        load_scenario(path)


def test_a_used_data_directory_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "kiosk.db").write_text("x")
    with pytest.raises(ScenarioError, match="not empty"):
        run_scenario(SCENARIOS[0], tmp_path / "d")
