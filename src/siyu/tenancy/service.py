"""Corps, org tree, staff and roles, logins and console sessions, API keys."""

from __future__ import annotations

import datetime as dt
import gzip
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from siyu.config import get_settings
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound, SiyuError
from siyu.tenancy import audit
from siyu.tenancy.models import ApiKey, ConsoleSession, Corp, Department, LoginThrottle, Role, Staff, StaffRole
from siyu.tenancy.principal import Principal
from siyu.tenancy.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    new_token,
    same,
    token_hash,
    verify_password,
)

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
LOGIN_RE = re.compile(r"[a-z0-9._@-]{3,120}")
ROLE_NAMES = frozenset(r.value for r in Role)
# Scopes an API key can carry; "*" is every scope.
# Personal data in clear through the API: a scope of its own, never implied by "*" (each read audited).
UNMASK_SCOPE = "pii:unmask"
API_SCOPES = frozenset(
    {"*", "customers:read", "customers:write", "orders:write", "kyc:write", "events:read", "jobs:read",
     "products:read", "products:write", "content:read", "consent:read", "consent:write",
     "acquisition:read", "alerts:read", "alerts:write", "alerts:evidence", "communities:read",
     "communities:write", "sop:read", "sop:write", "audiences:read", "audiences:write", UNMASK_SCOPE}
)


class LoginFailed(SiyuError):
    status_code = 401


class TooManyAttempts(LoginFailed):
    """Failed logins from this address, for this login, or both, passed the free allowance: wait
    `retry_after` seconds. Said the same whether or not the login exists."""

    status_code = 429

    def __init__(self, retry_after: int):
        super().__init__("too many failed attempts; try again in %(n)s seconds", params={"n": retry_after})
        self.retry_after = retry_after


# Ids are 64-bit; anything else cannot name a row (and would overflow the database driver).
MAX_ID = 2**63 - 1
MAX_PASSWORD_LENGTH = 200
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def _text(value: str | None, *, field: str, max_length: int = 120, required: bool = True) -> str:
    """A one-line name as stored: trimmed, without control characters, within the column's length."""
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidInput("this field is required", field=field)
        return value
    if _CONTROL_CHARS.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    if len(value) > max_length:
        raise InvalidInput("must have at most %(n)s characters", field=field, params={"n": max_length})
    return value


# --- corps and org tree -------------------------------------------------------------------


def create_corp(session: Session, *, slug: str, name: str, wecom_corp_id: str | None = None) -> Corp:
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise InvalidInput("slug must be 2–40 lowercase letters, digits or '-'", field="slug")
    name = _text(name, field="name")
    if session.scalar(select(Corp.id).where(Corp.slug == slug)):
        raise Conflict("a corp with slug %(slug)s exists", field="slug", params={"slug": slug})
    corp = Corp(slug=slug, name=name, wecom_corp_id=wecom_corp_id)
    session.add(corp)
    session.flush()
    session.add(Department(corp_id=corp.id, name=corp.name, wecom_department_id=1))
    audit.record(session, corp_id=corp.id, actor="system", action="corp.created", target_type="corp",
                 target_id=corp.id, detail={"slug": slug})
    session.flush()
    return corp


def get_corp(session: Session, *, corp_id: int) -> Corp:
    corp = session.get(Corp, corp_id) if valid_id(corp_id) else None
    if corp is None:
        raise NotFound("corp not found")
    return corp


def get_corp_by_wecom_id(session: Session, *, wecom_corp_id: str) -> Corp | None:
    return session.scalar(select(Corp).where(Corp.wecom_corp_id == wecom_corp_id))


def connected_corp_ids(session: Session) -> list[int]:
    """The active corps connected to a WeCom corp (for the jobs that visit each one in turn)."""
    return list(session.scalars(select(Corp.id).where(Corp.is_active.is_(True), Corp.wecom_corp_id.is_not(None))
                                .order_by(Corp.id)))


