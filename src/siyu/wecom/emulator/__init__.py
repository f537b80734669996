"""A faithful stand-in for WeCom (企业微信) for demos, tests and benchmarks.

`create_emulator_app()` serves the customer-contact endpoints under /cgi-bin/ with WeCom's
documented behaviour and limits, pushes signed and encrypted callbacks to each corp's callback URL,
and offers a control API under /_emulator/ (seed corps, act as customers, inspect deliveries,
inject faults, advance the clock). `serve_emulator()` runs it as a process, optionally with the
customer simulator. See `docs` in each module for the rules it enforces."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from siyu.wecom.emulator.state import AdminError, EmulatorState, Faults, Limits

__all__ = ["AdminError", "EmulatorState", "Faults", "Limits", "create_emulator_app", "serve_emulator"]

log = logging.getLogger(__name__)


def create_emulator_app(state: EmulatorState | None = None) -> FastAPI:
    """The emulator as an ASGI app. Pass a `state` to share it with the caller (tests inspect it
    directly); the app then leaves closing it to the caller."""
    from siyu.wecom.emulator.admin import build_admin_router
    from siyu.wecom.emulator.api import build_router

    owns_state = state is None
    state = state or EmulatorState()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_state:
            state.close()

    app = FastAPI(title="Siyu WeCom emulator", lifespan=lifespan, docs_url="/_emulator/docs",
                  openapi_url="/_emulator/openapi.json", redoc_url=None)
    app.state.emulator = state

    @app.exception_handler(AdminError)
    async def _admin_error(_request: Request, exc: AdminError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    app.include_router(build_admin_router(state))
    app.include_router(build_router(state))
    return app


def load_seed(state: EmulatorState, path: str | os.PathLike[str]) -> list[str]:
    """Seed corps from a JSON file: one corp object (the body of POST /_emulator/corps) or a list."""
    from siyu.wecom.emulator.admin import CorpIn, seed_corp

    data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    specs = data if isinstance(data, list) else [data]
    return [seed_corp(state, CorpIn.model_validate(spec)).corp_id for spec in specs]


def serve_emulator(
    host: str = "127.0.0.1",
    port: int = 8001,
    *,
    seed_file: str | None = None,
    seed: int | None = None,
    simulate_rate: float = 0.0,
    log_level: str = "info",
    callback_workers: int = 4,
) -> None:
    """Run the emulator in the foreground until interrupted.

    seed_file: corps to create at start (default: $SIYU_EMULATOR_SEED_FILE, if set);
    seed: random seed, for reproducible ids and simulated customers;
    simulate_rate: simulated customer actions per second across the seeded corps (0: none);
    callback_workers: callback deliveries in flight at once (a load test needs more than the default)."""
    import uvicorn

    from siyu.wecom.emulator.simulator import CustomerSimulator

    state = EmulatorState(seed=seed, callback_workers=callback_workers)
    seed_file = seed_file or os.environ.get("SIYU_EMULATOR_SEED_FILE") or None
    corp_ids = load_seed(state, seed_file) if seed_file else []
    app = create_emulator_app(state)
    stop = threading.Event()
    threads = []
    if simulate_rate > 0:
        for corp_id in corp_ids:
            sim = CustomerSimulator(state, corp_id, seed=seed)
            t = threading.Thread(target=sim.run, kwargs={"rate": simulate_rate / len(corp_ids), "stop": stop},
                                 name=f"simulator-{corp_id}", daemon=True)
            threads.append(t)
    for t in threads:
        t.start()
    log.info("WeCom emulator on http://%s:%d (corps: %s)", host, port, ", ".join(corp_ids) or "none yet")
    try:
        # No access log: WeCom URLs carry access tokens in the query string.
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        stop.set()
        state.close()
