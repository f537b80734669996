"""Console pages of the tenancy domain: login and logout, staff and roles, the org tree, API keys,
the audit log. Thin: parse the form, check the role, call tenancy.service, render."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session, utcnow
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy import audit, service
from siyu.tenancy.deps import SESSION_COOKIE, client_ip, current_staff, require_roles
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.security import new_token, same

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "siyu_login_csrf"
LOGIN_CORP_COOKIE = "siyu_corp"
LOGIN_CORP_DAYS = 180

administrator = require_roles(Role.ADMINISTRATOR)
audit_reader = require_roles(*service.AUDIT_READERS)

ROLES = [r.value for r in Role]
SCOPES = sorted(service.API_SCOPES - {"*"})

_UNSAFE_NEXT = re.compile(r"[\x00-\x20\\\x7f]")


# --- login and logout ----------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only local paths: never an open redirect (browsers drop tabs and newlines, so "/\t/x" is "//x").
    if target and target.startswith("/") and not target.startswith("//") and not _UNSAFE_NEXT.search(target):
        return target
    return "/"


def _login_page(request: Request, *, error: str | None = None, error_field: str | None = None, login: str = "",
                corp: str | None = None, next_: str | None = None, status_code: int = 200):
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token(24)
    target = _safe_next(next_ if next_ is not None else request.query_params.get("next"))
    if corp is None:  # the corp this browser last logged in to, if any
        corp = request.cookies.get(LOGIN_CORP_COOKIE, "")
    response = render(
        request,
        "login.html",
        {"error": error, "error_field": error_field, "login": login, "corp": service.normalise_corp_code(corp)[:40],
         "login_csrf": token, "next": target},
        status_code=status_code,
    )
    settings = request.app.state.settings
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings.cookie_secure)
    return response


@router.get("/login")
def login_page(request: Request):
    return _login_page(request)


@router.get("/login/{corp_code}")
def corp_login_page(request: Request, corp_code: str = Path(..., max_length=200)):
    """The login page with the corp code filled in: the address an administrator hands to staff.
    Any code is answered with the same page (whether a corp has it is not told here either)."""
    return _login_page(request, corp=corp_code)


@router.post("/login")
def login_submit(
    request: Request,
    corp: str = Form("", max_length=200),
    login: str = Form("", max_length=200),
    password: str = Form("", max_length=500),
    csrf_token: str = Form("", max_length=200),
    next: str = Form("/", max_length=500),
    session: Session = Depends(get_session),
):
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not same(expected, csrf_token):
        return _login_page(request, error=N_("The form expired. Please try again."), login=login, corp=corp,
                           next_=next, error_field="csrf_token", status_code=403)
    if not corp or not login or not password:
        field = "corp" if not corp else "login" if not login else "password"
        return _login_page(request, error=N_("Enter your corp code, login and password."), login=login, corp=corp,
                           next_=next, error_field=field, status_code=422)
    try:
        staff = service.authenticate(session, corp=corp, login=login, password=password, ip=client_ip(request))
    except service.TooManyAttempts as exc:
        page = _login_page(request, error=N_("Too many failed attempts. Try again later."), login=login, corp=corp,
                           next_=next, status_code=429)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except service.LoginFailed:
        return _login_page(request, error=N_("Wrong corp code, login or password."), login=login, corp=corp,
                           next_=next, status_code=401)
    token = service.start_session(session, staff=staff)
    response = RedirectResponse(_safe_next(next), status_code=303)
    settings = request.app.state.settings
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.cookie_secure,
                        max_age=settings.session_hours * 3600)
    # Remember the corp code (not the login) for this browser's next login, as a bookmark would.
    response.set_cookie(LOGIN_CORP_COOKIE, service.normalise_corp_code(corp), httponly=True, samesite="strict",
                        secure=settings.cookie_secure, max_age=LOGIN_CORP_DAYS * 86400)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, principal: Principal = Depends(current_staff), session: Session = Depends(get_session)):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.end_session(session, token=token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- form helpers ------------------------------------------------------------------------------------


def _form_id(value: str, *, field: str) -> int | None:
    """An optional id from a <select>: empty means none; anything else must be a positive integer."""
    value = (value or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or not service.valid_id(int(value)):
        raise InvalidInput("choose one of the options", field=field)
    return int(value)


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# --- staff and roles -----------------------------------------------------------------------------------


def _staff_context(session: Session, principal: Principal, *, role: str | None = None) -> dict:
    tree = service.department_tree(session, corp_id=principal.corp_id)
    return {
        "staff": service.list_staff(session, corp_id=principal.corp_id, role=role if role in ROLES else None),
        "departments": tree,
        "department_paths": {node.department.id: node.path for node in tree},
        "roles": ROLES,
        "role_filter": role if role in ROLES else "",
        "now": utcnow(),
        "corp": service.get_corp(session, corp_id=principal.corp_id),
    }


def _staff_page(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
                **extra) -> Response:
    context = _staff_context(session, principal)
    context.update(extra)
    return render(request, "staff.html", context, status_code=status_code)


def _staff_row(request: Request, session: Session, principal: Principal, staff: Staff, *,
               errors: dict | None = None, notice: str | None = None, secret: str | None = None,
               status_code: int = 200) -> Response:
    """After an action on one member of staff: their table row (HTMX), or the whole page."""
    row_state = {staff.id: {"errors": errors or {}, "notice": notice, "secret": secret}}
    if _is_htmx(request):
        tree = service.department_tree(session, corp_id=principal.corp_id)
        return render(request, "_staff_row.html", {
            "member": staff, "roles": ROLES, "row_state": row_state, "now": utcnow(),
            "department_paths": {node.department.id: node.path for node in tree},
        }, status_code=status_code)
    return _staff_page(request, session, principal, row_state=row_state, status_code=status_code)


@router.get("/staff")
def staff_page(
    request: Request,
    role: str = Query("", max_length=40),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    context = _staff_context(session, principal, role=role)
    return render(request, "staff.html", context)


@router.post("/staff")
def staff_create(
    request: Request,
    login: str = Form(""),
    name: str = Form(""),
    department_id: str = Form(""),
    roles: list[str] = Form([]),
    password: str = Form(""),
    wecom_userid: str = Form(""),
    sees_department: bool = Form(False),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    values = {"login": login, "name": name, "department_id": department_id, "roles": roles,
              "wecom_userid": wecom_userid, "sees_department": sees_department}
    errors = FieldErrors()
    status = 422
    try:
        dept_id = _form_id(department_id, field="department_id")
        staff = service.create_staff(
            session, corp_id=principal.corp_id, login=login, name=name, roles=roles, password=password or None,
            department_id=dept_id, wecom_userid=wecom_userid or None, sees_department=sees_department,
            actor=principal,
        )
    except SiyuError as exc:
        errors.add(request, exc)
        status = exc.status_code
    else:
        return RedirectResponse(f"/staff?created={staff.id}#staff-{staff.id}", status_code=303)
    return _staff_page(request, session, principal, form=values, errors=errors, status_code=status)


@router.post("/staff/{staff_id}/roles")
def staff_set_roles(
    request: Request,
    staff_id: int,
    roles: list[str] = Form([]),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    staff = service.get_staff(session, corp_id=principal.corp_id, staff_id=staff_id)
    try:
        service.set_roles(session, corp_id=principal.corp_id, staff_id=staff.id, roles=roles, actor=principal)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "roles")
        return _staff_row(request, session, principal, staff, errors=errors, status_code=exc.status_code)
    return _staff_row(request, session, principal, staff, notice=N_("Roles saved."))


def _set_active(request: Request, session: Session, principal: Principal, staff_id: int, active: bool) -> Response:
    staff = service.get_staff(session, corp_id=principal.corp_id, staff_id=staff_id)
    try:
        service.update_staff(session, corp_id=principal.corp_id, staff_id=staff.id, is_active=active,
                             actor=principal)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "is_active")
        return _staff_row(request, session, principal, staff, errors=errors, status_code=exc.status_code)
    return _staff_row(request, session, principal, staff,
                      notice=N_("Reactivated.") if active else N_("Deactivated; their console sessions were ended."))


@router.post("/staff/{staff_id}/deactivate")
def staff_deactivate(request: Request, staff_id: int, principal: Principal = Depends(administrator),
                     session: Session = Depends(get_session)):
    return _set_active(request, session, principal, staff_id, False)


@router.post("/staff/{staff_id}/reactivate")
def staff_reactivate(request: Request, staff_id: int, principal: Principal = Depends(administrator),
                     session: Session = Depends(get_session)):
    return _set_active(request, session, principal, staff_id, True)


@router.post("/staff/{staff_id}/password")
def staff_reset_password(
    request: Request,
    staff_id: int,
    password: str = Form(""),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    """Sets the password an administrator typed, or a generated one (shown once) when left empty."""
    staff = service.get_staff(session, corp_id=principal.corp_id, staff_id=staff_id)
    generated = None if password else service.generate_password()
    try:
        service.set_password(session, corp_id=principal.corp_id, staff_id=staff.id, password=password or generated,
                             actor=principal)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "password")
        return _staff_row(request, session, principal, staff, errors=errors, status_code=exc.status_code)
    if staff.id == principal.staff_id:
        # Setting a password ends every session, this one too.
        if _is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)
    response = _staff_row(request, session, principal, staff, secret=generated,
                          notice=N_("Password set; their console sessions were ended."))
    response.headers["Cache-Control"] = "no-store"
    return response


# --- org tree -------------------------------------------------------------------------------------------


def _departments_page(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
                      **extra) -> Response:
    context = {"tree": service.department_tree(session, corp_id=principal.corp_id)}
    context.update(extra)
    return render(request, "departments.html", context, status_code=status_code)


@router.get("/departments")
def departments_page(request: Request, principal: Principal = Depends(administrator),
                     session: Session = Depends(get_session)):
    return _departments_page(request, session, principal)


@router.post("/departments")
def department_create(
    request: Request,
    name: str = Form(""),
    parent_id: str = Form(""),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    errors = FieldErrors()
    try:
        dept = service.create_department(session, corp_id=principal.corp_id, name=name,
                                         parent_id=_form_id(parent_id, field="parent_id"), actor=principal)
    except SiyuError as exc:
        errors.add(request, exc)
        return _departments_page(request, session, principal, errors=errors,
                                 form={"name": name, "parent_id": parent_id}, status_code=exc.status_code)
    return RedirectResponse(f"/departments?created={dept.id}#department-{dept.id}", status_code=303)


# --- API keys ---------------------------------------------------------------------------------------------


def _api_keys_page(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
                   **extra) -> Response:
    keys = service.list_api_keys(session, corp_id=principal.corp_id)
    creators = {s.id: s for s in service.list_staff(session, corp_id=principal.corp_id)}
    context = {"keys": keys, "creators": creators, "scopes": SCOPES}
    context.update(extra)
    return render(request, "api_keys.html", context, status_code=status_code)


@router.get("/api-keys")
def api_keys_page(request: Request, principal: Principal = Depends(administrator),
                  session: Session = Depends(get_session)):
    return _api_keys_page(request, session, principal)


@router.post("/api-keys")
def api_key_create(
    request: Request,
    name: str = Form(""),
    scopes: list[str] = Form([]),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    try:
        token, key = service.create_api_key(session, corp_id=principal.corp_id, name=name, scopes=scopes,
                                            actor=principal)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc)
        return _api_keys_page(request, session, principal, errors=errors, form={"name": name, "scopes": scopes},
                              status_code=exc.status_code)
    # The key is shown on this answer only; it must not be cached anywhere.
    response = _api_keys_page(request, session, principal, new_token=token, new_key=key, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/api-keys/{api_key_id}/revoke")
def api_key_revoke(request: Request, api_key_id: int, principal: Principal = Depends(administrator),
                   session: Session = Depends(get_session)):
    service.revoke_api_key(session, corp_id=principal.corp_id, api_key_id=api_key_id, actor=principal)
    return RedirectResponse("/api-keys", status_code=303)


# --- audit log ----------------------------------------------------------------------------------------


def _audit_context(session: Session, principal: Principal, *, action: str, before_seq: int | None) -> dict:
    page = audit.page_entries(session, corp_id=principal.corp_id, action=action or None, before_seq=before_seq)
    return {
        "entries": page.entries,
        "actor_names": service.names_by_login(session, corp_id=principal.corp_id,
                                              logins=[e.actor for e in page.entries]),
        "next_before_seq": page.next_before_seq,
        "actions": audit.distinct_actions(session, corp_id=principal.corp_id),
        "action": action,
        "before_seq": before_seq,
        "total": audit.count_entries(session, corp_id=principal.corp_id),
    }


@router.get("/audit")
def audit_page(
    request: Request,
    action: str = Query("", max_length=80),
    before_seq: int | None = Query(None, ge=1, le=service.MAX_ID),
    principal: Principal = Depends(audit_reader),
    session: Session = Depends(get_session),
):
    return render(request, "audit.html", _audit_context(session, principal, action=action, before_seq=before_seq))


@router.get("/audit/verify")
def audit_verify(request: Request, principal: Principal = Depends(audit_reader),
                 session: Session = Depends(get_session)):
    """Checks this corp's chain (only its own: other corps' chains are none of its business)."""
    report = audit.verify_chain(session, chain_id=principal.corp_id)
    if _is_htmx(request):
        return render(request, "_audit_verify.html", {"report": report})
    context = _audit_context(session, principal, action="", before_seq=None)
    context["report"] = report
    return render(request, "audit.html", context)
