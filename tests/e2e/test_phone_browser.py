"""Advisors on their phones: every page an advisor uses works at 390 px — the menu folds behind a
button, tables become cards, and no page scrolls sideways (screenshots in test-artifacts)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
ADVISOR_PAGES = [
    ("home", "/"),
    ("customers", "/customers"),
    ("leads", "/acquisition/leads"),
    ("call-queue", "/acquisition/leads/queue"),
    ("keyword-tasks", "/acquisition/keywords"),
    ("follow-ups", "/acquisition/follow-ups"),
    ("quality", "/compliance/quality"),
    ("sidebar", "/sidebar?external_userid=wmdemo0001zhou"),
]


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", device_scale_factor=1, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login/" + live_server.demo["corp_slug"])  # the corp's login address
    page.fill("#login", "demo.advisor1")
    page.fill("#password", live_server.password)
    page.click("form[action='/login'] button[type=submit]")
    expect(page.get_by_test_id("who")).to_be_visible()
    try:
        yield page
    finally:
        context.close()


def overflow(page) -> int:
    """How many pixels the page is wider than the screen (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def shot(page, name: str) -> None:
    from e2e.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"), full_page=True)


@pytest.mark.parametrize(("name", "path"), ADVISOR_PAGES)
def test_advisor_pages_fit_a_phone(phone, name, path):
    answer = phone.goto(path)
    assert answer.status == 200, path
    phone.wait_for_load_state("networkidle")
    shot(phone, name)
    assert overflow(phone) <= 0, f"{path} scrolls sideways at 390 px"


def test_the_menu_folds_and_opens(phone):
    phone.goto("/")
    menu = phone.locator("nav.sidebar")
    expect(menu).to_be_hidden()
    phone.get_by_test_id("nav-toggle").click()
    expect(menu).to_be_visible()
    shot(phone, "menu-open")
    menu.locator("a[href='/customers']").click()
    expect(phone).to_have_url(phone.url.split("/customers")[0].rstrip("/") + "/customers")


def test_a_customer_page_from_the_list_fits(phone):
    phone.goto("/customers")
    link = phone.locator("main a[href^='/customers/']").filter(has_not_text="").first
    href = link.get_attribute("href")
    phone.goto(href)
    phone.wait_for_load_state("networkidle")
    shot(phone, "customer-360")
    assert overflow(phone) <= 0, f"{href} scrolls sideways at 390 px"


def test_tables_become_cards_with_their_headings(phone):
    phone.goto("/customers")
    cell = phone.locator("table.data tbody tr td[data-label]").first
    expect(cell).to_be_visible()
    assert phone.locator("table.data thead").first.is_hidden()
