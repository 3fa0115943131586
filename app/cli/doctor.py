"""``kiosk doctor``: every check a technician needs on a kiosk PC, each a line with its fix.

The checks that need neither devices nor the network live in
``app.services.doctor``; the probes here talk to the hardware and the outside
services through the same device code the kiosk runs (built by
``app.bootstrap``): the camera's frame source, the printer's DLE EOT status
(``devices.printer``), the scanner's serial port, the payment adapter's
``check_credentials`` and the membership client's ``check_access``. OpenGL is
probed in a subprocess (``python -m app.ui.glprobe``) with a timeout, since a
broken driver can crash or hang the process that makes the context. Every
check is time-boxed (``app.services.doctor.run_one``).

Exit status: 1 if any check failed (something a shopper would notice, or a key
others can read), else 0 (warnings included). ``--json``: the shape of
``app.services.doctor.report_json`` (schema 1).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from app import bootstrap
from app.cli.root import Context
from app.config import Settings
from app.services import doctor as d
from app.services.doctor import Check, CheckResult

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "scan-and-go-kiosk"
KIOSK_USER = "kiosk"  # the user `kiosk install` makes

# Where the clock's synchronisation is read (module attributes, so a test can point them
# at a machine without systemd): timedatectl first, then systemd-timesyncd's flag file,
# which exists while the clock is synchronised (systemd-timesyncd.service(8)).
TIMEDATECTL = "timedatectl"
TIMESYNC_DIR = Path("/run/systemd/timesync")
TIMESYNC_FLAG = TIMESYNC_DIR / "synchronized"

GL_TIMEOUT_S = 20.0
CAMERA_FRAMES = 30  # frames measured for the rate
CAMERA_BUDGET_S = 6.0  # the most the camera check waits for them (monotonic)
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer")


# --- versions --------------------------------------------------------------------------------
def _requirements() -> tuple[str, list[str]]:
    """``requires-python`` and the dependency lines: from the installed distribution's
    metadata, else pyproject.toml (a checkout that was never installed)."""
    try:
        meta = metadata.metadata(DISTRIBUTION)
        return str(meta.get("Requires-Python") or ""), list(metadata.requires(DISTRIBUTION) or [])
    except metadata.PackageNotFoundError:
        import tomllib

        project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text("utf-8"))["project"]
        return str(project.get("requires-python", "")), list(project.get("dependencies", []))


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> CheckResult:
    requires_python, requirements = _requirements()
    return d.check_versions(requires_python, requirements, _installed)


# --- OpenGL and the display ------------------------------------------------------------------
def probe_gl(timeout_s: float = GL_TIMEOUT_S) -> tuple[dict[str, Any] | None, str]:
    """Run ``python -m app.ui.glprobe``: (its JSON, '') or (None, why it failed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT),
                                                    env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run([sys.executable, "-m", "app.ui.glprobe"], cwd=PROJECT_ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, f"no GL context within {timeout_s:g} s (the probe hung and was killed)"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        err = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, (f"the probe exited {done.returncode}: "
                      + (err[-1][:200] if err else "no output"))
    try:
        return dict(json.loads(lines[-1])), ""
    except ValueError:
        return None, f"the probe printed {lines[-1][:200]!r}"


def gl_result(found: dict[str, Any] | None, why: str) -> CheckResult:
    fix_driver = ("install the graphics driver (Debian: the mesa drivers; firmware-misc-"
                  "nonfree for some GPUs) and check the session: journalctl -u kiosk")
    if found is None:
        return d.fail("opengl", f"no OpenGL context: {why}", fix_driver)
    renderer, version = str(found.get("renderer", "")), str(found.get("version", ""))
    facts = {k: found.get(k) for k in ("vendor", "renderer", "version")}
    text = f"{found.get('vendor')} / {renderer} / OpenGL {version}"
    try:
        major = int(version.split(".")[0].split()[-1])
    except (ValueError, IndexError):
        major = 0
    if major < 2 and "OpenGL ES" not in version:
        return d.fail("opengl", f"{text}: the kiosk's screen needs OpenGL 2.0", fix_driver,
                      **facts)
    if any(s in renderer.lower() for s in SOFTWARE_RENDERERS):
        return d.warn("opengl", f"{text}: software rendering (the CPU draws the screen; the "
                      "camera preview will stutter)", fix_driver, **facts)
    return d.ok("opengl", text, **facts)


# --- camera ----------------------------------------------------------------------------------
def check_camera(settings: Settings) -> CheckResult:
    """The configured camera opens and delivers frames at the expected size and rate:
    ``CAMERA_FRAMES`` frames (at most ``CAMERA_BUDGET_S`` s), rate measured on the
    monotonic clock from the first frame to the last. Below half the expected rate fails
    (scanning lags), below 80 % warns; another size than asked for warns (drivers choose)."""
    from devices.camera import CameraError

    c = settings.camera
    factory = bootstrap.camera_source(settings)
    if factory is None:
        return d.ok("camera", "camera.source = none: no camera (scanners only)")
    source = factory()
    name = getattr(source, "name", c.source)
    fix = (f"check the camera's cable and that {c.device} exists (ls -l /dev/v4l/by-id/); "
           "camera.device names it; journalctl -u kiosk shows the kiosk's camera errors")
    try:
        source.open()
    except (CameraError, OSError, RuntimeError) as exc:
        return d.fail("camera", f"{name} does not open: {exc}", fix)
    try:
        stamps: list[float] = []
        shape: tuple[int, ...] = ()
        deadline = time.monotonic() + CAMERA_BUDGET_S
        while len(stamps) < CAMERA_FRAMES and time.monotonic() < deadline:
            frame = source.read()
            if frame is None:
                time.sleep(0.01)
                continue
            stamps.append(time.monotonic())
            shape = tuple(frame.shape)
    except (CameraError, OSError, RuntimeError) as exc:
        return d.fail("camera", f"{name} opened but failed while reading: {exc}", fix)
    finally:
        source.close()
    if len(stamps) < 2:
        return d.fail("camera", f"{name} opened but delivered {len(stamps)} frame(s) in "
                      f"{CAMERA_BUDGET_S:g} s", fix)
    fps = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6)
    height, width = shape[0], shape[1]
    facts = {"source": name, "frames": len(stamps), "fps": round(fps, 1), "width": width,
             "height": height, "expected_fps": c.fps}
    text = f"{name}: {len(stamps)} frames, {width}x{height}, {fps:.1f} fps"
    if fps < 0.5 * c.fps:
        return d.fail("camera", f"{text}, under half the {c.fps} fps asked for: scanning "
                      "will lag", "use a USB 2/3 port of its own, better light (auto exposure "
                      "slows the rate in the dark), or lower camera.width/height", **facts)
    if fps < 0.8 * c.fps:
        return d.warn("camera", f"{text}, below the {c.fps} fps asked for",
                      "better light, or lower camera.width/height", **facts)
    if (width, height) != (c.width, c.height):
        return d.warn("camera", f"{text}, not the {c.width}x{c.height} asked for (the driver "
                      "chose)", "set camera.width/height to a size the camera offers "
                      "(v4l2-ctl --list-formats-ext)", **facts)
    return d.ok("camera", text, **facts)


