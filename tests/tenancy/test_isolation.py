"""Tenancy isolation: a caller of corp A can neither see nor change anything of corp B, through any
route the application serves.

The routes are not hand-picked: every route of `create_app()` (REST API and console, every method)
is called with B's ids in each path parameter and in each id-like query or form field, as A's
administrator (console cookie with a valid CSRF token) and with A's `*` API key. Routes added later
by any domain are covered without touching this file."""

from __future__ import annotations

import enum
import inspect
import itertools
import re
import types
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel
from sqlalchemy import select

from siyu.tenancy import audit, service
from siyu.tenancy.models import ApiKey, ConsoleSession, Corp, Department, Staff
from tenancy.factories import PASSWORD, api_client, corp_code, make_staff, principal_of
from tenancy.routes import ALL_ROLES, Caller, app_routes, flat_params, harvest_form_values, is_form

# Routes that are not about a corp's data: logging in and out (API documentation and static files
# are left out by `app_routes`).
SKIPPED_PATHS = ("/login", "/logout")
DEBUG = False


# --- the two corps ------------------------------------------------------------------------------


@dataclass
class Tenant:
    corp: Corp
    admin: Staff
    staff: list[Staff]
    departments: list[Department]
    api_key_token: str
    api_key: ApiKey
    job_ids: list[int] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        """Every id of this tenant's records that a route might take."""
        ids = {self.corp.id, self.admin.id, self.api_key.id, *(s.id for s in self.staff),
               *(d.id for d in self.departments), *self.job_ids}
        return sorted(ids)


def _enqueue_jobs(session, corp_id: int, marker: str) -> list[int]:
    """Jobs of the corp, when the job queue offers `enqueue(session, *, name, payload, corp_id)`."""
    try:
        from siyu.jobs import service as jobs_service
    except ImportError:
        return []
    enqueue = getattr(jobs_service, "enqueue", None)
    if enqueue is None or not {"name", "payload", "corp_id"} <= set(inspect.signature(enqueue).parameters):
        return []
    ids = []
    for i in range(2):
        job = enqueue(session, name=f"isolation.{marker.lower()}.{i}", payload={"marker": marker, "i": i},
                      corp_id=corp_id)
        ids.append(job.id)
    return ids


def make_tenant(session, label: str) -> Tenant:
    tag = f"{label}{uuid.uuid4().hex[:8]}"  # distinctive: never found in a page by accident
    corp = service.create_corp(session, slug=f"iso-{tag.lower()}", name=f"{label}银行-{tag}")
    retail = service.create_department(session, corp_id=corp.id, name=f"零售部-{tag}")
    branch = service.create_department(session, corp_id=corp.id, name=f"支行-{tag}", parent_id=retail.id)
    admin = make_staff(session, corp, roles=ALL_ROLES, login=f"admin.{tag.lower()}", name=f"管理员-{tag}",
                       wecom_userid=f"wx-admin-{tag}")
    advisor = make_staff(session, corp, roles=["advisor"], login=f"advisor.{tag.lower()}", name=f"顾问-{tag}",
                         department_id=branch.id, wecom_userid=f"wx-adv-{tag}", password=None)
    lead = make_staff(session, corp, roles=["advisor"], login=f"lead.{tag.lower()}", name=f"主管-{tag}",
                      department_id=retail.id, sees_department=True, password=None)
    token, key = service.create_api_key(session, corp_id=corp.id, name=f"密钥-{tag}", scopes=["*"],
                                        actor=principal_of(admin))
    # audit entries
    service.authenticate(session, corp=corp_code(admin), login=admin.login, password=PASSWORD, ip="10.9.9.9")
    service.set_roles(session, corp_id=corp.id, staff_id=lead.id, roles=["advisor", "operations"],
                      actor=principal_of(admin))
    tenant = Tenant(corp=corp, admin=admin, staff=[admin, advisor, lead],
                    departments=[service.root_department(session, corp_id=corp.id), retail, branch],
                    api_key_token=token, api_key=key, job_ids=_enqueue_jobs(session, corp.id, tag))
    tenant.secrets = [tag, tag.lower(), corp.name, corp.slug, key.prefix, key.name,
                      *(s.name for s in tenant.staff), *(s.login for s in tenant.staff),
                      *(s.wecom_userid for s in tenant.staff if s.wecom_userid),
                      *(d.name for d in tenant.departments)]
    return tenant


