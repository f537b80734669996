"""Console pages of the tenancy domain: login, staff and roles, org tree, API keys, audit log."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import select, update

from siyu.tenancy import audit, service
from siyu.tenancy.models import AuditEntry, Staff
from tenancy.factories import (
    PASSWORD,
    console_user,
    csrf_from,
    log_in,
    make_client,
    make_corp,
    make_staff,
)


@pytest.fixture
def corp(session):
    return make_corp(session, name="甲银行")


@pytest.fixture
def admin(session, corp):
    return console_user(session, corp, name="管理员甲")


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="field-error" id="[^"]*" data-field="([^"]+)" role="alert">([^<]*)<', html))


def staff_named(session, corp, name):
    return session.scalar(select(Staff).where(Staff.corp_id == corp.id, Staff.name == name))


# --- login ---------------------------------------------------------------------------------------


def test_logged_out_visitors_are_sent_to_login(session):
    client = make_client(session)
    response = client.get("/staff", headers={"accept": "text/html"})
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/staff"
    htmx = client.post("/staff/1/roles", headers={"accept": "text/html", "HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_login_and_logout(session, corp):
    staff = make_staff(session, corp)
    client = make_client(session)
    page = client.get("/login?next=/audit")
    response = client.post("/login", data={"login": staff.login, "password": PASSWORD,
                                           "csrf_token": csrf_from(page.text), "next": "/audit"})
    assert response.status_code == 303 and response.headers["location"] == "/audit"
    csrf = csrf_from(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/", headers={"accept": "text/html"}).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/", "/\t/evil.example", "/\\evil"])
def test_login_never_redirects_away(session, corp, target):
    staff = make_staff(session, corp)
    client = make_client(session)
    page = client.get("/login")
    response = client.post("/login", data={"login": staff.login, "password": PASSWORD,
                                           "csrf_token": csrf_from(page.text), "next": target})
    assert response.headers["location"] == "/"


def test_wrong_password_keeps_next_and_is_audited(session, corp):
    staff = make_staff(session, corp)
    client = make_client(session)
    page = client.get("/login?next=/staff")
    response = client.post("/login", data={"login": staff.login, "password": "wrong-password",
                                           "csrf_token": csrf_from(page.text), "next": "/staff"})
    assert response.status_code == 401 and "登录名或密码错误" in response.text
    assert 'name="next" value="/staff"' in response.text
    assert audit.list_entries(session, corp_id=corp.id, action="login.failed")


def test_a_throttled_login_is_told_to_wait(session, corp, monkeypatch):
    staff = make_staff(session, corp)
    client = make_client(session)
    token = csrf_from(client.get("/login").text)
    statuses = [client.post("/login", data={"login": staff.login, "password": "wrong-password",
                                            "csrf_token": token}).status_code for _ in range(5)]
    assert statuses == [401] * 5
    slowed = client.post("/login", data={"login": staff.login, "password": PASSWORD, "csrf_token": token})
    assert slowed.status_code == 429 and int(slowed.headers["Retry-After"]) >= 1


def test_login_form_needs_its_csrf_cookie(session, corp):
    staff = make_staff(session, corp)
    client = make_client(session)
    response = client.post("/login", data={"login": staff.login, "password": PASSWORD, "csrf_token": "guess"})
    assert response.status_code == 403 and "siyu_session" not in response.cookies


# --- who may open which page -----------------------------------------------------------------------


@pytest.mark.parametrize(("role", "allowed"), [
    ("administrator", {"/", "/staff", "/departments", "/api-keys", "/audit", "/audit/verify"}),
    ("auditor", {"/", "/audit", "/audit/verify"}),
    ("compliance", {"/", "/audit", "/audit/verify"}),
    ("operations", {"/"}),
    ("advisor", {"/"}),
])
def test_pages_are_role_checked(session, corp, role, allowed):
    user = console_user(session, corp, roles=[role])
    for path in ("/", "/staff", "/departments", "/api-keys", "/audit", "/audit/verify"):
        response = user.get(path)
        assert response.status_code == (200 if path in allowed else 403), (role, path)
        if response.status_code == 403:
            assert "您的角色无权进行此操作" in response.text
    navigation = user.get("/").text
    assert ('href="/staff"' in navigation) == ("/staff" in allowed)


def test_forms_of_a_non_administrator_are_refused(session, corp):
    user = console_user(session, corp, roles=["operations"])
    response = user.post("/staff", {"login": "new.one", "name": "新人", "roles": ["administrator"]})
    assert response.status_code == 403
    assert staff_named(session, corp, "新人") is None


# --- staff -------------------------------------------------------------------------------------------


def test_staff_page_lists_staff_with_roles_department_and_status(session, corp, admin):
    dept = service.create_department(session, corp_id=corp.id, name="零售")
    make_staff(session, corp, name="张伟", login="zhang.wei", roles=["advisor", "compliance"], department_id=dept.id,
               wecom_userid="zw01", password=None)
    html = admin.get("/staff").text
    row = re.search(r'<tr id="staff-\d+"[^>]*>(?:(?!</tr>).)*张伟(?:(?!</tr>).)*</tr>', html, re.S).group(0)
    for text in ("zhang.wei", "甲银行 / 零售", "理财顾问", "合规专员", "zw01", "启用", "未设置密码"):
        assert text in row
    only_compliance = re.findall(r'<tr id="staff-\d+".*?</tr>', admin.get("/staff?role=compliance").text, re.S)
    assert any("张伟" in r for r in only_compliance) and not any("管理员甲" in r for r in only_compliance)


def test_create_staff(session, corp, admin):
    dept = service.create_department(session, corp_id=corp.id, name="零售")
    response = admin.post("/staff", {"login": "Li.Na", "name": "李娜", "department_id": str(dept.id),
                                     "roles": ["operations", "advisor"], "password": "a-good-password",
                                     "wecom_userid": "lina", "sees_department": "true"})
    assert response.status_code == 303
    staff = staff_named(session, corp, "李娜")
    assert (staff.login, staff.department_id, staff.role_names, staff.sees_department) == (
        "li.na", dept.id, {"operations", "advisor"}, True)
    assert service.authenticate(session, login="li.na", password="a-good-password") is staff
    entry = audit.list_entries(session, corp_id=corp.id, action="staff.created", limit=1)[0]
    assert entry.actor == admin.staff.login


@pytest.mark.parametrize(("form", "field", "status", "message"), [
    ({"login": "ab"}, "login", 422, "登录名须为 3–120 个字符"),
    ({"name": ""}, "name", 422, "此项为必填项"),
    ({"roles": []}, "roles", 422, "请至少选择一个角色"),
    ({"roles": ["root"]}, "roles", 422, "未知角色：root"),
    ({"password": "short"}, "password", 422, "密码至少需要 12 个字符"),
    ({"department_id": "abc"}, "department_id", 422, "请从选项中选择"),
    ({"department_id": "99999999"}, "department_id", 404, "找不到该部门"),
    ({"login": "taken.login"}, "login", 409, "该登录名已被占用"),
])
def test_create_staff_shows_the_error_next_to_the_field(session, corp, admin, form, field, status, message):
    make_staff(session, corp, login="taken.login", password=None)
    before = session.scalar(select(Staff.id).order_by(Staff.id.desc()).limit(1))
    data = {"login": "new.person", "name": "新人", "roles": ["advisor"]} | form
    response = admin.post("/staff", data)
    assert response.status_code == status
    errors = field_errors(response.text)
    assert list(errors) == [field] and errors[field].startswith(message)
    assert 'aria-invalid="true"' in response.text
    assert f'value="{data["login"]}"' in response.text  # what was typed is kept
    assert session.scalar(select(Staff.id).order_by(Staff.id.desc()).limit(1)) == before


def test_create_staff_in_english(session, corp, admin):
    response = admin.post("/staff?lang=en", {"login": "x", "name": "n", "roles": ["advisor"]})
    assert field_errors(response.text)["login"].startswith("login must be 3–120 characters")


def test_forms_without_the_csrf_token_are_refused(session, corp, admin):
    response = admin.client.post("/staff", data={"login": "no.csrf", "name": "无令牌", "roles": ["advisor"]},
                                 headers={"accept": "text/html"})
    assert response.status_code == 403 and "表单已过期" in response.text
    wrong = admin.client.post("/staff", data={"login": "no.csrf", "name": "无令牌", "roles": ["advisor"],
                                              "csrf_token": "x" * 32}, headers={"accept": "text/html"})
    assert wrong.status_code == 403
    assert staff_named(session, corp, "无令牌") is None


def test_edit_roles_with_htmx_returns_the_row(session, corp, admin):
    staff = make_staff(session, corp, name="张伟", password=None)
    response = admin.post(f"/staff/{staff.id}/roles", {"roles": ["auditor", "compliance"]}, htmx=True)
    assert response.status_code == 200
    assert response.text.lstrip().startswith("<tr") or "<tr id=\"staff-" in response.text
    assert "<html" not in response.text and "审计员" in response.text and "角色已保存" in response.text
    assert staff.role_names == {"auditor", "compliance"}
    entry = audit.list_entries(session, corp_id=corp.id, action="staff.roles_changed", limit=1)[0]
    assert entry.detail == {"from": ["advisor"], "to": ["auditor", "compliance"]}


def test_edit_roles_without_htmx_renders_the_page(session, corp, admin):
    staff = make_staff(session, corp, name="张伟", password=None)
    response = admin.post(f"/staff/{staff.id}/roles", {"roles": ["operations"]})
    assert response.status_code == 200 and "<html" in response.text and staff.role_names == {"operations"}


def test_role_errors_are_shown_in_the_row(session, corp, admin):
    response = admin.post(f"/staff/{admin.staff.id}/roles", {"roles": ["auditor"]}, htmx=True)
    assert response.status_code == 403
    assert field_errors(response.text) == {"roles": "不能移除自己的管理员角色"}
    empty = admin.post(f"/staff/{admin.staff.id}/roles", {}, htmx=True)
    assert empty.status_code == 422 and field_errors(empty.text) == {"roles": "请至少选择一个角色"}
    assert admin.staff.role_names == {"administrator"}


def test_htmx_with_a_wrong_csrf_header_is_refused_into_the_flash_area(session, corp, admin):
    staff = make_staff(session, corp, password=None)
    response = admin.client.post(f"/staff/{staff.id}/roles", data={"roles": ["auditor"]},
                                 headers={"HX-Request": "true", "X-CSRF-Token": "forged"})
    assert response.status_code == 403 and response.headers["HX-Retarget"] == "#flash"
    assert "<html" not in response.text and "表单已过期" in response.text
    assert staff.role_names == {"advisor"}


def test_deactivate_and_reactivate(session, corp, admin):
    staff = make_staff(session, corp, name="张伟")
    other = make_client(session)
    log_in(other, staff.login)
    response = admin.post(f"/staff/{staff.id}/deactivate", htmx=True)
    assert response.status_code == 200 and "已停用" in response.text and "重新启用" in response.text
    assert not staff.is_active
    assert other.get("/", headers={"accept": "text/html"}).status_code == 303  # logged out at once
    response = admin.post(f"/staff/{staff.id}/reactivate", htmx=True)
    assert response.status_code == 200 and staff.is_active
    assert [e.detail for e in audit.list_entries(session, corp_id=corp.id, action="staff.updated")] == [
        {"is_active": True}, {"is_active": False}]


def test_an_administrator_cannot_deactivate_themselves(session, corp, admin):
    page = admin.get("/staff").text
    assert f'action="/staff/{admin.staff.id}/deactivate"' not in page
    response = admin.post(f"/staff/{admin.staff.id}/deactivate", htmx=True)
    assert response.status_code == 403 and field_errors(response.text) == {"is_active": "不能停用自己的账号"}
    assert admin.staff.is_active


def test_reset_password_typed_or_generated(session, corp, admin):
    staff = make_staff(session, corp, name="张伟")
    other = make_client(session)
    log_in(other, staff.login)
    typed = admin.post(f"/staff/{staff.id}/password", {"password": "typed-by-admin-1"}, htmx=True)
    assert typed.status_code == 200 and "密码已设置" in typed.text and "typed-by-admin-1" not in typed.text
    assert other.get("/", headers={"accept": "text/html"}).status_code == 303
    assert service.authenticate(session, login=staff.login, password="typed-by-admin-1") is staff

    generated = admin.post(f"/staff/{staff.id}/password", {"password": ""}, htmx=True)
    assert generated.headers["cache-control"] == "no-store"
    secret = re.search(r'data-testid="generated-password">.*?value="([^"]+)"', generated.text, re.S).group(1)
    assert len(secret) >= 12
    assert service.authenticate(session, login=staff.login, password=secret) is staff
    assert secret not in str([e.detail for e in audit.list_entries(session, corp_id=corp.id)])


def test_reset_password_errors_next_to_the_field(session, corp, admin):
    staff = make_staff(session, corp)
    response = admin.post(f"/staff/{staff.id}/password", {"password": "short"}, htmx=True)
    assert response.status_code == 422 and field_errors(response.text) == {"password": "密码至少需要 12 个字符"}
    assert service.authenticate(session, login=staff.login, password=PASSWORD) is staff


def test_resetting_ones_own_password_logs_out(session, corp, admin):
    response = admin.post(f"/staff/{admin.staff.id}/password", {"password": "my-new-password"}, htmx=True)
    assert response.headers["HX-Redirect"] == "/login"
    assert admin.get("/").status_code == 303


def test_staff_of_another_corp_cannot_be_touched(session, corp, admin):
    foreign = make_staff(session, make_corp(session), name="外人", password=None)
    for path, data in ((f"/staff/{foreign.id}/roles", {"roles": ["administrator"]}),
                       (f"/staff/{foreign.id}/deactivate", {}),
                       (f"/staff/{foreign.id}/password", {"password": "x" * 12})):
        response = admin.post(path, data)
        assert response.status_code == 404 and "外人" not in response.text
    assert foreign.role_names == {"advisor"} and foreign.is_active and foreign.password_hash is None


# --- org tree ------------------------------------------------------------------------------------------


def test_departments_page_shows_the_tree_and_creates(session, corp, admin):
    retail = service.create_department(session, corp_id=corp.id, name="零售")
    make_staff(session, corp, department_id=retail.id, password=None)
    page = admin.get("/departments").text
    assert "甲银行" in page and "零售" in page and "1 名在职员工" in page
    response = admin.post("/departments", {"name": "浦东支行", "parent_id": str(retail.id)})
    assert response.status_code == 303
    created = [d for d in service.list_departments(session, corp_id=corp.id) if d.name == "浦东支行"][0]
    assert created.parent_id == retail.id
    tree = [n.path for n in service.department_tree(session, corp_id=corp.id)]
    assert tree == ["甲银行", "甲银行 / 零售", "甲银行 / 零售 / 浦东支行"]
    assert "department.created" in audit.distinct_actions(session, corp_id=corp.id)


@pytest.mark.parametrize(("form", "field", "status"), [
    ({"name": ""}, "name", 422),
    ({"name": "零售"}, "name", 409),
    ({"parent_id": "abc"}, "parent_id", 422),
    ({"parent_id": "-1"}, "parent_id", 422),
    ({"parent_id": "99999999999"}, "parent_id", 404),
])
def test_department_errors_next_to_the_field(session, corp, admin, form, field, status):
    service.create_department(session, corp_id=corp.id, name="零售")
    count = len(service.list_departments(session, corp_id=corp.id))
    response = admin.post("/departments", {"name": "新部门"} | form)
    assert response.status_code == status and field in field_errors(response.text)
    assert len(service.list_departments(session, corp_id=corp.id)) == count


def test_a_department_of_another_corp_is_no_parent(session, corp, admin):
    foreign = service.create_department(session, corp_id=make_corp(session).id, name="外部门")
    response = admin.post("/departments", {"name": "新部门", "parent_id": str(foreign.id)})
    assert response.status_code == 404 and "外部门" not in response.text


# --- API keys ------------------------------------------------------------------------------------------


def test_create_use_and_revoke_an_api_key(session, corp, admin):
    response = admin.post("/api-keys", {"name": "核心系统", "scopes": ["customers:read", "events:read"]})
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    token = re.search(r'data-testid="new-api-key">.*?value="(sk_[^"]+)"', response.text, re.S).group(1)
    api = make_client(session)
    api.headers["Authorization"] = f"Bearer {token}"
    assert api.get("/api/v1/me").json()["scopes"] == ["customers:read", "events:read"]

    listing = admin.get("/api-keys").text
    key = service.list_api_keys(session, corp_id=corp.id)[0]
    assert f"sk_{key.prefix}_" in listing and token not in listing and "核心系统" in listing

    revoked = admin.post(f"/api-keys/{key.id}/revoke")
    assert revoked.status_code == 303
    assert api.get("/api/v1/me").status_code == 401
    assert "已吊销" in admin.get("/api-keys").text
    assert audit.distinct_actions(session, corp_id=corp.id) >= ["api_key.created", "api_key.revoked"]


@pytest.mark.parametrize(("form", "field"), [
    ({"name": "", "scopes": ["*"]}, "name"),
    ({"name": "k"}, "scopes"),
    ({"name": "k", "scopes": ["root:all"]}, "scopes"),
])
def test_api_key_errors_next_to_the_field(session, corp, admin, form, field):
    response = admin.post("/api-keys", form)
    assert response.status_code == 422 and field in field_errors(response.text)
    assert service.list_api_keys(session, corp_id=corp.id) == []


def test_another_corps_key_cannot_be_revoked(session, corp, admin):
    _token, key = service.create_api_key(session, corp_id=make_corp(session).id, name="外钥", scopes=["*"],
                                         actor="system")
    response = admin.post(f"/api-keys/{key.id}/revoke")
    assert response.status_code == 404 and key.revoked_at is None


# --- audit log ---------------------------------------------------------------------------------------


def test_audit_page_filters_and_pages(session, corp, admin):
    for i in range(60):
        audit.record(session, corp_id=corp.id, actor="system", action="test.event", detail={"i": i})
    page = admin.get("/audit?action=test.event").text
    assert page.count("test.event") >= 50 and "login.succeeded</div>" not in page
    older = re.search(r'href="(/audit\?[^"]+)" data-testid="older"', page).group(1).replace("&amp;", "&")
    assert "action=test.event" in older
    second = html.unescape(admin.get(older).text)
    assert '"i": 9}' in second and '"i": 10}' not in second
    everything = admin.get("/audit").text
    assert "登录成功" in everything and "login.succeeded" in everything


def test_audit_verify_button(session, corp, admin):
    ok = admin.get("/audit/verify", headers={"HX-Request": "true"})
    assert ok.status_code == 200 and 'data-testid="verify-ok"' in ok.text and "<html" not in ok.text
    entry = audit.list_entries(session, corp_id=corp.id, limit=1)[0]
    session.execute(update(AuditEntry).where(AuditEntry.id == entry.id).values(actor="forger"))
    broken = admin.get("/audit/verify", headers={"HX-Request": "true"})
    assert 'data-testid="verify-failed"' in broken.text and f"第 {entry.seq} 条" in broken.text
    full_page = admin.get("/audit/verify")
    assert "<html" in full_page.text and 'data-testid="verify-failed"' in full_page.text


def test_audit_verify_checks_only_the_callers_chain(session, corp, admin):
    other = make_corp(session)
    entry = audit.record(session, corp_id=other.id, actor="system", action="test.event")
    session.execute(update(AuditEntry).where(AuditEntry.id == entry.id).values(actor="forger"))
    assert 'data-testid="verify-ok"' in admin.get("/audit/verify", headers={"HX-Request": "true"}).text


@pytest.mark.parametrize("query", ["before_seq=abc", "before_seq=0", "before_seq=99999999999999999999",
                                   "action=" + "x" * 81])
def test_audit_bad_query_is_422_naming_the_field(session, corp, admin, query):
    response = admin.get(f"/audit?{query}")
    assert response.status_code == 422 and query.split("=")[0] in response.text


# --- dashboard ---------------------------------------------------------------------------------------


def test_home_page_and_chart(session, corp, admin):
    page = admin.get("/").text
    assert 'data-testid="section-administrator"' in page and 'data-testid="tile-wecom_connection"' in page
    assert 'data-testid="chart-logins"' in page and "/static/vendor/echarts-5.6.0.min.js" in page
    chart = json.loads(html.unescape(re.search(r"data-chart='([^']+)'", page).group(1)))
    assert chart["title"] == "每日控制台登录次数" and [s["name"] for s in chart["series"]] == ["登录成功", "登录失败"]
    assert len(chart["x"]) == 14 and sum(chart["series"][0]["values"]) == 1  # the admin's own login
    assert "cdn" not in page.lower()


def test_advisors_see_no_audit_chart(session, corp):
    advisor = console_user(session, corp, roles=["advisor"])
    page = advisor.get("/").text
    assert 'data-testid="chart-logins"' not in page and "echarts" not in page
    assert 'data-testid="section-administrator"' not in page


def test_static_assets_are_served(session):
    client = make_client(session)
    for path in ("/static/console.css", "/static/console-charts.js", "/static/vendor/echarts-5.6.0.min.js",
                 "/static/vendor/htmx-2.0.11.min.js"):
        assert client.get(path).status_code == 200, path
