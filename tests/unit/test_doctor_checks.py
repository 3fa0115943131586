"""The doctor's checks one by one, on the edges of their rules (app/services/doctor.py):
clock offset from a Date header, version specifiers, key file modes, free space, the font's
glyphs, the display, the exit status, and a payment plugin without check_credentials()."""

from __future__ import annotations

import importlib
import os
from email.utils import formatdate
from pathlib import Path

import pytest

from app.config import load_settings
from app.services import doctor as d
from app.services.doctor import Severity

doctor_cli = importlib.import_module("app.cli.doctor")  # the module, not the command
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


# --- the clock -------------------------------------------------------------------------------
def test_the_offset_is_the_servers_time_against_the_middle_of_the_round_trip():
    header = formatdate(1_800_000_000, usegmt=True)  # "Fri, 15 Jan 2027 08:00:00 GMT"
    assert d.clock_offset_s(header, 1_799_999_899.0, 1_799_999_901.0) == 100.0
    assert d.clock_offset_s(header, 1_800_000_030.0, 1_800_000_030.0) == -30.0
    with pytest.raises(ValueError):
        d.clock_offset_s("yesterday", 0.0, 0.0)


@pytest.mark.parametrize(("offset", "severity"), [
    (0, Severity.PASS), (d.CLOCK_WARN_S, Severity.PASS), (d.CLOCK_WARN_S + 2, Severity.WARN),
    (-(d.CLOCK_WARN_S + 2), Severity.WARN), (d.CLOCK_FAIL_S, Severity.WARN),
    (d.CLOCK_FAIL_S + 2, Severity.FAIL), (-3600, Severity.FAIL)])
def test_clock_offset_severities(offset, severity):
    now = 1_800_000_000.0
    header = formatdate(now + offset, usegmt=True)
    result = d.check_clock_offset(header, now, now, "the provider")
    assert result.severity is severity, result
    assert (result.fix == "") == (severity is Severity.PASS)


def test_the_failure_says_when_payments_fail_and_when_not_yet():
    now = 1_800_000_000.0
    near = d.check_clock_offset(formatdate(now + 120, usegmt=True), now, now, "p").result
    far = d.check_clock_offset(formatdate(now + 600, usegmt=True), now, now, "p").result
    assert "at 300 s off payments fail" in near
    assert "so payments fail" in far


def test_no_date_header_is_a_warning_not_a_guess():
    result = d.check_clock_offset("", 0.0, 0.0, "the provider")
    assert result.severity is Severity.WARN and "no Date header" in result.result


@pytest.mark.parametrize(("synced", "severity"), [
    (True, Severity.PASS), (False, Severity.WARN), (None, Severity.WARN)])
def test_clock_sync(synced, severity):
    assert d.check_clock_sync(synced, "timedatectl").severity is severity


# --- versions --------------------------------------------------------------------------------
def test_versions_against_the_requirements():
    installed = {"kivy": "2.3.1", "requests": "2.30.0"}.get
    good = d.check_versions(">=3.11", ["kivy>=2.3.1", 'pytest>=8; extra == "test"'],
                            installed, python="3.11.7")
    assert good.severity is Severity.PASS and good.details["packages"] == 1  # extras skipped
    bad = d.check_versions(">=3.11", ["kivy>=2.3.1", "requests>=2.31", "biip>=5.0"],
                           installed, python="3.10.2")
    assert bad.severity is Severity.FAIL
    assert bad.details["problems"] == ["Python 3.10.2 (needs >=3.11)",
                                       "requests 2.30.0 (needs >=2.31)",
                                       "biip missing (needs >=5.0)"]


# --- keys and the data directory -------------------------------------------------------------
@pytest.mark.parametrize(("mode", "severity"), [
    (0o600, Severity.PASS), (0o400, Severity.PASS), (0o640, Severity.FAIL),
    (0o644, Severity.FAIL), (0o700, Severity.FAIL)])
def test_key_file_modes(tmp_path, mode, severity):
    key = tmp_path / "key.pem"
    key.write_text("secret")
    os.chmod(key, mode)
    assert d.check_key_file("k", key, os.geteuid(), required=True).severity is severity


