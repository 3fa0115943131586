"""The attract screen opens in a real Kivy window and renders (run under Xvfb by ./run.sh test)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIOSK = str(Path(sys.executable).with_name("kiosk"))

pytestmark = pytest.mark.ui


@pytest.fixture
def display():
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display: ./run.sh test runs the suite under Xvfb")


def png_size_and_colours(path: Path) -> tuple[tuple[int, int], int]:
    import cv2  # OpenCV is a kiosk dependency already; it reads PNGs for this check

    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a PNG"
    colours = len({tuple(px) for px in image[::8, ::8].reshape(-1, 3).tolist()})
    return (image.shape[1], image.shape[0]), colours


def test_demo_opens_attract_screen_and_screenshots(tmp_path, display):
    shot = tmp_path / "attract.png"
    env = {
        **os.environ,
        "KIOSK_DATA_DIR": str(tmp_path / "data"),
        "KIVY_HOME": str(tmp_path / "kivy"),
        "KIVY_NO_ARGS": "1",
    }
    result = subprocess.run(
        [KIOSK, "demo", "--screenshot", str(shot)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    size, colours = png_size_and_colours(shot)
    assert size == (1280, 800)
    assert colours > 20, "the screenshot is blank"
    assert b"loaded 223 products" in result.stdout
