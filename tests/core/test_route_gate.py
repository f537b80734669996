"""The app factory's route gate (`siyu.app._gate`) skips an included router none of whose paths can
match: it must never change which route answers a request, only how fast it is found."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Match

import siyu.app as app_module
from siyu import DOMAINS, domain_module


def _paths(router, prefix=""):
    for route in router.routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _paths(nested, prefix + route.include_context.prefix)
            continue
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield prefix + path, set(getattr(route, "methods", None) or {"GET"})


def _match(app, path, method):
    scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": [], "app": app}
    partial = None
    for i, route in enumerate(app.router.routes):
        match, child = route.matches(scope)
        if match == Match.FULL:
            return "full", i, child.get("path_params")
        if match == Match.PARTIAL and partial is None:
            partial = ("partial", i, child.get("path_params"))
    return partial


def test_the_gate_changes_no_route_choice(monkeypatch):
    gated = app_module.create_app()
    monkeypatch.setattr(app_module, "_gate", lambda *a: None)
    plain = app_module.create_app()
    paths = []
    for domain in DOMAINS:
        for part in ("api", "views", "callbacks", "h5"):
            module = domain_module(domain, part)
            if module is not None and hasattr(module, "router"):
                paths += list(_paths(module.router))
    assert len(paths) > 100
    checked = 0
    for path, methods in paths:
        concrete = re.sub(r"\{[^}]+\}", "123", path)
        for variant in (concrete, concrete + "/", concrete.rstrip("/") or "/", concrete + "/x", "/nothing" + concrete):
            for method in methods | {"GET", "POST"}:
                assert _match(gated, variant, method) == _match(plain, variant, method), (variant, method)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/customers", "/customers", "/login"])
def test_ordinary_paths_are_found_without_asking_every_router(path, monkeypatch):
    asked = []
    app = app_module.create_app()
    for route in app.router.routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            inner = route.effective_candidates
            route.effective_candidates = (lambda inner=inner: (asked.append(1), inner())[1])
    _match(app, path, "GET")
    assert len(asked) <= 3  # only the routers whose paths can match are searched
