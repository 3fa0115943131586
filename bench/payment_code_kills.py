"""Payment-code charges killed and restarted: ``python -m bench.payment_code_kills --rounds 200``.

Issue 18's crash-safety target: over at least 200 charges by payment code (``--rounds``
killed ones; a round whose kill point its charge never reached is counted on top), each with
the kiosk (its lane and payment desk, headless: ``tests/faults/code_kiosk.py``) in a
real child process SIGKILLed at a random step of the charge and then started again on
the same data directory, count

- double charges: a cart charged more than once at the provider, or one code sent twice;
- trades left waiting: an order at the provider still waiting or mid-password
  ("paying"), or a payment the kiosk still holds open, after the restart settled;
- books that disagree: a charge kept at the provider without exactly one sale, or a
  sale without a charge kept;
- payment codes stored or logged: each issued code searched for in every file of the
  data directory (the database, its -wal and -shm, logs, anything) and in both
  children's stdout and stderr (logging at DEBUG).

All must be 0. The provider is the payment simulator (``devices.sim.payprovider``) on
127.0.0.1 in this process; its wallets issue the codes (``Wallets.issue``) with a random
wallet and behaviour: approve, password:N, decline:N, never, insufficient. The kill
points (``POINTS``): the child kills itself before the payment row is written, after it,
after the "code sent" mark and after the provider's reply is read; this process kills
the child when the charge request has been taken at the provider (before its reply is
read), while the shopper is typing the password (the lane polling), and when the
reverse has arrived at the provider (before and after it acts).

Each round's outcome is one of: paid (one charge, one sale), not charged (the code never
reached the provider, or was declined) or reversed (closed or refunded, confirmed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.sim.payprovider import PayServer

CHILD = [sys.executable, "-m", "tests.faults.code_kiosk"]
SELF_KILLS = ("before_row", "after_row", "after_code_sent", "after_reply")
SIM_KILLS = ("at_provider", "paying", "reverse_arrived", "reverse_done")
POINTS = SELF_KILLS + SIM_KILLS
BEHAVIOURS = ("approve", "password:1", "password:3", "password:8", "decline:1", "never",
              "insufficient")
WALLETS = ("wechat", "alipay", "unionpay")


def _gone(pid: int, limit_s: float = 5.0) -> None:
    """Wait until ``pid`` is dead (a zombie or reaped): a SIGKILL has taken effect."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.002)


class KillSwitch:
    """Kills the armed child from the simulator's side: when a code charge has been taken
    (``at_provider``), or when a reverse arrives, before (``reverse_arrived``) or after
    (``reverse_done``) the provider acts on it. One shot: disarmed once it fires."""

    def __init__(self, sim: PayServer) -> None:
        self.pid = 0
        self.point = ""
        self.fired = False
        self._lock = threading.Lock()
        provider = sim.provider
        charge, reverse = provider.charge_code, provider.reverse

        def charge_code(*args: Any, **kwargs: Any) -> Any:
            out = charge(*args, **kwargs)
            self._fire("at_provider")
            return out

        def reverse_then(order: Any) -> bool:
            self._fire("reverse_arrived")
            out = reverse(order)
            self._fire("reverse_done")
            return out
        provider.charge_code = charge_code  # type: ignore[method-assign]
        provider.reverse = reverse_then  # type: ignore[method-assign]

    def arm(self, pid: int, point: str) -> None:
        with self._lock:
            self.pid, self.point, self.fired = pid, point, False

    def disarm(self) -> None:
        with self._lock:
            self.pid, self.point = 0, ""

    def _fire(self, point: str) -> None:
        with self._lock:
            if not self.pid or self.point != point:
                return
            pid, self.pid, self.fired = self.pid, 0, True
        os.kill(pid, signal.SIGKILL)
        _gone(pid)  # dead before the reply is written: it is never read


@dataclass
class Round:
    """One killed-and-restarted charge: what was asked and what was found."""

    wallet: str
    then: str
    point: str
    killed: bool = False
    outcome: str = ""  # paid, not charged, reversed
    faults: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def _orders(sim: PayServer, nos: set[str]) -> dict[str, Any]:
    with sim.provider.lock:
        return {no: o for no, o in sim.provider.orders.items() if no in nos}


def _order_status(sim: PayServer) -> tuple[str, int] | None:
    with sim.provider.lock:
        for o in sim.provider.orders.values():
            if o.charge is not None and o.status == "paying" and o.queries >= 1:
                return o.status, o.queries
    return None


