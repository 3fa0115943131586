"""Scenarios: scripted shopping sessions, headless, on the real services and simulated devices.

``kiosk scenario FILE`` reads a scenario (TOML or JSON, docs/scenarios.md) and
runs it through the very objects the touch screen drives (``Lane`` and its
``StaffMode``), against the payment simulator and the reference membership
backend on 127.0.0.1 and the virtual printer on a real pty, with the real
print queue and event uploader. Camera scans are rendered into frames and read
by the real decoder; scanner input goes through the same checks a serial
scanner's does. Only the touch layer is missing. Time can be jumped (``wait``)
for inactivity and QR expiry; everything else runs in real time.

Like bootstrap, this module wires devices; it never imports Kivy.
"""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import bootstrap
from app.config import Settings, load_settings
from app.domain.payment import Payment
from app.lane import InlineLane, Lane, Screen
from app.runtime import KioskRuntime
from app.services.clock import OffsetClock
from app.storage.payments_repo import PaymentsRepo
from app.storage.print_jobs import PrintJob, PrintJobs

STEPS = ("member_qr", "member_phone", "start", "skip_member", "scan", "quantity", "remove",
         "wait", "pause", "staff", "pay", "cancel", "done", "call_staff", "printer", "backend",
         "camera", "restart", "expect", "still_here")


class ScenarioError(ValueError):
    """A scenario file that cannot be run, or an expectation that did not hold."""


@dataclass
class Scenario:
    name: str
    steps: list[dict[str, Any]]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


def load_scenario(path: Path) -> Scenario:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError(f"{path}: a scenario needs a non-empty [[steps]] list")
    for n, step in enumerate(steps, 1):
        if not isinstance(step, dict) or step.get("do") not in STEPS:
            raise ScenarioError(f"{path}: step {n}: 'do' must be one of {', '.join(STEPS)}")
        if step["do"] != "expect":
            params = inspect.signature(getattr(Runner, f"_do_{step['do']}")).parameters
            allowed = {name for name in params if name != "self"}
            unknown = set(step) - allowed - {"do"}
            required = {name for name, p in params.items()
                        if name != "self" and p.default is inspect.Parameter.empty}
            if unknown or required - set(step):
                raise ScenarioError(
                    f"{path}: step {n} ({step['do']}): takes {', '.join(sorted(allowed)) or 'no'}"
                    f" fields" + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
                    + (f"; missing: {', '.join(sorted(required - set(step)))}"
                       if required - set(step) else ""))
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ScenarioError(f"{path}: [settings] must be a table of settings sections")
    return Scenario(str(data.get("name", path.stem)), steps, settings,
                    str(data.get("description", "")))


@dataclass
class Transcript:
    name: str
    lines: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)
    exit_passes: list[str] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)
    audit: list[str] = field(default_factory=list)
    ok: bool = True
    failure: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "failure": self.failure,
                "steps": self.steps, "payments": self.payments, "receipts": self.receipts,
                "exit_passes": self.exit_passes, "events": self.events, "audit": self.audit}

    def text(self) -> str:
        out = [f"scenario: {self.name}", *self.lines, "", "payments:"]
        out += [f"  {p['out_trade_no']}  {p['state']}  {p['amount_minor']}"
                f"{'  ' + p['staff_flag'] if p['staff_flag'] else ''}" for p in self.payments]
        for n, receipt in enumerate(self.receipts, 1):
            out += ["", f"receipt {n}:", receipt]
        out += ["", "exit passes:", *(f"  {p}" for p in self.exit_passes)]
        out += ["", f"events: {json.dumps(self.events, ensure_ascii=False)}"]
        out += ["", "audit log:", *(f"  {a}" for a in self.audit)]
        out += ["", "PASSED" if self.ok else f"FAILED: {self.failure}"]
        return "\n".join(out)


