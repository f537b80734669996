"""Console login and logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from siyu.console.templating import render
from siyu.db import get_session
from siyu.tenancy import service
from siyu.tenancy.deps import SESSION_COOKIE, client_ip, current_staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.security import new_token, same

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "siyu_login_csrf"


def _safe_next(target: str | None) -> str:
    # Only local paths: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(request: Request, *, error: str | None = None, login: str = "", status_code: int = 200):
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token(24)
    response = render(
        request,
        "login.html",
        {"error": error, "login": login, "login_csrf": token, "next": _safe_next(request.query_params.get("next"))},
        status_code=status_code,
    )
    settings = request.app.state.settings
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings.cookie_secure)
    return response


@router.get("/login")
def login_page(request: Request):
    return _login_page(request)


@router.post("/login")
def login_submit(
    request: Request,
    login: str = Form("", max_length=200),
    password: str = Form("", max_length=500),
    csrf_token: str = Form("", max_length=200),
    next: str = Form("/", max_length=500),
    session: Session = Depends(get_session),
):
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not same(expected, csrf_token):
        return _login_page(request, error="The form expired. Please try again.", login=login, status_code=403)
    if not login or not password:
        return _login_page(request, error="Enter your login and password.", login=login, status_code=422)
    try:
        staff = service.authenticate(session, login=login, password=password, ip=client_ip(request))
    except service.AccountLocked:
        return _login_page(request, error="Too many failed attempts. Try again later.", login=login,
                           status_code=423)
    except service.LoginFailed:
        return _login_page(request, error="Wrong login or password.", login=login, status_code=401)
    token = service.start_session(session, staff=staff)
    response = RedirectResponse(_safe_next(next), status_code=303)
    settings = request.app.state.settings
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.cookie_secure,
                        max_age=settings.session_hours * 3600)
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
