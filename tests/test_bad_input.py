"""Bad input never produces a 500, and a refusal names the field.

- The REST API is fuzzed by Schemathesis from the app's own `/api/openapi.json` (in-process over
  ASGI, no network), with valid and with malformed parameters and bodies.
- Every console route (every form, every query) is fuzzed by Hypothesis: each parameter the route
  declares gets plausible values or garbage (control characters, NUL, huge numbers, very long text,
  wrong types, nothing at all), submitted with a valid CSRF token by a logged-in administrator.

A 400 or 422 must say which field is wrong: `field` or `errors[].field` in JSON, a `data-field`
marker next to the field (or in the error page's list) in HTML. Routes added later by any domain are
fuzzed too, without touching this file."""

from __future__ import annotations

import json
import re
import string
import typing
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from siyu.tenancy import audit, service
from tenancy.factories import fast_argon2, make_corp, make_staff  # noqa: F401  (fast_argon2 is autouse)
from tenancy.routes import ALL_ROLES, Caller, app_routes, flat_params, harvest_form_values, is_form

EXAMPLES = 25
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
FIELD_ERROR_STATUSES = {400, 422}


@pytest.fixture
def caller(session):
    corp = make_corp(session, name="Bad input 银行")
    service.create_department(session, corp_id=corp.id, name="零售")
    admin = make_staff(session, corp, roles=ALL_ROLES, name="管理员")
    make_staff(session, corp, name="张伟", password=None)
    token, _key = service.create_api_key(session, corp_id=corp.id, name="fuzz", scopes=["*"], actor="system")
    return Caller(session, corp, admin, token)


def _json(response) -> dict | None:
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):  # Schemathesis keeps every header as a list
        content_type = ";".join(content_type)
    if "json" not in content_type:
        return None
    try:
        body = response.json()
    except json.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def named_fields(response) -> set[str]:
    """The fields a refusal names."""
    body = _json(response)
    if body is not None:
        fields = {body["field"]} if body.get("field") else set()
        return fields | {e.get("field") for e in body.get("errors", []) if isinstance(e, dict) and e.get("field")}
    return set(re.findall(r'data-field="([^"]+)"', response.text))


# --- REST API -----------------------------------------------------------------------------------


def _body_fields(operation) -> set[str]:
    """The top-level properties of the operation's JSON body: a refusal may name one of them."""
    names: set[str] = set()
    for body in getattr(operation, "body", None) or ():
        schema = (getattr(body, "definition", None) or {}).get("schema") or {}
        names |= set(schema.get("properties") or {})
    return names


def test_api_never_500_and_names_the_field(caller):
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", caller.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/api/v1/staff" for op in operations)
    problems: list[str] = []

    def fuzz(operation, mode):
        declared = {p.name for p in operation.iter_parameters()} | {"body"} | _body_fields(operation)

        @given(case=operation.as_strategy(generation_mode=mode))
        @SETTINGS
        def run(case):
            caller.ensure()
            response = case.call(headers={"Authorization": f"Bearer {caller.token}"})
            where = f"{case.method} {case.formatted_path} {case.query or ''} {case.body!r:.200}"
            if response.status_code >= 500:
                problems.append(f"{response.status_code} {where}: {response.text[:300]}")
            elif response.status_code in FIELD_ERROR_STATUSES:
                fields = named_fields(response)
                # A body schema that forbids unknown keys (a typo in "amount_fen" must not pass
                # silently) names the unknown key it was sent: that names the caller's field too.
                sent = set(case.body) if isinstance(case.body, dict) else set()
                # (a key sent may itself hold a dot: it is named whole)
                if not fields or not all(f in sent or f.split(".")[0] in declared | sent for f in fields):
                    problems.append(f"{response.status_code} names {fields or 'no field'} {where}")

        return run

    for operation in operations:
        for mode in GenerationMode:
            try:
                fuzz(operation, mode)()
            except Unsatisfiable:
                # an operation without parameters has no malformed variant
                assert mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters())
    assert problems == [], "\n".join(problems[:30])


# --- console ------------------------------------------------------------------------------------

# Text that has broken web apps: control characters and NUL (PostgreSQL refuses them), markup,
# numbers beyond 64 bits, full-width digits, right-to-left marks, very long strings.
NASTY = [
    "", " ", "\x00", "a\x00b", "\t\n", "0", "-1", "1.5", "1e9", "NaN", "9" * 30, "-" + "9" * 30, "１２３",
    "<script>alert(1)</script>", "'; DROP TABLE staff; --", "%00", "\u202e", "\ufeff", "🙂" * 50, "x" * 5000,
    "true", "on", "null", "[]", "{}",
]
TEXT = st.one_of(st.sampled_from(NASTY), st.text(max_size=60),
                 st.integers(min_value=-(2**70), max_value=2**70).map(str))
PATH_TEXT = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet=string.ascii_letters + string.digits + "-._~%", min_size=1, max_size=30),
    st.sampled_from(["0", "-1", "9" * 25, "1.5", "１２", "abc", "%00"]),
)


def _is_list(annotation) -> bool:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) in (list, set, tuple, frozenset) or any(_is_list(a) for a in args)


