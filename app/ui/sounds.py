"""The kiosk's sounds: accepted read, rejected read, payment success (assets/sounds/*.wav).

A kiosk without a sound card (or a test machine) still runs: a sound that
cannot load is logged once and skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NAMES = ("accepted", "rejected", "paid")


class Sounds:
    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.folder = folder
        self.enabled = enabled
        self._loaded: dict[str, Any] = {}
        self.played: list[str] = []  # what was asked for, in order (UI tests read it)

    def play(self, name: str) -> None:
        self.played.append(name)
        if not self.enabled:
            return
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        sound = self._loaded[name]
        if sound is not None:
            sound.stop()
            sound.play()

    def _load(self, name: str) -> Any:
        from kivy.core.audio import SoundLoader

        path = self.folder / f"{name}.wav"
        try:
            sound = SoundLoader.load(str(path))
        except Exception:  # noqa: BLE001 - no audio device: the kiosk runs silent
            sound = None
        if sound is None:
            log.warning("sound %s cannot be played here (no audio output?)", path.name)
        return sound
