"""Screen benchmark: start-up to the attract screen, and resident memory over a long session.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python -m bench.ui_bench [--runs 5]
        [--sessions 60]

- Start-up: from launching the process to the first drawn frame of the attract
  screen with the lane's view on it (demo store, simulators, camera, printer
  and uploader all started), beside a bare Kivy app that draws one label, in
  the same run. Target (issue 7): at most 3 s.
- Memory: one kiosk process shops ``--sessions`` whole sessions (20 scans,
  then paid through the simulator, receipt printed by the virtual printer,
  back to attract), with the demo camera running throughout. Resident memory
  (VmRSS) is read after each session; the figure is its growth from session
  10 (warmed up) to the last, per session. Target: flat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = """
import os, sys, time
os.environ["KIVY_NO_ARGS"] = "1"
from kivy.config import Config
Config.set("graphics", "width", "1280"); Config.set("graphics", "height", "800")
from kivy.app import App
from kivy.core.window import Window
from kivy.uix.label import Label
class Bare(App):
    def build(self):
        Window.bind(on_flip=self.flipped)
        return Label(text="hello")
    def flipped(self, *_):
        print("READY", time.time() - float(os.environ["BENCH_T0"]), flush=True)
        self.stop()
Bare().run()
"""


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _child_env(tmp: Path) -> dict[str, str]:
    (tmp / "kivy").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "KIVY_HOME": str(tmp / "kivy"), "KIVY_NO_ARGS": "1",
            "KIVY_LOG_MODE": "PYTHON", "BENCH_T0": str(time.time())}


def timed_start(args: list[str], tmp: Path) -> float:
    env = _child_env(tmp)
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    for line in result.stdout.splitlines():
        if line.startswith("READY"):
            return float(line.split()[1])
    raise RuntimeError(f"no READY from {args}: {result.stderr[-2000:]}")


def startup(runs: int) -> dict[str, float]:
    kiosk, bare = [], []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "bare.py"  # Kivy's App wants a source file, not -c
            script.write_text(BARE, encoding="utf-8")
            bare.append(timed_start([sys.executable, str(script)], Path(tmp)))
            kiosk.append(timed_start([sys.executable, "-m", "bench.ui_bench", "--child",
                                      "startup", "--data", str(Path(tmp) / f"data{i}")],
                                     Path(tmp)))
    return {"kiosk_s": statistics.median(kiosk), "bare_s": statistics.median(bare),
            "kiosk_max_s": max(kiosk)}


# -- the child processes: flows run by the screen driver (app/ui/driver.py) ------------------
def startup_flow(d):  # type: ignore[no-untyped-def]
    from kivy.core.window import Window

    yield from d.until(lambda: d.screen == "attract" and d.app.view.version > 0, "attract",
                       timeout=60)
    shown: list[float] = []
    Window.bind(on_flip=lambda *_: shown.append(time.time()))
    Window.canvas.ask_update()
    yield from d.until(lambda: shown, "a drawn frame")
    print("READY", shown[0] - float(os.environ["BENCH_T0"]), flush=True)


def memory_flow(sessions: int):  # type: ignore[no-untyped-def]
    from app.lane import Lane

    codes = ["6900000000014", "6900000000045", "6900000001561", "6900000000021",
             "2100109012343"]

    def flow(d):  # type: ignore[no-untyped-def]
        samples = []
        yield from d.screen_is("attract")
        for _ in range(sessions):
            for i in range(20):
                d.app.post(Lane.typed_code, codes[i % len(codes)])
            yield from d.until(lambda: d.app.view.priced is not None and
                               d.app.view.priced.item_count == 20, "20 scans")
            d.app.do("pay")
            yield from d.until(lambda: d.app.view.wallets, "wallets")
            d.app.do("choose_wallet", "wechat")
            yield from d.until(lambda: d.app.view.payment and d.app.view.payment.qr_payload,
                               "QR", timeout=20)
            d.app.demo_phone("pay")
            yield from d.screen_is("receipt", timeout=20)
            yield from d.until(lambda: d.app.view.receipt.printed is not None, "printed",
                               timeout=20)
            d.app.do("done")
            yield from d.screen_is("attract")
            samples.append(rss_kib())
        print("SAMPLES", json.dumps(samples), flush=True)
    return flow


def run_child(flow, data_dir: Path) -> int:  # type: ignore[no-untyped-def]
    """The demo kiosk in ``data_dir`` (demo store and staff, the demo rig's simulators and
    camera, no sound), with ``flow`` run on its screen; returns the exit status."""
    from app import bootstrap
    from app.config import load_settings
    from app.services.clock import OffsetClock
    from app.ui import driver

    settings = load_settings(data_dir=data_dir)
    settings.kiosk.language = "zh"  # the screens the figures were measured on
    settings.ui.sounds = False  # no sound card here
    clock = OffsetClock()
    _kiosk, rig, runtime = bootstrap.start_demo(settings, clock)
    try:
        return driver.run(flow, runtime, rig=rig, clock=clock)
    finally:
        rig.stop()


def memory(sessions: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = _child_env(Path(tmp))
        result = subprocess.run(
            [sys.executable, "-m", "bench.ui_bench", "--child", "memory", "--sessions",
             str(sessions), "--data", str(Path(tmp) / "data")],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    samples = next((json.loads(line.split(" ", 1)[1]) for line in result.stdout.splitlines()
                    if line.startswith("SAMPLES")), None)
    if not samples:
        raise RuntimeError(result.stderr[-3000:])
    warm = min(10, len(samples) - 1)
    growth = (samples[-1] - samples[warm]) / max(1, len(samples) - 1 - warm)
    return {"sessions": len(samples), "scans": 20 * len(samples),
            "every_10": [round(x / 1024, 1) for x in samples[::10]],
            "rss_warm_mib": samples[warm] / 1024, "rss_end_mib": samples[-1] / 1024,
            "growth_kib_per_session": growth,
            "rss_min_mib": min(samples[warm:]) / 1024, "rss_max_mib": max(samples[warm:]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--child", choices=["startup", "memory"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.child:
        flow = startup_flow if args.child == "startup" else memory_flow(args.sessions)
        sys.exit(run_child(flow, args.data))
    from bench.scanning_bench import machine

    print(f"machine: {machine()}")
    s = startup(args.runs)
    print(f"start-up to attract, median of {args.runs}: kiosk {s['kiosk_s']:.2f} s "
          f"(max {s['kiosk_max_s']:.2f} s), bare Kivy app {s['bare_s']:.2f} s, "
          f"ratio {s['kiosk_s'] / s['bare_s']:.1f}x")
    m = memory(args.sessions)
    print(f"memory over {m['sessions']} sessions ({m['scans']} scans, each paid and printed): "
          f"RSS {m['rss_warm_mib']:.1f} MiB after 10 sessions, {m['rss_end_mib']:.1f} MiB at "
          f"the end (range {m['rss_min_mib']:.1f}-{m['rss_max_mib']:.1f}), "
          f"{m['growth_kib_per_session']:+.0f} KiB per session")
    print(f"RSS MiB every 10 sessions: {m['every_10']}")
    if args.json:
        args.json.write_text(json.dumps({"startup": s, "memory": m}))


if __name__ == "__main__":
    main()
