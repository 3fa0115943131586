"""The real barcode photo set: loading it, and scoring a decoder pipeline on it.

The set (zxing-cpp's test photos of EAN-13/8, UPC-A/E, Code 128 and QR) lives
outside the repository, at ``../shared/samples/barcodes`` beside the checkout,
or wherever ``KIOSK_BARCODE_SAMPLES`` points. Each image has a ``.txt`` beside
it with the text it holds.

Scoring follows the kiosk's own rule for what reaches a cart: a still photo is
read twice, once as taken and once as the next camera frame would show it
(slightly moved, scaled and with fresh sensor noise), and only a code read in
both counts as accepted; of those, only text the kiosk takes as a product
code (``clean_scan`` + ``interpret``) could reach a cart.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.domain.barcodes import BarcodeRules, interpret
from app.domain.rejections import Refused
from app.domain.scan_input import clean_scan
from devices.decoder import Decoder, load_image

REPO = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def samples_dir() -> Path:
    return Path(os.environ.get("KIOSK_BARCODE_SAMPLES", REPO.parent / "shared/samples/barcodes"))


@dataclass(frozen=True)
class Sample:
    path: Path
    expected: str

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def load_samples(root: Path | None = None) -> list[Sample]:
    """Every image with a ``.txt`` of its expected text, in a stable order."""
    root = root or samples_dir()
    out = []
    for path in sorted(root.glob("*/*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        txt = path.with_suffix(".txt")
        if txt.is_file():
            out.append(Sample(path, txt.read_bytes().decode("utf-8", errors="replace")))
    return out


def next_frame(gray: np.ndarray, seed: int) -> np.ndarray:
    """The same scene one camera frame later: moved <=1.5 px, scaled <=3%, new noise."""
    rng = np.random.default_rng(seed)
    h, w = gray.shape
    scale = 1 + rng.uniform(-0.03, 0.03)
    dx, dy = rng.uniform(-1.5, 1.5, 2)
    m = np.float32([[scale, 0, dx + (1 - scale) * w / 2], [0, scale, dy + (1 - scale) * h / 2]])
    moved = cv2.warpAffine(gray, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    noisy = moved.astype(np.float32) + rng.normal(0, 2.5, moved.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def is_product_code(text: str, aim: str, rules: BarcodeRules) -> bool:
    try:
        interpret(clean_scan(aim + text), rules)
    except Refused:
        return False
    return True


@dataclass
class Score:
    pipeline: str
    images: int = 0
    read: int = 0  # expected text among the reads of the photo itself
    wrong: int = 0  # photos with at least one read that is not the expected text
    accepted: int = 0  # expected text read in both frames
    wrong_accepted: list[str] = field(default_factory=list)  # "image: text" in both frames
    wrong_to_cart: list[str] = field(default_factory=list)  # ...and taken as a product code
    ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms) if self.ms else 0.0


def score(pipeline: str, samples: list[Sample], rules: BarcodeRules) -> Score:
    decoder = Decoder(pipeline)
    result = Score(pipeline, images=len(samples))
    for i, sample in enumerate(samples):
        gray = load_image(str(sample.path))
        first = decoder.read_image(gray)
        result.ms.append(first.ms)
        texts = {r.text for r in first.reads}
        result.read += sample.expected in texts
        result.wrong += any(t != sample.expected for t in texts)
        second = {r.text for r in decoder.read_image(next_frame(gray, i)).reads}
        result.accepted += sample.expected in texts & second
        for r in first.reads:
            if r.text != sample.expected and r.text in second:
                result.wrong_accepted.append(f"{sample.name}: {r.text[:40]!r}")
                if is_product_code(r.text, r.aim, rules):
                    result.wrong_to_cart.append(f"{sample.name}: {r.text}")
    return result
