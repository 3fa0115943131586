"""The texts ``kiosk install`` writes: systemd units, udev rules, X server and system settings.

Pure functions of the install's layout (``Layout``): no I/O, so the dry run's digests
and the golden listing depend on nothing but the options.

The session is a bare X server with no window manager (docs/install.md, "Why a bare X
server"): Kivy's SDL2 (the wheel's bundled libSDL2 2.30) has no Wayland video driver,
so under ``cage`` the kiosk would run through Xwayland anyway, one more server in
between; a bare Xorg is the path Kivy and the test suite already use (Xvfb).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

# systemd's watchdog for the lane: the kiosk pings (sd_notify WATCHDOG=1) from its lane
# loop; a lane silent for this long is killed and restarted (systemd.service(5)).
WATCHDOG_SEC = 30
# Restart within 5 s of a crash (issue 20): RestartSec plus the kiosk's start-up.
RESTART_SEC = 2
# More than START_LIMIT_BURST starts within START_LIMIT_INTERVAL_SEC: the unit stops
# being restarted (systemd.unit(5)) instead of flapping.
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_SEC = 120
# SIGTERM, then this long to close devices and persist, then SIGKILL.
TIMEOUT_STOP_SEC = 15

X_DISPLAY = ":0"
X_VT = 7

SESSION_PACKAGES = (
    "python3-venv",
    "xserver-xorg-core",
    "xserver-xorg-input-libinput",
    "xserver-xorg-legacy",
    "x11-xserver-utils",
    "kbd",  # chvt: the X server's VT is brought to the front
    "libzbar0",
    "fonts-wqy-microhei",
    "libgl1",
    "libgl1-mesa-dri",
    "libegl1",
    "libmtdev1",
)


@dataclass(frozen=True)
class Layout:
    """Where an install puts things (paths as on the installed machine, not under --root)."""

    user: str = "kiosk"
    data_dir: PurePosixPath = PurePosixPath("/var/lib/kiosk")
    prefix: PurePosixPath = PurePosixPath("/opt/kiosk")
    python: str = "/usr/bin/python3"

    @property
    def releases(self) -> PurePosixPath:
        return self.prefix / "releases"

    @property
    def current(self) -> PurePosixPath:
        return self.prefix / "current"

    def release_dir(self, release: str) -> PurePosixPath:
        return self.releases / release

    @property
    def kiosk_bin(self) -> PurePosixPath:
        # Through the `current` symlink: a rollback is switching one link.
        return self.current / "venv" / "bin" / "kiosk"


UNIT_DIR = PurePosixPath("/etc/systemd/system")
KIOSK_UNIT = "kiosk.service"
X_UNIT = "kiosk-x.service"
UDEV_RULES = PurePosixPath("/etc/udev/rules.d/70-kiosk.rules")
XORG_CONF = PurePosixPath("/etc/X11/xorg.conf.d/50-kiosk.conf")
SYSCTL_CONF = PurePosixPath("/etc/sysctl.d/90-kiosk.conf")
LOGIND_CONF = PurePosixPath("/etc/systemd/logind.conf.d/90-kiosk.conf")
SYSTEM_FILES = (UNIT_DIR / KIOSK_UNIT, UNIT_DIR / X_UNIT, UDEV_RULES, XORG_CONF,
                SYSCTL_CONF, LOGIND_CONF)

HEADER = "# Written by `kiosk install` (docs/install.md); reinstalling rewrites this file.\n"


def x_server_args(layout: Layout) -> list[str]:
    """The X server's command line: no TCP, no cursor (a touch screen), no screen saver
    and no DPMS (blanking off), never switching VT by itself (Xorg(1), Xserver(1))."""
    return ["/usr/bin/Xorg", X_DISPLAY, f"vt{X_VT}", "-keeptty", "-novtswitch",
            "-nolisten", "tcp", "-nocursor", "-s", "0", "-dpms"]


def xorg_conf() -> str:
    """The X server's own escape keys, off (xorg.conf(5), ServerFlags): DontVTSwitch
    (Ctrl+Alt+F1..F12), DontZap (Ctrl+Alt+Backspace), DontZoom (Ctrl+Alt+Keypad +/-);
    blanking and DPMS off; and no XKB server keys on any keyboard (``srvrkeys:none``:
    Ctrl+Alt+Fn are plain F keys)."""
    return HEADER + """\
# The kiosk's bare X server: no escape keys, no blanking.
Section "ServerFlags"
    Option "DontVTSwitch" "true"
    Option "DontZap" "true"
    Option "DontZoom" "true"
    Option "BlankTime" "0"
    Option "StandbyTime" "0"
    Option "SuspendTime" "0"
    Option "OffTime" "0"
EndSection

Section "InputClass"
    Identifier "kiosk: no server keys"
    MatchIsKeyboard "on"
    Option "XkbOptions" "srvrkeys:none"
EndSection

Section "Extensions"
    Option "DPMS" "false"
EndSection
"""


def udev_rules(layout: Layout) -> str:
    """Let the kiosk's group open cameras (video4linux) and USB serial devices (receipt
    printers, serial scanners: ttyUSB*, ttyACM*) and USB line printers; the stable names
    (/dev/v4l/by-id, /dev/serial/by-id) come from Debian's own 60-persistent-v4l.rules and
    60-serial.rules and point at these nodes (udev(7))."""
    group = layout.user
    return HEADER + f"""\