def test_a_missing_key_fails_only_when_required(tmp_path):
    missing = tmp_path / "none.pem"
    assert d.check_key_file("k", missing, os.geteuid(), required=True).severity is Severity.FAIL
    assert d.check_key_file("k", missing, os.geteuid(),
                            required=False).severity is Severity.WARN


def test_free_space_against_what_payments_need(tmp_path):
    mib = 1024 * 1024
    os.chmod(tmp_path, 0o700)

    def at(free_mb):
        return d.check_data_dir(tmp_path, os.geteuid(), min_free_mb=64, reserve_mb=8,
                                free_bytes=free_mb * mib)

    assert at(71).severity is Severity.FAIL and "payments are refused" in at(71).result
    assert at(72).severity is Severity.WARN
    assert at(143).severity is Severity.WARN
    assert at(144).severity is Severity.PASS


def test_a_data_dir_that_does_not_exist(tmp_path):
    result = d.check_data_dir(tmp_path / "none", os.geteuid(), min_free_mb=0, reserve_mb=0)
    assert result.severity is Severity.FAIL and "install -d" in result.fix


def test_a_group_writable_data_dir_fails(tmp_path):
    os.chmod(tmp_path, 0o770)
    result = d.check_data_dir(tmp_path, os.geteuid(), min_free_mb=0, reserve_mb=0)
    assert result.severity is Severity.FAIL and "mode 0770" in result.result


# --- fonts and the display -------------------------------------------------------------------
@pytest.mark.skipif(not (CJK_FONT.is_file() and LATIN_FONT.is_file()),
                    reason="needs fonts-wqy-microhei and fonts-dejavu-core installed")
def test_glyphs_are_told_apart_from_the_missing_glyph_box():
    assert d.missing_glyphs(CJK_FONT) == []
    assert d.missing_glyphs(LATIN_FONT) == list(d.CJK_SAMPLE)
    assert d.missing_glyphs(LATIN_FONT, "Aé") == []  # Latin it has


def test_a_file_that_is_not_a_font(tmp_path):
    junk = tmp_path / "font.ttf"
    junk.write_bytes(b"not a font")
    result = d.check_font(lambda: junk, str(junk))
    assert result.severity is Severity.FAIL and "not a readable font" in result.result


def test_display():
    assert d.check_display({}, None).severity is Severity.FAIL
    assert d.check_display({"DISPLAY": ":0"}, (1280, 800)).severity is Severity.PASS
    small = d.check_display({"WAYLAND_DISPLAY": "wayland-0"}, (800, 480))
    assert small.severity is Severity.WARN and "800x480" in small.result
    assert d.check_display({"DISPLAY": ":0"}, None).severity is Severity.WARN


# --- the report ------------------------------------------------------------------------------
def test_warnings_alone_exit_0_and_a_failure_exits_1():
    passed, warned = d.ok("a", "fine"), d.warn("b", "hmm", "look")
    failed = d.fail("c", "broken", "mend")
    assert d.exit_status([passed, warned]) == 0
    assert d.exit_status([passed, warned, failed]) == 1
    report = d.report_json([passed, warned], "lane-01", "2026-11-30T12:00:00+00:00")
    assert report["status"] == "warn" and report["counts"] == {"pass": 1, "warn": 1, "fail": 0}


def test_a_crashing_check_is_a_failure_naming_the_crash():
    def crashes():  # noqa: ANN202
        raise KeyError("options")

    result = d.run_one(d.Check("payment", crashes))
    assert result.severity is Severity.FAIL and "KeyError" in result.result


# --- a payment plugin written before check_credentials() --------------------------------------
class OldPlugin:
    name = "old"

    def query(self, out_trade_no):  # noqa: ANN001, ANN201
        raise AssertionError("the doctor must not guess with a query")


def test_a_plugin_without_check_credentials_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor_cli.bootstrap, "build_payment_provider", lambda s: OldPlugin())
    settings = load_settings(None, tmp_path, environ={})
    seen: dict[str, object] = {}
    result = doctor_cli.check_payment(settings, seen)
    assert result.severity is Severity.WARN and "no check_credentials()" in result.result
    offset = doctor_cli.check_clock_offset(seen)
    assert offset.severity is Severity.WARN and "not measured" in offset.result
