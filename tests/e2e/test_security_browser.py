"""Headers in a real browser: /api/docs renders from bundled assets with no request leaving the
console's origin, and console pages run with the Content-Security-Policy and no violation."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _watch(page, live_server):
    origin = urlsplit(live_server.url).netloc
    external, violations = [], []
    page.on("request", lambda r: external.append(r.url)
            if urlsplit(r.url).scheme in ("http", "https") and urlsplit(r.url).netloc != origin else None)
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return external, violations


def test_api_docs_render_with_no_external_request(page, live_server, screenshot):
    external, violations = _watch(page, live_server)
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Siyu API", timeout=15000)
    expect(page.locator(".opblock").first).to_be_visible()
    screenshot("api-docs")
    assert external == [] and violations == []


def test_console_pages_run_under_the_policy(page, live_server, log_in, screenshot):
    external, violations = _watch(page, live_server)
    log_in("demo.admin")
    expect(page.get_by_test_id("who")).to_have_text("王敏")
    page.goto("/")
    expect(page.locator("[data-chart] svg").first).to_be_visible()
    page.goto("/api-keys")
    page.goto("/staff")
    screenshot("staff-under-csp")
    assert external == [] and violations == []