def run_round(sim: PayServer, switch: KillSwitch, data: Path, wallet: str, then: str,
              point: str, timeout_s: float = 90.0) -> Round:
    """One charge by a fresh code of ``wallet`` behaving ``then``, killed at ``point``,
    restarted and settled, on the data directory ``data`` (made empty by the caller).
    Faults found go in ``Round.faults`` (key: what; value: how many)."""
    r = Round(wallet, then, point)
    started = time.monotonic()
    code = sim.provider.wallets.issue(wallet, then).code
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    outputs: list[str] = []
    first = subprocess.Popen(
        [*CHILD, str(data), sim.url, "charge", "--kill-at",
         point if point in SELF_KILLS else "none"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        text=True)
    if point in SIM_KILLS and point != "paying":
        switch.arm(first.pid, point)
    assert first.stdin is not None
    first.stdin.write(code + "\n")
    first.stdin.close()
    first.stdin = None  # written and closed: communicate() reads only
    if point == "paying":  # the shopper is typing the password: the lane is polling
        end = time.monotonic() + timeout_s
        while first.poll() is None and time.monotonic() < end:
            if _order_status(sim) is not None:
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    try:
        out, err = first.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        first.kill()
        out, err = first.communicate()
        r.faults["child hung"] += 1
    switch_fired = switch.fired and point in SIM_KILLS and point != "paying"
    switch.disarm()
    r.killed = first.returncode == -signal.SIGKILL
    if r.killed and point in SIM_KILLS and point != "paying" and not switch_fired:
        r.faults["killed by surprise"] += 1
    if not r.killed and first.returncode != 0:
        r.faults["child failed"] += 1
    outputs += [out, err]
    second = subprocess.run([*CHILD, str(data), sim.url, "recover"], capture_output=True,
                            text=True, env=env, timeout=timeout_s)
    outputs += [second.stdout, second.stderr]
    if second.returncode != 0:
        r.faults["restart failed"] += 1
    r.faults.update(tally(sim, data, code, outputs))
    with sqlite3.connect(data / "kiosk.db") as conn:
        paid = conn.execute("SELECT count(*) FROM sales").fetchone()[0]
        nos = {row[0] for row in conn.execute("SELECT out_trade_no FROM payments")}
    orders = _orders(sim, nos)
    r.outcome = "paid" if paid else ("reversed" if any(
        o.status in ("closed", "refunded") for o in orders.values()) else "not charged")
    r.seconds = time.monotonic() - started
    return r


def tally(sim: PayServer, data: Path, code: str, outputs: list[str]) -> Counter[str]:
    """The faults of one round's data directory and the children's ``outputs``."""
    faults: Counter[str] = Counter()
    with sqlite3.connect(data / "kiosk.db") as conn:
        payments = dict(conn.execute("SELECT out_trade_no, state FROM payments").fetchall())
        sales = [row[0] for row in conn.execute("SELECT order_id FROM sales")]
    orders = _orders(sim, set(payments))
    with sim.provider.lock:
        for o in orders.values():
            sim.provider.advance(o)  # as the provider stands now (a password answered late)
        charged = {no: sim.provider.charges.get(no, 0) for no in orders}
        kept = [no for no, o in orders.items() if o.status == "paid"]
        calls = {no: o.charge_calls for no, o in orders.items()}
        waiting = [no for no, o in orders.items() if o.status in ("waiting", "paying")]
        used = [c for c in sim.provider.wallets.codes.values() if c.code == code and c.used_by]
    faults["double charges"] += max(0, sum(charged.values()) - 1) + max(0, len(kept) - 1)
    faults["codes sent twice"] += sum(max(0, n - 1) for n in calls.values())
    faults["codes charged twice"] += max(0, len(used) - 1)
    faults["trades left waiting"] += len(waiting) + sum(
        1 for state in payments.values() if state in ("created", "pending", "unknown"))
    faults["sales without a kept charge"] += sum(1 for no in sales if no not in kept)
    faults["kept charges without a sale"] += sum(1 for no in kept if no not in sales)
    faults["books disagree"] += sum(1 for no in kept if payments.get(no) != "paid")
    needle = code.encode()
    for path in data.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            faults["payment codes stored or logged"] += 1
    faults["payment codes stored or logged"] += sum(1 for text in outputs if code in text)
    return +faults  # only the non-zero counts


FAULTS = ("double charges", "codes sent twice", "codes charged twice", "trades left waiting",
          "sales without a kept charge", "kept charges without a sale", "books disagree",
          "payment codes stored or logged", "child hung", "child failed", "restart failed",
          "killed by surprise")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200,
                        help="charges killed and restarted (rounds whose kill point the "
                             "charge never reached are run on top)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--json", type=Path, help="also write every round here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    sim = PayServer(0).start()
    switch = KillSwitch(sim)
    rounds: list[Round] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="kiosk-code-kills-") as tmp:
            n = 0
            while sum(r.killed for r in rounds) < args.rounds:
                # A point the charge never reaches (a reverse, when the wallet approves at
                # once) leaves the child alive: that round is counted, and another is run.
                point = POINTS[n % len(POINTS)] if n < len(POINTS) else rng.choice(POINTS)
                r = run_round(sim, switch, Path(tmp) / f"r{n}", rng.choice(WALLETS),
                              rng.choice(BEHAVIOURS), point)
                rounds.append(r)
                if r.faults:
                    print(f"round {n}: {r.wallet} {r.then} killed at {point}: "
                          f"{dict(r.faults)}", file=sys.stderr)
                n += 1
    finally:
        sim.stop()
    took = time.monotonic() - started
    totals: Counter[str] = Counter()
    for r in rounds:
        totals.update(r.faults)
    killed = sum(r.killed for r in rounds)
    print(f"{len(rounds)} charges, {killed} killed (SIGKILL) and restarted, in {took:.0f} s "
          f"({took / max(1, len(rounds)):.2f} s a charge)")
    print("kill points: " + ", ".join(f"{p} {sum(r.point == p and r.killed for r in rounds)}"
                                      for p in POINTS))
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in
                                   sorted(Counter(r.outcome for r in rounds).items())))
    print("| fault | count |\n|---|---|")
    for name in FAULTS:
        print(f"| {name} | {totals.get(name, 0)} |")
    if args.json:
        args.json.write_text(json.dumps([{"wallet": r.wallet, "then": r.then, "point": r.point,
                                          "killed": r.killed, "outcome": r.outcome,
                                          "faults": dict(r.faults), "seconds": r.seconds}
                                         for r in rounds], indent=1))
    return 1 if sum(totals.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
