"""The kiosk's recent starts, and whether each ended cleanly: the restart-loop limit.

systemd restarts a kiosk that dies (``Restart=always``). A kiosk that dies again at
once (a fault that survives a restart) would flap: the screen flickering between a
half-started lane and black, every two seconds, for as long as nobody looks. So each
start of ``kiosk run``/``kiosk demo`` is written to ``<data dir>/starts.json`` before
anything that could fail is tried, and marked clean when the screen stops in order
(SIGTERM, Ctrl-C). A start that finds the last ``limit`` starts all ended uncleanly
(a crash, SIGKILL, the watchdog's abort, a power cut) within ``window_s`` holds: the
kiosk shows the out-of-order screen ("restarting repeatedly: see the journal") and
tries nothing until staff clear it (``kiosk restarts clear``). The hold is kept in
the same file, so a restart or a reboot does not lift it by itself.

Times are the **wall clock** (Unix seconds). The record must span process lifetimes
and reboots: ``time.monotonic()`` restarts with each boot and means nothing across
processes; ``CLOCK_BOOTTIME`` spans processes but restarts at each boot, so a kiosk
whose fault reboots the PC (a kernel panic, a hardware watchdog) would never be
counted. A wall-clock step only moves the window: a step forward forgets older
crashes (the limit is reached later), a start that reads as in the future after a
step back counts as recent (held sooner; staff clear it). The file is plain JSON,
written whole (a temporary file, fsync, rename), not the database: the database may
be the very thing that fails.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STARTS_FILE = "starts.json"
KEEP_RUNS = 50


@dataclass(frozen=True)
class StartVerdict:
    """What the record says at a start: ``unclean``: the starts in a row before this one
    that ended uncleanly within the window (since the last clear); ``holding``: the
    kiosk must not try again (the hold's ``since``, Unix seconds, and ``reason``)."""

    unclean: int
    holding: bool
    since: float | None = None
    reason: str = ""


class StartRecord:
    """``<data dir>/starts.json``: ``{"runs": [{"at": unix_s, "pid": n, "clean": bool}],
    "hold": {"since": unix_s, "reason": str} | null}``, newest run last, the last
    ``KEEP_RUNS`` kept. Call under the data directory's lock (app.storage.lock): one
    kiosk writes it at a time. A record that cannot be read is started afresh (logged);
    one that cannot be written is logged and never stops the kiosk."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STARTS_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("runs"), list):
                return data
            log.error("%s is not a start record: started afresh", self.path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.error("%s cannot be read (%s): started afresh", self.path, exc)
        return {"runs": [], "hold": None}

    def _write(self, data: dict[str, Any]) -> None:
        data["runs"] = data["runs"][-KEEP_RUNS:]
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("the start record %s could not be written: %s", self.path, exc)

    def verdict(self, now: float, limit: int, window_s: float, *,
                running_pid: int | None = None) -> StartVerdict:
        """The record as it stands, for ``now`` (Unix seconds): nothing written.
        ``running_pid``: this process, whose own run (still going) is not counted."""
        data = self._read()
        hold = data.get("hold")
        unclean = 0
        runs = data["runs"]
        if runs and running_pid is not None and runs[-1].get("pid") == running_pid:
            runs = runs[:-1]
        for run in reversed(runs):
            if run.get("clean") or now - float(run.get("at", 0)) > window_s:
                break
            unclean += 1
        if hold:
            return StartVerdict(unclean, True, float(hold["since"]), str(hold["reason"]))
        return StartVerdict(unclean, unclean >= limit)

    def begin(self, now: float, pid: int, limit: int, window_s: float) -> StartVerdict:
        """This start, at ``now`` by process ``pid``: the verdict on the starts before it
        (``verdict``); when it holds, the hold is written (its reason names the count and
        the window) and this start is not counted (nothing is tried); else this start is
        added as not yet ended cleanly."""
        v = self.verdict(now, limit, window_s)
        data = self._read()
        if v.holding:
            if not data.get("hold"):
                reason = (f"{v.unclean} starts in a row ended uncleanly within "
                          f"{window_s / 60:g} min")
                data["hold"] = {"since": now, "reason": reason}
                self._write(data)
                return StartVerdict(v.unclean, True, now, reason)
            return v
        data["runs"].append({"at": now, "pid": pid, "clean": False})
        self._write(data)
        return v

    def end_clean(self, pid: int) -> None:
        """The run of ``pid`` stopped in order (its newest entry): it no longer counts."""
        data = self._read()
        for run in reversed(data["runs"]):
            if run.get("pid") == pid:
                run["clean"] = True
                self._write(data)
                return

    def clear(self, now: float) -> bool:
        """Staff lift the hold and forget the unclean starts before ``now``; True if there
        was a hold or an unclean start to forget."""
        data = self._read()
        changed = bool(data.get("hold")) or any(not r.get("clean") for r in data["runs"][-1:])
        data["hold"] = None
        data["runs"].append({"at": now, "pid": 0, "clean": True, "cleared": True})
        self._write(data)
        return changed


__all__ = ["STARTS_FILE", "StartRecord", "StartVerdict"]
