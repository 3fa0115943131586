"""Two source trees side by side, in one run: ``python -m bench.compare OLD_TREE NEW_TREE``.

For checking that a change (say, a refactor) costs nothing: the figures that
move with the application code, measured for an old and a new checkout of
this project, interleaved so that the machine's noise hits both alike:

- start-up to the attract screen (``bench.ui_bench``'s start-up measure, one
  kiosk and one bare Kivy app per run; needs a display, else ``xvfb-run``);
- scan-to-cart latency p50/p95 (``bench.scanning_bench``'s part (c): the real
  camera thread on a simulated 30 fps camera to a cart line), the kiosk's
  combined decoder beside zxing-cpp alone;
- the headless long session (``bench.session_bench``: per-scan cost through
  the session and the outbox, resident memory).

Each tree runs its *own* bench code against its own ``app`` and ``devices``:
every child runs with ``cwd`` and ``PYTHONPATH`` set to that tree, and
reports which ``app`` it imported (the run stops if it is not the tree's).
The other trees are only read: children write temporary data in a temporary
folder, and byte code goes to a cache folder there too
(``PYTHONPYCACHEPREFIX``), never into a tree. One untimed warm-up per tree
fills that cache first, so start-up is measured as a deployed kiosk starts.

Rounds alternate which tree goes first. The output is a Markdown table: for
each figure, each tree's median over its runs, the ratio new/old, the spread
of each tree's repeated runs ((max - min) / median: the noise), and a
verdict: "worse" only if every new run is worse (higher) than every old run
and the ratio exceeds the larger spread; "better" the other way round;
otherwise "same within noise". ``--json`` also writes every single run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTUP = """
import json, app
from bench.ui_bench import startup
print("RESULT", json.dumps({"app": app.__file__, **startup(1)}), flush=True)
"""

SCAN_TO_CART = """
import json, sys, tempfile
from pathlib import Path
import app
from app import bootstrap
from app.config import load_settings
from bench import scanning_bench as sb
with tempfile.TemporaryDirectory() as tmp:
    kiosk = bootstrap.build(load_settings(data_dir=Path(tmp), environ={}))
    bootstrap.seed_demo_store(kiosk)
    codes = sb.demo_codes(kiosk, int(sys.argv[1]))
    out = {p: sb.scan_to_cart(kiosk, p, codes) for p in ("zxing", "combined")}
    kiosk.close()
print("RESULT", json.dumps({"app": app.__file__, **out}), flush=True)
"""

SESSION = """
import json, sys, app
from bench import session_bench
print("RESULT", json.dumps({"app": app.__file__, **session_bench.run(int(sys.argv[1]))}),
      flush=True)
