"""The HTTP edge: what every request passes before a route sees it.

* `BodyLimit`: a request body is at most SIYU_MAX_BODY_BYTES, or SIYU_MAX_UPLOAD_BYTES on the
  routes registered with `upload_route` (spreadsheet and image uploads). Enforced while the body
  streams in, whether its length is declared (refused before a byte is read) or chunked (cut off as
  soon as it passes the limit): 413.
* `SecurityHeaders`, `TrustedProxies`: see their docstrings."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
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