# --- printer and scanners --------------------------------------------------------------------
def check_printer(settings: Settings) -> CheckResult:
    """The receipt printer's port opens and it answers DLE EOT with a state it can print
    in (``devices.printer.read_status``, the print queue's own check)."""
    from devices.printer import PORT_ERRORS, PrinterState, read_status

    p = settings.printer
    if not p.port:
        return d.warn("printer", "printer.port is not set: no paper receipts (the exit pass "
                      "shows on screen)", "set printer.port to /dev/serial/by-id/... "
                      "(kiosk printer status --port ... to try one)")
    link = bootstrap.build_printer_link(settings)
    try:
        link.open()
    except PORT_ERRORS as exc:
        if "in use" in str(exc):
            return d.warn("printer", f"{p.port} is in use by another program (the running "
                          "kiosk holds it)", "staff's device health shows the kiosk's own "
                          "printer state; or stop the kiosk (systemctl stop kiosk) and run "
                          "the doctor again", port=p.port)
        return d.fail("printer", f"{p.port} does not open: {exc}",
                      "check the printer's power and cable, and that printer.port names it "
                      "(ls -l /dev/serial/by-id/)", port=p.port)
    try:
        status = read_status(link, p.status_timeout_ms / 1000)
    except PORT_ERRORS as exc:
        return d.fail("printer", f"{p.port} failed while asking its status: {exc}",
                      "check the printer's cable; journalctl -u kiosk", port=p.port)
    finally:
        link.close()
    facts = {"port": p.port, "state": status.state.value, "detail": status.detail}
    said = status.state.value + (f" ({status.detail})" if status.detail else "")
    if status.state is PrinterState.OK:
        return d.ok("printer", f"{p.port}: {said}", **facts)
    if status.state is PrinterState.PAPER_NEAR_END:
        return d.warn("printer", f"{p.port}: {said}", "put in a new paper roll soon", **facts)
    if status.state is PrinterState.UNKNOWN:
        return d.fail("printer", f"{p.port}: the printer does not answer its status request "
                      f"(DLE EOT) within {p.status_timeout_ms} ms",
                      "switch the printer on; check printer.baudrate against its self-test "
                      "page (hold FEED while switching on) and the cable", **facts)
    fixes = {PrinterState.PAPER_OUT: "load a paper roll",
             PrinterState.COVER_OPEN: "close the printer's cover",
             PrinterState.OFFLINE: "clear the printer's error (paper jam, cover) and switch "
                                   "it off and on"}
    return d.fail("printer", f"{p.port}: {said}: receipts cannot print",
                  fixes.get(status.state, "check the printer"), **facts)