def root_department(session: Session, *, corp_id: int) -> Department:
    dept = session.scalar(
        select(Department).where(Department.corp_id == corp_id, Department.parent_id.is_(None)).order_by(
            Department.id
        )
    )
    if dept is None:
        raise NotFound("corp has no org tree")
    return dept


def create_department(
    session: Session, *, corp_id: int, name: str, parent_id: int | None = None, actor: Principal | str = "system"
) -> Department:
    name = _text(name, field="name")
    if parent_id is not None:
        try:
            parent = get_department(session, corp_id=corp_id, department_id=parent_id)
        except NotFound:
            raise NotFound("department not found", field="parent_id") from None
    else:
        parent = root_department(session, corp_id=corp_id)
    if session.scalar(select(Department.id).where(Department.parent_id == parent.id, Department.name == name)):
        raise Conflict("a department with this name exists here", field="name")
    dept = Department(corp_id=corp_id, parent_id=parent.id, name=name)
    session.add(dept)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="department.created", target_type="department",
                 target_id=dept.id, detail={"name": dept.name, "parent_id": parent.id})
    return dept


def get_department(session: Session, *, corp_id: int, department_id: int) -> Department:
    dept = session.get(Department, department_id) if valid_id(department_id) else None
    if dept is None or dept.corp_id != corp_id:
        raise NotFound("department not found", field="department_id")
    return dept


def list_departments(session: Session, *, corp_id: int) -> list[Department]:
    return list(session.scalars(select(Department).where(Department.corp_id == corp_id).order_by(Department.id)))


def department_subtree_ids(session: Session, *, corp_id: int, department_id: int) -> set[int]:
    """The department and everything below it."""
    children: dict[int | None, list[int]] = {}
    for dept_id, parent_id in session.execute(
        select(Department.id, Department.parent_id).where(Department.corp_id == corp_id)
    ):
        children.setdefault(parent_id, []).append(dept_id)
    out, stack = set(), [department_id]
    while stack:
        d = stack.pop()
        if d not in out:
            out.add(d)
            stack.extend(children.get(d, []))
    return out


@dataclass(frozen=True)
class DepartmentNode:
    """A department as the org tree shows it: its depth, its path from the root, its staff."""

    department: Department
    depth: int
    path: str
    staff_count: int


def department_tree(session: Session, *, corp_id: int) -> list[DepartmentNode]:
    """The corp's departments in tree order (each parent before its children, siblings by name)."""
    depts = list_departments(session, corp_id=corp_id)
    counts = dict(session.execute(
        select(Staff.department_id, func.count()).where(Staff.corp_id == corp_id, Staff.is_active.is_(True))
        .group_by(Staff.department_id)
    ).all())
    children: dict[int | None, list[Department]] = {}
    ids = {d.id for d in depts}
    for d in depts:
        # A parent outside the corp (never written by this service) is treated as a root.
        children.setdefault(d.parent_id if d.parent_id in ids else None, []).append(d)
    out: list[DepartmentNode] = []
    stack = [(d, 0, d.name) for d in sorted(children.get(None, []), key=lambda d: (d.name, d.id), reverse=True)]
    while stack:
        dept, depth, path = stack.pop()
        out.append(DepartmentNode(department=dept, depth=depth, path=path, staff_count=counts.get(dept.id, 0)))
        for child in sorted(children.get(dept.id, []), key=lambda d: (d.name, d.id), reverse=True):
            stack.append((child, depth + 1, f"{path} / {child.name}"))
    return out


# --- staff and roles ------------------------------------------------------------------------


def _check_roles(roles: Iterable[str]) -> set[str]:
    roles = {str(r) for r in roles}
    if not roles:
        raise InvalidInput("choose at least one role", field="roles")
    unknown = roles - ROLE_NAMES
    if unknown:
        raise InvalidInput("unknown role(s): %(roles)s", field="roles",
                           params={"roles": ", ".join(sorted(unknown))})
    return roles


COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common_passwords.txt.gz"


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


_TRAILING = re.compile(r"[\d\W_]+$")


def is_common_password(password: str) -> bool:
    """On the bundled list of the ~10,000 most common passwords (data/common_passwords.txt.gz, see
    its .LICENSE), case ignored, also when digits or symbols are merely added at its end."""
    common = _common_passwords()
    lower = password.strip().lower()
    base = _TRAILING.sub("", lower)
    return lower in common or (len(base) >= 4 and base in common) or len(set(lower)) <= 2


def _check_password(password: str) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password must have at most %(n)s characters", field="password",
                           params={"n": MAX_PASSWORD_LENGTH})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password must have at least %(n)s characters", field="password",
                           params={"n": MIN_PASSWORD_LENGTH})
    if is_common_password(password):
        raise InvalidInput("this password is on the list of the most common passwords; choose another",
                           field="password")


def create_staff(
    session: Session,
    *,
    corp_id: int,
    login: str,
    name: str,
    roles: Iterable[str] = (Role.ADVISOR,),
    password: str | None = None,
    department_id: int | None = None,
    wecom_userid: str | None = None,
    sees_department: bool = False,
    actor: Principal | str = "system",
) -> Staff:
    login = (login or "").strip().lower()
    if not LOGIN_RE.fullmatch(login):
        raise InvalidInput("login must be 3–120 characters: letters, digits, . _ @ -", field="login")
    name = _text(name, field="name")
    wecom_userid = _text(wecom_userid, field="wecom_userid", max_length=64, required=False) or None
    role_set = _check_roles(roles)
    if password is not None:
        _check_password(password)
    if session.scalar(select(Staff.id).where(Staff.corp_id == corp_id, Staff.login == login)):
        raise Conflict("this login is taken", field="login")
    if wecom_userid and session.scalar(
        select(Staff.id).where(Staff.corp_id == corp_id, Staff.wecom_userid == wecom_userid)
    ):
        raise Conflict("this WeCom user id belongs to another member of staff", field="wecom_userid")
    dept = (
        get_department(session, corp_id=corp_id, department_id=department_id)
        if department_id
        else root_department(session, corp_id=corp_id)
    )
    staff = Staff(
        corp_id=corp_id,
        department_id=dept.id,
        login=login,
        name=name,
        wecom_userid=wecom_userid,
        password_hash=hash_password(password) if password else None,
        sees_department=sees_department,
        roles=[StaffRole(role=r) for r in sorted(role_set)],
    )
    session.add(staff)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="staff.created", target_type="staff",
                 target_id=staff.id, detail={"login": login, "roles": sorted(role_set)})
    return staff


def get_staff(session: Session, *, corp_id: int, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id) if valid_id(staff_id) else None
    if staff is None or staff.corp_id != corp_id:
        raise NotFound("staff not found", field="staff_id")
    return staff


def get_staff_by_wecom_userid(session: Session, *, corp_id: int, wecom_userid: str) -> Staff | None:
    return session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.wecom_userid == wecom_userid))


def names_by_login(session: Session, *, corp_id: int, logins: Iterable[str | None]) -> dict[str, str]:
    """login -> the staff member's name, for pages that show who did something (audit entries, data
    requests, handovers record the actor's login): a person reads names; the login stays on hover."""
    wanted = sorted({x for x in logins if x})[:2000]
    if not wanted:
        return {}
    return dict(session.execute(select(Staff.login, Staff.name).where(Staff.corp_id == corp_id,
                                                                     Staff.login.in_(wanted))).all())


def list_staff(
    session: Session, *, corp_id: int, role: str | None = None, include_inactive: bool = True
) -> list[Staff]:
    q = select(Staff).where(Staff.corp_id == corp_id)
    if role:
        q = q.where(Staff.id.in_(select(StaffRole.staff_id).where(StaffRole.role == role)))
    if not include_inactive:
        q = q.where(Staff.is_active.is_(True))
    return list(session.scalars(q.order_by(Staff.id)))


