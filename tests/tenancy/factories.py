"""Small factories and an HTTP client for tenancy and console tests (shared by tests/test_bad_input.py)."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.tenancy import security, service
from siyu.tenancy.models import Corp, Role, Staff
from siyu.tenancy.principal import Principal

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def unique(prefix: str = "t") -> str:
    return f"{prefix}{next(_seq)}-{uuid.uuid4().hex[:6]}"


def make_corp(session: Session, *, name: str | None = None, slug: str | None = None) -> Corp:
    return service.create_corp(session, slug=slug or unique("corp"), name=name or unique("Corp "))


def make_staff(
    session: Session,
    corp: Corp | int,
    *,
    roles=(Role.ADVISOR,),
    login: str | None = None,
    name: str | None = None,
    password: str | None = PASSWORD,
    department_id: int | None = None,
    sees_department: bool = False,
    wecom_userid: str | None = None,
) -> Staff:
    corp_id = corp if isinstance(corp, int) else corp.id
    return service.create_staff(
        session, corp_id=corp_id, login=login or unique("user."), name=name or unique("Name "),
        roles=roles, password=password, department_id=department_id, sees_department=sees_department,
        wecom_userid=wecom_userid,
    )


def principal_of(staff: Staff) -> Principal:
    return Principal(corp_id=staff.corp_id, kind="staff", label=staff.login, staff_id=staff.id,
                     department_id=staff.department_id, roles=frozenset(staff.role_names),
                     sees_department=staff.sees_department)


@pytest.fixture(autouse=True)
def fast_argon2(monkeypatch):
    """Still argon2id, with cost parameters that keep the suite fast (the default costs ~0.2 s a hash)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(security, "_hasher", hasher)
    monkeypatch.setattr(security, "_DUMMY_HASH", hasher.hash("siyu-timing-equaliser"))


def make_client(session: Session) -> TestClient:
    """A TestClient whose requests run in `session` (each request in a savepoint that a failed request
    rolls back, as the real per-request transaction would)."""
    from siyu import db
    from siyu.app import create_app
    from siyu.config import get_settings

    app = create_app(get_settings())

    def _session() -> Iterator[Session]:
        savepoint = session.begin_nested()
        try:
            yield session
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            raise
        else:
            if savepoint.is_active:
                savepoint.commit()

    app.dependency_overrides[db.request_session] = _session
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def corp_code(staff: Staff) -> str:
    """The code (slug) of a member of staff's corp, which the login form asks for."""
    from sqlalchemy.orm import object_session

    return object_session(staff).get(Corp, staff.corp_id).slug


def log_in(client: TestClient, staff: Staff | str, password: str = PASSWORD, *, corp: str | None = None) -> str:
    """Logs in through the login form as `staff` (or a login typed in the corp `corp`); returns the
    console CSRF token for unsafe requests."""
    if isinstance(staff, Staff):
        corp, login = corp or corp_code(staff), staff.login
    else:
        assert corp, "a login is typed with its corp's code"
        login = staff
    page = client.get("/login")
    response = client.post("/login", data={"corp": corp, "login": login, "password": password,
                                           "csrf_token": csrf_from(page.text), "next": "/"})
    assert response.status_code == 303, response.text
    return console_csrf(client)


def console_csrf(client: TestClient) -> str:
    return csrf_from(client.get("/", headers={"accept": "text/html"}).text)


class ConsoleClient:
    """A logged-in console user: `client` carries the session cookie, `csrf` the form token."""

    def __init__(self, client: TestClient, staff: Staff, csrf: str):
        self.client, self.staff, self.csrf = client, staff, csrf

    def get(self, url: str, **kwargs):
        kwargs.setdefault("headers", {}).setdefault("accept", "text/html")
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict | None = None, *, htmx: bool = False, **kwargs):
        headers = kwargs.setdefault("headers", {})
        headers.setdefault("accept", "text/html")
        if htmx:
            headers["HX-Request"] = "true"
            headers["X-CSRF-Token"] = self.csrf
            return self.client.post(url, data=data or {}, **kwargs)
        return self.client.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)


def console_user(session: Session, corp: Corp, *, roles=(Role.ADMINISTRATOR,), **kwargs) -> ConsoleClient:
    staff = make_staff(session, corp, roles=roles, **kwargs)
    client = make_client(session)
    csrf = log_in(client, staff)
    return ConsoleClient(client, staff, csrf)


def api_client(session: Session, corp: Corp, *, scopes=("*",)) -> tuple[TestClient, str]:
    token, key = service.create_api_key(session, corp_id=corp.id, name=unique("key "), scopes=list(scopes),
                                        actor="system")
    client = make_client(session)
    client.headers["Authorization"] = f"Bearer {token}"
    return client, key.prefix