def check_scanner(settings: Settings) -> CheckResult:
    """The serial scanner's port opens (when one is configured)."""
    import serial

    s = settings.scanner
    if not s.serial_port:
        return d.ok("scanners", "no serial scanner configured (scanner.serial_port): the "
                    "camera and a keyboard-wedge scanner only")
    try:
        port = serial.serial_for_url(s.serial_port, baudrate=s.serial_baudrate, timeout=0.2,
                                     rtscts=s.serial_rtscts, xonxoff=s.serial_xonxoff)
        port.close()
    except (serial.SerialException, OSError, ValueError) as exc:
        return d.fail("scanners", f"{s.serial_port} does not open: {exc}",
                      "check the scanner's cable and that scanner.serial_port names it "
                      "(ls -l /dev/serial/by-id/)", port=s.serial_port)
    return d.ok("scanners", f"{s.serial_port} opens", port=s.serial_port)


# --- clock -----------------------------------------------------------------------------------
def clock_synchronised() -> tuple[bool | None, str]:
    """(synchronised, where that was read), or (None, why it could not be told)."""
    tool = shutil.which(TIMEDATECTL)
    if tool:
        try:
            done = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"],
                                  capture_output=True, text=True, timeout=5, check=False)
            answer = done.stdout.strip()
            if done.returncode == 0 and answer in ("yes", "no"):
                return answer == "yes", "timedatectl"
        except (subprocess.TimeoutExpired, OSError):
            pass
    if TIMESYNC_FLAG.exists():
        return True, str(TIMESYNC_FLAG)
    if TIMESYNC_DIR.is_dir():
        return False, f"systemd-timesyncd has not written {TIMESYNC_FLAG}"
    return None, "timedatectl did not answer and systemd-timesyncd is not running"


