"""Import this before python-escpos: it gives escpos a lasting cache for its printer profiles.

python-escpos parses a 1 MB YAML file of printer capabilities on import (about
0.3 s here, more on a slow kiosk CPU) and pickles the result into
``ESCPOS_CAPABILITIES_PICKLE_DIR``, which defaults to a *new* temporary
directory on every start: the cache never hits and a directory is left behind
each time. Pointing it at a fixed per-user cache directory makes every start
after the first load the pickle instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scan-and-go" / "escpos"


if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
    try:
        _cache_dir().mkdir(parents=True, exist_ok=True)
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(_cache_dir())
    except OSError:
        pass  # a read-only home: escpos falls back to its temporary directory