def page_staff(
    session: Session, *, corp_id: int, role: str | None = None, is_active: bool | None = None,
    after_id: int | None = None, limit: int = 100,
) -> tuple[list[Staff], int | None]:
    """One page of the corp's staff by id (keyset: stable while staff are added); returns the
    page and the `after_id` of the next one (None on the last page)."""
    limit = max(1, min(limit, 500))
    q = select(Staff).where(Staff.corp_id == corp_id)
    if role:
        q = q.where(Staff.id.in_(select(StaffRole.staff_id).where(StaffRole.role == role)))
    if is_active is not None:
        q = q.where(Staff.is_active.is_(is_active))
    if after_id is not None:
        q = q.where(Staff.id > min(after_id, MAX_ID))
    rows = list(session.scalars(q.order_by(Staff.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


def count_staff(session: Session, *, corp_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(Staff).where(Staff.corp_id == corp_id, Staff.is_active.is_(True))
    ) or 0


def set_roles(
    session: Session, *, corp_id: int, staff_id: int, roles: Iterable[str], actor: Principal
) -> Staff:
    staff = get_staff(session, corp_id=corp_id, staff_id=staff_id)
    new = _check_roles(roles)
    old = staff.role_names
    if staff.id == actor.staff_id and Role.ADMINISTRATOR in old and Role.ADMINISTRATOR not in new:
        raise Forbidden("you cannot remove your own administrator role", field="roles")
    if old == new:
        return staff
    staff.roles = [StaffRole(role=r) for r in sorted(new)]
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="staff.roles_changed", target_type="staff",
                 target_id=staff.id, detail={"from": sorted(old), "to": sorted(new)})
    return staff


def update_staff(
    session: Session,
    *,
    corp_id: int,
    staff_id: int,
    actor: Principal,
    name: str | None = None,
    department_id: int | None = None,
    sees_department: bool | None = None,
    is_active: bool | None = None,
) -> Staff:
    staff = get_staff(session, corp_id=corp_id, staff_id=staff_id)
    changes: dict[str, object] = {}
    if name is not None:
        changes["name"] = _text(name, field="name")
    if department_id is not None:
        changes["department_id"] = get_department(session, corp_id=corp_id, department_id=department_id).id
    if sees_department is not None:
        changes["sees_department"] = sees_department
    if is_active is not None:
        if not is_active and staff.id == actor.staff_id:
            raise Forbidden("you cannot deactivate yourself", field="is_active")
        changes["is_active"] = is_active
    changes = {k: v for k, v in changes.items() if getattr(staff, k) != v}
    if not changes:
        return staff
    for k, v in changes.items():
        setattr(staff, k, v)
    if changes.get("is_active") is False:
        _revoke_sessions(session, staff_id=staff.id)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="staff.updated", target_type="staff",
                 target_id=staff.id, detail={k: v for k, v in changes.items()})
    return staff


def set_password(session: Session, *, corp_id: int, staff_id: int, password: str, actor: Principal | str) -> None:
    staff = get_staff(session, corp_id=corp_id, staff_id=staff_id)
    _check_password(password)
    staff.password_hash = hash_password(password)
    _revoke_sessions(session, staff_id=staff.id)
    audit.record(session, corp_id=corp_id, actor=actor, action="staff.password_set", target_type="staff",
                 target_id=staff.id)


def generate_password() -> str:
    """A random password for an administrator's reset, shown to them once (16 URL-safe characters)."""
    return new_token(12)


def visible_staff_ids(session: Session, *, principal: Principal) -> set[int] | None:
    """Whose customers the caller may see: None means the whole corp.

    Administrators, operations, compliance and auditors see the corp; an advisor sees their own,
    or their department's (and below) when granted."""
    if principal.kind != "staff" or principal.has_role(
        Role.ADMINISTRATOR, Role.OPERATIONS, Role.COMPLIANCE, Role.AUDITOR
    ):
        return None
    assert principal.staff_id is not None
    if principal.sees_department and principal.department_id:
        depts = department_subtree_ids(session, corp_id=principal.corp_id, department_id=principal.department_id)
        return set(session.scalars(select(Staff.id).where(Staff.corp_id == principal.corp_id,
                                                          Staff.department_id.in_(depts))))
    return {principal.staff_id}


# --- login and console sessions ---------------------------------------------------------------


# The login throttle. A console account is a corp code and a login (logins are unique within their
# corp only). Failures are counted per address, per account as typed (an existing one or not, in an
# existing corp or not: the same counters, the same answers) and per (account, address). Past a key's
# free allowance each failure makes the next attempt wait twice as long as the last (1 s, 2 s, 4 s ...
# at most SIYU_LOGIN_LOCKOUT_MINUTES); a key's count starts again an hour after its first failure once
# no wait is running. Nobody is locked out for good, and an attacker at one address slows down only
# themselves: the pair (account, address) has the small allowance, the account alone a large one (a
# spread-out attack), the address alone a middling one (one address trying many accounts).
THROTTLE_WINDOW = dt.timedelta(hours=1)
THROTTLE_ADDRESS_FREE = 30
THROTTLE_LOGIN_FREE = 100


def _throttle_keys(account: str, ip: str | None) -> dict[str, int]:
    from siyu import pii

    settings = get_settings()
    address = ip or "-"
    return {pii.lookup_hash(f"pair:{account}|{address}", kind="login-throttle"): settings.login_max_failures,
            pii.lookup_hash(f"login:{account}", kind="login-throttle"): THROTTLE_LOGIN_FREE,
            pii.lookup_hash(f"address:{address}", kind="login-throttle"): THROTTLE_ADDRESS_FREE}


def _throttled(session: Session, keys: dict[str, int], now: dt.datetime) -> int:
    """Seconds to wait before another attempt (0: none)."""
    until = session.scalar(select(func.max(LoginThrottle.blocked_until)).where(
        LoginThrottle.key.in_(list(keys)), LoginThrottle.blocked_until > now))
    return 0 if until is None else max(1, math.ceil((until - now).total_seconds()))


def _count_failure(session: Session, keys: dict[str, int], now: dt.datetime) -> int:
    """Counts a failure on every key; returns the failures counted on the account's own key."""
    cap = dt.timedelta(minutes=get_settings().login_lockout_minutes)
    rows = {r.key: r for r in session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(list(keys))))}
    login_failures = 0
    for n, (key, free) in enumerate(keys.items()):
        row = rows.get(key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, first_failed_at=now)
            session.add(row)
        elif now - row.first_failed_at > THROTTLE_WINDOW and not (row.blocked_until and row.blocked_until > now):
            row.failures, row.first_failed_at = 0, now
        row.failures += 1
        if row.failures >= free:
            row.blocked_until = now + min(cap, dt.timedelta(seconds=2 ** min(row.failures - free, 20)))
        if n == 1:
            login_failures = row.failures
    # Forget counters no wait depends on any more (an address spraying random logins adds rows).
    session.execute(delete(LoginThrottle).where(LoginThrottle.first_failed_at < now - 24 * THROTTLE_WINDOW,
                                                or_(LoginThrottle.blocked_until.is_(None),
                                                    LoginThrottle.blocked_until < now)))
    session.flush()
    return login_failures


