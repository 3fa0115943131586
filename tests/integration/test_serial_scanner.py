"""A serial scanner on a real pty, read by the kiosk through pyserial as in a store."""

from __future__ import annotations

import time

import pytest

from devices.scanner import Scan, ScanRejection, SerialScanner
from devices.sim.serial_scanner import VirtualSerialScanner
from tests.helpers import wait_for


class Reader:
    def __init__(self, port: str, **kw) -> None:
        self.scans: list[Scan] = []
        self.rejected: list[ScanRejection] = []
        self.scanner = SerialScanner(port, self.scans.append, self.rejected.append,
                                     backoff_s=0.05, backoff_max_s=0.2, **kw)
        self.scanner.start()
        assert wait_for(lambda: self.scanner.health().state == "ok")

    def stop(self) -> None:
        self.scanner.stop()


@pytest.fixture
def device():
    with VirtualSerialScanner() as sim:
        yield sim


def test_codes_arrive_line_by_line_with_the_aim_identifier_split_off(device):
    reader = Reader(device.port)
    try:
        device.send("6901234567892", aim="]E0")
        device.send("0106901234567892\x1d10LOT7", aim="]C1")
        device.send("96385074")
        assert wait_for(lambda: len(reader.scans) == 3)
        assert [(s.text, s.symbology, s.source) for s in reader.scans] == [
            ("6901234567892", "]E0", "serial"),
            ("0106901234567892\x1d10LOT7", "]C1", "serial"),
            ("96385074", None, "serial"),
        ]
    finally:
        reader.stop()


@pytest.mark.parametrize(("suffix", "sent"), [("CR", b"\r"), ("LF", b"\n"), ("CRLF", b"\r\n"),
                                              ("TAB", b"\t")])
def test_the_configured_suffix_ends_each_code(device, suffix, sent):
    reader = Reader(device.port, suffix=suffix)
    try:
        device.send_raw(b"6901234567892" + sent + b"96385" + b"074" + sent)
        assert wait_for(lambda: len(reader.scans) == 2)
        assert [s.text for s in reader.scans] == ["6901234567892", "96385074"]
    finally:
        reader.stop()


def test_a_scanner_sending_crlf_to_a_kiosk_set_for_cr_still_works(device):
    reader = Reader(device.port, suffix="CR")
    try:
        device.send("6901234567892", suffix=b"\r\n")
        device.send("96385074", suffix=b"\r\n")
        assert wait_for(lambda: len(reader.scans) == 2)
        assert reader.rejected == []
    finally:
        reader.stop()


def test_a_code_split_across_reads_is_put_back_together(device):
    reader = Reader(device.port)
    try:
        for ch in b"6901234567892\r":
            device.send_raw(bytes([ch]))
            time.sleep(0.002)
        assert wait_for(lambda: [s.text for s in reader.scans] == ["6901234567892"])
    finally:
        reader.stop()


def test_escape_sequences_control_characters_and_bad_bytes_are_refused(device):
    reader = Reader(device.port)
    try:
        device.send("\x1b]0;pwned\x07")
        device.send(b"\xff\xfe\x00")
        device.send("69012\x0034567892")
        device.send("6901234567892")
        assert wait_for(lambda: len(reader.scans) == 1 and len(reader.rejected) == 3)
        assert [r.refusal.code for r in reader.rejected] == [
            "escape_character", "invalid_utf8", "control_character"]
        assert reader.scans[0].text == "6901234567892"
    finally:
        reader.stop()


def test_a_flood_of_garbage_is_rate_limited_and_scanning_goes_on(device):
    reader = Reader(device.port)
    try:
        start = time.monotonic()
        device.send_raw(b"\x07garbage\r" * 2000)
        device.send_raw(b"x" * 100_000 + b"\r")  # far too long: dropped up to its suffix
        device.send("6901234567892")
        assert wait_for(lambda: [s.text for s in reader.scans] == ["6901234567892"], 10)
        seconds = time.monotonic() - start
        outlet = reader.scanner.outlet
        assert outlet.rejections >= 2000
        # What reaches the screen and the log is capped at 5 a second.
        assert len(reader.rejected) <= 5 * (int(seconds) + 2)
        assert reader.scanner.health().state == "ok"
    finally:
        reader.stop()


def test_a_stray_byte_is_dropped_and_does_not_spoil_the_next_code(device):
    reader = Reader(device.port)
    try:
        device.send_raw(b"\x00")  # line noise, or a scan aborted half way
        assert wait_for(lambda: len(reader.rejected) == 1)
        assert reader.rejected[0].refusal.code == "incomplete"
        device.send("6901234567892")
        assert wait_for(lambda: [s.text for s in reader.scans] == ["6901234567892"])
    finally:
        reader.stop()


def test_a_listener_that_raises_does_not_stop_the_scanner(device):
    seen = []

    def flaky(scan):
        seen.append(scan.text)
        if len(seen) == 1:
            raise RuntimeError("bug in the UI bridge")

    scanner = SerialScanner(device.port, flaky)
    scanner.start()
    try:
        assert wait_for(lambda: scanner.health().state == "ok")
        device.send("6901234567892")
        device.send("96385074")
        assert wait_for(lambda: seen == ["6901234567892", "96385074"])
        assert scanner.health().state == "ok"
    finally:
        scanner.stop()


def test_an_unplugged_scanner_is_reported_and_reopened_when_it_comes_back(tmp_path):
    link = tmp_path / "usb-Scanner-if00"
    first = VirtualSerialScanner(link)
    reader = Reader(str(link))
    try:
        first.send("6901234567892")
        assert wait_for(lambda: len(reader.scans) == 1)
        first.unplug()
        assert wait_for(lambda: reader.scanner.health().state == "lost")
        with VirtualSerialScanner(link) as second:  # plugged back in, maybe a new pts
            assert wait_for(lambda: reader.scanner.health().state == "ok")
            second.send("96385074")
            assert wait_for(lambda: len(reader.scans) == 2)
        assert reader.scanner.health().reopen_count >= 1
    finally:
        reader.stop()


def test_a_port_that_does_not_exist_is_reported_not_raised(tmp_path):
    scans: list[Scan] = []
    scanner = SerialScanner(str(tmp_path / "ttyACM9"), scans.append, backoff_s=0.05)
    scanner.start()
    try:
        assert wait_for(lambda: scanner.health().state == "lost")
        assert "ttyACM9" in scanner.health().error
    finally:
        scanner.stop()
    assert scanner.health().state == "stopped"


def test_an_unknown_suffix_names_the_setting():
    with pytest.raises(ValueError, match="scanner.serial_suffix"):
        SerialScanner("/dev/null", lambda s: None, suffix="ETX")
