"""Staff accounts: argon2id password hashes, TOTP second factor, roles and teams.

- Passwords: argon2-cffi's ``PasswordHasher`` (argon2id, its maintained defaults); hashes
  are upgraded on login when the defaults change.
- TOTP: pyotp (RFC 6238, 30 s, 6 digits, ±1 step for clock drift). The secret is stored
  encrypted with the clinic's Fernet key; a code is accepted once (replay refused). A new
  account's secret is shown (provisioning URI) until its first good code.
- Brute force: after ``MAX_FAILURES`` wrong passwords or codes the account is locked for
  ``LOCK_MINUTES``. Errors never say whether the user name exists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Callable, FrozenSet, Iterable, List, Optional

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.handoff.teams import Team
from clinic.inbox import audit
from clinic.inbox.model import (
    Actor,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Role,
    aware,
)
from clinic.inbox.tables import StaffRow, StaffTeamRow
from clinic.privacy import ContactCipher

ISSUER = "Clinic inbox"
MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_hasher = PasswordHasher()
# Compared against when the user does not exist, so timing does not reveal user names.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


@dataclasses.dataclass(frozen=True)
class StaffMember:
    id: int
    username: str
    display_name: str
    role: Role
    teams: FrozenSet[str]
    disabled: bool
    totp_confirmed: bool
    session_epoch: int
    last_login_at: Optional[dt.datetime]

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.username, self.role, self.teams)


@dataclasses.dataclass(frozen=True)
class NewAccount:
    member: StaffMember
    totp_secret: str
    provisioning_uri: str


class LoginFailed(Exception):
    """Wrong user name, password or code, disabled or locked: one message for all."""

    def __init__(self, message: str = "wrong user name, password or code") -> None:
        super().__init__(message)


def _require_admin(by: Actor) -> None:
    """Account changes: an admin, or the system itself (start-up demo, CLI)."""
    if by.is_staff and by.role is not Role.ADMIN:
        raise Forbidden("administrators only")
    if not by.is_staff and by.username != "system":
        raise Forbidden("administrators only")


def check_teams(teams: Iterable[str]) -> FrozenSet[str]:
    result = set()
    for team in teams:
        try:
            result.add(Team(team).value)
        except ValueError:
            raise InvalidInput(f"unknown team {team!r}; teams: {', '.join(t.value for t in Team)}") from None
    return frozenset(result)


class StaffAccounts:
    def __init__(self, session_factory: sessionmaker, cipher: ContactCipher,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._sessions = session_factory
        self._cipher = cipher
        self._clock = clock

    # ── accounts ────────────────────────────────────────────────────────────────────────
    def create(self, username: str, password: str, role: Role, teams: Iterable[str] = (),
               display_name: Optional[str] = None, *, by: Actor, client: Optional[str] = None) -> NewAccount:
        _require_admin(by)
        username = (username or "").strip().lower()
        if not _USERNAME.match(username):
            raise InvalidInput("user name: 2-64 characters, lower-case letters, digits, . _ -")
        check_password(password)
        role = Role(role)
        teams = check_teams(teams)
        if role is Role.AGENT and not teams:
            raise InvalidInput("an agent needs at least one team")
        secret = pyotp.random_base32()
        now = self._clock()
        try:
            with audit.transaction(self._sessions) as session:
                row = StaffRow(username=username, display_name=(display_name or username)[:100],
                               password_hash=_hasher.hash(password),
                               totp_secret_encrypted=self._cipher.encrypt(secret), role=role.value,
                               disabled=False, failed_logins=0, session_epoch=0, created_at=now)
                session.add(row)
                session.flush()
                session.add_all(StaffTeamRow(staff_id=row.id, team=team) for team in sorted(teams))
                audit.append(session, by, "user_created", at=now, client=client,
                             detail=f"user={username} role={role.value} teams={','.join(sorted(teams))}")
                member = _member(row, teams)
        except IntegrityError:
            raise Conflict(f"the user name {username!r} is taken") from None
        return NewAccount(member, secret, provisioning_uri(secret, username))

    def get(self, staff_id: int) -> StaffMember:
        with self._sessions() as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise NotFound("no such user")
            return _member(row, _teams(session, row.id))

    def by_username(self, username: str) -> Optional[StaffMember]:
        with self._sessions() as session:
            row = session.execute(select(StaffRow).where(StaffRow.username == username.lower())).scalar_one_or_none()
            return _member(row, _teams(session, row.id)) if row else None

    def all(self) -> List[StaffMember]:
        with self._sessions() as session:
            rows = list(session.scalars(select(StaffRow).order_by(StaffRow.username)))
            return [_member(row, _teams(session, row.id)) for row in rows]

    def any_exists(self) -> bool:
        with self._sessions() as session:
            return session.execute(select(StaffRow.id).limit(1)).first() is not None

    def set_disabled(self, staff_id: int, disabled: bool, *, by: Actor, client: Optional[str] = None) -> StaffMember:
        _require_admin(by)
        if by.id == staff_id and disabled:
            raise InvalidInput("you cannot disable your own account")
        now = self._clock()
        with audit.transaction(self._sessions) as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise NotFound("no such user")
            row.disabled = disabled
            row.session_epoch += 1  # a disabled user's open sessions end now
            audit.append(session, by, "user_disabled" if disabled else "user_enabled", at=now,
                         client=client, detail=f"user={row.username}")
            return _member(row, _teams(session, row.id))

    def set_teams(self, staff_id: int, teams: Iterable[str], *, by: Actor, client: Optional[str] = None) -> StaffMember:
        _require_admin(by)
        teams = check_teams(teams)
        now = self._clock()
        with audit.transaction(self._sessions) as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise NotFound("no such user")
            session.execute(delete(StaffTeamRow).where(StaffTeamRow.staff_id == staff_id))
            session.add_all(StaffTeamRow(staff_id=staff_id, team=team) for team in sorted(teams))
            audit.append(session, by, "user_teams_changed", at=now, client=client,
                         detail=f"user={row.username} teams={','.join(sorted(teams))}")
            return _member(row, teams)

    # ── login ───────────────────────────────────────────────────────────────────────────
    def check_password(self, username: str, password: str, client: Optional[str] = None) -> StaffMember:
        """First factor. Raises LoginFailed; audit rows record failures and lockouts."""
        now = self._clock()
        with audit.transaction(self._sessions) as session:
            row = session.execute(
                select(StaffRow).where(StaffRow.username == (username or "").strip().lower())
            ).scalar_one_or_none()
            if row is None:
                _verify(_DUMMY_HASH, password or "")
                audit.append(session, _anonymous(username), "login_failed", at=now, client=client,
                             detail="unknown user")
                raise_after = True
            else:
                raise_after = not self._password_ok(session, row, password or "", now, client)
            if not raise_after:
                return _member(row, _teams(session, row.id))
        raise LoginFailed()

    def _password_ok(self, session: Session, row: StaffRow, password: str, now: dt.datetime,
                     client: Optional[str]) -> bool:
        actor = Actor(row.id, row.username, Role(row.role))
        if row.disabled:
            audit.append(session, actor, "login_failed", at=now, client=client, detail="disabled")
            return False
        if row.locked_until and aware(row.locked_until) > now:
            audit.append(session, actor, "login_failed", at=now, client=client, detail="locked")
            return False
        if not _verify(row.password_hash, password):
            self._failure(session, row, now, client, "wrong password")
            return False
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        audit.append(session, actor, "password_ok", at=now, client=client)
        return True

    def check_totp(self, staff_id: int, code: str, client: Optional[str] = None) -> StaffMember:
        """Second factor; a code is accepted once. Resets the failure count."""
        now = self._clock()
        code = re.sub(r"\s", "", code or "")
        with audit.transaction(self._sessions) as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise LoginFailed()
            actor = Actor(row.id, row.username, Role(row.role))
            ok = False
            if row.disabled or (row.locked_until and aware(row.locked_until) > now):
                audit.append(session, actor, "login_failed", at=now, client=client, detail="disabled or locked")
            else:
                step = _matching_step(self._cipher.decrypt(row.totp_secret_encrypted), code, now)
                if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
                    self._failure(session, row, now, client, "wrong or reused code")
                else:
                    ok = True
                    row.totp_last_step = step
                    row.failed_logins = 0
                    row.locked_until = None
                    row.last_login_at = now
                    if row.totp_confirmed_at is None:
                        row.totp_confirmed_at = now
                    audit.append(session, actor, "login", at=now, client=client)
            if ok:
                return _member(row, _teams(session, row.id))
        raise LoginFailed()

    def provisioning(self, staff_id: int) -> Optional[tuple[str, str]]:
        """(secret, otpauth URI) while the account has not confirmed its authenticator."""
        with self._sessions() as session:
            row = session.get(StaffRow, staff_id)
            if row is None or row.totp_confirmed_at is not None:
                return None
            secret = self._cipher.decrypt(row.totp_secret_encrypted)
            return secret, provisioning_uri(secret, row.username)

    def end_sessions(self, staff_id: int, *, by: Actor, client: Optional[str] = None) -> None:
        """Logout: every session of this user stops being accepted."""
        now = self._clock()
        with audit.transaction(self._sessions) as session:
            row = session.get(StaffRow, staff_id)
            if row is not None:
                row.session_epoch += 1
                audit.append(session, by, "logout", at=now, client=client)

    def _failure(self, session: Session, row: StaffRow, now: dt.datetime, client: Optional[str], why: str) -> None:
        row.failed_logins = (row.failed_logins or 0) + 1
        actor = Actor(row.id, row.username, Role(row.role))
        if row.failed_logins >= MAX_FAILURES:
            row.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
            row.failed_logins = 0
            why += f"; locked for {LOCK_MINUTES} min"
        audit.append(session, actor, "login_failed", at=now, client=client, detail=why)


def check_password(password: str) -> None:
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 256:
        raise InvalidInput("a password has at most 256 characters")


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def _matching_step(secret: str, code: str, now: dt.datetime) -> Optional[int]:
    """The 30-second step the code belongs to (now ±1 step), or None."""
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if totp.verify(code, for_time=candidate * totp.interval):  # constant-time compare inside
            return candidate
    return None


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _anonymous(username: str) -> Actor:
    # The typed name is not stored: it may be a password typed in the wrong field.
    return Actor(None, "unknown", None)


def _teams(session: Session, staff_id: int) -> FrozenSet[str]:
    return frozenset(session.scalars(select(StaffTeamRow.team).where(StaffTeamRow.staff_id == staff_id)))


def _member(row: StaffRow, teams: Iterable[str]) -> StaffMember:
    return StaffMember(id=row.id, username=row.username, display_name=row.display_name,
                       role=Role(row.role), teams=frozenset(teams), disabled=bool(row.disabled),
                       totp_confirmed=row.totp_confirmed_at is not None,
                       session_epoch=row.session_epoch or 0, last_login_at=aware(row.last_login_at))
