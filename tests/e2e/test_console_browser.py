"""The console in a real browser: language, login, dashboard, the administration pages.

Each test leaves full-page screenshots in test-artifacts/screenshots/ (look at them: Chinese must
render as characters, not boxes)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CJK = re.compile(r"[\u4e00-\u9fff]")


def expect_charts_drawn(page) -> None:
    """Every chart placeholder got its SVG from the bundled ECharts (scripts loaded and ran)."""
    charts = page.locator("[data-chart]")
    for i in range(charts.count()):
        expect(charts.nth(i).locator("svg").first).to_be_visible()


def test_logged_out_visitor_is_sent_to_the_login_page(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.locator("#login")).to_be_visible()


def test_login_page_is_in_chinese_by_default(page, screenshot):
    page.goto("/login")
    screenshot("login-zh")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text(CJK)
    expect(page.locator("form[action='/login'] button[type=submit]")).to_have_text(CJK)
    expect(page.locator("label[for=password]")).to_have_text(CJK)


def test_wrong_password_shows_an_error(page, log_in, screenshot):
    log_in("demo.auditor", "certainly-not-the-password")
    error = page.get_by_test_id("login-error")
    expect(error).to_be_visible()
    screenshot("login-wrong-password")
    expect(error).to_have_text(CJK)
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("#login")).to_have_value("demo.auditor")
    assert all(c["name"] != "siyu_session" for c in page.context.cookies())


def test_admin_logs_in_and_lands_on_the_dashboard(page, live_server, log_in, screenshot):
    broken: list[str] = []
    page.on("response", lambda r: broken.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in("demo.admin")
    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_test_id("who")).to_have_text("王敏")
    page.wait_for_load_state("networkidle")
    expect_charts_drawn(page)
    screenshot("console-dashboard")
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator("nav.sidebar a[href='/']")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator(".card").first).to_be_visible()
    assert broken == [], f"answers >= 400 while loading the dashboard: {broken}"


def test_english_switch(page, log_in, screenshot):
    page.goto("/login")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("form[action='/login'] button[type=submit]")).to_have_text("Log in")
    screenshot("login-en")

    log_in("demo.admin")  # the language is remembered (cookie) across the login
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("main h1")).to_have_text("Today")
    expect(page.locator("nav.sidebar")).to_contain_text("Staff & roles")
    expect_charts_drawn(page)
    screenshot("console-dashboard-en")

    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


@pytest.mark.parametrize(
    ("path", "shows", "name"),
    [
        # (path, text the page shows from the demo seed, screenshot name)
        ("/jobs", "default", "console-jobs"),
        ("/staff", "张伟", "console-staff"),
        ("/api-keys", "{api_key_prefix}", "console-api-keys"),
        ("/audit", "王敏", "console-audit"),
    ],
    ids=["jobs", "staff", "api-keys", "audit"],
)
def test_admin_page_opens(page, live_server, log_in, screenshot, path, shows, name):
    log_in("demo.admin")
    expect(page.get_by_test_id("who")).to_have_text("王敏")
    response = page.goto(path)
    assert response is not None and response.status == 200, f"{path} answered {response and response.status}"
    page.wait_for_load_state("networkidle")
    screenshot(name)
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator(f"nav.sidebar a[href='{path}']")).to_have_class(re.compile(r"\bactive\b"))
    prefix = live_server.demo["api_key"].split("_")[1]
    expect(page.locator("main")).to_contain_text(shows.format(api_key_prefix=prefix))


def test_the_layout_fills_the_viewport_below_the_top_bar(page, log_in):
    log_in("demo.admin")
    expect(page.get_by_test_id("who")).to_have_text("王敏")
    page.goto("/jobs")
    box = page.evaluate("""() => {
        const top = document.querySelector('.topbar').getBoundingClientRect();
        const side = document.querySelector('.sidebar').getBoundingClientRect();
        return {topBottom: top.bottom, sideTop: side.top, sideBottom: side.bottom, viewport: window.innerHeight,
                scroll: document.documentElement.scrollHeight};
    }""")
    assert box["sideTop"] == box["topBottom"]
    # The sidebar reaches the bottom of the page, which is no shorter than the window (no strip under it).
    assert box["sideBottom"] == box["scroll"] >= box["viewport"], box


def test_administrators_see_the_queue_lag_per_queue(page, log_in, screenshot):
    log_in("demo.admin")
    expect(page.get_by_test_id("who")).to_have_text("王敏")
    page.goto("/jobs")
    lag = page.get_by_test_id("queue-lag")
    expect(lag).to_be_visible()
    expect(lag.locator("h2")).to_have_text("队列延迟")
    expect(lag.locator("thead")).to_contain_text("最早待执行已等待")
    expect(lag.locator("tbody tr").first).to_be_visible()
    expect(page.get_by_test_id("count-expired")).to_contain_text("已过期")
    screenshot("console-jobs-queue-lag")