class Rig:
    """The simulated store a scenario runs in (``devices.sim.store.SimStore``, as for
    `kiosk demo`), and the kiosk's runtime over it, built by the composition root exactly
    as a store's is, with the lane inline: ``pump`` delivers what the devices reported."""

    def __init__(self, data_dir: Path, overrides: dict[str, dict[str, Any]]) -> None:
        self.data_dir = data_dir
        self.overrides = overrides
        self.clock = OffsetClock()
        self.runtime: KioskRuntime | None = None
        settings = self.settings()
        self.store = bootstrap.start_sim_store(settings, pay_options={"read_timeout_s": 3.0})
        assert self.store.pay is not None and self.store.backend is not None
        assert self.store.printer is not None and self.store.camera is not None
        self.pay, self.backend, self.vprinter = self.store.pay, self.store.backend, \
            self.store.printer
        self.camera_source = self.store.camera
        try:
            self._start_kiosk()
        except BaseException:
            self.stop()  # nothing left running behind a refused scenario
            raise

    def settings(self) -> Settings:
        s = load_settings(data_dir=self.data_dir, environ={})
        # The scenarios' camera: small frames at 15 fps, lost after 2 s without one.
        s.camera.fps, s.camera.width, s.camera.height = 15, 960, 540
        s.camera.lost_after_ms = 2000
        if hasattr(self, "store"):
            self.store.point(s)
        for section, values in self.overrides.items():
            target = getattr(s, section, None)
            if target is None:
                raise ScenarioError(f"[settings]: no section {section!r}")
            for key, value in values.items():
                if not hasattr(target, key):
                    raise ScenarioError(f"[settings.{section}]: no setting {key!r}")
                setattr(target, key, value)
        s.validate()
        return s

    @property
    def lane(self) -> Lane:
        assert self.runtime is not None
        return self.runtime.lane

    @property
    def printer(self) -> Any:
        assert self.runtime is not None
        return self.runtime.devices.get("printer")

    @property
    def uploader(self) -> Any:
        assert self.runtime is not None
        return self.runtime.devices.get("uploader")

    def _start_kiosk(self) -> None:
        settings = self.settings()
        self.kiosk = bootstrap.build(settings, self.clock)
        bootstrap.seed_demo_store(self.kiosk)
        bootstrap.seed_demo_staff(self.kiosk)
        self.runtime = bootstrap.build_runtime(self.kiosk, threaded=False,
                                               camera_factory=self.store.camera_factory())
        self.runtime.start()

    def stop_kiosk(self) -> None:
        if self.runtime is None:
            return
        runtime, self.runtime = self.runtime, None
        runtime.stop()
        self.kiosk.close()

    def stop(self) -> None:
        self.stop_kiosk()
        self.store.stop()

    def pump(self, seconds: float = 0.0) -> None:
        """Deliver what the camera, scanners and printer said, and tick the lane, for
        ``seconds`` (the runtime's inline executor)."""
        assert self.runtime is not None
        executor = self.runtime.executor
        assert isinstance(executor, InlineLane)
        executor.pump(seconds)