# The kiosk's camera, receipt printer and scanners: name them in kiosk.toml by their
# stable paths (/dev/v4l/by-id/..., /dev/serial/by-id/...), which point at these nodes.
SUBSYSTEM=="video4linux", GROUP="{group}", MODE="0660"
SUBSYSTEM=="tty", KERNEL=="ttyUSB[0-9]*|ttyACM[0-9]*", GROUP="{group}", MODE="0660"
SUBSYSTEM=="usbmisc", KERNEL=="lp[0-9]*", GROUP="{group}", MODE="0660"
"""


def sysctl_conf() -> str:
    """No magic SysRq keys (Alt+SysRq+B reboots, +K kills the session: kernel
    Documentation/admin-guide/sysrq.rst)."""
    return HEADER + "kernel.sysrq = 0\n"


def logind_conf() -> str:
    """No spare login consoles: logind starts no getty on other VTs (logind.conf(5))."""
    return HEADER + "[Login]\nNAutoVTs=0\nReserveVT=0\n"


def x_unit(layout: Layout) -> str:
    """``kiosk-x.service``: the bare X server, as the kiosk user, on its own VT and logind
    session (PAMName, TTYPath: so a rootless Xorg may open the screen and input devices)."""
    return HEADER + f"""\
[Unit]
Description=Scan & Go kiosk: bare X server on tty{X_VT} (no window manager)
After=systemd-user-sessions.service systemd-logind.service getty@tty{X_VT}.service
Conflicts=getty@tty{X_VT}.service
StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}
StartLimitBurst={START_LIMIT_BURST}

[Service]
Type=simple
User={layout.user}
Group={layout.user}
PAMName=login
TTYPath=/dev/tty{X_VT}
TTYReset=yes
TTYVHangup=yes
TTYVTDisallocate=yes
StandardInput=tty-fail
StandardOutput=journal
StandardError=journal
UtmpIdentifier=tty{X_VT}
UtmpMode=user
ExecStartPre=+/bin/chvt {X_VT}
ExecStart={" ".join(x_server_args(layout))}
Restart=always
RestartSec={RESTART_SEC}s
TimeoutStopSec={TIMEOUT_STOP_SEC}s

[Install]
WantedBy=graphical.target
"""


def kiosk_unit(layout: Layout) -> str:
    """``kiosk.service``: the lane, on the X server's display. Type=notify (READY=1 when
    the lane is up; WATCHDOG=1 pings from the lane loop), restarted 2 s after any exit,
    rate-limited; SIGTERM to the kiosk alone first (KillMode=mixed), then SIGKILL to
    what is left after TimeoutStopSec (systemd.service(5), systemd.kill(5))."""
    data = layout.data_dir
    wait_x = (f"/bin/sh -c 'for i in $(seq 100); do [ -S /tmp/.X11-unix/X{X_DISPLAY[1:]} ] "
              f"&& exit 0; sleep 0.1; done; echo no X server on {X_DISPLAY} >&2; exit 1'")
    return HEADER + f"""\
[Unit]
Description=Scan & Go kiosk lane
Requires={X_UNIT}
After={X_UNIT} network-online.target time-sync.target
Wants=network-online.target
StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}
StartLimitBurst={START_LIMIT_BURST}

[Service]
Type=notify
NotifyAccess=main
User={layout.user}
Group={layout.user}
Environment=KIOSK_DATA_DIR={data} DISPLAY={X_DISPLAY} KIVY_NO_ARGS=1 KIVY_HOME={data}/.kivy
Environment=PYTHONUNBUFFERED=1
# Always full screen on the lane, whatever kiosk.toml says (app/ui/window.py sizes the
# window to the X screen: there is no window manager to do it).
Environment=KIOSK_UI__FULLSCREEN=true
WorkingDirectory={data}
UMask=0027
ExecStartPre={wait_x}
ExecStart={layout.kiosk_bin} run
Restart=always
RestartSec={RESTART_SEC}s
WatchdogSec={WATCHDOG_SEC}s
TimeoutStartSec=60s
TimeoutStopSec={TIMEOUT_STOP_SEC}s
KillMode=mixed
KillSignal=SIGTERM
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
ReadWritePaths={data}

[Install]
WantedBy=graphical.target
"""


def kiosk_toml(camera: str, printer: str, scanner: str) -> str:
    """The store's settings file, written once (never over one that exists): the devices
    by their stable paths; every other setting at its default (docs/settings.md)."""
    def line(name: str, value: str, example: str) -> str:
        return f'{name} = "{value}"\n' if value else f'# {name} = "{example}"\n'
    return (
        "# Written once by `kiosk install`; edit freely: reinstalling and upgrading keep it.\n"
        "# Every setting: docs/settings.md. Name devices by their stable paths.\n"
        "[camera]\n" + line("device", camera, "/dev/v4l/by-id/usb-...-video-index0")
        + "\n[printer]\n" + line("port", printer, "/dev/serial/by-id/usb-...-if00")
        + "\n[scanner]\n" + line("serial_port", scanner, "/dev/serial/by-id/usb-...-if00")
    )