def snapshot(session, tenant: Tenant) -> dict:
    """Everything of the tenant that a request could change, read afresh from the database."""
    session.expire_all()
    corp_id = tenant.corp.id
    snap = {
        "corp": session.execute(select(Corp.slug, Corp.name, Corp.is_active).where(Corp.id == corp_id)).all(),
        "staff": [
            (s.id, s.login, s.name, s.is_active, s.password_hash, s.department_id, sorted(s.role_names),
             s.sees_department, s.wecom_userid)
            for s in session.scalars(select(Staff).where(Staff.corp_id == corp_id).order_by(Staff.id))
        ],
        "departments": session.execute(
            select(Department.id, Department.name, Department.parent_id).where(Department.corp_id == corp_id)
            .order_by(Department.id)).all(),
        "api_keys": session.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.revoked_at).where(ApiKey.corp_id == corp_id)
            .order_by(ApiKey.id)).all(),
        "sessions": session.execute(
            select(ConsoleSession.id, ConsoleSession.revoked_at, ConsoleSession.expires_at)
            .where(ConsoleSession.corp_id == corp_id).order_by(ConsoleSession.id)).all(),
        "audit": [(e.seq, e.hash) for e in audit.list_entries(session, corp_id=corp_id, limit=500)],
        "audit_ok": audit.verify_chain(session, chain_id=corp_id)["ok"],
    }
    if tenant.job_ids:
        from siyu.jobs.models import Job

        snap["jobs"] = [
            (j.id, j.name, j.state, j.payload, j.attempt, j.run_at)
            for j in session.scalars(select(Job).where(Job.corp_id == corp_id).order_by(Job.id))
        ]
    return snap


# --- calling every route ------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    query: dict
    form: dict | None
    json: object
    note: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} query={self.query} form={self.form} json={self.json} ({self.note})"


def _is_id_name(name: str) -> bool:
    name = name.lower()
    return name == "id" or name.endswith(("_id", "_ids", "id")) or name in {"ids", "before", "after"}


def _unwrap_optional(annotation):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if args else str
    if origin is typing.Annotated:
        return _unwrap_optional(typing.get_args(annotation)[0])
    return annotation


_counter = itertools.count(1)


def value_for(name: str, annotation, victim_id: int, harvested: dict[str, str]):
    """A value of the parameter's type: the victim's id where the parameter names an id, otherwise
    something valid enough that the route gets as far as looking the ids up."""
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, set, tuple, frozenset, typing.Sequence):
        args = typing.get_args(annotation)
        inner = value_for(name, args[0] if args else str, victim_id, harvested)
        if name in harvested and not _is_id_name(name):
            return [harvested[name]]
        return [inner]
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if inspect.isclass(annotation):
        if issubclass(annotation, bool):
            return True
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation)).value
        if issubclass(annotation, int):
            return victim_id if _is_id_name(name) else 1
        if issubclass(annotation, float):
            return 1.0
        if issubclass(annotation, BaseModel):
            return {fname: value_for(fname, finfo.annotation, victim_id, harvested)
                    for fname, finfo in annotation.model_fields.items()}
        if issubclass(annotation, dict):
            return {}
    if _is_id_name(name):
        return str(victim_id)
    if name in harvested:
        return harvested[name]
    # lowercase letters, digits and '-': a valid login, name, key name or password alike
    return f"isolation-value-{next(_counter)}"


def calls_for(app, victim: Tenant, harvested: dict[str, str]) -> Iterator[tuple[object, Call]]:
    for route in app_routes(app):
        path, methods = route.path, route.methods
        if path in SKIPPED_PATHS:
            continue
        dependant = getattr(route, "dependant", None)
        flat = flat_params(dependant) if dependant is not None else {"path": [], "query": [], "body": []}
        path_names = re.findall(r"{([^}:]+)(?::[^}]*)?}", path)
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            for victim_id in victim.ids:
                url = path
                for name in path_names:
                    url = re.sub(r"{" + re.escape(name) + r"(?::[^}]*)?}", str(victim_id), url)
                query = {f.alias: value_for(f.alias, f.field_info.annotation, victim_id, harvested)
                         for f in flat["query"]}
                form, body = None, None
                forms = [f for f in flat["body"] if is_form(f)]
                bodies = [f for f in flat["body"] if not is_form(f)]
                if forms:
                    form = {f.alias: value_for(f.alias, f.field_info.annotation, victim_id, harvested)
                            for f in forms}
                    form = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in form.items()}
                if bodies:
                    if len(bodies) == 1:
                        body = value_for(bodies[0].alias, bodies[0].field_info.annotation, victim_id, harvested)
                    else:
                        body = {f.alias: value_for(f.alias, f.field_info.annotation, victim_id, harvested)
                                for f in bodies}
                yield route, Call(method, url, query, form, body, note=f"victim id {victim_id}")