class Runner:
    def __init__(self, scenario: Scenario, data_dir: Path) -> None:
        self.scenario = scenario
        self.rig = Rig(data_dir, scenario.settings)
        self.t = Transcript(scenario.name)
        self._last_cart: list[str] = []
        self._staff_signed_in: bool | None = None
        self._blank_until = 0.0
        self._last_code = ""  # the payment code shown last, for 'reused' (never printed)

    @property
    def lane(self) -> Lane:
        return self.rig.lane

    def run(self) -> Transcript:
        try:
            for n, step in enumerate(self.scenario.steps, 1):
                self._step(n, dict(step))
        except ScenarioError as exc:
            self.t.ok, self.t.failure = False, str(exc)
            self.t.lines.append(f"  !! {exc}")
        finally:
            self._finish()
        return self.t

    # -- steps ----------------------------------------------------------------------------------
    def _step(self, n: int, step: dict[str, Any]) -> None:
        do = step.pop("do")
        handler: Callable[..., str | None] = getattr(self, f"_do_{do}")
        try:
            said = handler(**step)
        except ScenarioError as exc:
            self.t.lines.append(f"[{n:>2}] {do:<12} FAILED")
            raise ScenarioError(f"step {n} ({do}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a bad step is reported, not a traceback
            self.t.lines.append(f"[{n:>2}] {do:<12} FAILED")
            raise ScenarioError(f"step {n} ({do}): {type(exc).__name__}: {exc}") from None
        self.rig.pump(0.1)
        view = self.lane.view
        notice = ""
        if view.notice is not None:
            from app.ui.strings import say  # words only: no Kivy in app.ui.strings

            notice = say("en", view.notice.key, **dict(view.notice.values))
        total = view.priced.total.to_decimal_string() if view.priced else "-"
        cart = [f"{pl.line.product.name_en} x{pl.line.quantity if not pl.line.weighed else ''}"
                f"{f'{pl.line.weight_g} g' if pl.line.weighed else ''} "
                f"{pl.total.to_decimal_string()}"
                for pl in (view.priced.lines if view.priced else ())]
        self.t.steps.append({"step": n, "do": do, "screen": view.screen.value,
                             "notice": notice, "total": total, "cart": cart,
                             "payment": self._last_payment_state()})
        self.t.lines.append(f"[{n:>2}] {do:<12} {said or '':<40} -> {view.screen.value}"
                            f"{'  ' + notice if notice else ''}  total {total}")
        if cart != self._last_cart:
            self.t.lines.append(f"       cart: {'; '.join(cart) or 'empty'}")
            self._last_cart = cart

    def _do_start(self) -> str:
        self.lane.start()
        return ""

    def _do_skip_member(self) -> str:
        self.lane.skip_member()
        return ""

    def _do_member_phone(self, phone: str) -> str:
        self.lane.member_phone(phone)
        return phone

    def _do_member_qr(self, member: str, via: str = "camera") -> str:
        code = self.rig.backend.member_code(member)
        self._scan_text(code, via)
        return f"member QR of {member}"

    def _do_scan(self, code: str, via: str = "camera", times: int = 1) -> str:
        for _ in range(times):
            self._scan_text(code, via)
        return f"{_short(code)} via {via}" + (f" x{times}" if times > 1 else "")

    def _scan_text(self, code: str, via: str) -> None:
        if via == "camera":
            self._camera_scan(code)
        elif via in ("scanner", "serial", "wedge"):
            from devices.scanner import Scan, accept_input

            got = accept_input(code.encode("utf-8", "surrogateescape"),
                               "wedge" if via == "wedge" else "serial", time.monotonic())
            # As a serial scanner's line: through the runtime's routing table to the lane.
            assert self.rig.runtime is not None
            if isinstance(got, Scan):
                self.rig.runtime.router.scan(got)
            else:
                self.rig.runtime.router.scan_rejected(got)
            self.rig.pump()
        elif via == "typed":
            self.lane.typed_code(code)
        else:
            raise ScenarioError(f"scan 'via' must be camera, scanner, wedge or typed, "
                                f"not {via!r}")

    def _camera_scan(self, code: str) -> None:
        from devices.sim.frames import render_barcode

        try:
            render_barcode(code)
        except (ValueError, RuntimeError) as exc:
            raise ScenarioError(f"cannot show {code!r} to the camera: {exc}") from None
        # The item held before must have been out of view for longer than the scanner's
        # rescan time, or the same code would count as the same showing.
        while time.monotonic() < self._blank_until:
            self.rig.pump(0.05)
        before = self.lane.view.version
        self.rig.camera_source.show(code, 12)
        self.rig.camera_source.show(None, 30)  # the item leaves the view
        self._blank_until = time.monotonic() + 12 / 15 + 1.6
        end = time.monotonic() + 8
        while time.monotonic() < end:
            self.rig.pump(0.1)
            if self.lane.view.version != before and self.lane.view.notice is not None:
                self.rig.pump(0.9)  # the rest of the showing: nothing more may be added
                return
        raise ScenarioError(f"the camera never read {code!r}")

    def _do_quantity(self, line: int, quantity: int) -> str:
        current = self.lane.checkout.cart.line(line).quantity
        while current < quantity:
            self.lane.plus(line)
            current += 1
        while current > quantity:
            self.lane.minus(line)
            current -= 1
        return f"line {line} -> {quantity}"

    def _do_remove(self, line: int) -> str:
        self.lane.remove(line)
        return f"line {line}"

    def _do_wait(self, seconds: float) -> str:
        self.rig.clock.advance(seconds)
        self.rig.pump(0.3)
        return f"{seconds:g} s"

    def _do_pause(self, seconds: float) -> str:
        """Real time passes (the shopper's phone, a provider's delay), the lane ticking."""
        self.rig.pump(seconds)
        return f"{seconds:g} s real"

    def _do_still_here(self) -> str:
        self.lane.still_here()
        return ""

    def _do_call_staff(self) -> str:
        self.lane.call_staff()
        return ""

    def _do_cancel(self) -> str:
        self.lane.cancel_payment()
        return ""

    def _do_done(self) -> str:
        self.lane.done()
        return ""

    def _do_staff(self, pin: str, action: str, args: list[str] | None = None,
                  badge: str | None = None) -> str:
        staff = self.lane.staff
        assert staff is not None
        # "$last_order" stands for the newest order's number (for refund and reprint).
        args = [self._last_order() if a == "$last_order" else str(a) for a in (args or [])]
        staff.open_pin_pad(badge)
        staff.pin(pin)
        view = self.lane.view.staff
        if view is None or view.page != "menu":
            message = view.message if view else "staff mode did not open"
            staff.sign_out()
            self._staff_signed_in = False
            return f"sign-in refused: {message}"
        self._staff_signed_in = True
        staff.do(action, *(args or []))
        said = self.lane.view.staff.message if self.lane.view.staff else ""
        staff.sign_out()
        return f"{action} {' '.join(args or [])}: {said}".strip()

    def _do_pay(self, outcome: str = "approve", wallet: str = "", seconds: float = 0,
                amount: int | None = None, wait: float = 20, mode: str = "qr",
                via: str = "camera") -> str:
        if mode == "code":
            if amount is not None:
                raise ScenarioError("a payment code is charged the amount on screen: no 'amount'")
            return self._pay_by_code(outcome, wallet or "wechat", via, seconds, wait)
        if mode != "qr":
            raise ScenarioError(f"pay 'mode' must be qr or code, not {mode!r}")
        try:
            self.rig.store.script_payment(outcome, seconds=seconds, amount=amount)
            shown = self.lane.view.payment if self.lane.view.screen is Screen.PAY else None
            if shown is not None:
                # Already on the QR (an approved age check goes straight on to paying):
                # the order on screen answers as scripted too.
                self.rig.store.script_payment(outcome, seconds=seconds, amount=amount,
                                              order=shown.out_trade_no)
        except ValueError as exc:
            raise ScenarioError(f"the payment simulator refused outcome {outcome!r}: "
                                f"{exc}") from None
        self.lane.pay()
        if self.lane.view.screen is Screen.PAY and self.lane.view.payment is None:
            wallets = self.lane.view.wallets
            if wallet and wallets and wallet not in wallets:
                raise ScenarioError(f"wallet {wallet!r} is not offered; offered: {wallets}")
            self.lane.choose_wallet(wallet or (wallets[0] if wallets else ""))
        payment = self.lane.view.payment
        no = payment.out_trade_no if payment else "-"
        end = time.monotonic() + wait
        # Poll as the kiosk does, jumping the clock a poll interval at a time.
        while self.lane.view.screen is Screen.PAY and time.monotonic() < end:
            self.rig.clock.advance(self.rig.kiosk.settings.payment.poll_ms / 1000)
            self.rig.pump(0.05)
            if self.lane.view.screen is Screen.STILL_THERE and \
                    self.lane.view.back_to is Screen.PAY:
                # The scripted shopper is at the QR, waiting for the wallet: "I'm still
                # here" (walking away is the "wait" step's, with its own expectations).
                self.lane.still_here()
            if outcome in ("pay_late", "never_answer") and self.lane.view.screen is Screen.PAY:
                self.rig.clock.advance(10)  # these outcomes wait for the QR to expire
        return f"{outcome} order {no}"

    def _pay_by_code(self, outcome: str, wallet: str, via: str, seconds: float,
                     wait: float) -> str:
        """The shopper shows the simulated phone's payment code (issued by the simulator's
        ``wallet``, behaving as ``outcome``) on the pay screen, ``via`` the camera (the phone
        in front of the simulated camera, read twice by the real decoder), a serial or
        keyboard-wedge scanner, or typed on the keypad; then the lane runs until the charge
        has ended (paid, or declined/reversed and confirmed) or ``wait`` seconds have passed
        (to act while the shopper is still typing the password: ``cancel``, ``restart``).

        Outcomes: approve; password (approved after ``seconds``, 3 by default); give_up (the
        shopper gives up at the password after ``seconds``: declined); insufficient
        (insufficient funds); expired (a code older than its minute); reused (the code this
        scenario showed last, shown again: the lane does not send it again, it says it was
        used); never (the password prompt is never answered:
        the kiosk's clock is jumped to the deadline, where it reverses)."""
        behaviours = {"approve": "approve", "password": f"password:{seconds or 3:g}",
                      "give_up": f"decline:{seconds or 3:g}", "insufficient": "insufficient",
                      "never": "never", "expired": "approve", "reused": ""}
        if outcome not in behaviours:
            raise ScenarioError(f"a payment code's outcome is one of {', '.join(behaviours)}, "
                                f"not {outcome!r}")
        if via not in ("camera", "scanner", "wedge", "typed"):
            raise ScenarioError(f"pay 'via' must be camera, scanner, wedge or typed, not {via!r}")
        if self.lane.view.screen is not Screen.PAY:
            self.lane.pay()
        if self.lane.view.screen is not Screen.PAY:
            raise ScenarioError(f"the pay screen did not open (on {self.lane.view.screen.value})")
        if outcome == "reused":
            if not self._last_code:
                raise ScenarioError("'reused': no payment code was shown before")
            code = self._last_code
        else:
            try:  # expired: issued longer ago than a code lives (a screenshot kept too long)
                code = str(self.rig.store.issue_payment_code(
                    wallet, behaviours[outcome],
                    age_s=90.0 if outcome == "expired" else 0.0)["code"])
            except ValueError as exc:
                raise ScenarioError(f"the simulated {wallet} wallet refused: {exc}") from None
        self._last_code = code
        last = self._last_code_payment()
        before = last.out_trade_no if last else ""
        if via == "camera":
            self.rig.store.show_payment_code(code=code, frames=12)
            self.rig.camera_source.show(None, 30)  # the phone is taken away
        else:
            self._scan_text(code, "serial" if via == "scanner" else via)
        del code  # the scenario keeps it only to show it again ('reused')
        end = time.monotonic() + 8
        payment = self._last_code_payment()

        def refused_as_sent() -> bool:
            # A code this lane sent once is never sent again: 'reused' ends on the notice.
            notice = self.lane.view.notice
            return outcome == "reused" and notice is not None \
                and notice.key == "declined_code_used"

        while (payment is None or payment.out_trade_no == before) and time.monotonic() < end:
            if refused_as_sent():
                return
            self.rig.pump(0.1)
            payment = self._last_code_payment()
        if (payment is None or payment.out_trade_no == before) and refused_as_sent():
            return
        if payment is None or payment.out_trade_no == before:
            raise ScenarioError(f"the code shown via {via} started no charge "
                                f"(on {self.lane.view.screen.value})")
        if outcome == "never":  # nobody answers: the kiosk's clock jumps to the deadline
            self.rig.pump(1.0)
            self.rig.clock.advance(self.rig.kiosk.settings.payment.code_deadline_s)
        end = time.monotonic() + wait
        while time.monotonic() < end and not _code_charge_over(payment):
            self.rig.pump(0.1)
            payment = self._last_code_payment() or payment
        return f"{wallet} code via {via}, {outcome}: order {payment.out_trade_no}"

    def _do_printer(self, state: str) -> str:
        words = {"paper_out": {"paper_out": True}, "paper_ok": {"paper_out": False},
                 "offline": {"offline": True}, "online": {"offline": False},
                 "cover_open": {"cover_open": True}, "cover_closed": {"cover_open": False},
                 "silent": {"silent": True}, "answer": {"silent": False}}
        if state not in words:
            raise ScenarioError(f"printer state must be one of {', '.join(words)}")
        self.rig.vprinter.set_state(**words[state])
        self.rig.printer.wake()
        self.rig.pump(0.5)
        return state

    def _do_backend(self, state: str) -> str:
        if state not in ("down", "up"):
            raise ScenarioError("backend state must be 'down' or 'up'")
        self.rig.store.backend_status(503 if state == "down" else 200)
        if state == "up" and self.rig.uploader is not None:
            self.rig.uploader.wake()
        return state

    def _do_camera(self, state: str) -> str:
        """The camera stops delivering frames (unplugged, a hung driver) or comes back;
        the camera's own watchdog notices and tells the lane."""
        if state not in ("lost", "ok"):
            raise ScenarioError("camera state must be 'lost' or 'ok'")
        self.rig.camera_source.paused = state == "lost"
        end = time.monotonic() + 15
        while time.monotonic() < end:
            self.rig.pump(0.1)
            if self.lane.view.camera_ok == (state == "ok"):
                return f"{state} (noticed by the watchdog)"
        raise ScenarioError(f"the camera watchdog never reported {state!r}")

    def _do_restart(self) -> str:
        """The kiosk stops where it is, mid-whatever, and starts again on the same data:
        nothing is settled first (no abandon, no payment closed). In-process, its threads
        are stopped rather than killed; tests/ui kills a real kiosk process with SIGKILL."""
        self.rig.stop_kiosk()
        self.rig._start_kiosk()
        return "killed and started again"

    def _do_expect(self, **want: Any) -> str:
        # Each check reads the lane's view as it is when the check runs: a ``receipts`` check
        # waits for the printer, and the receipt's "printed" arrives with its answer.
        checks: dict[str, Callable[[Any], Any]] = {
            "screen": lambda view: view.screen.value,
            "lines": lambda view: len(view.priced.lines) if view.priced else 0,
            "total": lambda view: view.priced.total.to_decimal_string() if view.priced else "",
            "notice": lambda view: view.notice.key if view.notice else "",
            "member": lambda view: view.member_id or "",
            "receipt_printed": lambda view: view.receipt.printed if view.receipt else None,
            "exit_pass_on_screen": lambda view: view.receipt.show_pass if view.receipt else None,
            "exit_audit": lambda view: view.receipt.exit_audit if view.receipt else None,
            "payment_state": lambda view: self._last_payment_state(),
            "staff_flagged": lambda view: bool(self._last_payment_flag()),
            "printer_notice": lambda view: bool(view.printer_notice),
            "events_all_delivered": lambda view: self._events_all_delivered(),
            "refusal": lambda view: dict(view.notice.values).get("code", "") if view.notice else "",
            "staff_signed_in": lambda view: self._staff_signed_in,
            "orders": lambda view: PaymentsRepo(self.rig.kiosk.db).count(),
            "charges": lambda view: self.rig.store.charges(),
            "payment_mode": lambda view: (self._last_payment() or _NO_PAYMENT).mode,
            "code_payment_state": lambda view: str((self._last_code_payment()
                                                     or _NO_PAYMENT).state),
            "decline": lambda view: (self._last_code_payment() or _NO_PAYMENT).decline or "",
            "charge_calls": lambda view: self.rig.store.charge_calls(),
            "trades_waiting": lambda view: self._trades_waiting(),
        }
        for key, expected in want.items():
            if key == "event":
                kinds = bootstrap.build_outbox(self.rig.kiosk).types()
                if expected not in kinds:
                    raise ScenarioError(f"expected a {expected!r} event; have {sorted(set(kinds))}")
                continue
            if key == "audit":
                kinds = [e.kind for e in bootstrap.build_audit(self.rig.kiosk).entries()]
                for wanted in ([expected] if isinstance(expected, str) else expected):
                    if wanted not in kinds:
                        raise ScenarioError(f"expected a {wanted!r} audit row; have {kinds}")
                continue
            if key == "receipts":
                self._settle_printer()
                got = len(self._receipt_texts())
                if got != expected:
                    raise ScenarioError(f"expected {expected} receipts printed, got {got}")
                continue
            if key not in checks:
                raise ScenarioError(f"expect: unknown check {key!r}; known: "
                                    f"{', '.join([*checks, 'event', 'receipts', 'audit'])}")
            if key == "receipt_printed":
                self._settle_printer()  # the printer's answer, not a race against it
            got = checks[key](self.lane.view)  # only what is asked for is looked at
            if got != expected:
                raise ScenarioError(f"expected {key} = {expected!r}, got {got!r}")
        return ", ".join(f"{k}={v}" for k, v in want.items())

    # -- the end: what happened -------------------------------------------------------------------
    def _last_payment(self) -> Payment | None:
        return PaymentsRepo(self.rig.kiosk.db).latest()

    def _last_code_payment(self) -> Payment | None:
        """The newest payment-code charge (a declined one is followed by a fresh QR when the
        store has one wallet: ``payment_state`` then names the QR)."""
        return next((p for p in reversed(PaymentsRepo(self.rig.kiosk.db).all_payments())
                     if p.by_code), None)

    def _trades_waiting(self) -> int:
        """Trades left waiting, after giving the lane a moment to finish what it started:
        the simulator's orders still waiting or paying (a password prompt open) plus the
        kiosk's payments not settled. 0 is the rule (issue 18: never a trade left waiting)."""
        end = time.monotonic() + 10
        while True:
            count = self.rig.store.trades_waiting() + len(
                PaymentsRepo(self.rig.kiosk.db).all_open())
            if count == 0 or time.monotonic() >= end:
                return count
            self.rig.pump(0.2)

    def _last_order(self) -> str:
        last = self._last_payment()
        if last is None:
            raise ScenarioError("$last_order: there is no order yet")
        return last.out_trade_no

    def _last_payment_state(self) -> str:
        last = self._last_payment()
        return last.state.value if last else ""

    def _last_payment_flag(self) -> str:
        last = self._last_payment()
        return (last.staff_flag or "") if last else ""

    def _events_all_delivered(self) -> bool:
        """Give the uploader a moment, then: is nothing left waiting?"""
        end = time.monotonic() + 3
        while True:
            st = bootstrap.build_outbox(self.rig.kiosk).status()
            if st.pending + st.in_flight == 0 or time.monotonic() >= end:
                return st.pending + st.in_flight + st.dead == 0
            self.rig.pump(0.2)

    def _settle_printer(self) -> None:
        end = time.monotonic() + 10
        jobs = PrintJobs(self.rig.kiosk.db)
        while time.monotonic() < end and jobs.count_pending() and \
                self.rig.vprinter.flags.paper_out is False:
            self.rig.pump(0.2)
        self.rig.pump(0.5)
        # A job the printer finished has its outcome on the way to the lane: wait for it
        # (a loaded machine can take longer than the half second above).
        receipt = self.lane.view.receipt
        while receipt is not None and receipt.printed is None and time.monotonic() < end \
                and _finished(jobs.first_for(receipt.order_id)):
            self.rig.pump(0.1)
            receipt = self.lane.view.receipt

    def _receipt_texts(self) -> list[str]:
        return [p.read_text(encoding="utf-8") for p in
                sorted((self.rig.data_dir / "receipts").glob("*.txt"))]

    def _finish(self) -> None:
        try:
            self._settle_printer()
            db = self.rig.kiosk.db
            self.t.payments = [
                {"out_trade_no": p.out_trade_no, "state": p.state.value,
                 "amount_minor": p.amount_minor, "staff_flag": p.staff_flag or ""}
                for p in PaymentsRepo(db).all_payments()]
            self.t.receipts = self._receipt_texts()
            self.t.exit_passes = PrintJobs(db).exit_passes()
            if self.rig.uploader is not None:
                self.rig.uploader.wake()
                end = time.monotonic() + 10
                while time.monotonic() < end and \
                        bootstrap.build_outbox(self.rig.kiosk).status().pending:
                    time.sleep(0.2)
            st = bootstrap.build_outbox(self.rig.kiosk).status()
            kinds = bootstrap.build_outbox(self.rig.kiosk).count_by_type()
            delivered = self.rig.backend.store.total()
            self.t.events = {"recorded": kinds, "delivered_to_backend": delivered,
                             "waiting": st.pending + st.in_flight, "set_aside": st.dead}
            self.t.audit = [f"{e.seq} {e.kind} {e.actor}" for e in
                            bootstrap.build_audit(self.rig.kiosk).entries()]
        finally:
            self.rig.stop()


@dataclass(frozen=True)
class _NoPayment:
    mode: str = ""
    state: str = ""
    decline: str = ""


_NO_PAYMENT = _NoPayment()


def _code_charge_over(payment: Payment) -> bool:
    """A code charge has ended: paid, or declined/reversed and confirmed by the provider."""
    return payment.state.value in ("paid", "failed", "cancelled", "expired") \
        and not payment.closing


def _finished(job: PrintJob | None) -> bool:
    """The printer has had its say on ``job`` (its outcome is on the way to the lane)."""
    return job is not None and job.status != "pending"


def _short(code: str) -> str:
    printable = code.encode("unicode_escape").decode("ascii")
    return printable if len(printable) <= 24 else printable[:21] + "..."


def run_scenario(path: Path, data_dir: Path | None = None) -> Transcript:
    """Run one scenario file in a fresh data directory (a temporary one unless given)."""
    scenario = load_scenario(path)
    own = data_dir is None
    target = Path(tempfile.mkdtemp(prefix="kiosk-scenario-")) if own else data_dir
    assert target is not None
    if not own and target.exists() and any(target.iterdir()):
        raise ScenarioError(f"{target} is not empty: a scenario starts from a fresh data "
                            "directory (remove it, or give another --data)")
    try:
        return Runner(scenario, target).run()
    finally:
        if own:
            shutil.rmtree(target, ignore_errors=True)


__all__ = ["Runner", "Scenario", "ScenarioError", "Transcript",
           "load_scenario", "run_scenario"]
