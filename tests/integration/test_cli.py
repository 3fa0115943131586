"""The `kiosk` command as an integrator runs it, on a real data directory.

Most commands run in-process (click's test runner: the same command, output and exit
code, without starting Python each time); the smoke tests at the end, and the simulators
that run until stopped, are real processes of the installed console script.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from biip.checksums import gs1_price_weight_check_digit

from app.domain.gtin import check_digit
from tests.helpers import run_kiosk

ROOT = Path(__file__).resolve().parents[2]
KIOSK = str(Path(sys.executable).with_name("kiosk"))


def with_check(payload: str) -> str:
    return payload + str(check_digit(payload))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    imported = kiosk(d, "catalog", "import", str(ROOT / "seeds/catalogue.csv"), "--replace")
    assert imported.returncode == 0, imported.stderr
    promoted = kiosk(d, "promotions", "import", str(ROOT / "seeds/promotions.toml"))
    assert promoted.returncode == 0, promoted.stderr
    return d


def kiosk(data_dir, *args, stdin=None, env=None):
    return run_kiosk(*args, env={"KIOSK_DATA_DIR": str(data_dir), **(env or {})}, stdin=stdin)


def real_kiosk(data_dir, *args, stdin=None):
    """The installed console script in a process of its own."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir)}
    return subprocess.run([KIOSK, *args], env=env, capture_output=True, input=stdin, cwd=ROOT)


def lookup(data_dir, code, *extra):
    result = kiosk(data_dir, "catalog", "lookup", code, "--json", *extra)
    return result.returncode, json.loads(result.stdout)


def test_demo_gtin(data_dir):
    rc, data = lookup(data_dir, "6900000000014")
    assert rc == 0
    assert (data["name_zh"], data["line_price"]) == ("纯牛奶 250ml", "6.50")
    rc, data = lookup(data_dir, "6900000000014", "--member")
    assert data["line_price"] == "5.90"


def test_rcn_weight_label(data_dir):
    rc, data = lookup(data_dir, with_check("210010101234"))  # bananas, 1.234 kg
    assert rc == 0
    assert data["name_en"] == "Bananas" and data["weight_g"] == 1234
    assert data["line_price"] == "8.61"  # 6.98/kg x 1.234 kg = 8.613 -> 8.61


def test_rcn_with_bad_price_check_is_refused(data_dir):
    value = "00599"
    wrong = (gs1_price_weight_check_digit(value) + 1) % 10
    rc, data = lookup(data_dir, with_check(f"220010{wrong}{value}"))
    assert rc == 1 and data["refused"] == "bad_price_check_digit"


def test_gs1_128_with_net_weight(data_dir):
    rc, data = lookup(data_dir, "]C10106900000000014310300150010L42")
    assert rc == 0
    assert data["code_kind"] == "gs1" and data["weight_g"] == 1500 and data["batch"] == "L42"


def test_digital_link_qr(data_dir):
    rc, data = lookup(data_dir, "https://id.gs1.org/01/06900000000014?17=271231")
    assert rc == 0 and data["name_en"] == "Whole Milk 250ml"


def test_promotion_shown_on_line(data_dir):
    rc, data = lookup(data_dir, "6900000000663")  # chips, 1.00 off
    assert data["adjustments"][0]["code"] == "CHIPS-1OFF"
    assert data["line_price"] == "7.50"


def test_escape_character_is_refused_with_non_zero_exit(data_dir):
    result = kiosk(data_dir, "catalog", "lookup", "690\x1b[2J0000014")
    assert result.returncode == 1
    err = result.stderr
    assert "escape_character" in err and "请呼叫店员" in err
    assert "\x1b" not in err  # echoed escaped, never raw


def test_invalid_utf8_from_stdin_is_refused(data_dir):
    result = kiosk(data_dir, "catalog", "lookup", "-", stdin=b"69\xff\xfe\n")
    assert result.returncode == 1 and "invalid_utf8" in result.stderr


def test_unknown_product(data_dir):
    rc, data = lookup(data_dir, with_check("690099999999"))
    assert rc == 1 and data["refused"] == "unknown_product"