# --- the test ----------------------------------------------------------------------------------------


def test_corp_a_cannot_see_or_change_corp_b_through_any_route(session):
    a = make_tenant(session, "A")
    b = make_tenant(session, "B")
    b_session_token = service.start_session(session, staff=b.admin)  # B is logged in meanwhile
    before = snapshot(session, b)

    caller = Caller(session, a.corp, a.admin, a.api_key_token)
    app = caller.client.app
    harvested = harvest_form_values(caller, app)

    calls = list(calls_for(app, b, harvested))
    routes_called = {(c.method, getattr(r, "path", "")) for r, c in calls}
    # the enumeration really covers the tenancy routes (a broken enumeration must not pass quietly)
    for expected in [("GET", "/staff"), ("POST", "/staff/{staff_id}/roles"), ("POST", "/api-keys/{api_key_id}/revoke"),
                     ("GET", "/api/v1/staff/{staff_id}"), ("GET", "/audit"), ("POST", "/departments"), ("GET", "/")]:
        assert expected in routes_called, expected

    leaks, crashes = [], []
    for _route, call in calls:
        caller.ensure()
        response = caller.send(call.method, call.path, query=call.query, form=call.form, json=call.json)
        if DEBUG:
            print(response.status_code, call)
        if response.status_code >= 500:
            crashes.append(f"{response.status_code} {call}")
        exposed = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        found = [s for s in b.secrets if s and s in exposed]
        if found:
            leaks.append(f"{call} -> {response.status_code} shows {found}")

    assert crashes == []
    assert leaks == [], "B's data was shown to A:\n" + "\n".join(leaks)
    assert snapshot(session, b) == before, "a call of A changed B's records"
    assert service.resolve_session(session, token=b_session_token) is not None
    assert service.resolve_api_key(session, token=b.api_key_token) is not None

    # nor did A's records come to point at B's (e.g. a member of A's staff put in B's department)
    session.expire_all()
    a_departments = {d.id for d in service.list_departments(session, corp_id=a.corp.id)}
    assert {s.department_id for s in service.list_staff(session, corp_id=a.corp.id)} <= a_departments
    assert {d.parent_id for d in service.list_departments(session, corp_id=a.corp.id)} <= a_departments | {None}


def test_the_same_calls_succeed_for_the_owner(session):
    """The calls above are refused because the ids are B's, not because they are malformed: with A's
    own ids, A reaches its records (so the isolation test is not passing on 422s)."""
    a = make_tenant(session, "A")
    caller = Caller(session, a.corp, a.admin, a.api_key_token)
    own = {
        ("GET", f"/api/v1/staff/{a.staff[1].id}"): 200,
        ("GET", f"/api/v1/departments/{a.departments[1].id}"): 200,
    }
    for (method, path), status in own.items():
        caller.ensure()
        response = caller.send(method, path)
        assert response.status_code == status, (path, response.text)
        assert a.staff[1].name in response.text or a.departments[1].name in response.text
    roles = caller.send("POST", f"/staff/{a.staff[1].id}/roles", form={"roles": ["auditor"]})
    assert roles.status_code == 200 and a.staff[1].role_names == {"auditor"}
    created = caller.send("POST", "/staff", form={"login": "isolation-value-own", "name": "isolation-value-own",
                                                  "roles": ["advisor"], "department_id": str(a.departments[2].id)})
    assert created.status_code == 303


def test_b_secrets_would_be_caught(session):
    """The leak check itself works: A's own page shows A's secrets, which are of the same kinds."""
    a = make_tenant(session, "A")
    caller = Caller(session, a.corp, a.admin, a.api_key_token)
    staff_page = caller.client.get("/staff", headers={"accept": "text/html"}).text
    keys_page = caller.client.get("/api-keys", headers={"accept": "text/html"}).text
    api = api_client(session, a.corp)[0].get("/api/v1/staff").text
    for secret in (a.staff[1].name, a.staff[1].login):
        assert secret in staff_page and secret in api
    assert a.departments[2].name in staff_page
    assert a.api_key.prefix in keys_page
