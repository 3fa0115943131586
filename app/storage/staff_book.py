"""Store staff and their PINs: scrypt-hashed with a per-install secret, and the lockout.

A PIN is short, so its hash must not be enough to find it: each is hashed with
scrypt (n=2^14, r=8, p=1) over HMAC-SHA256(install secret, PIN) with its own
salt. The install secret lives in a 0600 file outside the database (a copied
database alone cannot be brute-forced). Five wrong PINs in a row lock staff
mode for fifteen minutes; the count and the lock are in the database, so a
restart does not reset them. PINs and hashes are never logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from app.domain.scan_input import STAFF_BADGE_PREFIX
from app.storage.db import write_transaction

ROLES = ("attendant", "manager")
MAX_TRIES = 5
LOCK_FOR = timedelta(minutes=15)
BADGE_PREFIX = STAFF_BADGE_PREFIX  # the one definition is the domain's (app.domain.scan_input)


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str
    badge: str  # what the staff badge QR holds: BADGE_PREFIX + a random id

    @property
    def manager(self) -> bool:
        return self.role == "manager"


class StaffError(Exception):
    """A refusal staff can act on (the message says what)."""


class WrongPin(StaffError):
    def __init__(self, tries_left: int) -> None:
        super().__init__(f"wrong PIN; {tries_left} tries left before staff mode locks / "
                         f"密码错误，还可尝试 {tries_left} 次")
        self.tries_left = tries_left


class Locked(StaffError):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"staff mode is locked until {until:%H:%M} after {MAX_TRIES} "
                         f"wrong PINs / 密码错误次数过多，锁定至 {until:%H:%M}")
        self.until = until


def load_secret(path: Path) -> bytes:
    """The install secret, created (0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) < 32:
        raise StaffError(f"{path} is not a staff secret (too short)")
    return data


def check_pin_format(pin: str) -> None:
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise StaffError("a PIN is 4 to 12 digits")


class StaffBook:
    def __init__(self, db: sqlite_utils.Database, secret: bytes) -> None:
        self.db = db
        self._secret = secret

    def _hash(self, pin: str, salt: bytes) -> bytes:
        peppered = hmac.new(self._secret, pin.encode(), hashlib.sha256).digest()
        return hashlib.scrypt(peppered, salt=salt, n=2**14, r=8, p=1, dklen=32)

    # -- the list -------------------------------------------------------------------------
    def add(self, name: str, role: str, pin: str, now: datetime) -> StaffMember:
        name = name.strip()
        if not name or len(name) > 40 or not name.isprintable():
            raise StaffError("a staff name is 1-40 printable characters")
        if role not in ROLES:
            raise StaffError(f"role must be one of {', '.join(ROLES)}")
        check_pin_format(pin)
        salt = secrets.token_bytes(16)
        badge = BADGE_PREFIX + secrets.token_urlsafe(12)
        with write_transaction(self.db):
            if self.db.execute("SELECT 1 FROM staff WHERE name = ?", [name]).fetchone():
                raise StaffError(f"{name!r} is already on the staff list")
            # A PIN identifies its holder (PIN-only sign-in): two people may not share one.
            for other_salt, other_hash in self.db.execute("SELECT salt, pin_hash FROM staff"):
                if hmac.compare_digest(self._hash(pin, other_salt), other_hash):
                    raise StaffError("that PIN is taken: choose another")
            self.db.execute("INSERT INTO staff (name, role, salt, pin_hash, badge, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [name, role, salt, self._hash(pin, salt), badge, now.isoformat()])
        return StaffMember(name, role, badge)

    def remove(self, name: str) -> None:
        with write_transaction(self.db):
            if self.db.execute("DELETE FROM staff WHERE name = ?", [name]).rowcount == 0:
                raise StaffError(f"no staff member {name!r}")

    def members(self) -> list[StaffMember]:
        return [StaffMember(*row) for row in self.db.execute(
            "SELECT name, role, badge FROM staff ORDER BY name")]

    def by_badge(self, badge: str) -> StaffMember | None:
        row = self.db.execute("SELECT name, role, badge FROM staff WHERE badge = ?",
                              [badge]).fetchone()
        return StaffMember(*row) if row else None

    # -- signing in -----------------------------------------------------------------------
    def locked_until(self, now: datetime) -> datetime | None:
        """When the PIN lockout ends (wall clock, for the screen), or None if it is over.

        The lockout is kept on disk so a restart keeps it, hence as a wall-clock time. A
        time more than ``LOCK_FOR`` ahead of ``now`` was written under a clock that read
        ahead (set far in the future, then right; or stepped back during the lockout):
        it is moved to ``now + LOCK_FOR``, so the lockout still lasts its full length but
        no longer (issue 16, fault 3), instead of until that time comes round."""
        row = self.db.execute("SELECT locked_until FROM staff_lock WHERE id = 1").fetchone()
        if row is None or row[0] is None:
            return None
        until = datetime.fromisoformat(row[0])
        if until > now + LOCK_FOR:
            until = now + LOCK_FOR
            with write_transaction(self.db):
                self.db.execute("UPDATE staff_lock SET locked_until = ? WHERE id = 1",
                                [until.isoformat()])
        return until if until > now else None

    def sign_in(self, pin: str, now: datetime, badge: str | None = None) -> StaffMember:
        """The staff member whose PIN this is (the badge's holder, if a badge was scanned)."""
        until = self.locked_until(now)
        if until is not None:
            raise Locked(until)
        rows = self.db.execute("SELECT name, role, badge, salt, pin_hash FROM staff" +
                               (" WHERE badge = ?" if badge else ""),
                               [badge] if badge else []).fetchall()
        matches = []
        for name, role, their_badge, salt, pin_hash in rows:
            # Every row is hashed and compared, match or not: the time taken tells nothing.
            if hmac.compare_digest(self._hash(pin, salt), pin_hash):
                matches.append(StaffMember(name, role, their_badge))
        # Two holders of one PIN (from before PINs had to differ): who it is is unknown,
        # so nobody is signed in by it; their badge still tells them apart.
        found = matches[0] if len(matches) == 1 else None
        if found is not None:
            with write_transaction(self.db):
                self.db.execute("UPDATE staff_lock SET failures = 0, locked_until = NULL "
                                "WHERE id = 1")
            return found
        # Written (committed) before the refusal is raised: a raise inside the
        # transaction would roll the count back, and brute force would go unpunished.
        with write_transaction(self.db):
            failures = self.db.execute("SELECT failures FROM staff_lock WHERE id = 1"
                                       ).fetchone()[0] + 1
            locked = now + LOCK_FOR if failures >= MAX_TRIES else None
            self.db.execute("UPDATE staff_lock SET failures = ?, locked_until = ? WHERE id = 1",
                            [0 if locked else failures, locked.isoformat() if locked else None])
        if locked is not None:
            raise Locked(locked)
        raise WrongPin(MAX_TRIES - failures)


__all__ = ["BADGE_PREFIX", "Locked", "ROLES", "StaffBook", "StaffError", "StaffMember",
           "WrongPin", "check_pin_format", "load_secret"]
