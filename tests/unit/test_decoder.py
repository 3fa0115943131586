"""The decoder pipeline on rendered codes and camera-like frames (the real photos: integration)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from devices.decoder import (
    Decoder,
    FrameDecoder,
    GuideBox,
    Read,
    drop_conflicts,
    ean13_form,
    load_image,
    rotate,
)
from devices.sim.frames import Scene, render_barcode


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene()


def on_white(image: np.ndarray, pad: int = 40) -> np.ndarray:
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)


@pytest.mark.parametrize(
    ("code", "symbology", "text"),
    [
        ("6901234567892", "EAN-13", "6901234567892"),
        ("96385074", "EAN-8", "96385074"),
        ("036000291452", "UPC-A", "0036000291452"),  # one 13-digit form for both libraries
        ("01234565", "UPC-E", "0012345000065"),  # UPC-E expanded to its UPC-A, 13 digits
        ("KIOSK-TEST-42", "Code 128", "KIOSK-TEST-42"),
        ("https://id.gs1.org/01/06901234567892", "QR Code", "https://id.gs1.org/01/06901234567892"),
    ],
)
@pytest.mark.parametrize("pipeline", ["combined", "zxing", "zbar"])
def test_every_retail_symbology_reads_with_every_pipeline(code, symbology, text, pipeline):
    result = Decoder(pipeline).read_image(on_white(render_barcode(code, symbology)))
    assert [(r.text, r.symbology) for r in result.reads] == [(text, symbology)]
    assert result.reads[0].aim.startswith("]")


def test_the_aim_identifier_is_what_a_hardware_scanner_would_send():
    read = Decoder().read_image(on_white(render_barcode("6901234567892"))).reads[0]
    assert read.scanner_text == "]E06901234567892"


def test_both_libraries_forms_of_upc_become_one_13_digit_form():
    assert ean13_form("036000291452", "UPC-A") == ("0036000291452", "UPC-A")  # zbar
    assert ean13_form("0036000291452", "EAN-13") == ("0036000291452", "UPC-A")  # zxing-cpp
    assert ean13_form("01234565", "UPC-E") == ("0012345000065", "UPC-E")
    assert ean13_form("6901234567892", "EAN-13") == ("6901234567892", "EAN-13")
    assert ean13_form("ABC", "Code 128") == ("ABC", "Code 128")


def test_a_code_at_45_degrees_is_read_by_the_rotated_retry():
    image = rotate(on_white(render_barcode("6901234567892")), 45)
    result = Decoder().read_image(image)
    assert [r.text for r in result.reads] == ["6901234567892"]
    assert "zxing-rotate45" in result.passes or result.reads[0].engine == "zbar"


def test_symbologies_outside_the_list_are_not_read():
    decoder = Decoder(symbologies=["EAN-13"])
    assert decoder.read_image(on_white(render_barcode("KIOSK-1", "Code 128"))).reads == []


def test_an_unknown_symbology_or_pipeline_is_refused_with_the_setting_name():
    with pytest.raises(ValueError, match="decoder.symbologies"):
        Decoder(symbologies=["Aztec Rune"])
    with pytest.raises(ValueError, match="decoder.pipeline"):
        Decoder("fastest")


def read(text: str, box: tuple[int, int, int, int], symbology: str = "EAN-13") -> Read:
    return Read(text, symbology, "]E0", "zbar", "zbar", box)


def test_two_different_linear_codes_on_the_same_bars_are_both_dropped():
    # Two scan lines of one label, a few pixels apart: zbar's boxes do not even touch.
    a = read("9780441014989", (33, 130, 167, 45))
    b = read("8882412014989", (116, 46, 88, 81))
    kept, dropped = drop_conflicts([a, b])
    assert kept == [] and set(dropped) == {a, b}


def test_codes_in_different_places_and_repeated_reads_are_kept():
    a = read("6901234567892", (0, 0, 100, 40))
    far = read("96385074", (600, 400, 60, 30), "EAN-8")
    qr1 = read("hello", (0, 0, 50, 50), "QR Code")
    qr2 = read("world", (10, 10, 50, 50), "QR Code")  # a QR inside a QR is a real design
    kept, dropped = drop_conflicts([a, a, far, qr1, qr2])
    assert kept == [a, far, qr1, qr2] and dropped == []


def test_an_ean_beside_a_gs1_128_label_is_two_codes():
    ean = read("6901234567892", (0, 0, 200, 80))
    label = read("0106901234567892\x1d10LOT1", (0, 90, 300, 60), "Code 128")
    kept, dropped = drop_conflicts([ean, label])
    assert kept == [ean, label] and dropped == []


def test_unreadable_files_say_why(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        load_image(str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match="cannot be read"):
        load_image(str(tmp_path / "missing.png"))


# --- FrameDecoder --------------------------------------------------------------------------
class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_still_empty_scene_is_skipped_until_the_recheck_interval(scene):
    ticks = Ticks()
    decoder = FrameDecoder(Decoder(), retry_budget=0.0, recheck_ms=1000, clock=ticks)
    rng = np.random.default_rng(0)
    results = []
    for i in range(45):  # 1.5 s at 30 fps; sensor noise differs on every frame
        ticks.now = i / 30
        results.append(decoder.decode(scene.frame(None, rng=rng)))
    decoded = [i for i, r in enumerate(results) if r is not None]
    assert decoded == [0, 30]  # the first frame, then one look a second later
    assert decoder.skipped == 43


def test_every_retry_pass_looks_at_a_still_view_once_then_it_is_skipped(scene):
    ticks = Ticks()
    decoder = FrameDecoder(Decoder(), retry_budget=1.0, recheck_ms=10_000, clock=ticks)
    rng = np.random.default_rng(0)
    passes = []
    for i in range(20):
        ticks.now = i / 30
        result = decoder.decode(scene.frame(None, rng=rng))
        passes.append(result.passes if result else None)
    retries = [p for p in Decoder().passes[1:]]
    # Frame 0: both orientations and the first retry; then one untried retry a frame.
    assert passes[0] == ["zxing-upright", "zxing-turned", retries[0].name]
    assert passes[1:len(retries)] == [[r.name] for r in retries[1:]]
    assert passes[len(retries):] == [None] * (20 - len(retries))


def test_a_label_held_at_45_degrees_is_found_while_held_still(scene):
    ticks = Ticks()
    decoder = FrameDecoder(Decoder(), retry_budget=1.0, clock=ticks)
    rng = np.random.default_rng(4)
    frame = scene.frame("6901234567892", angle=45, rng=rng)
    found_at = None
    for i in range(12):
        ticks.now = i / 30
        result = decoder.decode(frame)
        if result and result.reads:
            found_at = i
            break
    assert found_at is not None and found_at < 10


def test_a_code_appearing_in_a_still_scene_is_read_on_its_first_frame_and_every_frame(scene):
    ticks = Ticks()
    decoder = FrameDecoder(Decoder(), clock=ticks)
    rng = np.random.default_rng(1)
    decoder.decode(scene.frame(None, rng=rng))
    texts = []
    for i in range(1, 6):
        ticks.now = i / 30
        result = decoder.decode(scene.frame("6901234567892", rng=rng))
        assert result is not None  # a changed view is never skipped
        texts.append([r.text for r in result.reads])
    assert texts == [["6901234567892"]] * 5


def test_a_code_held_sideways_is_read_at_once_and_the_turned_pass_then_leads(scene):
    ticks = Ticks()
    decoder = FrameDecoder(Decoder(), clock=ticks)
    rng = np.random.default_rng(2)
    results = []
    for i in range(4):
        ticks.now = i / 30
        results.append(decoder.decode(scene.frame("6901234567892", angle=90, rng=rng)))
    assert all([r.text for r in res.reads] == ["6901234567892"] for res in results)
    assert results[0].passes == ["zxing-upright", "zxing-turned"]
    assert all(res.passes == ["zxing-turned"] for res in results[1:])  # one pass per frame


def test_codes_outside_the_guide_box_are_not_read(scene):
    decoder = FrameDecoder(Decoder(), GuideBox(0.4, 0.4))
    corner = scene.frame("6901234567892", offset=(-450, -230), angle=0)
    centre = scene.frame("6901234567892", angle=0)
    assert decoder.decode(corner).reads == []
    result = FrameDecoder(Decoder(), GuideBox(0.4, 0.4)).decode(centre)
    assert [r.text for r in result.reads] == ["6901234567892"]
    x, y, w, h = result.reads[0].box  # boxes are in frame coordinates, inside the guide box
    assert 384 <= x and x + w <= 896 and 216 <= y and y + h <= 504


def test_retry_passes_stay_inside_their_cpu_budget(scene):
    ticks = Ticks()
    decoder = FrameDecoder(Decoder(), retry_budget=0.0, clock=ticks)
    rng = np.random.default_rng(3)
    for i in range(10):
        ticks.now = i / 30
        result = decoder.decode(Scene(seed=50 + i).frame(None, rng=rng))
        # Budget 0: the two orientations only, never a retry pass.
        assert result is not None and result.passes == ["zxing-upright", "zxing-turned"]
    generous = FrameDecoder(Decoder(), retry_budget=1.0, clock=ticks)
    passes = [generous.decode(Scene(seed=80 + i).frame(None, rng=rng)).passes[2:]
              for i in range(3)]
    # A scene changing every frame: one retry a frame, taking turns.
    assert passes == [["zbar"], ["zxing-upscale"], ["zxing-contrast"]]


def test_a_bad_guide_box_is_refused():
    with pytest.raises(ValueError, match="guide box"):
        GuideBox(0.05, 0.5)
