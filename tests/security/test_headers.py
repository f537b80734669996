"""Security headers: CSP without inline script, frame-ancestors (the sidebar only inside WeCom),
nosniff, Referrer-Policy, HSTS over TLS, no-store on dynamic answers, and /api/docs from bundled
assets."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.config import get_settings

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "siyu" / "console" / "templates"


def _client(base_url="http://testserver", **kw):
    return TestClient(create_app(get_settings()), base_url=base_url, follow_redirects=False, **kw)


def test_console_pages_carry_the_security_headers(database_url):
    answer = _client().get("/login")
    csp = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in answer.headers


def test_the_sidebar_may_be_framed_by_wecom_only(database_url):
    answer = _client().get("/sidebar")
    csp = answer.headers["content-security-policy"]
    ancestors = re.search(r"frame-ancestors ([^;]+)", csp).group(1).split()
    assert ancestors and all(a.startswith("https://") and a.endswith("work.weixin.qq.com") for a in ancestors)
    assert "x-frame-options" not in answer.headers


def test_hsts_when_served_over_tls(database_url):
    answer = _client(base_url="https://testserver").get("/login")
    assert answer.headers["strict-transport-security"].startswith("max-age=")


def test_static_assets_may_be_cached(database_url):
    answer = _client().get("/static/console.css")
    assert answer.status_code == 200 and answer.headers.get("cache-control") != "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_no_template_has_inline_script_or_event_handlers():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=\s*[\"']|javascript:", text):
            offenders.append(f"{path.relative_to(TEMPLATES)}: {m.group(0)}")
    assert offenders == []


def test_api_docs_use_only_bundled_assets(database_url):
    page = _client().get("/api/docs")
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert sources and all(s.startswith("/static/") or s == "data:," for s in sources), sources
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
    for s in sources:
        if s.startswith("/static/"):
            assert _client().get(s).status_code == 200, s
