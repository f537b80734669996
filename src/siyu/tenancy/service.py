"""Corps, org tree, staff and roles, logins and console sessions, API keys."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.config import get_settings
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound, SiyuError
from siyu.tenancy import audit
from siyu.tenancy.models import ApiKey, ConsoleSession, Corp, Department, Role, Staff, StaffRole
from siyu.tenancy.principal import Principal
from siyu.tenancy.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    new_token,
    same,
    token_hash,
    verify_password,
)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
ROLE_NAMES = frozenset(r.value for r in Role)
# Scopes an API key can carry; "*" is every scope.
API_SCOPES = frozenset(
    {"*", "customers:read", "customers:write", "orders:write", "kyc:write", "events:read", "jobs:read"}
)


class LoginFailed(SiyuError):
    status_code = 401


class AccountLocked(SiyuError):
    status_code = 423


# --- corps and org tree -------------------------------------------------------------------


def create_corp(session: Session, *, slug: str, name: str, wecom_corp_id: str | None = None) -> Corp:
    if not SLUG_RE.match(slug):
        raise InvalidInput("slug must be 2–40 lowercase letters, digits or '-'", field="slug")
    if not name.strip():
        raise InvalidInput("name is required", field="name")
    if session.scalar(select(Corp.id).where(Corp.slug == slug)):
        raise Conflict(f"a corp with slug {slug!r} exists", field="slug")
    corp = Corp(slug=slug, name=name.strip(), wecom_corp_id=wecom_corp_id)
    session.add(corp)
    session.flush()
    session.add(Department(corp_id=corp.id, name=corp.name, wecom_department_id=1))
    audit.record(session, corp_id=corp.id, actor="system", action="corp.created", target_type="corp",
                 target_id=corp.id, detail={"slug": slug})
    session.flush()
    return corp


def get_corp(session: Session, *, corp_id: int) -> Corp:
    corp = session.get(Corp, corp_id)
    if corp is None:
        raise NotFound("corp not found")
    return corp


def get_corp_by_wecom_id(session: Session, *, wecom_corp_id: str) -> Corp | None:
    return session.scalar(select(Corp).where(Corp.wecom_corp_id == wecom_corp_id))


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
    if not name.strip():
        raise InvalidInput("name is required", field="name")
    parent = get_department(session, corp_id=corp_id, department_id=parent_id) if parent_id else root_department(
        session, corp_id=corp_id
    )
    if session.scalar(
        select(Department.id).where(Department.parent_id == parent.id, Department.name == name.strip())
    ):
        raise Conflict("a department with this name exists here", field="name")
    dept = Department(corp_id=corp_id, parent_id=parent.id, name=name.strip())
    session.add(dept)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="department.created", target_type="department",
                 target_id=dept.id, detail={"name": dept.name, "parent_id": parent.id})
    return dept


def get_department(session: Session, *, corp_id: int, department_id: int) -> Department:
    dept = session.get(Department, department_id)
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


# --- staff and roles ------------------------------------------------------------------------


def _check_roles(roles: Iterable[str]) -> set[str]:
    roles = set(roles)
    unknown = roles - ROLE_NAMES
    if unknown:
        raise InvalidInput(f"unknown role(s): {', '.join(sorted(unknown))}", field="roles")
    return roles


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")


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
    login = login.strip().lower()
    if not re.fullmatch(r"[a-z0-9._@-]{3,120}", login):
        raise InvalidInput("login must be 3–120 characters: letters, digits, . _ @ -", field="login")
    if not name.strip():
        raise InvalidInput("name is required", field="name")
    role_set = _check_roles(roles)
    if password is not None:
        _check_password(password)
    if session.scalar(select(Staff.id).where(Staff.login == login)):
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
        name=name.strip(),
        wecom_userid=wecom_userid or None,
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
    staff = session.get(Staff, staff_id)
    if staff is None or staff.corp_id != corp_id:
        raise NotFound("staff not found", field="staff_id")
    return staff


def get_staff_by_wecom_userid(session: Session, *, corp_id: int, wecom_userid: str) -> Staff | None:
    return session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.wecom_userid == wecom_userid))


def list_staff(
    session: Session, *, corp_id: int, role: str | None = None, include_inactive: bool = True
) -> list[Staff]:
    q = select(Staff).where(Staff.corp_id == corp_id)
    if role:
        q = q.where(Staff.id.in_(select(StaffRole.staff_id).where(StaffRole.role == role)))
    if not include_inactive:
        q = q.where(Staff.is_active.is_(True))
    return list(session.scalars(q.order_by(Staff.id)))


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
        if not name.strip():
            raise InvalidInput("name is required", field="name")
        changes["name"] = name.strip()
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
    staff.failed_logins = 0
    staff.locked_until = None
    _revoke_sessions(session, staff_id=staff.id)
    audit.record(session, corp_id=corp_id, actor=actor, action="staff.password_set", target_type="staff",
                 target_id=staff.id)


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


def authenticate(session: Session, *, login: str, password: str, ip: str | None = None) -> Staff:
    """Check a console login. Repeated failures lock the account for a while (audited)."""
    settings = get_settings()
    now = utcnow()
    staff = session.scalar(select(Staff).where(Staff.login == login.strip().lower()))
    ok = verify_password(staff.password_hash if staff else None, password)
    if staff is None:
        raise LoginFailed("wrong login or password")
    corp = session.get(Corp, staff.corp_id)
    if staff.locked_until and staff.locked_until > now:
        audit.record(session, corp_id=staff.corp_id, actor=staff.login, action="login.refused_locked",
                     target_type="staff", target_id=staff.id, ip=ip)
        raise AccountLocked("too many failed attempts; try again later")
    if not ok or not staff.is_active or not (corp and corp.is_active):
        staff.failed_logins += 1
        detail = {"failures": staff.failed_logins}
        if staff.failed_logins >= settings.login_max_failures:
            staff.locked_until = now + dt.timedelta(minutes=settings.login_lockout_minutes)
            staff.failed_logins = 0
            detail["locked_until"] = staff.locked_until.isoformat()
        audit.record(session, corp_id=staff.corp_id, actor=staff.login, action="login.failed",
                     target_type="staff", target_id=staff.id, detail=detail, ip=ip)
        raise LoginFailed("wrong login or password")
    staff.failed_logins = 0
    staff.locked_until = None
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
        **extra,
    )


def resolve_session(session: Session, *, token: str) -> Principal | None:
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    staff = session.get(Staff, row.staff_id)
    if staff is None or not staff.is_active or staff.corp_id != row.corp_id:
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


def create_api_key(
    session: Session, *, corp_id: int, name: str, scopes: Iterable[str], actor: Principal | str
) -> tuple[str, ApiKey]:
    """Returns the key to show once (`sk_<prefix>_<secret>`) and its record."""
    scopes = sorted(set(scopes))
    if not name.strip():
        raise InvalidInput("name is required", field="name")
    if not scopes:
        raise InvalidInput("choose at least one scope", field="scopes")
    unknown = set(scopes) - API_SCOPES
    if unknown:
        raise InvalidInput(f"unknown scope(s): {', '.join(sorted(unknown))}", field="scopes")
    prefix = new_token(6)[:8].replace("-", "x").replace("_", "y")
    secret = new_token(32)
    key = ApiKey(
        corp_id=corp_id,
        name=name.strip(),
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


def revoke_api_key(session: Session, *, corp_id: int, api_key_id: int, actor: Principal) -> ApiKey:
    key = session.get(ApiKey, api_key_id)
    if key is None or key.corp_id != corp_id:
        raise NotFound("API key not found", field="api_key_id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(session, corp_id=corp_id, actor=actor, action="api_key.revoked", target_type="api_key",
                     target_id=key.id, detail={"prefix": key.prefix})
    return key


def resolve_api_key(session: Session, *, token: str) -> Principal | None:
    if not token.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = token[len(API_KEY_PREFIX):].partition("_")
    if not prefix or not secret:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None or not same(key.secret_hash, token_hash(secret)):
        return None
    now = utcnow()
    # Touch at most once a minute: a busy integration should not turn every read into a write.
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        key.last_used_at = now
    return Principal(corp_id=key.corp_id, kind="api_key", label=f"api_key:{key.prefix}",
                     api_key_id=key.id, scopes=frozenset(key.scopes))


def dashboard_figures(session: Session, *, principal: Principal) -> list[dict]:
    return [{"key": "staff", "label": "Active staff", "value": count_staff(session, corp_id=principal.corp_id)}]
