"""Carrying out an install plan (``app.install.plan``), or listing it for ``--dry-run``.

``survey`` reads what is installed; ``describe`` is one step's line in the listing;
``carry_out`` runs the steps in order and stops at the first that fails (an
``InstallFailed`` naming it). Under ``root`` (``--root DIR``) every path is taken
inside DIR, and ``Run`` steps marked ``system`` (apt, useradd, systemctl, udevadm,
sysctl) are listed as skipped instead of run: they would change this machine, not
the scratch root. Owners that do not exist on this machine (the kiosk user when
useradd was skipped) are reported and not applied; modes always are.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path, PurePosixPath

from app.install import files
from app.install import plan as p
from app.install.files import Layout


class InstallFailed(Exception):
    """A step failed; the message names it and what went wrong."""


def under(root: Path | None, path: PurePosixPath) -> Path:
    """``path`` (absolute, as on the installed machine) inside ``root`` (None: as is)."""
    return Path(path) if root is None else root / str(path).lstrip("/")


def _json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def survey(layout: Layout, root: Path | None) -> p.Found:
    """What is installed under ``root``: the user (looked up on this machine, or in
    ``root``'s /etc/passwd under a root), the releases, where ``current`` points, the
    current release's records, whether the store's settings file exists."""
    if root is None:
        try:
            pwd.getpwnam(layout.user)
            user_exists = True
        except KeyError:
            user_exists = False
    else:
        passwd = under(root, PurePosixPath("/etc/passwd"))
        user_exists = passwd.exists() and any(
            line.split(":", 1)[0] == layout.user
            for line in passwd.read_text(encoding="utf-8").splitlines())
    releases_dir = under(root, layout.releases)
    releases = tuple(sorted(d.name for d in releases_dir.iterdir() if d.is_dir())) \
        if releases_dir.is_dir() else ()
    link = under(root, layout.current)
    current = Path(os.readlink(link)).name if link.is_symlink() else None
    record: dict[str, object] = {}
    upgrade: dict[str, object] = {}
    if current is not None:
        rel = under(root, layout.release_dir(current))
        record = _json(rel / p.RELEASE_FILE)
        upgrade = _json(rel / "upgrade.json")
    return p.Found(user_exists=user_exists, current=current, releases=releases,
                   config_exists=under(root, layout.data_dir / "kiosk.toml").exists(),
                   units_exist=any(under(root, files.UNIT_DIR / unit).exists()
                                   for unit in (files.KIOSK_UNIT, files.X_UNIT)),
                   current_record=record, current_upgrade=upgrade)


def _argv(step: p.Run, root: Path | None) -> list[str]:
    return [str(under(root, PurePosixPath(a))) if i in step.rooted else a
            for i, a in enumerate(step.argv)]


def describe(step: p.Step, root: Path | None = None) -> str:
    """One line of the listing: what kind of step, its path or command, mode, owner,
    and for a file its size and sha256 (``--dry-run``; ``carry_out`` prints the same)."""
    match step:
        case p.MakeDir(path, mode, owner, group):
            return f"mkdir   {path}  {mode:04o} {owner}:{group}"
        case p.WriteFile(path, mode, owner, group, content, why):
            return (f"write   {path}  {mode:04o} {owner}:{group}  {len(content.encode())} "
                    f"bytes sha256:{step.digest[:16]}" + (f"  # {why}" if why else ""))
        case p.Link(path, target):
            return f"link    {path} -> {target}"
        case p.Run(system=system, why=why):
            tag = "run     " if not (system and root is not None) else "skip    "
            line = tag + " ".join(_argv(step, root))
            if system and root is not None:
                line += "  # --root: a system command, not run"
            elif why:
                line += f"  # {why}"
            return line
        case p.Own(path, owner, group):
            return f"chown   {path}  {owner}:{group} (recursive)"
        case p.Migrate(database, release, record):
            return (f"migrate {database}  # the release's pending migrations only (run by "
                    "its own venv), after a checked backup "
                    f"to backups/pre-upgrade-{release}-<time>.db; recorded in {record}")
        case p.Restore(backup, database):
            return f"restore {backup} -> {database}  # the current file kept aside"
        case p.Remove(path, tree):
            return f"remove  {path}" + ("  (and everything in it)" if tree else "")
        case p.Note(text):
            return f"note    {text}"
    raise TypeError(step)  # pragma: no cover


def _chown(path: Path, owner: str, group: str, say: Callable[[str], None]) -> None:
    try:
        uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        say(f"        owner {owner}:{group} not on this machine (useradd skipped): not applied")
        return
    os.chown(path, uid, gid, follow_symlinks=False)


def _own_tree(top: Path, owner: str, group: str, say: Callable[[str], None]) -> None:
    try:
        uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        say(f"        owner {owner}:{group} not on this machine (useradd skipped): not applied")
        return
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            os.chown(name, uid, gid, follow_symlinks=False)


def _migrate(step: p.Migrate, root: Path | None, say: Callable[[str], None]) -> None:
    from app.storage.lock import hold_data_dir
    from app.storage.upgrade import upgrade_database

    database = under(root, step.database)
    # Refused while a kiosk holds the data directory: migrations run with it stopped.
    with hold_data_dir(database.parent, "kiosk install (migrating)"):
        result = upgrade_database(database, step.release, datetime.now().astimezone())
    if result.applied:
        say(f"        backed up to {result.backup}; applied {', '.join(result.applied)}")
    else:
        say("        nothing to migrate")
    record = under(root, step.record)
    if not result.applied and record.exists():
        # A second install of the same release migrates nothing: its first install's
        # record (and backup) is the one a rollback needs.
        return
    backup = str(result.backup or "")
    if root is not None and backup:
        backup = "/" + str(Path(backup).relative_to(root))  # as on the installed machine
    data = {"applied": list(result.applied), "before": list(result.before), "backup": backup}
    record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _restore(step: p.Restore, root: Path | None, say: Callable[[str], None]) -> None:
    from app.storage.db import restore_database
    from app.storage.lock import hold_data_dir

    database = under(root, step.database)
    stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    with hold_data_dir(database.parent, "kiosk install --rollback"):
        aside = restore_database(under(root, step.backup), database, stamp)
    say(f"        restored; the newer file is kept as {aside}")


def _link(path: Path, target: str) -> None:
    tmp = path.with_name(path.name + ".new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, path)  # one rename: `current` is never missing


def run_step(step: p.Step, root: Path | None, say: Callable[[str], None]) -> None:
    """Carry out one step (see the module docstring for ``root``). Raises
    ``subprocess.CalledProcessError``, ``OSError`` or the storage errors."""
    match step:
        case p.MakeDir(path, mode, owner, group):
            target = under(root, path)
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(mode)
            _chown(target, owner, group, say)
        case p.WriteFile(path, mode, owner, group, content):
            target = under(root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".new")
            tmp.write_text(content, encoding="utf-8")
            tmp.chmod(mode)
            _chown(tmp, owner, group, say)
            os.replace(tmp, target)
        case p.Link(path, target):
            _link(under(root, path), target)
        case p.Run(system=system) if system and root is not None:
            pass
        case p.Run():
            subprocess.run(_argv(step, root), check=True)
        case p.Own(path, owner, group):
            _own_tree(under(root, path), owner, group, say)
        case p.Migrate(python=python) if python is not None:
            # In the release's interpreter, isolated (-I: no PYTHONPATH, no current
            # directory on the path), so its own app.storage.migrations are the ones run.
            ran = subprocess.run([str(under(root, python)), "-I", "-m", "app.install.execute",
                                  "migrate", str(step.database), step.release,
                                  str(step.record), "" if root is None else str(root)],
                                 capture_output=True, text=True)
            for line in ran.stdout.splitlines():
                say(line)
            if ran.returncode != 0:  # the error is the traceback's last line
                raise InstallFailed((ran.stderr.strip().splitlines() or ["no message"])[-1])
        case p.Migrate():
            _migrate(step, root, say)
        case p.Restore():
            _restore(step, root, say)
        case p.Remove(path, tree):
            target = under(root, path)
            if tree and target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.is_symlink() or target.exists():
                target.unlink()
        case p.Note():
            pass


def carry_out(steps: list[p.Step], root: Path | None, say: Callable[[str], None],
            dry_run: bool = False, contents: bool = False) -> None:
    """List every step (``say``: one line each; ``contents``: each file's text too,
    indented); unless ``dry_run``, carry each out after listing it. Raises
    ``InstallFailed`` at the first step that fails; the steps before it
    stay done (each is safe to repeat: run the install again once fixed)."""
    for number, step in enumerate(steps, 1):
        say(f"{number:3d} {describe(step, root)}")
        if contents and isinstance(step, p.WriteFile):
            for line in step.content.splitlines():
                say(f"        | {line}")
        if dry_run:
            continue
        try:
            run_step(step, root, say)
        except Exception as exc:  # whatever it was, the install stops here, naming the step
            raise InstallFailed(f"step {number} failed ({describe(step, root)}): "
                                f"{exc}") from exc


def main(argv: list[str]) -> None:
    """``python -m app.install.execute migrate DATABASE RELEASE RECORD ROOT`` (ROOT "" for
    none): a Migrate step, run by the installer in the new release's own interpreter. An
    interface between releases (an older installer calls a newer release's): keep it."""
    if len(argv) != 5 or argv[0] != "migrate":
        raise SystemExit("usage: python -m app.install.execute migrate DATABASE RELEASE "
                         "RECORD ROOT")
    _, database, release, record, root = argv
    _migrate(p.Migrate(PurePosixPath(database), release, PurePosixPath(record)),
             Path(root) if root else None, print)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
