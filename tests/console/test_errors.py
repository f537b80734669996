"""How the HTTP edge answers errors: JSON for the API, pages for the console, fragments for HTMX,
messages in the reader's language, and never a 500 for what is the caller's fault."""

from __future__ import annotations

import pytest
from fastapi import Form
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, IntegrityError

from siyu.app import create_app
from siyu.errors import Conflict, InvalidInput, NotFound, SiyuError


@pytest.fixture
def client(database_url):
    app = create_app()

    @app.get("/api/v1/_test/invalid")
    def api_invalid():
        raise InvalidInput("password must have at least %(n)s characters", field="password", params={"n": 10})

    @app.get("/_test/invalid")
    def page_invalid():
        raise InvalidInput("password must have at least %(n)s characters", field="password", params={"n": 10})

    @app.get("/_test/not-found")
    def page_not_found():
        raise NotFound("staff not found", field="staff_id")

    @app.get("/_test/race")
    def race():
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))

    @app.get("/api/v1/_test/data")
    def data():
        raise DataError("INSERT ...", {}, Exception("A string literal cannot contain NUL (0x00) characters."))

    @app.post("/_test/form")
    def form(count: int = Form(...)):
        return {"count": count}

    return TestClient(app)


def test_service_error_in_the_api_is_english_json_with_the_field(client):
    response = client.get("/api/v1/_test/invalid", headers={"accept": "text/html"})
    assert response.status_code == 422
    assert response.json() == {"detail": "password must have at least 10 characters", "field": "password"}


def test_service_error_on_a_page_is_translated(client):
    page = client.get("/_test/invalid", headers={"accept": "text/html"})
    assert page.status_code == 422 and "密码至少需要 10 个字符" in page.text and 'lang="zh-CN"' in page.text
    english = client.get("/_test/invalid?lang=en", headers={"accept": "text/html"})
    assert "password must have at least 10 characters" in english.text


def test_htmx_errors_go_to_the_flash_area(client):
    response = client.get("/_test/not-found", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "#flash" and response.headers["HX-Reswap"] == "innerHTML"
    assert "<html" not in response.text and "找不到该员工" in response.text and 'data-testid="error"' in response.text


def test_a_uniqueness_race_is_a_409_not_a_500(client):
    response = client.get("/_test/race")
    assert response.status_code == 409 and "reload and try again" in response.json()["detail"]
    page = client.get("/_test/race", headers={"accept": "text/html"})
    assert page.status_code == 409 and "请刷新页面后重试" in page.text


def test_a_value_the_database_refuses_is_a_422_not_a_500(client):
    assert client.get("/api/v1/_test/data").status_code == 422


def test_validation_errors_name_the_field_in_json_and_on_pages(client):
    response = client.post("/_test/form", data={"count": "many"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "count"
    page = client.post("/_test/form", data={"count": "many"}, headers={"accept": "text/html"})
    assert page.status_code == 422 and 'data-field="count"' in page.text and "部分字段填写有误" in page.text


def test_params_that_do_not_fit_the_message_do_not_break_it():
    error = SiyuError("unknown role(s): %(roles)s", params={"other": 1})
    assert error.message == "unknown role(s): %(roles)s"
    assert Conflict("plain").message == "plain" and Conflict("plain").params == {}


def test_an_unknown_console_address_is_the_consoles_404_page_and_json_for_the_api(client):
    page = client.get("/no-such-page", headers={"accept": "text/html"})
    assert page.status_code == 404 and "页面不存在" in page.text and 'lang="zh-CN"' in page.text
    assert page.headers["content-type"].startswith("text/html")
    english = client.get("/no-such-page?lang=en", headers={"accept": "text/html"})
    assert "This page does not exist." in english.text
    api = client.get("/api/v1/no-such-thing", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