# --- payment and membership ------------------------------------------------------------------
def check_payment(settings: Settings, seen: dict[str, Any]) -> CheckResult:
    """The payment adapter builds, the provider answers and accepts the credentials
    (``check_credentials``: a signed query for an order that cannot exist). What it
    answered is kept in ``seen`` for the clock-offset check."""
    adapter = settings.payment.adapter
    try:
        provider = bootstrap.build_payment_provider(settings)
    except Exception as exc:  # noqa: BLE001 - an adapter's own set-up errors, any kind
        return d.fail("payment", f"the {adapter!r} adapter cannot start: {exc}",
                      "fix payment.options (docs/payments.md lists each adapter's)",
                      adapter=adapter)
    probe = getattr(provider, "check_credentials", None)
    if probe is None:  # a plugin written before the port had it
        return d.warn("payment", f"the {adapter!r} adapter has no check_credentials(): "
                      "reachability and credentials not checked",
                      "try a payment by hand (kiosk pay start --cart doctor --amount 0.01, "
                      "then kiosk pay cancel); ask the adapter's maker for "
                      "check_credentials() (docs/payments.md)", adapter=adapter)
    checked = probe()
    seen["payment"] = checked
    facts = {"adapter": adapter}
    if not checked.reached:
        return d.fail("payment", f"the payment provider does not answer: {checked.detail}",
                      "check the network (ping, DNS, the store's firewall) and "
                      "payment.options.base_url; is the provider down?", **facts)
    if not checked.accepted:
        where = f"check {checked.setting}" if checked.setting else \
            "check payment.options (docs/payments.md)"
        return d.fail("payment", f"credentials not accepted: {checked.detail}",
                      where, setting=checked.setting, **facts)
    return d.ok("payment", checked.detail, **facts)


def check_clock_offset(seen: dict[str, Any]) -> CheckResult:
    checked = seen.get("payment")
    if checked is None or not checked.reached:
        return d.warn("clock offset", "not measured: no reply from the payment provider to "
                      "read its Date header from", "see the payment line; then run the "
                      "doctor again, or compare the clock by hand: timedatectl")
    return d.check_clock_offset(checked.server_date, checked.sent_at, checked.received_at,
                                "the payment provider")


def check_membership(settings: Settings) -> CheckResult:
    client = bootstrap.build_member_client(settings)
    if client is None:
        return d.ok("membership", "membership.base_url not set: events stay on the kiosk")
    outcome, detail = client.check_access(settings.kiosk.lane_id)
    if outcome == "accepted":
        return d.ok("membership", detail)
    if outcome == "refused":
        return d.fail("membership", detail, "check membership.token (the backend's admin "
                      "issues it)")
    return d.fail("membership", detail, "check the network and membership.base_url; events "
                  "wait in the outbox (kiosk outbox status) until it answers")


# --- keys ------------------------------------------------------------------------------------
PAYMENT_KEY_OPTIONS = ("private_key_file", "apiv3_key_file", "app_private_key_file",
                       "secret_file")


def key_checks(settings: Settings, uid: int, config_file: Path | None) -> list[Check]:
    """The private keys and secrets the kiosk holds: the exit-pass signing key, the staff
    PIN secret, the payment adapter's private key files, and the settings file when it
    holds a secret (payment.options.secret, membership.token)."""
    checks = [
        Check("key exit-pass", lambda: d.check_key_file(
            "exit-pass", settings.private_key_path, uid, required=False,
            created_by="kiosk pass key (creates it; add the printed line to the store's "
                       "key file)")),
        Check("key staff", lambda: d.check_key_file(
            "staff", settings.staff_secret_path, uid, required=False,
            created_by="kiosk staff add ... creates it")),
    ]
    for option in PAYMENT_KEY_OPTIONS:
        value = settings.payment.options.get(option)
        if value:
            path = Path(str(value))
            checks.append(Check(f"key {option}", lambda p=path, o=option: d.check_key_file(
                f"payment.options.{o}", p, uid, required=True)))
    holds_secret = bool(settings.payment.options.get("secret") or settings.membership.token)
    if config_file is not None and holds_secret:
        checks.append(Check("key settings", lambda: d.check_key_file(
            "settings", config_file, uid, required=True)))
    return checks


def kiosk_uid(user: str | None) -> int:
    """The kiosk user's uid: ``--user``, else ``kiosk`` when run as root and that user
    exists (the installed service's user), else whoever runs the doctor."""
    if user:
        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            raise click.BadParameter(f"no user {user!r}", param_hint="--user") from None
    if os.geteuid() == 0:
        try:
            return pwd.getpwnam(KIOSK_USER).pw_uid
        except KeyError:
            pass
    return os.geteuid()


def config_file_in_use(obj: Context) -> Path | None:
    if obj.config is not None:
        return obj.config
    env = os.environ.get("KIOSK_CONFIG")
    if env:
        return Path(env)
    default = obj.settings.data_dir / "kiosk.toml"
    return default if default.is_file() else None


