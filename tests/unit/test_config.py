from pathlib import Path

import pytest

from app.config import (
    SettingsError,
    default_data_dir,
    describe,
    example_toml,
    load_settings,
    settings_markdown,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_file_or_environment(tmp_path):
    s = load_settings(data_dir=tmp_path, environ={})
    assert s.store.currency == "CNY"
    assert s.store.tax_mode == "inclusive"
    assert s.database_path == tmp_path / "kiosk.db"


def test_data_dir_from_environment_and_default(tmp_path):
    s = load_settings(environ={"KIOSK_DATA_DIR": str(tmp_path / "d")})
    assert s.data_dir == tmp_path / "d"
    assert default_data_dir({"XDG_DATA_HOME": "/x"}) == Path("/x/scan-and-go-kiosk")


def test_file_then_environment_precedence(tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text('[store]\ncurrency = "USD"\ntax_mode = "exclusive"\n[ui]\nwidth = 1024\n')
    s = load_settings(
        cfg, tmp_path, environ={"KIOSK_UI__WIDTH": "800", "KIOSK_UI__FULLSCREEN": "yes"}
    )
    assert s.store.currency == "USD"
    assert s.ui.width == 800
    assert s.ui.fullscreen is True


def test_config_in_data_dir_is_found(tmp_path):
    (tmp_path / "kiosk.toml").write_text('[kiosk]\nlane_id = "lane-07"\n')
    assert load_settings(data_dir=tmp_path, environ={}).kiosk.lane_id == "lane-07"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('[store]\ncurrency = "XXX"\n', {}, "store.currency"),
        ('[store]\ncurency = "USD"\n', {}, "unknown setting store.curency"),
        ("[shop]\n", {}, "unknown section"),
        ("[ui]\nwidth = 'wide'\n", {}, "ui.width must be a whole number"),
        ("", {"KIOSK_UI__WIDTH": "wide"}, "KIOSK_UI__WIDTH"),
        ("", {"KIOSK_UI__FULLSCREEN": "maybe"}, "ui.fullscreen"),
        ('[store]\ntax_classes = { standard = "1.5" }\n', {}, "store.tax_classes.standard"),
        ('[barcodes]\nrcn_region = "mars"\n', {}, "barcodes.rcn_layouts"),
        (
            "[barcodes]\nrcn_layouts = [{prefix='21', pattern='PPX', measure='weight'}]\n",
            {},
            "pattern must be 13",
        ),
        ("not toml [", {}, "not valid TOML"),
        ('[camera]\nsource = "webcam"\n', {}, "camera.source"),
        ('[camera]\nsource = "folder"\n', {}, "camera.folder must name"),
        ("[camera]\nguide_width = 1.5\n", {}, "camera.guide_width"),
        ("", {"KIOSK_CAMERA__GUIDE_HEIGHT": "tall"}, "KIOSK_CAMERA__GUIDE_HEIGHT"),
        ("[camera]\nexposure = true\n", {}, "camera.exposure must be a number"),
        ('[decoder]\nsymbologies = ["EAN-13", "Aztec"]\n', {}, "decoder.symbologies"),
        ('[decoder]\npipeline = "fast"\n', {}, "decoder.pipeline"),
        ('[scanner]\nserial_suffix = "ETX"\n', {}, "scanner.serial_suffix"),
        ("", {"KIOSK_SCANNER__SERIAL_BAUDRATE": "9601"}, "scanner.serial_baudrate"),
        ("", {"KIOSK_SCANNER__RESCAN_AFTER_MS": "-5"}, "scanner.rescan_after_ms"),
        ("", {"KIOSK_SCANNER__REJECT_BURST": "0"}, "scanner.reject_burst"),
        ("", {"KIOSK_DECODER__RECHECK_MS": "0"}, "decoder.recheck_ms"),
        ("", {"KIOSK_KIOSK__LANE_ID": "收银-1"}, "kiosk.lane_id must be 1-32 ASCII"),
        ("", {"KIOSK_PRINTER__PAPER_MM": "76"}, "printer.paper_mm"),
        ('[printer]\nrtscts = true\ndsrdtr = true\n', {}, "choose one flow control"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, toml, env, message):
    cfg = tmp_path / "k.toml"
    cfg.write_text(toml)
    with pytest.raises(SettingsError, match=message):
        load_settings(cfg, tmp_path, environ=env)


def test_device_settings_from_file_and_environment(tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text('[camera]\nsource = "generated"\ncodes = ["6901234567892"]\nguide_width = 1\n')
    s = load_settings(cfg, tmp_path, environ={"KIOSK_CAMERA__EXPOSURE": "-6.5",
                                              "KIOSK_SCANNER__SERIAL_PORT": "/dev/ttyACM0"})
    assert s.camera.source == "generated" and s.camera.codes == ["6901234567892"]
    assert s.camera.guide_width == 1.0 and s.camera.exposure == -6.5
    assert s.scanner.serial_port == "/dev/ttyACM0"
    assert s.decoder.pipeline == "combined" and "EAN-13" in s.decoder.symbologies


def test_missing_config_file_is_reported(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", tmp_path, environ={})


def test_every_setting_is_documented():
    for section, name, _default, doc in describe():
        assert len(doc) > 10, f"{section}.{name} needs a real description"


def test_example_file_is_current_and_loads(tmp_path):
    example = ROOT / "seeds" / "kiosk.example.toml"
    assert example.read_text(encoding="utf-8") == example_toml(), (
        "regenerate: kiosk config example > seeds/kiosk.example.toml"
    )
    defaults = load_settings(data_dir=tmp_path, environ={})
    from_example = load_settings(example, tmp_path, environ={})
    assert from_example == defaults


def test_settings_guide_is_current():
    guide = ROOT / "docs" / "settings.md"
    assert guide.read_text(encoding="utf-8") == settings_markdown(), (
        "regenerate: kiosk config docs > docs/settings.md"
    )