def normalise_corp_code(corp: str | None) -> str:
    """A corp code as staff type it on the login form: the corp's slug, any case, spaces around."""
    return (corp or "").strip().lower()[:200]


def authenticate(session: Session, *, corp: str, login: str, password: str, ip: str | None = None,
                 now: dt.datetime | None = None) -> Staff:
    """Check a console login: `corp` is the corp's code (its slug), `login` the member of staff's login
    in that corp. Throttled (see THROTTLE_WINDOW above). The answers, and the work done, are the same
    whether the corp exists or not, and whether the login exists in it or not: one query looks up the
    pair, a password hash is verified for an unknown account too, and every failure says "wrong
    login or password". Failures of known staff are audited in their corp."""
    now = now or utcnow()
    corp = normalise_corp_code(corp)
    login = (login or "").strip().lower()[:200]
    keys = _throttle_keys(f"{corp}|{login}", ip)
    wait = _throttled(session, keys, now)
    if wait:
        raise TooManyAttempts(wait)
    # An account that could not have been created is not looked up (PostgreSQL refuses NUL in text).
    plausible = bool(SLUG_RE.fullmatch(corp) and LOGIN_RE.fullmatch(login))
    found = session.execute(
        select(Staff, Corp.is_active).join(Corp, Corp.id == Staff.corp_id)
        .where(Corp.slug == corp, Staff.login == login)
    ).first() if plausible else None
    staff, corp_active = found if found is not None else (None, False)
    ok = verify_password(staff.password_hash if staff else None, (password or "")[:MAX_PASSWORD_LENGTH * 4])
    if staff is None or not ok or not staff.is_active or not corp_active:
        failures = _count_failure(session, keys, now)
        if staff is not None:
            reason = "password" if not ok else "staff_inactive" if not staff.is_active else "corp_inactive"
            audit.record(session, corp_id=staff.corp_id, actor=staff.login, action="login.failed",
                         target_type="staff", target_id=staff.id, detail={"failures": failures, "reason": reason},
                         ip=ip)
        raise LoginFailed("wrong login or password")
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(list(keys)[:2])))
    staff.last_login_at = now
    audit.record(session, corp_id=staff.corp_id, actor=staff.login, action="login.succeeded",
                 target_type="staff", target_id=staff.id, ip=ip)
    return staff


