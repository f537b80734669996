"""Route introspection shared by the isolation and bad-input tests: every route the app serves, the
parameters each one takes, and a caller that stays logged in whatever a call does to its account."""

from __future__ import annotations

import re

from fastapi import params as fastapi_params

from siyu.console.templating import iter_routes
from siyu.tenancy import service
from siyu.tenancy.models import Corp, Staff, StaffRole
from tenancy.factories import PASSWORD, log_in, make_client

ALL_ROLES = ["administrator", "operations", "advisor", "compliance", "auditor"]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def app_routes(app) -> list:
    """Every route of the app that serves a corp's data (API documentation and static files left out)."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    out = []
    for route in iter_routes(app):
        path = getattr(route, "path", None)
        if not path or not getattr(route, "methods", None) or path in docs or path.startswith("/static"):
            continue
        out.append(route)
    return out


def is_form(field) -> bool:
    return isinstance(field.field_info, fastapi_params.Form)


def flat_params(dependant) -> dict[str, list]:
    """Path, query and body parameters of a route and of all its dependencies."""
    out: dict[str, dict] = {"path": {}, "query": {}, "body": {}}
    stack, seen = [dependant], set()
    while stack:
        dep = stack.pop()
        if id(dep) in seen:
            continue
        seen.add(id(dep))
        for kind, fields in (("path", dep.path_params), ("query", dep.query_params), ("body", dep.body_params)):
            for f in fields:
                out[kind].setdefault(f.alias, f)
        stack.extend(dep.dependencies)
    return {k: list(v.values()) for k, v in out.items()}



class Caller:
    """An administrator of `corp` holding every role, in the console (cookie and CSRF token) and
    with a `*` API key; `ensure()` restores both whenever a call ended them (a reset of their own
    password, a revoked key): that is the caller's own business, not what the tests look at."""

    def __init__(self, session, corp: Corp, admin: Staff, api_token: str):
        self.session, self.corp, self.admin = session, corp, admin
        self.client = make_client(session)
        self.csrf = log_in(self.client, admin)
        self.token = api_token

    def ensure(self) -> None:
        session, admin = self.session, self.session.get(Staff, self.admin.id)
        session.refresh(admin)
        if not admin.is_active or admin.role_names != set(ALL_ROLES):
            admin.is_active = True
            admin.roles = [StaffRole(role=role) for role in ALL_ROLES]
            session.flush()
        token = self.client.cookies.get("siyu_session")
        if not token or service.resolve_session(session, token=token) is None:
            service.set_password(session, corp_id=self.corp.id, staff_id=admin.id, password=PASSWORD, actor="test")
            self.client.cookies.clear()
            self.csrf = log_in(self.client, admin)
        if service.resolve_api_key(session, token=self.token) is None:
            self.token, _key = service.create_api_key(session, corp_id=self.corp.id, name="restored", scopes=["*"],
                                                      actor="test")

    def send(self, method: str, path: str, *, query=None, form=None, json=None, htmx: bool = False):
        headers = {"Authorization": f"Bearer {self.token}",
                   "accept": "application/json" if path.startswith("/api/") else "text/html"}
        if htmx:
            headers["HX-Request"] = "true"
        if method not in SAFE_METHODS:
            headers["X-CSRF-Token"] = self.csrf
            if form is not None:
                form = {**form, "csrf_token": self.csrf}
        return self.client.request(method, path, params=query or None, data=form,
                                    json=json if form is None else None, headers=headers)


def harvest_form_values(caller: Caller, app) -> dict[str, str]:
    """The first offered value of each checkbox and select of the caller's own console pages, so that
    forms can be filled the way the console offers them (e.g. a role that exists)."""
    values: dict[str, str] = {}
    for route in app_routes(app):
        path = route.path
        if "GET" not in route.methods or "{" in path or path.startswith("/api/") or path in ("/login", "/logout"):
            continue
        page = caller.client.get(path, headers={"accept": "text/html"})
        if page.status_code != 200:
            continue
        for name, value in re.findall(r'<input type="checkbox" name="([^"]+)" value="([^"]+)"', page.text):
            values.setdefault(name, value)
        for name, body in re.findall(r'<select[^>]* name="([^"]+)"[^>]*>(.*?)</select>', page.text, re.S):
            options = [v for v in re.findall(r'<option value="([^"]*)"', body) if v]
            if options:
                values.setdefault(name, options[0])
    values.pop("csrf_token", None)
    return values