def test_weighed_product_by_plain_code_needs_a_label(data_dir):
    rc, data = lookup(data_dir, "2100101000003")  # the bananas' base code, no weight
    assert rc == 1 and data["refused"] == "needs_weighing"


def test_plu(data_dir):
    rc, data = lookup(data_dir, "4046")
    assert rc == 0 and data["name_en"] == "Avocado"


def test_text_output(data_dir):
    result = kiosk(data_dir, "catalog", "lookup", with_check("210010101234"))
    out = result.stdout
    assert "香蕉 / Bananas" in out and "1.234 kg" in out and "¥8.61" in out


def test_bad_import_exits_non_zero_and_keeps_catalogue(data_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name_zh,name_en,price\n123,奶,Milk,1.00\n", encoding="utf-8")
    result = kiosk(data_dir, "catalog", "import", str(bad), "--replace")
    assert result.returncode == 1
    assert "line 2" in result.stderr and "unchanged" in result.stderr
    assert lookup(data_dir, "6900000000014")[0] == 0


def test_bad_setting_names_it(data_dir):
    result = kiosk(data_dir, "db", "status", env={"KIOSK_STORE__CURRENCY": "ABC"})
    assert result.returncode == 1 and "store.currency" in result.stderr


def test_currency_change_without_reimport_is_caught(data_dir):
    result = kiosk(data_dir, "catalog", "lookup", "4046", env={"KIOSK_STORE__CURRENCY": "USD"})
    assert result.returncode == 1 and "re-import the catalogue" in result.stderr


def test_db_status(data_dir):
    out = kiosk(data_dir, "db", "status").stdout
    assert "m001_catalogue" in out and "promotions 7" in out


def test_every_command_has_help(data_dir):
    for args in (
        ["--help"],
        ["catalog", "import", "--help"],
        ["catalog", "lookup", "--help"],
        ["promotions", "import", "--help"],
        ["config", "show"],
        ["demo", "--help"],
        ["decode", "--help"],
    ):
        assert kiosk(data_dir, *args).returncode == 0, args


# --- kiosk decode ----------------------------------------------------------------------------
def test_decode_reports_codes_symbology_and_time_per_image(tmp_path):
    import cv2
    import numpy as np

    from devices.sim.frames import render_barcode

    ean = tmp_path / "ean.png"
    cv2.imwrite(str(ean), cv2.copyMakeBorder(render_barcode("6901234567892"), 30, 30, 30, 30,
                                             cv2.BORDER_CONSTANT, value=255))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), cv2.putText(np.full((200, 300), 255, np.uint8), "no code here",
                                        (10, 100), 0, 1.0, 0, 2))
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    out = run_kiosk("decode", "--json", str(ean), str(blank), str(broken))
    assert out.returncode == 1  # something did not scan
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["image"] for r in records] == [str(ean), str(blank), str(broken)]
    code = records[0]["codes"][0]
    assert (code["text"], code["symbology"], code["aim"]) == ("6901234567892", "EAN-13", "]E0")
    assert records[0]["ms"] > 0 and records[0]["passes"][0] == "zxing"
    assert records[1]["codes"] == [] and "zxing-rotate45" in records[1]["passes"]
    assert "not an image" in records[2]["error"]
    ok = run_kiosk("decode", str(ean))
    assert ok.returncode == 0 and "EAN-13 '6901234567892'" in ok.stdout


def test_decode_lookup_says_what_the_cart_would_get(tmp_path, data_dir):
    import cv2

    from devices.sim.frames import render_barcode

    image = tmp_path / "milk.png"
    cv2.imwrite(str(image), cv2.copyMakeBorder(render_barcode("6900000000014"), 30, 30, 30, 30,
                                               cv2.BORDER_CONSTANT, value=255))
    out = kiosk(data_dir, "decode", "--lookup", str(image))
    assert out.returncode == 0, out.stderr
    assert "Whole Milk 250ml" in out.stdout


