"""The install plan: what ``kiosk install`` does, as a list of steps built with no I/O.

``install_plan``, ``rollback_plan`` and ``uninstall_plan`` are pure: they take the
options and a ``Found`` (what is already on the machine, read by
``app.install.execute.survey``) and return steps. ``app.install.execute`` prints
them (``--dry-run``) or carries them out, so what the dry run lists is what runs.

Paths in steps are as on the installed machine; ``--root DIR`` is applied by the
executor. ``Run`` steps marked ``system`` change the running system (users, apt,
systemd, udev) and are skipped under ``--root``; the others touch only paths
inside the root and run there too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.install import files
from app.install.files import Layout

RELEASE_FILE = "release.json"  # in a release's directory: its name and the one before


@dataclass(frozen=True)
class MakeDir:
    path: PurePosixPath
    mode: int
    owner: str
    group: str


@dataclass(frozen=True)
class WriteFile:
    path: PurePosixPath
    mode: int
    owner: str
    group: str
    content: str
    why: str = ""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


@dataclass(frozen=True)
class Link:
    """Point ``path`` at ``target`` (relative), replacing any link there in one rename."""

    path: PurePosixPath
    target: str


@dataclass(frozen=True)
class Run:
    """Run ``argv``. ``system``: it changes the running system, so it is skipped (and
    listed as skipped) under ``--root``. Paths in ``argv`` that ``rooted`` lists are
    given under the root."""

    argv: tuple[str, ...]
    system: bool
    rooted: tuple[int, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Own:
    """chown ``path`` (and everything below it) to ``owner``:``group``."""

    path: PurePosixPath
    owner: str
    group: str


@dataclass(frozen=True)
class Migrate:
    """Back the database up and apply the pending migrations (``app.storage.upgrade``),
    recording what ran in ``record`` (JSON) for a rollback. ``python``: the release's own
    interpreter, which runs it, so the migrations are the release's, not the installer's
    (``--source`` may be another version than the checkout running ``kiosk install``)."""

    database: PurePosixPath
    release: str
    record: PurePosixPath
    python: PurePosixPath | None = None


@dataclass(frozen=True)
class Restore:
    """Put ``backup`` back in place of ``database`` (``app.storage.db.restore_database``)."""

    backup: PurePosixPath
    database: PurePosixPath


@dataclass(frozen=True)
class Remove:
    path: PurePosixPath
    tree: bool = False


@dataclass(frozen=True)
class Note:
    text: str


Step = MakeDir | WriteFile | Link | Run | Own | Migrate | Restore | Remove | Note


@dataclass(frozen=True)
class Found:
    """What is already installed (read by ``execute.survey``; the tests make their own)."""

    user_exists: bool = False
    current: str | None = None  # the release `current` points at
    releases: tuple[str, ...] = ()
    config_exists: bool = False
    units_exist: bool = True  # kiosk.service or kiosk-x.service is in the unit directory
    # The current release's release.json and upgrade.json, for a rollback.
    current_record: dict[str, object] = field(default_factory=dict)
    current_upgrade: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    release: str
    source: str  # what pip installs: the source checkout, a wheel or a requirement
    layout: Layout = field(default_factory=Layout)
    pip_args: tuple[str, ...] = ()
    camera: str = ""
    printer: str = ""
    scanner: str = ""


class PlanError(Exception):
    """The plan cannot be made (no release to roll back to, ...); the message says why."""


def _database(layout: Layout) -> PurePosixPath:
    return layout.data_dir / "kiosk.db"


def install_plan(opts: Options, found: Found) -> list[Step]:
    """Every step of installing (or upgrading to) ``opts.release``, in order: packages,
    the user, the data directory (0750, the kiosk's), the release's virtual environment,
    the kiosk stopped, the database backed up and migrated (once, here), the store's
    settings file (only if absent), udev rules, X server and system settings, systemd
    units, ``current`` switched to the release, the units enabled and (re)started."""
    lay = opts.layout
    user = lay.user
    rel = lay.release_dir(opts.release)
    venv = rel / "venv"
    upgrading = found.current is not None and found.current != opts.release
    steps: list[Step] = [
        Run(("apt-get", "install", "-y", "--no-install-recommends", *files.SESSION_PACKAGES),
            system=True, why="the X server, Python's venv, the decoder's and fonts' libraries"),
    ]
    if found.user_exists:
        steps.append(Run(("usermod", "--append", "--groups", "video,dialout", user),
                         system=True, why="the user exists: make sure of its groups"))
    else:
        steps.append(Run(("useradd", "--system", "--user-group", "--groups", "video,dialout",
                          "--home-dir", str(lay.data_dir), "--no-create-home",
                          "--shell", "/usr/sbin/nologin", user),
                         system=True, why="the unprivileged user the kiosk runs as"))
    steps += [
        MakeDir(lay.data_dir, 0o750, user, user),
        MakeDir(lay.data_dir / "backups", 0o750, user, user),
        MakeDir(lay.prefix, 0o755, "root", "root"),
        MakeDir(lay.releases, 0o755, "root", "root"),
    ]
    if opts.release in found.releases:
        steps.append(Note(f"release {opts.release} is already in {rel}: its virtual "
                          "environment is kept (remove the directory to rebuild it)"))
    else:
        steps += [
            MakeDir(rel, 0o755, "root", "root"),
            Run((lay.python, "-m", "venv", str(venv)), system=False, rooted=(3,),
                why="the release's own virtual environment"),
            Run((str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--quiet",
                 *opts.pip_args, opts.source), system=False, rooted=(0,),
                why="the kiosk and its Python packages"),
        ]
    previous = found.current if upgrading else found.current_record.get("previous")
    record = {"release": opts.release, "previous": previous, "source": opts.source}
    steps.append(WriteFile(rel / RELEASE_FILE, 0o644, "root", "root",
                           json.dumps(record, indent=2, sort_keys=True) + "\n",
                           why="which release this is and the one a rollback returns to"))
    if found.current is not None:
        steps.append(Run(("systemctl", "stop", files.KIOSK_UNIT), system=True,
                         why="the database is migrated with the kiosk stopped"))
    steps += [
        Migrate(_database(lay), opts.release, rel / "upgrade.json", venv / "bin" / "python"),
        Own(lay.data_dir, user, user),
    ]
    if found.config_exists:
        steps.append(Note(f"{lay.data_dir / 'kiosk.toml'} exists: kept as it is"))
    else:
        # 0600: the store adds the payment secret and membership token here (docs/install.md
        # step 3, sudoedit keeps the mode), and kiosk doctor fails a secret others can read.
        steps.append(WriteFile(lay.data_dir / "kiosk.toml", 0o600, user, user,
                               files.kiosk_toml(opts.camera, opts.printer, opts.scanner),
                               why="the store's settings: the devices by stable paths"))
    steps += [
        WriteFile(files.UDEV_RULES, 0o644, "root", "root", files.udev_rules(lay),
                  why="the kiosk's group may open the camera, printer and scanners"),
        WriteFile(files.XORG_CONF, 0o644, "root", "root", files.xorg_conf(),
                  why="no VT switching, no zap, no blanking"),
        WriteFile(files.SYSCTL_CONF, 0o644, "root", "root", files.sysctl_conf(),
                  why="no magic SysRq keys"),
        WriteFile(files.LOGIND_CONF, 0o644, "root", "root", files.logind_conf(),
                  why="no spare login consoles"),
        WriteFile(files.UNIT_DIR / files.X_UNIT, 0o644, "root", "root", files.x_unit(lay),
                  why="the bare X server on its own VT"),
        WriteFile(files.UNIT_DIR / files.KIOSK_UNIT, 0o644, "root", "root",
                  files.kiosk_unit(lay), why="the lane, supervised"),
        Link(lay.current, f"releases/{opts.release}"),
        Run(("udevadm", "control", "--reload"), system=True),
        Run(("udevadm", "trigger", "--subsystem-match=video4linux",
             "--subsystem-match=tty", "--subsystem-match=usbmisc"), system=True,
            why="devices already plugged in get the new group"),
        Run(("sysctl", "--load", str(files.SYSCTL_CONF)), system=True),
        Run(("systemctl", "daemon-reload"), system=True),
        Run(("systemctl", "mask", "ctrl-alt-del.target"), system=True,
            why="Ctrl+Alt+Del on a console does not reboot the lane"),
        Run(("systemctl", "set-default", "graphical.target"), system=True),
        Run(("systemctl", "enable", files.X_UNIT, files.KIOSK_UNIT), system=True),
        Run(("systemctl", "restart", files.X_UNIT, files.KIOSK_UNIT), system=True),
    ]
    return steps


def rollback_plan(layout: Layout, found: Found) -> list[Step]:
    """Back to the release before the current one: the kiosk stopped, the pre-migration
    backup put back if this release's install migrated the database (the current file
    is kept aside, ``kiosk.db.before-restore-<time>``), ``current`` switched back, the
    kiosk started. Raises ``PlanError`` when there is no previous release."""
    previous = found.current_record.get("previous")
    if found.current is None:
        raise PlanError(f"nothing is installed in {layout.prefix}: nothing to roll back")
    if not isinstance(previous, str) or previous not in found.releases:
        raise PlanError(f"release {found.current} records no previous release still in "
                        f"{layout.releases}: nothing to roll back to")
    steps: list[Step] = [Run(("systemctl", "stop", files.KIOSK_UNIT), system=True)]
    backup = found.current_upgrade.get("backup")
    if isinstance(backup, str) and backup:
        steps.append(Restore(PurePosixPath(backup), _database(layout)))
        steps.append(Own(layout.data_dir, layout.user, layout.user))
    else:
        steps.append(Note(f"release {found.current}'s install changed no schema: the "
                          "database stays as it is"))
    steps += [
        Link(layout.current, f"releases/{previous}"),
        Run(("systemctl", "start", files.KIOSK_UNIT), system=True),
    ]
    return steps


def uninstall_plan(layout: Layout, purge: bool, found: Found | None = None) -> list[Step]:
    """Stop and remove the units, settings and releases. The data directory (sales,
    audit log, keys, backups) and the user stay unless ``purge``. The units are stopped
    only while their files are there (``found.units_exist``): systemctl cannot stop a unit
    it no longer knows ("not loaded"), which stopped a second uninstall (``--purge`` after
    a plain one) at its first step."""
    steps: list[Step] = []
    if found is None or found.units_exist:
        steps.append(Run(("systemctl", "disable", "--now", files.KIOSK_UNIT, files.X_UNIT),
                         system=True))
    else:
        steps.append(Note("the kiosk's units are already removed: nothing to stop"))
    steps += [
        *(Remove(path) for path in files.SYSTEM_FILES),
        Run(("systemctl", "daemon-reload"), system=True),
        Run(("systemctl", "unmask", "ctrl-alt-del.target"), system=True),
        Run(("udevadm", "control", "--reload"), system=True),
        Remove(layout.prefix, tree=True),
    ]
    if purge:
        steps += [Remove(layout.data_dir, tree=True),
                  Run(("userdel", layout.user), system=True)]
    else:
        steps.append(Note(f"kept {layout.data_dir} (sales, audit log, keys, backups) and "
                          f"the user {layout.user}: --purge removes them"))
    return steps