def _value(name: str, annotation, harvested: dict[str, str]):
    """Nothing, garbage, or a plausible value (so that validation further in is reached too)."""
    plausible = st.sampled_from([harvested.get(name, "bad-input-value"), "bad-input-value-long-enough"])
    single = st.one_of(TEXT, plausible)
    if _is_list(annotation):
        return st.one_of(st.none(), st.lists(single, max_size=4))
    return st.one_of(st.none(), single)


def console_routes(app):
    return [r for r in app_routes(app) if not r.path.startswith("/api/") and getattr(r, "dependant", None)]


def test_console_never_500_and_names_the_field(caller, session):
    app = caller.client.app
    harvested = harvest_form_values(caller, app)
    routes = console_routes(app)
    assert {("POST", "/staff"), ("POST", "/departments"), ("POST", "/api-keys"), ("GET", "/audit")} <= {
        (m, r.path) for r in routes for m in r.methods}
    problems: list[str] = []

    def fuzz(route, method, strategy, declared, has_form):
        @given(data=strategy)
        @SETTINGS
        def run(data):
            caller.ensure()
            path = route.path
            for name, value in data["path"].items():
                path = path.replace("{" + name + "}", quote(value, safe=""))
            query = {k: v for k, v in data["query"].items() if v is not None}
            form = {k: v for k, v in data["form"].items() if v is not None}
            response = caller.send(method, path, query=query, form=form if has_form else None,
                                   json=data["json"] if not has_form else None, htmx=data["htmx"])
            where = f"{method} {path} query={query!r:.200} form={form!r:.300}"
            if response.status_code >= 500:
                problems.append(f"{response.status_code} {where}: {response.text[:300]}")
            elif response.status_code in FIELD_ERROR_STATUSES:
                fields = named_fields(response)
                if not fields or not all(f.split(".")[0] in declared for f in fields):
                    problems.append(f"{response.status_code} names {fields or 'no field'}: {where}")

        return run

    for route in routes:
        params = flat_params(route.dependant)
        path_names = [f.alias for f in params["path"]]
        query_fields = params["query"]
        form_fields = [f for f in params["body"] if is_form(f)]
        json_fields = [f for f in params["body"] if not is_form(f)]
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            strategy = st.fixed_dictionaries({
                "path": st.fixed_dictionaries({n: PATH_TEXT for n in path_names}),
                "query": st.fixed_dictionaries({f.alias: _value(f.alias, f.field_info.annotation, harvested)
                                                for f in query_fields}),
                "form": st.fixed_dictionaries({f.alias: _value(f.alias, f.field_info.annotation, harvested)
                                               for f in form_fields}),
                "json": st.one_of(st.none(), st.dictionaries(st.sampled_from([f.alias for f in json_fields] or ["x"]),
                                                             TEXT, max_size=3)),
                "htmx": st.booleans(),
            })
            declared = {*path_names, *(f.alias for f in query_fields), *(f.alias for f in form_fields),
                        *(f.alias for f in json_fields), "csrf_token", "form", "body"}

            fuzz(route, method, strategy, declared, bool(form_fields))()
    assert problems == [], "\n".join(problems[:30])
    # whatever was refused left no half-written trail
    assert audit.verify_chain(session, chain_id=caller.corp.id)["ok"]


@pytest.mark.parametrize(("form", "field"), [
    ({"login": "a\x00b", "name": "n", "roles": ["advisor"]}, "login"),
    ({"login": "ok.login", "name": "a\x00b", "roles": ["advisor"]}, "name"),
    ({"login": "ok.login", "name": "n", "roles": ["advisor"], "wecom_userid": "\x00"}, "wecom_userid"),
    ({"login": "ok.login", "name": "n", "roles": ["advisor"], "department_id": "9" * 30}, "department_id"),
    ({"login": "ok.login", "name": "n", "roles": ["advisor"], "department_id": "１２"}, "department_id"),
    ({"login": "ok.login", "name": "n", "roles": ["advisor\x00"]}, "roles"),
    ({"login": "ok.login", "name": "n" * 121, "roles": ["advisor"]}, "name"),
    ({"login": "ok.login", "name": "n", "roles": ["advisor"], "sees_department": "perhaps"}, "sees_department"),
])
def test_known_nasty_staff_forms(caller, form, field):
    caller.ensure()
    response = caller.send("POST", "/staff", form=form)
    assert response.status_code in (404, 422) and field in named_fields(response)


def test_login_form_names_the_field(caller):
    client = caller.client
    client.cookies.clear()
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    missing = client.post("/login", data={"corp": "", "login": "", "password": "", "csrf_token": token})
    assert missing.status_code == 422 and named_fields(missing) == {"corp"}
    no_login = client.post("/login", data={"corp": "bank", "login": "", "password": "", "csrf_token": token})
    assert no_login.status_code == 422 and named_fields(no_login) == {"login"}
    too_long = client.post("/login", data={"corp": "bank", "login": "x" * 300, "password": "p", "csrf_token": token},
                           headers={"accept": "text/html"})
    assert too_long.status_code == 422 and named_fields(too_long) == {"login"}
    too_long = client.post("/login", data={"corp": "b" * 300, "login": "x.y", "password": "p", "csrf_token": token},
                           headers={"accept": "text/html"})
    assert too_long.status_code == 422 and named_fields(too_long) == {"corp"}
    nul = client.post("/login", data={"corp": "b\x00", "login": "a\x00", "password": "p\x00", "csrf_token": token})
    assert nul.status_code == 401
