"""tenancy.service: corps, org tree, staff and roles, logins and console sessions, API keys, visibility."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from siyu.config import get_settings
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit, security, service
from siyu.tenancy.models import ApiKey, AuditEntry, ConsoleSession, Role, Staff
from siyu.tenancy.principal import Principal
from tenancy.factories import PASSWORD, make_corp, make_staff, principal_of, unique


def actions(session, corp_id: int) -> list[str]:
    return [e.action for e in audit.list_entries(session, corp_id=corp_id, limit=500)][::-1]


@pytest.fixture
def corp(session):
    return make_corp(session)


@pytest.fixture
def admin(session, corp):
    return make_staff(session, corp, roles=[Role.ADMINISTRATOR])


# --- corps and org tree --------------------------------------------------------------------------


def test_create_corp_has_a_root_department_and_is_audited(session):
    corp = service.create_corp(session, slug=unique("bank-"), name="  招商示范银行  ")
    assert corp.name == "招商示范银行"
    root = service.root_department(session, corp_id=corp.id)
    assert root.parent_id is None and root.name == corp.name
    assert actions(session, corp.id) == ["corp.created"]


@pytest.mark.parametrize("slug", ["", "A", "Upper", "-lead", "a" * 41, "has space", "ok\n", "ümlaut"])
def test_create_corp_refuses_a_bad_slug(session, slug):
    with pytest.raises(InvalidInput) as err:
        service.create_corp(session, slug=slug, name="x")
    assert err.value.field == "slug"


def test_create_corp_refuses_a_taken_slug(session, corp):
    with pytest.raises(Conflict) as err:
        service.create_corp(session, slug=corp.slug, name="again")
    assert err.value.field == "slug"
    assert corp.slug in err.value.message and err.value.msgid == "a corp with slug %(slug)s exists"


def test_departments_form_a_tree_scoped_to_the_corp(session, corp):
    other = make_corp(session)
    retail = service.create_department(session, corp_id=corp.id, name="零售银行部")
    branch = service.create_department(session, corp_id=corp.id, name="浦东支行", parent_id=retail.id)
    team = service.create_department(session, corp_id=corp.id, name="财富团队", parent_id=branch.id)
    sibling = service.create_department(session, corp_id=corp.id, name="公司银行部")
    root = service.root_department(session, corp_id=corp.id)
    assert retail.parent_id == root.id
    assert service.department_subtree_ids(session, corp_id=corp.id, department_id=retail.id) == {
        retail.id, branch.id, team.id}
    assert sibling.id not in service.department_subtree_ids(session, corp_id=corp.id, department_id=retail.id)
    assert {d.id for d in service.list_departments(session, corp_id=corp.id)} == {
        root.id, retail.id, branch.id, team.id, sibling.id}
    assert service.count_departments(session, corp_id=corp.id) == 5
    # another corp's department is neither a parent here nor visible
    with pytest.raises(NotFound) as err:
        service.create_department(session, corp_id=other.id, name="x", parent_id=retail.id)
    assert err.value.field == "parent_id"
    with pytest.raises(NotFound):
        service.get_department(session, corp_id=other.id, department_id=retail.id)
    assert "department.created" in actions(session, corp.id)


def test_department_names_are_unique_under_one_parent(session, corp):
    retail = service.create_department(session, corp_id=corp.id, name="零售")
    service.create_department(session, corp_id=corp.id, name="一组", parent_id=retail.id)
    with pytest.raises(Conflict):
        service.create_department(session, corp_id=corp.id, name=" 一组 ", parent_id=retail.id)
    service.create_department(session, corp_id=corp.id, name="一组")  # same name elsewhere is fine


@pytest.mark.parametrize(("name", "message"), [
    ("", "this field is required"),
    ("   ", "this field is required"),
    ("a\x00b", "must not contain control characters"),
    ("x" * 121, "must have at most %(n)s characters"),
])
def test_department_name_is_checked(session, corp, name, message):
    with pytest.raises(InvalidInput) as err:
        service.create_department(session, corp_id=corp.id, name=name)
    assert (err.value.field, err.value.msgid) == ("name", message)


@pytest.mark.parametrize("bad_id", [0, -1, 2**63, 10**30])
def test_ids_out_of_range_are_not_found(session, corp, bad_id):
    with pytest.raises(NotFound):
        service.get_department(session, corp_id=corp.id, department_id=bad_id)
    with pytest.raises(NotFound):
        service.get_staff(session, corp_id=corp.id, staff_id=bad_id)


# --- staff and roles -------------------------------------------------------------------------------


def test_create_staff_in_a_department_with_roles(session, corp, admin):
    dept = service.create_department(session, corp_id=corp.id, name="理财")
    staff = service.create_staff(session, corp_id=corp.id, login="  Zhang.Wei@Bank ", name="张伟",
                                 roles=[Role.ADVISOR, Role.OPERATIONS], department_id=dept.id,
                                 wecom_userid="zhangwei", actor=principal_of(admin))
    assert staff.login == "zhang.wei@bank"
    assert staff.role_names == {"advisor", "operations"}
    assert staff.department_id == dept.id and staff.is_active
    entry = audit.list_entries(session, corp_id=corp.id, action="staff.created", limit=1)[0]
    assert entry.actor == admin.login and entry.actor_staff_id == admin.id
    assert entry.detail == {"login": "zhang.wei@bank", "roles": ["advisor", "operations"]}
    assert service.get_staff_by_wecom_userid(session, corp_id=corp.id, wecom_userid="zhangwei") is staff


def test_staff_without_department_goes_to_the_root(session, corp):
    staff = make_staff(session, corp, password=None)
    assert staff.department_id == service.root_department(session, corp_id=corp.id).id
    assert staff.password_hash is None


def test_password_is_stored_as_argon2id(session, corp):
    staff = make_staff(session, corp)
    assert staff.password_hash.startswith("$argon2id$") and PASSWORD not in staff.password_hash
    assert security.hash_password("another-password").startswith("$argon2id$")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"login": "ab"}, "login"),
    ({"login": "has space"}, "login"),
    ({"login": "中文登录"}, "login"),
    ({"name": " "}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"roles": []}, "roles"),
    ({"roles": ["advisor", "root"]}, "roles"),
    ({"password": "short"}, "password"),
    ({"password": "p" * 201}, "password"),
    ({"wecom_userid": "w" * 65}, "wecom_userid"),
    ({"department_id": 10**12}, "department_id"),
])
def test_create_staff_refuses_bad_input_and_writes_nothing(session, corp, kwargs, field):
    before = session.scalars(select(Staff.id).where(Staff.corp_id == corp.id)).all()
    args = {"login": unique("u."), "name": "名字", "roles": ["advisor"], "password": None} | kwargs
    with pytest.raises((InvalidInput, NotFound)) as err:
        service.create_staff(session, corp_id=corp.id, **args)
    assert err.value.field == field
    assert session.scalars(select(Staff.id).where(Staff.corp_id == corp.id)).all() == before


def test_login_and_wecom_userid_must_be_unique(session, corp):
    other = make_corp(session)
    first = make_staff(session, corp, wecom_userid="wx1", password=None)
    with pytest.raises(Conflict) as err:
        make_staff(session, other, login=first.login, password=None)
    assert err.value.field == "login"  # logins are global: the login page has no corp field
    with pytest.raises(Conflict) as err:
        make_staff(session, corp, wecom_userid="wx1", password=None)
    assert err.value.field == "wecom_userid"
    make_staff(session, other, wecom_userid="wx1", password=None)  # per corp


def test_another_corps_staff_is_not_found(session, corp):
    other_staff = make_staff(session, make_corp(session), password=None)
    with pytest.raises(NotFound):
        service.get_staff(session, corp_id=corp.id, staff_id=other_staff.id)
    assert other_staff.id not in {s.id for s in service.list_staff(session, corp_id=corp.id)}


def test_list_staff_by_role_and_status(session, corp, admin):
    advisor = make_staff(session, corp, password=None)
    gone = make_staff(session, corp, password=None)
    service.update_staff(session, corp_id=corp.id, staff_id=gone.id, is_active=False, actor=principal_of(admin))
    assert [s.id for s in service.list_staff(session, corp_id=corp.id, role="advisor")] == [advisor.id, gone.id]
    assert gone.id not in {s.id for s in service.list_staff(session, corp_id=corp.id, include_inactive=False)}
    assert service.count_staff(session, corp_id=corp.id) == 2


def test_role_changes_are_audited(session, corp, admin):
    staff = make_staff(session, corp, password=None)
    service.set_roles(session, corp_id=corp.id, staff_id=staff.id, roles=["compliance", "auditor"],
                      actor=principal_of(admin))
    assert staff.role_names == {"compliance", "auditor"}
    entry = audit.list_entries(session, corp_id=corp.id, action="staff.roles_changed", limit=1)[0]
    assert entry.detail == {"from": ["advisor"], "to": ["auditor", "compliance"]}
    assert entry.target_id == str(staff.id) and entry.actor_staff_id == admin.id
    # no change, no entry
    service.set_roles(session, corp_id=corp.id, staff_id=staff.id, roles=["auditor", "compliance"],
                      actor=principal_of(admin))
    assert actions(session, corp.id).count("staff.roles_changed") == 1


def test_roles_are_checked(session, corp, admin):
    staff = make_staff(session, corp, password=None)
    for roles in ([], ["superuser"]):
        with pytest.raises(InvalidInput) as err:
            service.set_roles(session, corp_id=corp.id, staff_id=staff.id, roles=roles, actor=principal_of(admin))
        assert err.value.field == "roles"
    assert staff.role_names == {"advisor"}


def test_an_administrator_cannot_drop_their_own_administrator_role(session, corp, admin):
    with pytest.raises(Forbidden):
        service.set_roles(session, corp_id=corp.id, staff_id=admin.id, roles=["auditor"], actor=principal_of(admin))
    service.set_roles(session, corp_id=corp.id, staff_id=admin.id, roles=["administrator", "auditor"],
                      actor=principal_of(admin))
    assert admin.role_names == {"administrator", "auditor"}


def test_roles_cannot_be_set_across_corps(session, corp, admin):
    foreign = make_staff(session, make_corp(session), password=None)
    with pytest.raises(NotFound):
        service.set_roles(session, corp_id=corp.id, staff_id=foreign.id, roles=["administrator"],
                          actor=principal_of(admin))
    assert foreign.role_names == {"advisor"}


def test_update_staff_moves_renames_and_is_audited(session, corp, admin):
    staff = make_staff(session, corp, password=None)
    dept = service.create_department(session, corp_id=corp.id, name="运营")
    service.update_staff(session, corp_id=corp.id, staff_id=staff.id, name="新名字", department_id=dept.id,
                         sees_department=True, actor=principal_of(admin))
    assert (staff.name, staff.department_id, staff.sees_department) == ("新名字", dept.id, True)
    entry = audit.list_entries(session, corp_id=corp.id, action="staff.updated", limit=1)[0]
    assert entry.detail == {"name": "新名字", "department_id": dept.id, "sees_department": True}
    foreign_dept = service.root_department(session, corp_id=make_corp(session).id)
    with pytest.raises(NotFound):
        service.update_staff(session, corp_id=corp.id, staff_id=staff.id, department_id=foreign_dept.id,
                             actor=principal_of(admin))


def test_an_administrator_cannot_deactivate_themselves(session, corp, admin):
    with pytest.raises(Forbidden):
        service.update_staff(session, corp_id=corp.id, staff_id=admin.id, is_active=False, actor=principal_of(admin))
    assert admin.is_active


# --- login -------------------------------------------------------------------------------------------


def test_login_succeeds_and_is_audited(session, corp):
    staff = make_staff(session, corp)
    got = service.authenticate(session, login=" " + staff.login.upper() + " ", password=PASSWORD, ip="10.0.0.9")
    assert got is staff and staff.last_login_at is not None
    entry = audit.list_entries(session, corp_id=corp.id, action="login.succeeded", limit=1)[0]
    assert entry.actor == staff.login and entry.ip == "10.0.0.9"


def test_wrong_password_fails_and_is_counted(session, corp):
    staff = make_staff(session, corp)
    with pytest.raises(service.LoginFailed):
        service.authenticate(session, login=staff.login, password="wrong-password")
    entry = audit.list_entries(session, corp_id=corp.id, action="login.failed", limit=1)[0]
    assert entry.detail == {"failures": 1, "reason": "password"}
    assert "wrong-password" not in str(entry.detail)


@pytest.mark.parametrize("login", ["nobody.here", "", "x\x00y", "a" * 500])
def test_unknown_login_fails_the_same_way(session, login):
    with pytest.raises(service.LoginFailed) as err:
        service.authenticate(session, login=login, password=PASSWORD)
    assert err.value.message == "wrong login or password"


def test_failures_from_one_address_slow_that_address_down_then_pass(session, corp):
    """(The throttle in full: tests/security/test_logins.py.)"""
    staff = make_staff(session, corp)
    max_failures = get_settings().login_max_failures
    for _ in range(max_failures):
        with pytest.raises(service.LoginFailed):
            service.authenticate(session, login=staff.login, password="wrong-password", ip="10.0.0.1")
    with pytest.raises(service.TooManyAttempts):
        service.authenticate(session, login=staff.login, password=PASSWORD, ip="10.0.0.1")
    assert actions(session, corp.id).count("login.failed") == max_failures
    later = utcnow() + dt.timedelta(seconds=5)
    assert service.authenticate(session, login=staff.login, password=PASSWORD, ip="10.0.0.1", now=later) is staff


def test_a_success_resets_the_failure_count(session, corp):
    staff = make_staff(session, corp)
    for _ in range(get_settings().login_max_failures - 1):
        with pytest.raises(service.LoginFailed):
            service.authenticate(session, login=staff.login, password="wrong-password")
    service.authenticate(session, login=staff.login, password=PASSWORD)
    for _ in range(get_settings().login_max_failures - 1):
        with pytest.raises(service.LoginFailed) as failed:
            service.authenticate(session, login=staff.login, password="wrong-password")
        assert not isinstance(failed.value, service.TooManyAttempts)


def test_inactive_staff_cannot_log_in(session, corp, admin):
    staff = make_staff(session, corp)
    service.update_staff(session, corp_id=corp.id, staff_id=staff.id, is_active=False, actor=principal_of(admin))
    with pytest.raises(service.LoginFailed):
        service.authenticate(session, login=staff.login, password=PASSWORD)
    entry = audit.list_entries(session, corp_id=corp.id, action="login.failed", limit=1)[0]
    assert entry.detail["reason"] == "staff_inactive"


def test_staff_of_an_inactive_corp_cannot_log_in(session, corp):
    staff = make_staff(session, corp)
    corp.is_active = False
    with pytest.raises(service.LoginFailed):
        service.authenticate(session, login=staff.login, password=PASSWORD)


def test_staff_without_a_password_cannot_log_in(session, corp):
    staff = make_staff(session, corp, password=None)
    with pytest.raises(service.LoginFailed):
        service.authenticate(session, login=staff.login, password="")


# --- console sessions ------------------------------------------------------------------------------


def test_session_resolves_to_the_staff_with_a_csrf_token(session, corp):
    dept = service.create_department(session, corp_id=corp.id, name="团队")
    staff = make_staff(session, corp, roles=["advisor", "operations"], department_id=dept.id, sees_department=True)
    token = service.start_session(session, staff=staff)
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.staff_id == staff.id))
    assert row.token_hash == security.token_hash(token) and token not in (row.token_hash, row.csrf_token)
    principal = service.resolve_session(session, token=token)
    assert principal == Principal(corp_id=corp.id, kind="staff", label=staff.login, staff_id=staff.id,
                                  department_id=dept.id, roles=frozenset({"advisor", "operations"}),
                                  sees_department=True, csrf_token=row.csrf_token, session_id=row.id,
                                  display_name=staff.name)
    assert service.resolve_session(session, token=token + "x") is None
    assert service.resolve_session(session, token="") is None


def test_expired_session_is_refused(session, corp):
    staff = make_staff(session, corp, password=None)
    token = service.start_session(session, staff=staff)
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.staff_id == staff.id))
    assert row.expires_at - utcnow() == pytest.approx(dt.timedelta(hours=get_settings().session_hours),
                                                      abs=dt.timedelta(minutes=1))
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    session.flush()
    assert service.resolve_session(session, token=token) is None


def test_logout_ends_only_that_session(session, corp):
    staff = make_staff(session, corp, password=None)
    first, second = service.start_session(session, staff=staff), service.start_session(session, staff=staff)
    service.end_session(session, token=first)
    assert service.resolve_session(session, token=first) is None
    assert service.resolve_session(session, token=second) is not None


def test_password_change_revokes_every_session(session, corp, admin):
    staff = make_staff(session, corp)
    token = service.start_session(session, staff=staff)
    service.set_password(session, corp_id=corp.id, staff_id=staff.id, password="a-new-password-1",
                         actor=principal_of(admin))
    assert service.resolve_session(session, token=token) is None
    assert service.authenticate(session, login=staff.login, password="a-new-password-1") is staff
    with pytest.raises(service.LoginFailed):
        service.authenticate(session, login=staff.login, password=PASSWORD)
    assert "staff.password_set" in actions(session, corp.id)


def test_password_reset_lets_the_new_password_in(session, corp, admin):
    staff = make_staff(session, corp)
    service.set_password(session, corp_id=corp.id, staff_id=staff.id, password="a-new-password-1",
                         actor=principal_of(admin))
    assert service.authenticate(session, login=staff.login, password="a-new-password-1") is staff


def test_short_password_is_refused(session, corp, admin):
    staff = make_staff(session, corp)
    with pytest.raises(InvalidInput) as err:
        service.set_password(session, corp_id=corp.id, staff_id=staff.id, password="short", actor=principal_of(admin))
    assert err.value.field == "password" and err.value.params == {"n": security.MIN_PASSWORD_LENGTH}


def test_deactivation_revokes_sessions_and_reactivation_does_not_restore_them(session, corp, admin):
    staff = make_staff(session, corp, password=None)
    token = service.start_session(session, staff=staff)
    service.update_staff(session, corp_id=corp.id, staff_id=staff.id, is_active=False, actor=principal_of(admin))
    assert service.resolve_session(session, token=token) is None
    service.update_staff(session, corp_id=corp.id, staff_id=staff.id, is_active=True, actor=principal_of(admin))
    assert service.resolve_session(session, token=token) is None
    details = [e.detail for e in audit.list_entries(session, corp_id=corp.id, action="staff.updated")]
    assert details == [{"is_active": True}, {"is_active": False}]


def test_session_of_an_inactive_corp_is_refused(session, corp):
    staff = make_staff(session, corp, password=None)
    token = service.start_session(session, staff=staff)
    corp.is_active = False
    session.flush()
    assert service.resolve_session(session, token=token) is None


def test_roles_are_read_afresh_on_every_request(session, corp, admin):
    staff = make_staff(session, corp, password=None)
    token = service.start_session(session, staff=staff)
    service.set_roles(session, corp_id=corp.id, staff_id=staff.id, roles=["auditor"], actor=principal_of(admin))
    assert service.resolve_session(session, token=token).roles == {"auditor"}


# --- API keys ----------------------------------------------------------------------------------------


def test_api_key_is_shown_once_and_stored_hashed(session, corp, admin):
    token, key = service.create_api_key(session, corp_id=corp.id, name="核心系统", scopes=["customers:read"],
                                        actor=principal_of(admin))
    assert token.startswith(f"sk_{key.prefix}_")
    secret = token.split("_", 2)[2]
    assert secret not in key.secret_hash and key.secret_hash == security.token_hash(secret)
    assert key.created_by_staff_id == admin.id
    entry = audit.list_entries(session, corp_id=corp.id, action="api_key.created", limit=1)[0]
    assert entry.detail == {"name": "核心系统", "prefix": key.prefix, "scopes": ["customers:read"]}
    assert secret not in str(entry.detail)


def test_api_key_resolves_to_a_scoped_principal(session, corp):
    token, key = service.create_api_key(session, corp_id=corp.id, name="crm", scopes=["customers:read", "orders:write"],
                                        actor="system")
    principal = service.resolve_api_key(session, token=token)
    assert (principal.corp_id, principal.kind, principal.api_key_id) == (corp.id, "api_key", key.id)
    assert principal.has_scope("customers:read") and not principal.has_scope("kyc:write")
    assert principal.staff_id is None and principal.roles == frozenset()
    assert key.last_used_at is not None


def test_star_scope_allows_everything(session, corp):
    token, _ = service.create_api_key(session, corp_id=corp.id, name="all", scopes=["*"], actor="system")
    assert service.resolve_api_key(session, token=token).has_scope("anything:at-all")


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
    lambda t: t.replace("sk_", "pk_", 1),
    lambda t: t.split("_", 2)[0] + "_" + t.split("_", 2)[1],
    lambda t: "sk_zzzzzzzz_" + t.split("_", 2)[2],
    lambda t: "sk_\x00_" + t.split("_", 2)[2],
    lambda t: "",
])
def test_a_wrong_key_resolves_to_nothing(session, corp, mangle):
    token, _ = service.create_api_key(session, corp_id=corp.id, name="k", scopes=["*"], actor="system")
    assert service.resolve_api_key(session, token=mangle(token)) is None


def test_revoked_key_is_refused_and_revocation_is_audited(session, corp, admin):
    token, key = service.create_api_key(session, corp_id=corp.id, name="k", scopes=["*"], actor="system")
    service.revoke_api_key(session, corp_id=corp.id, api_key_id=key.id, actor=principal_of(admin))
    service.revoke_api_key(session, corp_id=corp.id, api_key_id=key.id, actor=principal_of(admin))  # idempotent
    assert key.revoked_at is not None
    assert service.resolve_api_key(session, token=token) is None
    assert actions(session, corp.id).count("api_key.revoked") == 1
    assert service.count_active_api_keys(session, corp_id=corp.id) == 0


def test_key_of_an_inactive_corp_is_refused(session, corp):
    token, _ = service.create_api_key(session, corp_id=corp.id, name="k", scopes=["*"], actor="system")
    corp.is_active = False
    assert service.resolve_api_key(session, token=token) is None


def test_keys_cannot_be_revoked_across_corps(session, corp, admin):
    other = make_corp(session)
    token, key = service.create_api_key(session, corp_id=other.id, name="k", scopes=["*"], actor="system")
    with pytest.raises(NotFound):
        service.revoke_api_key(session, corp_id=corp.id, api_key_id=key.id, actor=principal_of(admin))
    assert service.resolve_api_key(session, token=token) is not None
    assert [k.id for k in service.list_api_keys(session, corp_id=corp.id)] == []


@pytest.mark.parametrize(("name", "scopes", "field"), [
    ("", ["*"], "name"),
    ("k", [], "scopes"),
    ("k", ["customers:read", "root"], "scopes"),
])
def test_api_key_input_is_checked(session, corp, name, scopes, field):
    with pytest.raises(InvalidInput) as err:
        service.create_api_key(session, corp_id=corp.id, name=name, scopes=scopes, actor="system")
    assert err.value.field == field
    assert session.scalar(select(ApiKey.id).where(ApiKey.corp_id == corp.id)) is None


# --- whose customers a caller sees ---------------------------------------------------------------


def test_visible_staff_ids(session, corp):
    retail = service.create_department(session, corp_id=corp.id, name="零售")
    branch = service.create_department(session, corp_id=corp.id, name="支行", parent_id=retail.id)
    other_dept = service.create_department(session, corp_id=corp.id, name="对公")
    lead = make_staff(session, corp, department_id=retail.id, sees_department=True, password=None)
    in_branch = make_staff(session, corp, department_id=branch.id, password=None)
    in_retail = make_staff(session, corp, department_id=retail.id, password=None)
    elsewhere = make_staff(session, corp, department_id=other_dept.id, password=None)
    foreign = make_corp(session)
    make_staff(session, foreign, password=None)

    # an advisor sees their own customers
    assert service.visible_staff_ids(session, principal=principal_of(in_branch)) == {in_branch.id}
    # an advisor granted their department sees its subtree (and not the sibling department, nor other corps)
    assert service.visible_staff_ids(session, principal=principal_of(lead)) == {lead.id, in_branch.id, in_retail.id}
    assert elsewhere.id not in service.visible_staff_ids(session, principal=principal_of(lead))
    # managers, compliance, auditors and integrations see the whole corp
    for role in ("administrator", "operations", "compliance", "auditor"):
        manager = make_staff(session, corp, roles=[role], password=None)
        assert service.visible_staff_ids(session, principal=principal_of(manager)) is None
    api = Principal(corp_id=corp.id, kind="api_key", label="k", scopes=frozenset({"*"}))
    assert service.visible_staff_ids(session, principal=api) is None


# --- dashboard --------------------------------------------------------------------------------------


def test_login_chart(session, corp, admin):
    advisor = make_staff(session, corp)
    service.create_api_key(session, corp_id=corp.id, name="k", scopes=["*"], actor="system")
    service.authenticate(session, login=advisor.login, password=PASSWORD)
    with pytest.raises(service.LoginFailed):
        service.authenticate(session, login=advisor.login, password="nope-nope-nope")
    [chart] = service.dashboard_charts(session, principal=principal_of(admin))
    assert len(chart["x"]) == service.LOGIN_CHART_DAYS
    ok, failed = chart["series"]
    assert ok["values"][-1] == 1 and failed["values"][-1] == 1 and sum(ok["values"]) == 1
    assert service.dashboard_charts(session, principal=principal_of(advisor)) == []


def test_audit_entries_of_a_corp_stay_in_its_chain(session, corp):
    other = make_corp(session)
    make_staff(session, other, password=None)
    chains = set(session.scalars(select(AuditEntry.chain_id).where(AuditEntry.actor == "system")))
    assert {corp.id, other.id} <= chains
    assert all(e.chain_id == corp.id for e in audit.list_entries(session, corp_id=corp.id))