def build_checks(settings: Settings, uid: int, config_file: Path | None) -> list[Check]:
    """Every check, in the order a technician reads them."""
    from app.fonts import find_cjk_font

    seen: dict[str, Any] = {}
    gl: dict[str, Any] = {}

    def opengl() -> CheckResult:
        found, why = probe_gl()
        gl["found"] = found
        return gl_result(found, why)

    def display() -> CheckResult:
        size = (gl.get("found") or {}).get("size")
        return d.check_display(os.environ, (int(size[0]), int(size[1])) if size else None)

    data_dir = settings.data_dir
    return [
        Check("versions", check_versions),
        Check("font", lambda: d.check_font(
            lambda: find_cjk_font(settings.ui.font, PROJECT_ROOT), settings.ui.font)),
        Check("opengl", opengl, GL_TIMEOUT_S + 5),
        Check("display", display),
        Check("camera", lambda: check_camera(settings), CAMERA_BUDGET_S + 6),
        Check("printer", lambda: check_printer(settings)),
        Check("scanners", lambda: check_scanner(settings)),
        Check("data dir", lambda: d.check_data_dir(
            data_dir, uid, min_free_mb=settings.payment.min_free_mb,
            reserve_mb=settings.payment.reserve_mb)),
        Check("database", lambda: d.check_database(
            settings.database_path, bootstrap.restore_command(settings),
            (settings.audit_head_path, data_dir / "keys" / "exit-pass.pem")), 60),
        Check("backups", lambda: d.check_backups(
            data_dir / "backups", settings.kiosk.backup_every_h, time.time())),
        Check("clock sync", lambda: d.check_clock_sync(*clock_synchronised())),
        Check("payment", lambda: check_payment(settings, seen), 30),
        Check("clock offset", lambda: check_clock_offset(seen)),
        Check("membership", lambda: check_membership(settings), 15),
        *key_checks(settings, uid, config_file),
    ]


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object (schema 1, docs/install.md#kiosk-doctor) for fleet tools.")
@click.option("--user", help="The kiosk's user, who must own the data and the keys "
              "(default: 'kiosk' when run as root and it exists, else the current user).")
@click.option("--check", "only", multiple=True, metavar="NAME",
              help="Run only this check (repeatable), e.g. --check printer.")
@click.option("--skip", multiple=True, metavar="NAME",
              help="Leave this check out (repeatable), e.g. --skip opengl on a lane that is "
              "open (the probe shows a full-screen window for a moment).")
@click.pass_obj
def doctor(obj: Context, as_json: bool, user: str | None, only: tuple[str, ...],
           skip: tuple[str, ...]) -> None:
    """Check this kiosk PC: versions, fonts, OpenGL, display, camera, printer, scanners,
    data, database, backups, clock, payment, membership, keys. Each line: PASS, WARN or
    FAIL, what was found and the fix. Exit 1 if anything failed."""
    settings = obj.settings
    checks = build_checks(settings, kiosk_uid(user), config_file_in_use(obj))
    names = {c.name for c in checks}
    for option, given in (("--check", only), ("--skip", skip)):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise click.BadParameter(f"{', '.join(unknown)}; checks: {', '.join(sorted(names))}",
                                     param_hint=option)
    if only:
        # A check that reads another's result brings it along: the display's size comes
        # from the OpenGL probe, the clock offset from the payment provider's reply.
        keep = set(only) | ({"opengl"} if "display" in only else set())
        keep |= {"payment"} if "clock offset" in only else set()
        checks = [c for c in checks if c.name in keep]
    checks = [c for c in checks if c.name not in skip]
    show: Callable[[CheckResult], None] | None = None
    if not as_json:
        click.echo(f"kiosk doctor: lane {settings.kiosk.lane_id}, data {settings.data_dir}")
        show = lambda r: click.echo(d.format_result(r))  # noqa: E731
    results = d.run_checks(checks, show)
    if as_json:
        click.echo(json.dumps(d.report_json(results, settings.kiosk.lane_id,
                                            datetime.now(UTC).isoformat(timespec="seconds")),
                              ensure_ascii=False, indent=1))
    else:
        click.echo(d.summary(results))
    sys.exit(d.exit_status(results))