"""

# (figure, unit, part, where in a run's result); lower is better for all
FIGURES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("start-up to the attract screen", "s", "startup", ("kiosk_s",)),
    ("  bare Kivy app (baseline)", "s", "startup", ("bare_s",)),
    ("scan-to-cart p50, kiosk decoder", "ms", "scan", ("combined", "p50 ms")),
    ("scan-to-cart p95, kiosk decoder", "ms", "scan", ("combined", "p95 ms")),
    ("  scan-to-cart p50, zxing-cpp alone (baseline)", "ms", "scan", ("zxing", "p50 ms")),
    ("  scan-to-cart p95, zxing-cpp alone (baseline)", "ms", "scan", ("zxing", "p95 ms")),
    ("session: scan p50 (cart + event, one transaction)", "ms", "session", ("scan_ms_p50",)),
    ("session: scan p95", "ms", "session", ("scan_ms_p95",)),
    ("  session: plain sqlite3 insert p50 (baseline)", "ms", "session",
     ("baseline_insert_ms_p50",)),
    ("session: resident memory at the end", "MiB", "session", ("rss_end_mib",)),
]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Runner:
    """Runs one measuring snippet in one tree and returns its RESULT dict."""

    def __init__(self, work: Path, python: str) -> None:
        self.work = work
        self.python = python
        self.pycache = work / "pycache"

    def run(self, tree: Path, snippet: str, args: list[str], display: bool) -> dict[str, Any]:
        """``snippet`` run by ``python -c`` in ``tree`` with ``args``; its ``RESULT`` JSON.

        Raises RuntimeError if the child fails, prints no result, or imported
        ``app`` from anywhere but ``tree``.
        """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=str(tree), KIVY_NO_ARGS="1", PYTHONPYCACHEPREFIX=str(self.pycache),
                   TMPDIR=str(self.work))
        command = [self.python, "-c", snippet, *args]
        if display and not os.environ.get("DISPLAY"):
            if shutil.which("xvfb-run") is None:
                raise RuntimeError("start-up needs a display or xvfb-run")
            command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *command]
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True,
                                timeout=1800)
        line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
        if result.returncode != 0 or line is None:
            raise RuntimeError(f"{tree}: child failed ({result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        data: dict[str, Any] = json.loads(line.split(" ", 1)[1])
        imported = Path(data.pop("app")).resolve()
        if not imported.is_relative_to(tree):
            raise RuntimeError(f"{tree}: the child imported app from {imported}")
        return data


def dig(run: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = run
    for key in path:
        value = value[key]
    return float(value)


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per figure: each tree's values, medians, spreads, ratio new/old, verdict."""
    rows = []
    for label, unit, part, path in FIGURES:
        old = [dig(r, path) for r in runs["old"][part]]
        new = [dig(r, path) for r in runs["new"][part]]
        if not old or not new:
            continue
        m_old, m_new = statistics.median(old), statistics.median(new)
        spread_old = (max(old) - min(old)) / m_old if m_old else 0.0
        spread_new = (max(new) - min(new)) / m_new if m_new else 0.0
        ratio = m_new / m_old if m_old else float("nan")
        noise = max(spread_old, spread_new)
        if min(len(old), len(new)) < 2:
            verdict = "n/a: one run, no noise measured"
        elif min(new) > max(old) and ratio - 1 > noise:
            verdict = f"worse, {ratio - 1:+.1%}"
        elif max(new) < min(old) and 1 - ratio > noise:
            verdict = f"better, {ratio - 1:+.1%}"
        else:
            verdict = "same within noise"
        rows.append({"figure": label, "unit": unit, "old": old, "new": new,
                     "old_median": m_old, "new_median": m_new, "ratio": ratio,
                     "old_spread": spread_old, "new_spread": spread_new, "verdict": verdict})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(x: float, unit: str) -> str:
        return f"{x:.2f} {unit}" if unit != "ms" or x < 10 else f"{x:.1f} {unit}"

    out = ["| figure | old, median | new, median | new/old | spread old / new | verdict |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        verdict = r["verdict"] if not r["figure"].startswith("  ") else "(baseline)"
        out.append(f"| {r['figure'].strip()} | {fmt(r['old_median'], r['unit'])} | "
                   f"{fmt(r['new_median'], r['unit'])} | {r['ratio']:.2f} | "
                   f"{r['old_spread']:.0%} / {r['new_spread']:.0%} | {verdict} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the old tree (only read)")
    parser.add_argument("new", type=Path, help="the new tree (only read)")
    parser.add_argument("--startup-runs", type=int, default=10,
                        help="start-up runs per tree (default 10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="scan-to-cart and session runs per tree (default 3)")
    parser.add_argument("--codes", type=int, default=20,
                        help="codes per scan-to-cart run (default 20, as the full bench)")
    parser.add_argument("--scans", type=int, default=10_000,
                        help="scans per session run (default 10,000, as the full bench)")
    parser.add_argument("--only", nargs="*", choices=["startup", "scan", "session"],
                        help="measure only these parts")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    for tree in trees.values():
        if not (tree / "app").is_dir() or not (tree / "bench").is_dir():
            parser.error(f"{tree} is not a checkout of this project")
    parts = args.only or ["startup", "scan", "session"]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.scanning_bench import machine

    started, load_before = time.strftime("%Y-%m-%d %H:%M"), loadavg()
    print(f"machine: {machine()}; load before {load_before}", file=sys.stderr)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        k: {"startup": [], "scan": [], "session": []} for k in trees}
    with tempfile.TemporaryDirectory(prefix="kiosk-compare-") as tmp:
        runner = Runner(Path(tmp), sys.executable)
        plan: list[tuple[str, str, list[str], bool, int]] = []
        if "startup" in parts:
            plan.append(("startup", STARTUP, [], True, args.startup_runs))
        if "scan" in parts:
            plan.append(("scan", SCAN_TO_CART, [str(args.codes)], False, args.rounds))
        if "session" in parts:
            plan.append(("session", SESSION, [str(args.scans)], False, args.rounds))
        for name, tree in trees.items():  # warm-up: byte code cache, fonts, first-run costs
            print(f"warm-up {name} ({tree}) ...", file=sys.stderr, flush=True)
            runner.run(tree, STARTUP, [], True)
            runner.run(tree, SESSION, ["200"], False)
        for part, snippet, child_args, display, count in plan:
            for i in range(count):
                order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
                for name in order:
                    t0 = time.monotonic()
                    result = runner.run(trees[name], snippet, child_args, display)
                    runs[name][part].append(result)
                    print(f"{part} {i + 1}/{count} {name}: {time.monotonic() - t0:.0f} s",
                          file=sys.stderr, flush=True)
    load_after = loadavg()
    rows = summarise(runs)
    print(f"Machine: {machine()}; {started}; load average (1, 5, 15 min) {load_before} "
          f"before, {load_after} after.")
    print(f"old = {trees['old']}, new = {trees['new']}; {args.startup_runs} start-up runs, "
          f"{args.rounds} scan-to-cart runs ({args.codes} codes each) and {args.rounds} "
          f"session runs ({args.scans:,} scans each) per tree, interleaved.\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "load_before": load_before,
                                         "load_after": load_after, "trees": {
                                             k: str(v) for k, v in trees.items()},
                                         "runs": runs, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
