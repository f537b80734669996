"""The HTTP edge: what every request passes before a route sees it.

* `BodyLimit`: a request body is at most SIYU_MAX_BODY_BYTES, or SIYU_MAX_UPLOAD_BYTES on the
  routes registered with `upload_route` (spreadsheet and image uploads). Enforced while the body
  streams in, whether its length is declared (refused before a byte is read) or chunked (cut off as
  soon as it passes the limit): 413.
* `SecurityHeaders`: see its docstring; `DOCS_HTML`: /api/docs from the bundled API explorer.
* Forwarded headers: believed only from SIYU_TRUSTED_PROXIES (see siyu.app)."""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UPLOAD_ROUTES: list[re.Pattern[str]] = []


def upload_route(path_regex: str) -> None:
    """Registers a route (a full-match regex of its path) that takes uploads: the larger body limit."""
    _UPLOAD_ROUTES.append(re.compile(path_regex))


def is_upload(path: str) -> bool:
    return any(p.fullmatch(path) for p in _UPLOAD_ROUTES)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is larger than {limit} bytes")
        self.limit = limit


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if is_upload(scope["path"]) else self.max_body_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"the request body is larger than {limit} bytes", "field": "body"},
                        status_code=413, headers={"Connection": "close"})


# The Content-Security-Policy of every page: scripts only from this origin's files (htmx, ECharts
# and the API explorer are bundled; no inline script or event handler), styles from files and
# inline attributes (ECharts and htmx set them), images also from https (channel-code QR and
# persona avatars may live on the firm's CDN), nothing framed, never framed.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
        "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-src 'none'; frame-ancestors {ancestors}")
# The chat sidebar is opened inside WeCom's clients; nothing else may frame any page.
WECOM_FRAME_ANCESTORS = "https://work.weixin.qq.com https://*.work.weixin.qq.com"
CSP = _CSP.format(ancestors="'none'")
CSP_SIDEBAR = _CSP.format(ancestors=WECOM_FRAME_ANCESTORS)
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    """Headers on every answer: CSP and framing rules, nosniff, Referrer-Policy, HSTS when the
    request came over TLS (directly, or from a trusted proxy saying so: see SIYU_TRUSTED_PROXIES),
    and `Cache-Control: no-store` on everything but the static files (pages and API answers carry
    personal data, and exports are personal data): an answer that sets its own Cache-Control keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        static = path.startswith("/static/")
        sidebar = path == "/sidebar" or path.startswith("/sidebar/")
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Content-Security-Policy", CSP_SIDEBAR if sidebar else CSP)
                if not sidebar:
                    headers.setdefault("X-Frame-Options", "DENY")
                if tls:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Siyu API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/swagger-ui-5.36.0.css">
<script src="/static/vendor/swagger-ui-bundle-5.36.0.js" defer></script>
<script src="/static/api-docs.js" defer></script>
</head>
<body>
<div id="swagger-ui" data-openapi="/api/openapi.json"></div>
</body>
</html>
"""
