"""FastAPI factory: mounts every domain's REST router and console views, static assets, H5 pages."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles

from siyu import DOMAINS, __version__
from siyu.config import Settings, get_settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "console" / "static"


def _domain_module(domain: str, name: str):
    try:
        return importlib.import_module(f"siyu.{domain}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"siyu.{domain}.{name}":
            return None
        raise


def _hooks(name: str) -> list:
    hooks = []
    for domain in DOMAINS:
        for part in ("api", "views", "callbacks", "h5"):
            module = _domain_module(domain, part)
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
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    from siyu.errors import install_error_handlers

    install_error_handlers(app)
    hot = []
    for domain in DOMAINS:
        for part in ("api", "views", "callbacks", "h5"):
            module = _domain_module(domain, part)
            if module is not None and hasattr(module, "router"):
                app.include_router(module.router)
            # Plain Starlette routes for endpoints under heavy load (the WeCom callback POST):
            # matched first, without FastAPI's parameter and dependency machinery.
            hot += getattr(module, "hot_routes", []) if module is not None else []
    app.router.routes[0:0] = hot
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    from siyu.monitoring import metrics_route

    app.router.routes.insert(len(hot), metrics_route)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        """Liveness for load balancers and process managers: answers without touching the database."""
        return PlainTextResponse("ok")

    return app
