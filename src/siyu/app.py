"""FastAPI factory: mounts every domain's REST router and console views, static assets, H5 pages."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.routing import Match, Route

from siyu import DOMAINS, __version__, domain_module
from siyu.config import Settings, get_settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "console" / "static"


def _path_shapes(router, prefix: str = "") -> tuple[set[str], set[str]] | None:
    """The literal beginnings of a router's parameterised paths (up to the first parameter) and its
    fully literal paths, nested routers included; None when one of them could match any path."""
    prefixes: set[str] = set()
    exact: set[str] = set()
    for route in router.routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            inner = _path_shapes(nested, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            if inner is None:
                return None
            prefixes |= inner[0]
            exact |= inner[1]
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        path = prefix + path
        if "{" not in path:
            exact.add(path)
            continue
        literal = path.split("{", 1)[0]
        if literal in ("", "/"):
            return None
        prefixes.add(literal)
    return prefixes, exact


def _gate(included, router) -> None:
    """Skip an included router none of whose paths can match the request, before asking its routes.

    FastAPI asks an included router's routes one by one (several microseconds each, ~170 in all),
    so an ordinary request spent most of its time before the handler in route matching (about
    0.5 ms on 2 cores). A route matches only its own path when it has no parameter, and otherwise
    only paths starting with its literal beginning: a router none of whose paths fits is answered
    "no match" at once. The order of routes, and so which route wins, is unchanged."""
    shapes = _path_shapes(router)
    if shapes is None or not hasattr(included, "matches"):
        return
    prefixes, exact = tuple(sorted(shapes[0])), frozenset(shapes[1])
    inner = included.matches

    def matches(scope):
        if scope["type"] == "http":
            path = get_route_path(scope)
            if path not in exact and not path.startswith(prefixes):
                return Match.NONE, {}
        return inner(scope)

    included.matches = matches


def _hooks(name: str) -> list:
    hooks = []
    for domain in DOMAINS:
        for part in ("api", "views", "callbacks", "h5"):
            module = domain_module(domain, part)
            hooks += getattr(module, name, []) if module is not None else []
    return hooks


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Each serve process runs the domains' start-up hooks (the callback spool's drainer) and
    their shut-down hooks when it stops."""
    for hook in _hooks("on_startup"):
        hook()
    try:
        yield
    finally:
        for hook in _hooks("on_shutdown"):
            hook()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        title="Siyu API",
        version=__version__,
        description="REST API of Siyu (私域). Authenticate with `Authorization: Bearer <API key>`.",
        docs_url=None,  # served below from the bundled assets
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    from siyu.errors import install_error_handlers

    install_error_handlers(app)
    hot = []
    for domain in DOMAINS:
        for part in ("api", "views", "callbacks", "h5"):
            module = domain_module(domain, part)
            if module is not None and hasattr(module, "router"):
                app.include_router(module.router)
                _gate(app.router.routes[-1], module.router)
            # Plain Starlette routes for endpoints under heavy load (the WeCom callback POST):
            # matched first, without FastAPI's parameter and dependency machinery.
            hot += getattr(module, "hot_routes", []) if module is not None else []
            if settings.bench_routes:
                hot += getattr(module, "bench_routes", []) if module is not None else []
    hot.append(Route("/healthz", healthz, methods=["GET", "HEAD"], include_in_schema=False))
    app.router.routes[0:0] = hot
    from siyu.edge import DOCS_HTML, BodyLimit, SecurityHeaders
    from siyu.tenancy.deps import ApiKeyFirst

    # Outermost last: the body limit, then the API key, then the routes (which read the body).
    app.add_middleware(ApiKeyFirst)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes)
    if settings.trusted_proxies:
        # X-Forwarded-For / -Proto are believed from these peers only (SIYU_TRUSTED_PROXIES); `siyu
        # serve` turns the server's own handling of them off, so no other peer is ever believed.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    from siyu.monitoring import metrics_route

    app.router.routes.insert(len(hot), metrics_route)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """The API explorer, from assets bundled in the package (no third-party script on this origin)."""
        return HTMLResponse(DOCS_HTML)

    return app


async def healthz(request: Request) -> PlainTextResponse:
    """Liveness for load balancers and process managers: answers without touching the database.
    Async and mounted with the hot routes: a probe costs no threadpool hop and no walk past every
    other route."""
    return PlainTextResponse("ok")
