"""Request sizes: a global body limit enforced while the body streams in (declared length and
chunked), a larger limit only on upload routes, and the API key checked before a body is read."""

from __future__ import annotations

import asyncio
import json

import pytest

from security.asgi import run_asgi
from siyu.app import create_app
from siyu.config import get_settings
from siyu.tenancy import service as tenancy
from tenancy.factories import make_client, make_corp

CHUNK = 64 * 1024


def _call(app, *, path: str, headers: dict[str, str], chunks: int, chunk: bytes = b" " * CHUNK,
          method: str = "POST", declared: int | None = None):
    """Runs one request through the ASGI app with a body of `chunks` chunks; returns (status, body,
    chunks the app read)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        if read < chunks:
            read += 1
            return {"type": "http.request", "body": chunk, "more_body": read < chunks}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if declared is not None:
        raw.append((b"content-length", str(declared).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": raw, "client": ("203.0.113.9", 5000),
             "server": ("testserver", 80), "scheme": "http", "root_path": ""}
    run_asgi(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, read


@pytest.fixture(scope="module")
def app(database_url):
    return create_app(get_settings())


def test_an_anonymous_post_is_refused_before_its_body_is_read(app):
    status, _body, read = _call(app, path="/api/v1/integration/orders", chunks=200,
                                headers={"content-type": "application/json"})
    assert status == 401
    assert read == 0


def test_a_bad_key_is_refused_before_its_body_is_read(app):
    status, _body, read = _call(app, path="/api/v1/integration/orders", chunks=200,
                                headers={"content-type": "application/json", "authorization": "Bearer sk_nope_x"})
    assert status == 401 and read == 0


@pytest.fixture
def api_key(session):
    corp = make_corp(session)
    key, _ = tenancy.create_api_key(session, corp_id=corp.id, name="firm", scopes=["orders:write"], actor="t")
    return key


def test_a_chunked_body_over_the_limit_is_cut_off_while_streaming(session, api_key):
    client = make_client(session)
    limit = get_settings().max_body_bytes

    def body():
        for _ in range(limit // CHUNK + 20):
            yield b" " * CHUNK

    answer = client.post("/api/v1/integration/orders", content=body(),
                         headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"})
    assert answer.status_code == 413


def test_a_declared_length_over_the_limit_is_refused_before_reading(session, api_key):
    client = make_client(session)
    limit = get_settings().max_body_bytes
    big = json.dumps({"order_id": "O-1", "padding": "x" * (limit + 10)})
    answer = client.post("/api/v1/integration/orders", content=big,
                         headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/json")


def test_console_forms_have_the_global_limit_and_uploads_a_larger_one(app):
    limit = get_settings().max_body_bytes
    over = limit // CHUNK + 2
    status, _b, _r = _call(app, path="/login", chunks=over, declared=over * CHUNK,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 413
    # The lead upload takes spreadsheets up to the upload limit (it answers the login page: no session).
    status, _b, _r = _call(app, path="/acquisition/leads/upload", chunks=over, declared=over * CHUNK,
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert status != 413
