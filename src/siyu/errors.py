"""Errors that services raise, and how the HTTP edge answers them (never a 500 for bad input)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response


class SiyuError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(SiyuError):
    status_code = 404


class Forbidden(SiyuError):
    status_code = 403


class Conflict(SiyuError):
    status_code = 409


class InvalidInput(SiyuError):
    status_code = 422


def _field_path(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie", "form")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def wants_html(request: Request) -> bool:
    """Console pages answer errors as pages; the REST API, callbacks and HTMX fragments as JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/wecom/")):
        return False
    return "text/html" in request.headers.get("accept", "") or bool(request.headers.get("hx-request"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SiyuError)
    async def _siyu_error(request: Request, exc: SiyuError):
        if wants_html(request):
            if exc.status_code == 401:
                target = "/login?next=" + quote(request.url.path)
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            from siyu.console.templating import render

            return render(request, "error.html", {"message": exc.message, "field": exc.field,
                                                  "status": exc.status_code}, status_code=exc.status_code)
        body = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"field": _field_path(e.get("loc", ())), "message": e.get("msg", "invalid"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors), "errors": errors},
            status_code=422,
        )