# --- kiosk sim -------------------------------------------------------------------------------
def test_sim_scanner_is_a_serial_port_the_kiosk_reads(tmp_path):
    import time

    from devices.scanner import SerialScanner

    link = tmp_path / "scanner"
    proc = subprocess.Popen([KIOSK, "sim", "scanner", "--link", str(link), "--aim", "]E0",
                             "--delay", "1", "4006381333931"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stderr.readline()
        assert "virtual serial scanner on /dev/pts/" in banner and str(link) in banner
        scans = []
        reader = SerialScanner(str(link), scans.append)
        reader.start()
        end = time.monotonic() + 5
        while reader.health().state != "ok" and time.monotonic() < end:
            time.sleep(0.01)
        while len(scans) < 1 and time.monotonic() < end:  # the argument, after --delay
            time.sleep(0.01)
        proc.stdin.write("6901234567892\n96385074\n")
        proc.stdin.flush()
        while len(scans) < 3 and time.monotonic() < end:
            time.sleep(0.01)
        reader.stop()
        assert [(s.text, s.symbology) for s in scans] == [("4006381333931", "]E0"),
                                                          ("6901234567892", "]E0"),
                                                          ("96385074", "]E0")]
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0
    assert not link.exists()  # unplugged on exit


def test_sim_frames_writes_frames_the_decoder_reads(tmp_path):
    out = run_kiosk("sim", "frames", str(tmp_path), "6901234567892",
                    "https://example.com/p/1", "--size", "640x480")
    assert out.returncode == 0, out.stderr
    paths = out.stdout.split()
    assert len(paths) == 2 and all(Path(p).is_file() for p in paths)
    decoded = run_kiosk("decode", "--json", *paths)
    texts = [json.loads(line)["codes"][0]["text"] for line in decoded.stdout.splitlines()]
    assert texts == ["6901234567892", "https://example.com/p/1"]
    bad = run_kiosk("sim", "frames", str(tmp_path), "6901234567890")
    assert bad.returncode == 1 and "check digit" in bad.stderr
    tiny = run_kiosk("sim", "frames", str(tmp_path), "96385074", "--size", "100x80")
    assert tiny.returncode == 2 and "--size" in tiny.stderr


# --- kiosk printer / pass / sim printer -------------------------------------------------------
@pytest.fixture
def sim_printer(tmp_path):
    link = tmp_path / "printer"
    out = tmp_path / "receipts"
    proc = subprocess.Popen([KIOSK, "sim", "printer", "--out", str(out), "--link", str(link)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = proc.stderr.readline()
    assert "virtual printer on /dev/pts/" in banner
    yield link, out, proc
    proc.terminate()
    proc.wait(timeout=5)


def test_printer_status_against_the_virtual_printer(sim_printer, tmp_path):
    import time

    link, out, _ = sim_printer
    ok = run_kiosk("printer", "status", "--port", str(link), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["state"] == "ok"
    (out / "control").write_text("paper-out\n")
    time.sleep(0.4)  # the printer reads its control file every 0.1 s
    empty = run_kiosk("printer", "status", "--port", str(link), "--json")
    assert empty.returncode == 1
    report = json.loads(empty.stdout)
    assert report["state"] == "paper_out" and not report["can_print"]
    assert "screen" in report["shopper_notice_en"]
    gone = run_kiosk("printer", "status", "--port", str(tmp_path / "nope"))
    assert gone.returncode == 1 and gone.stdout.startswith("disconnected")


def test_printer_test_prints_a_readable_page_with_a_scannable_qr(sim_printer):
    import time

    link, out, _ = sim_printer
    result = run_kiosk("printer", "test", "--port", str(link))
    assert result.returncode == 0, result.stderr
    end = time.monotonic() + 5
    while not (out / "0001.png").exists() and time.monotonic() < end:
        time.sleep(0.05)
    text = (out / "0001.txt").read_text(encoding="utf-8")
    assert "打印测试 TEST" in text and "扫码购自助收银机" in text
    decoded = run_kiosk("decode", "--json", str(out / "0001.png"))
    assert json.loads(decoded.stdout)["codes"][0]["text"] == "lane-01 printer test"


def test_printer_commands_without_a_port_say_which_setting(tmp_path):
    out = kiosk(tmp_path, "printer", "status")
    assert out.returncode == 2 and "printer.port" in out.stderr


def test_pass_key_and_verify(tmp_path):
    from datetime import datetime, timedelta, timezone

    from app.config import load_settings
    from app.domain.exit_pass import ExitPass
    from app.services.exit_pass import PassSigner

    key = kiosk(tmp_path, "pass", "key")
    assert key.returncode == 0 and key.stdout.startswith('"lane-01" = "')
    settings = load_settings(data_dir=tmp_path, environ={})
    signer = PassSigner.from_file(settings.private_key_path)  # the key `pass key` created
    issued = int(datetime(2026, 11, 25, 10, 30, tzinfo=timezone(timedelta(hours=8))).timestamp())
    text = signer.sign(ExitPass("lane-01", "K1-000123", 6213, "CNY", 4, issued, True))
    ok = kiosk(tmp_path, "pass", "verify", text, "--json")
    assert ok.returncode == 0, ok.stderr
    verdict = json.loads(ok.stdout)
    assert verdict["valid"] and verdict["order_id"] == "K1-000123"
    assert verdict["total_minor"] == 6213 and verdict["exit_audit"] is True
    # The store's local time (store.time_zone, Asia/Shanghai by default), same instant.
    assert verdict["issued_at"] == "2026-11-25T10:30:00+08:00"
    human = kiosk(tmp_path, "pass", "verify", text)
    assert human.stdout.startswith("VALID") and "exit check" in human.stdout
    for bad, code in [(text[:-6] + "AAAAAA", "bad_signature"), ("EP1:XYZ", "malformed")]:
        out = kiosk(tmp_path, "pass", "verify", bad, "--json")
        assert out.returncode == 1 and json.loads(out.stdout)["code"] == code


# --- smoke tests: the installed console script, each in a process of its own -----------------
def test_smoke_help_in_a_real_process(tmp_path):
    result = real_kiosk(tmp_path, "--help")
    assert result.returncode == 0 and b"Scan & Go self-service checkout kiosk." in result.stdout
    for group in (b"catalog", b"printer", b"report", b"sim", b"staff"):
        assert group in result.stdout


def test_smoke_catalogue_import_and_lookup_in_real_processes(tmp_path):
    imported = real_kiosk(tmp_path, "catalog", "import", str(ROOT / "seeds/catalogue.csv"),
                          "--replace")
    assert imported.returncode == 0, imported.stderr
    assert b"imported" in imported.stdout
    found = real_kiosk(tmp_path, "catalog", "lookup", "6900000000014", "--json")
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert (data["name_zh"], data["line_price"]) == ("纯牛奶 250ml", "6.50")


def test_smoke_a_refused_code_exits_1_in_a_real_process(data_dir):
    result = real_kiosk(data_dir, "catalog", "lookup", "690\x1b[2J0000014")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "escape_character" in err and "请呼叫店员" in err
    assert "\x1b" not in err  # echoed escaped, never raw


def test_sim_pay_code_issues_a_payment_code_from_a_running_simulator(sim):
    """`kiosk sim pay code` asks the simulator's control API for a phone's payment code."""
    from app.domain.payment_code import wallet_of

    for wallet in ("wechat", "alipay", "unionpay"):
        done = run_kiosk("sim", "pay", "code", "--wallet", wallet, "--then", "password:3",
                         "--url", sim.url)
        assert done.returncode == 0, done.stderr
        code = done.stdout.strip()
        assert wallet_of(code) == wallet
        assert "password:3" in done.stderr and "valid 60 s" in done.stderr
    wrong = run_kiosk("sim", "pay", "code", "--wallet", "cash", "--url", sim.url)
    assert wrong.returncode != 0 and "no wallet 'cash'" in wrong.stderr
    nowhere = run_kiosk("sim", "pay", "code", "--url", "http://127.0.0.1:9")
    assert nowhere.returncode != 0 and "no payment simulator" in nowhere.stderr
