"""Errors that services raise, and how the HTTP edge answers them (never a 500 for bad input).

A service error's message is an English message id; values that vary go in `params` and are
written `%(name)s` in the id, so the console can show the message in the reader's language
(`locale/zh_CN/LC_MESSAGES/messages.po`) while logs and the REST API keep the English text."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class SiyuError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, params: Mapping[str, object] | None = None):
        self.msgid = message
        self.params = dict(params or {})
        self.message = _interpolate(message, self.params)
        super().__init__(self.message)
        self.field = field


class NotFound(SiyuError):
    status_code = 404


class Forbidden(SiyuError):
    status_code = 403


class Conflict(SiyuError):
    status_code = 409


class InvalidInput(SiyuError):
    status_code = 422


class Unavailable(SiyuError):
    """The database is busy (a lock not granted in time): nothing was stored, try again shortly."""

    status_code = 503


class DatabaseBusy(TimeoutError):
    """No write turn on the SQLite database within the busy timeout (see `siyu.db.WriteTurn`)."""


# SQLSTATEs of PostgreSQL's lock waits that gave up: lock_not_available, serialization_failure,
# deadlock_detected. SQLite says "database is locked" / "database table is locked".
_BUSY_SQLSTATES = frozenset({"55P03", "40001", "40P01"})


BUSY_MESSAGE = "the database is busy; nothing was saved, try again in a moment"


def is_busy(exc: OperationalError) -> bool:
    """Whether a database error is a lock that was not granted in time (worth a retry), not a fault."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    return "database is locked" in str(orig) or "database table is locked" in str(orig)


def _interpolate(message: str, params: Mapping[str, object]) -> str:
    if not params:
        return message
    try:
        return message % params
    except (KeyError, ValueError, TypeError):
        # A translation (or id) that does not fit its params must not turn an error into a 500.
        return message


def _field_path(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie", "form")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def wants_html(request: Request) -> bool:
    """Console pages answer errors as pages; the REST API, callbacks and HTMX fragments as JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/wecom/")):
        return False
    return "text/html" in request.headers.get("accept", "") or bool(request.headers.get("hx-request"))


def localized_message(request: Request, exc: SiyuError) -> str:
    """The error's message in the console language of this request."""
    from siyu.console.i18n import translations
    from siyu.console.templating import request_locale

    return _interpolate(translations(request_locale(request)).gettext(exc.msgid), exc.params)


def _html_error(request: Request, *, message: str, status: int, field: str | None = None,
                fields: list[dict] | None = None) -> Response:
    from siyu.console.templating import render

    context = {"message": message, "field": field, "fields": fields or [], "status": status}
    if request.headers.get("hx-request"):
        # An HTMX request swaps its answer into part of a page: show the error in the page's flash
        # area instead of whatever the request targeted.
        response = render(request, "_error_fragment.html", context, status_code=status)
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "error.html", context, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SiyuError)
    async def _siyu_error(request: Request, exc: SiyuError):
        if wants_html(request):
            if exc.status_code == 401:
                target = "/login?next=" + quote(request.url.path)
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            return _html_error(request, message=localized_message(request, exc), field=exc.field,
                               status=exc.status_code)
        body = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        body.update(getattr(exc, "extra", None) or {})  # e.g. the findings of a wording refusal
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = [
            # A body that is not JSON at all is wrong as a whole: name the body, not a byte position.
            {"field": "body" if e.get("type") == "json_invalid" else _field_path(e.get("loc", ())),
             "message": e.get("msg", "invalid"), "type": e.get("type")}
            for e in exc.errors()
        ]
        if wants_html(request):
            from siyu.console.i18n import translations
            from siyu.console.templating import request_locale

            _ = translations(request_locale(request)).gettext
            return _html_error(request, message=_("Some fields are not valid."), status=422,
                               field=errors[0]["field"] if errors else None, fields=errors)
        return JSONResponse(
            {"detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors), "errors": errors},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        # FastAPI answers a request body it cannot decode (not UTF-8, say) with a bare 400: name the body.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body" and not wants_html(request):
            return JSONResponse({"detail": exc.detail, "field": "body"}, status_code=400)
        if exc.status_code in (404, 405) and wants_html(request):
            # An unknown console address (a mistyped link, a page of a domain switched off) is
            # answered with the console's own page, in the person's language, not with JSON.
            from siyu.console.i18n import translations
            from siyu.console.templating import request_locale

            _ = translations(request_locale(request)).gettext
            message = _("This page does not exist.") if exc.status_code == 404 else _(
                "This page cannot be used that way.")
            return _html_error(request, message=message, status=exc.status_code)
        return await http_exception_handler(request, exc)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError):
        # A uniqueness race that the service's own checks could not see (two requests at once):
        # the transaction is rolled back, and the caller may try again.
        log.info("integrity error answered with 409: %s", exc.orig)
        error = Conflict("this conflicts with data that was saved at the same time; reload and try again")
        return await _siyu_error(request, error)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError):
        # A value the database refuses (NUL in text on PostgreSQL, a number out of range) that a
        # service did not check first: still the caller's input, never a 500. Services should check
        # such values themselves so that the answer can name the field.
        log.warning("data error answered with 422 (a service should have checked this input): %s", exc.orig)
        error = InvalidInput("a value is not valid")
        return await _siyu_error(request, error)

    @app.exception_handler(OperationalError)
    async def _operational_error(request: Request, exc: OperationalError):
        # A lock not granted in time (SQLite's busy timeout, PostgreSQL's lock or serialization
        # failures) rolled the transaction back: the caller may try again, so 503 with Retry-After.
        # Any other database fault is a real error and stays a 500.
        if not is_busy(exc):
            raise exc
        return await _busy(request, exc.orig)

    @app.exception_handler(DatabaseBusy)
    async def _no_write_turn(request: Request, exc: DatabaseBusy):
        return await _busy(request, exc)

    async def _busy(request: Request, cause: object) -> Response:
        log.warning("database busy, answered with 503: %s", cause)
        response = await _siyu_error(request, Unavailable(BUSY_MESSAGE))
        response.headers["Retry-After"] = "1"
        return response