def start_session(session: Session, *, staff: Staff) -> str:
    """Open a console session; returns the cookie token (only its hash is stored)."""
    token = new_token()
    session.add(
        ConsoleSession(
            token_hash=token_hash(token),
            staff_id=staff.id,
            corp_id=staff.corp_id,
            csrf_token=new_token(24),
            expires_at=utcnow() + dt.timedelta(hours=get_settings().session_hours),
        )
    )
    session.flush()
    return token


def _principal_for_staff(staff: Staff, **extra) -> Principal:
    return Principal(
        corp_id=staff.corp_id,
        kind="staff",
        label=staff.login,
        staff_id=staff.id,
        department_id=staff.department_id,
        roles=frozenset(staff.role_names),
        sees_department=staff.sees_department,
        display_name=staff.name or "",
        **extra,
    )


def resolve_session(session: Session, *, token: str) -> Principal | None:
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    staff = session.get(Staff, row.staff_id)
    if staff is None or not staff.is_active or staff.corp_id != row.corp_id:
        return None
    corp = session.get(Corp, staff.corp_id)
    if corp is None or not corp.is_active:
        return None
    return _principal_for_staff(staff, csrf_token=row.csrf_token, session_id=row.id)


def end_session(session: Session, *, token: str) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_hash == token_hash(token), ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _revoke_sessions(session: Session, *, staff_id: int) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.staff_id == staff_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# --- API keys ---------------------------------------------------------------------------------

API_KEY_PREFIX = "sk_"
_KEY_PREFIX_RE = re.compile(r"[A-Za-z0-9]{1,16}")


