"""FastAPI dependencies that say who is calling and what they may do.

Console pages use the `siyu_session` cookie (a database-backed session, so any `siyu serve`
process can check it) and a CSRF token on every unsafe request; the REST API uses
`Authorization: Bearer sk_...` API keys with scopes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from siyu.db import get_session
from siyu.errors import Forbidden, SiyuError
from siyu.tenancy import service
from siyu.tenancy.principal import Principal
from siyu.tenancy.security import same

SESSION_COOKIE = "siyu_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(SiyuError):
    """Console only: answered with a redirect to the login page (or HX-Redirect for HTMX)."""

    status_code = 401


class CsrfFailed(SiyuError):
    status_code = 403


class Unauthorized(SiyuError):
    status_code = 401


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _submitted_csrf(request: Request) -> str:
    """The CSRF token an unsafe request carries ("" for safe methods or none). Async because it may
    read the form body; `current_staff` does the database work in the threadpool and compares."""
    if request.method not in UNSAFE_METHODS:
        return ""
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # Starlette caches it, so Form() parameters still work.
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


def current_staff(request: Request, session: Session = Depends(get_session),
                  submitted: str = Depends(_submitted_csrf)) -> Principal:
    """The logged-in member of staff; checks CSRF on unsafe methods."""
    token = request.cookies.get(SESSION_COOKIE)
    principal = service.resolve_session(session, token=token) if token else None
    if principal is None:
        raise LoginRequired("please log in")
    # Set before the CSRF check: a refused form is still answered inside the caller's console.
    request.state.principal = principal
    if request.method in UNSAFE_METHODS:
        if not submitted or not principal.csrf_token or not same(submitted, principal.csrf_token):
            raise CsrfFailed("the form has expired or did not come from this console; reload and try again",
                             field="csrf_token")
    return principal


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A console dependency: the caller must hold one of `roles`."""

    async def dependency(principal: Principal = Depends(current_staff)) -> Principal:  # no I/O: no threadpool hop
        if not principal.has_role(*roles):
            raise Forbidden("your role does not allow this")
        return principal

    return dependency


API_KEY_REQUIRED = "a valid API key is required (Authorization: Bearer sk_...)"


class ApiKeyFirst:
    """ASGI middleware: the API key of every unsafe (body-carrying) /api/v1 request is checked
    BEFORE its body is read (FastAPI reads and parses a route's body before its dependencies run):
    an anonymous or wrongly keyed request is answered 401 without a byte of its body read. The
    principal found is reused by `api_principal`. The key is resolved in a unit of work of its own,
    through the app's request-session provider (so tests that override it see their data)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] == "http" and scope["method"] in UNSAFE_METHODS
                and scope["path"].startswith("/api/v1/")):
            from fastapi.responses import JSONResponse
            from starlette.concurrency import run_in_threadpool

            principal = await run_in_threadpool(_resolve_key, scope)
            if principal is None:
                await JSONResponse({"detail": API_KEY_REQUIRED}, status_code=401)(scope, receive, send)
                return
            scope.setdefault("state", {})["api_principal"] = principal
        await self.app(scope, receive, send)


def _resolve_key(scope) -> Principal | None:
    from siyu.db import request_session

    headers = dict(scope["headers"])
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    provider = scope["app"].dependency_overrides.get(request_session, request_session)
    units = provider()
    session = next(units)
    try:
        principal = service.resolve_api_key(session, token=token.strip())
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            units.throw(exc)
        raise
    with contextlib.suppress(StopIteration):
        next(units)
    return principal


def api_principal(request: Request, session: Session = Depends(get_session)) -> Principal:
    checked = getattr(request.state, "api_principal", None)
    if checked is not None:
        request.state.principal = checked
        return checked
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    principal = service.resolve_api_key(session, token=token.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise Unauthorized(API_KEY_REQUIRED)
    request.state.principal = principal
    return principal


# The answers every /api/v1 route may give before its handler runs, for the OpenAPI description.
API_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    422: {"description": "a parameter is not valid (`field` or `errors[].field` names it)"},
}


def require_scope(scope: str) -> Callable[..., Principal]:
    async def dependency(principal: Principal = Depends(api_principal)) -> Principal:  # no I/O: no threadpool hop
        if not principal.has_scope(scope):
            raise Forbidden("this API key lacks the scope %(scope)s", field="authorization", params={"scope": scope})
        return principal

    return dependency
