"""Proxies: X-Forwarded-For/Proto believed only from the configured proxies; unmasking personal
data through the API needs a scope of its own, and is audited."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from security.asgi import run_asgi
from siyu.app import create_app
from siyu.config import get_settings
from siyu.tenancy import audit


def _seen(app, *, peer: str, headers: dict[str, str]) -> tuple[str, str]:
    """(client address, scheme) as a route of the app sees them, for a request from `peer`."""
    if not any(getattr(r, "path", "") == "/_test/peer" for r in app.router.routes):
        @app.get("/_test/peer")
        def peer_route(request: Request) -> dict:
            return {"client": request.client.host, "scheme": request.url.scheme}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "path": "/_test/peer", "raw_path": b"/_test/peer", "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": (peer, 5000), "server": ("testserver", 80), "scheme": "http"}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    run_asgi(app(scope, receive, send))
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert "client" in body, body
    return body["client"], body["scheme"]


def test_forwarded_headers_are_ignored_by_default(monkeypatch):
    monkeypatch.setattr(get_settings(), "trusted_proxies", [])
    app = create_app(get_settings())
    client, scheme = _seen(app, peer="127.0.0.1", headers={"X-Forwarded-For": "1.2.3.4",
                                                          "X-Forwarded-Proto": "https"})
    assert (client, scheme) == ("127.0.0.1", "http")


def test_forwarded_headers_are_believed_from_a_configured_proxy_only(monkeypatch):
    monkeypatch.setattr(get_settings(), "trusted_proxies", ["10.0.0.0/24"])
    app = create_app(get_settings())
    assert _seen(app, peer="10.0.0.7", headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}) \
        == ("1.2.3.4", "https")
    assert _seen(app, peer="10.9.0.7", headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}) \
        == ("10.9.0.7", "http")


def test_siyu_serve_does_not_let_the_server_trust_forwarded_headers(monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from siyu.cli import app as cli

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    CliRunner().invoke(cli, ["serve"])
    assert calls and calls[0].get("proxy_headers") is False


@pytest.fixture
def customers_setup(session):
    from customers.factories import make_customer
    from tenancy.factories import make_corp, make_staff

    corp = make_corp(session)
    make_staff(session, corp, wecom_userid="adv1", name="顾问")
    customer = make_customer(session, corp.id, userid="adv1", name="周杰", remark="周总")
    return corp, customer


def test_unmasking_through_the_api_needs_its_own_scope(session, customers_setup):
    from tenancy.factories import api_client

    corp, customer = customers_setup
    reader, _ = api_client(session, corp, scopes=["customers:read"])
    refused = reader.get(f"/api/v1/customers/{customer.external_userid}", params={"unmask": "true"})
    assert refused.status_code == 403 and refused.json()["field"] == "unmask"
    assert reader.get("/api/v1/customers", params={"unmask": "true"}).status_code == 403
    everything, _ = api_client(session, corp, scopes=["*"])
    assert everything.get("/api/v1/customers", params={"unmask": "true"}).status_code == 403
    unmasker, prefix = api_client(session, corp, scopes=["customers:read", "pii:unmask"])
    one = unmasker.get(f"/api/v1/customers/{customer.external_userid}", params={"unmask": "true"}).json()
    assert one["name"] == "周杰"
    (entry,) = audit.list_entries(session, corp_id=corp.id, action="customer.unmasked")
    assert entry.actor == f"api_key:{prefix}"