def create_api_key(
    session: Session, *, corp_id: int, name: str, scopes: Iterable[str], actor: Principal | str
) -> tuple[str, ApiKey]:
    """Returns the key to show once (`sk_<prefix>_<secret>`) and its record."""
    scopes = sorted({str(s) for s in scopes})
    name = _text(name, field="name")
    if not scopes:
        raise InvalidInput("choose at least one scope", field="scopes")
    unknown = set(scopes) - API_SCOPES
    if unknown:
        raise InvalidInput("unknown scope(s): %(scopes)s", field="scopes",
                           params={"scopes": ", ".join(sorted(unknown))})
    prefix = new_token(6)[:8].replace("-", "x").replace("_", "y")
    secret = new_token(32)
    key = ApiKey(
        corp_id=corp_id,
        name=name,
        prefix=prefix,
        secret_hash=token_hash(secret),
        scopes=scopes,
        created_by_staff_id=actor.staff_id if isinstance(actor, Principal) else None,
    )
    session.add(key)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="api_key.created", target_type="api_key",
                 target_id=key.id, detail={"name": key.name, "prefix": prefix, "scopes": scopes})
    return f"{API_KEY_PREFIX}{prefix}_{secret}", key


def list_api_keys(session: Session, *, corp_id: int) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.corp_id == corp_id).order_by(ApiKey.id.desc())))


def get_api_key(session: Session, *, corp_id: int, api_key_id: int) -> ApiKey:
    key = session.get(ApiKey, api_key_id) if valid_id(api_key_id) else None
    if key is None or key.corp_id != corp_id:
        raise NotFound("API key not found", field="api_key_id")
    return key


def count_active_api_keys(session: Session, *, corp_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.corp_id == corp_id, ApiKey.revoked_at.is_(None))
    ) or 0


def revoke_api_key(session: Session, *, corp_id: int, api_key_id: int, actor: Principal) -> ApiKey:
    key = get_api_key(session, corp_id=corp_id, api_key_id=api_key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(session, corp_id=corp_id, actor=actor, action="api_key.revoked", target_type="api_key",
                     target_id=key.id, detail={"prefix": key.prefix})
    return key


def resolve_api_key(session: Session, *, token: str) -> Principal | None:
    if not token or not token.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = token[len(API_KEY_PREFIX):].partition("_")
    if not _KEY_PREFIX_RE.fullmatch(prefix) or not secret:
        return None
    # The key and its corp's state in one query: every API request starts here.
    found = session.execute(select(ApiKey, Corp.is_active).join(Corp, Corp.id == ApiKey.corp_id)
                            .where(ApiKey.prefix == prefix)).first()
    key, corp_active = found if found is not None else (None, False)
    if key is None or key.revoked_at is not None or not same(key.secret_hash, token_hash(secret)):
        return None
    if not corp_active:
        return None
    now = utcnow()
    # Touch at most once a minute: a busy integration should not turn every read into a write.
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        key.last_used_at = now
    return Principal(corp_id=key.corp_id, kind="api_key", label=f"api_key:{key.prefix}",
                     api_key_id=key.id, scopes=frozenset(key.scopes))


def count_departments(session: Session, *, corp_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Department).where(Department.corp_id == corp_id)) or 0


# --- dashboard --------------------------------------------------------------------------------

# Who may see figures taken from the audit log (the same roles as the audit page).
AUDIT_READERS = (Role.ADMINISTRATOR, Role.AUDITOR, Role.COMPLIANCE)
LOGIN_CHART_DAYS = 14




def dashboard_charts(session: Session, *, principal: Principal) -> list[dict]:
    """Series for the dashboard's charts: console logins per day (Asia/Shanghai) over two weeks."""
    if not principal.has_role(*AUDIT_READERS):
        return []
    days = audit.daily_counts(session, corp_id=principal.corp_id, actions=("login.succeeded", "login.failed"),
                              days=LOGIN_CHART_DAYS)
    return [{
        "key": "logins",
        "title": "Console logins per day",
        "kind": "bar",
        "x": [d.isoformat() for d in days],
        "series": [
            {"label": "Successful logins", "values": [days[d].get("login.succeeded", 0) for d in days]},
            {"label": "Failed logins", "values": [days[d].get("login.failed", 0) for d in days]},
        ],
    }]
