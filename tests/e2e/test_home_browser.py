"""The home page per role in a real browser: each demo role sees its section of today's work, and a
figure followed to its list shows as many rows as it said. Screenshots per role (desktop)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

ROLES = [
    ("demo.advisor1", ["advisor"]),
    ("demo.ops", ["operations"]),
    ("demo.compliance", ["compliance"]),
    ("demo.admin", ["operations", "compliance", "administrator"]),
]


@pytest.mark.parametrize(("login", "expected"), ROLES)
def test_each_role_sees_its_work_today(page, log_in, screenshot, login, expected):
    log_in(login)
    expect(page.locator("main h1")).to_have_text("今日")
    sections = page.locator("[data-testid^=section-]")
    keys = [sections.nth(i).get_attribute("data-testid").removeprefix("section-") for i in range(sections.count())]
    assert keys == expected
    tiles = page.locator("a.card.tile")
    assert tiles.count() >= 2
    for i in range(tiles.count()):
        expect(tiles.nth(i).locator(".label")).to_have_text(re.compile(r"[\u4e00-\u9fff]"))
    screenshot(f"home-{login.removeprefix('demo.')}")
    # the menu offers only pages that exist
    assert page.locator("nav.sidebar .disabled").count() == 0


def test_a_figure_leads_to_the_rows_it_counts(page, log_in):
    log_in("demo.admin")
    tile = page.get_by_test_id("tile-jobs_dead")
    n = int(tile.get_by_test_id("value").inner_text())
    tile.click()
    expect(page).to_have_url(re.compile(r"/jobs\?state=dead$"))
    assert page.locator("[data-testid=job-row][data-state=dead]").count() == n


@pytest.mark.parametrize("login", [login for login, _sections in ROLES])
def test_each_roles_home_on_a_phone(browser, live_server, login):
    """Every role's home page at 390 px: the menu folds, the figures stack, nothing scrolls sideways."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    phone = context.new_page()
    try:
        phone.goto("/login")
        phone.fill("#corp", live_server.demo["corp_slug"])
        phone.fill("#login", login)
        phone.fill("#password", live_server.password)
        phone.click("form[action='/login'] button[type=submit]")
        expect(phone.locator("main h1")).to_have_text("今日")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot(path=str(_phone_path(login)), full_page=True)
    finally:
        context.close()


def _phone_path(login: str) -> Path:
    folder = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"home-{login.removeprefix('demo.')}-phone.png"
