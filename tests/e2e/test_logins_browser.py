"""Logins per corp in a real browser: the form asks for the corp code, the corp's own login address
fills it in, the browser remembers it, and an unknown corp is answered like a wrong password."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SUBMIT = "form[action='/login'] button[type=submit]"


def _error_after(page, *, corp: str, login: str, password: str) -> str:
    page.goto("/login")
    page.fill("#corp", corp)
    page.fill("#login", login)
    page.fill("#password", password)
    page.click(SUBMIT)
    error = page.get_by_test_id("login-error")
    expect(error).to_be_visible()
    return error.inner_text()


def test_the_corps_login_address_fills_in_the_code_and_the_browser_remembers_it(page, live_server, screenshot):
    code = live_server.demo["corp_slug"]
    page.goto("/login")
    expect(page.locator("label[for=corp]")).to_have_text("机构代码")
    expect(page.locator("#corp")).to_have_value("")
    page.goto(f"/login/{code}")
    expect(page.locator("#corp")).to_have_value(code)
    screenshot("login-corp-address")
    page.fill("#login", "demo.admin")
    page.fill("#password", live_server.password)
    page.click(SUBMIT)
    expect(page.get_by_test_id("who")).to_be_visible()  # logged in (the top bar names the member)
    # The administrator's staff page gives the address to hand to staff.
    page.goto("/staff")
    expect(page.get_by_test_id("corp-login")).to_contain_text(f"/login/{code}")
    # Logged out, the login page of this browser has the corp code already.
    page.locator("form[action='/logout'] button").first.click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("#corp")).to_have_value(code)
    expect(page.locator("#login")).to_have_value("")


def test_an_unknown_corp_is_answered_like_a_wrong_password(page, live_server, screenshot):
    code = live_server.demo["corp_slug"]
    wrong_password = _error_after(page, corp=code, login="demo.compliance", password="not-the-password-at-all")
    unknown_corp = _error_after(page, corp="no-such-bank", login="demo.compliance", password=live_server.password)
    screenshot("login-unknown-corp")
    assert wrong_password == unknown_corp and "机构代码" in unknown_corp
    expect(page.locator("#corp")).to_have_value("no-such-bank")
    assert all(c["name"] != "siyu_session" for c in page.context.cookies())
    # The right corp code, and the same login and password get in.
    page.fill("#corp", code)
    page.fill("#password", live_server.password)
    page.click(SUBMIT)
    expect(page.get_by_test_id("who")).to_be_visible()
    expect(page).not_to_have_url(re.compile(r"/login"))
