"""The advisor's chat sidebar at a phone's width (as WeCom opens it beside a chat): the customer's
profile and risk level, an unsuitable product explained, a suitable one recommended, and the final
text with its risk disclosure to send (screenshots in test-artifacts)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from siyu.compliance.disclosure import DEFAULT_DISCLOSURES

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", device_scale_factor=2, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_the_sidebar_explains_and_recommends_at_phone_width(phone, live_server, page, log_in, screenshot):
    from e2e.conftest import SCREENSHOTS

    def shot(name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    phone.goto("/login/" + live_server.demo["corp_slug"])  # the corp's login address
    phone.fill("#login", "demo.advisor1")  # 张伟, who follows 周建国 (C4, from the firm's KYC)
    phone.fill("#password", live_server.password)
    phone.click("form[action='/login'] button[type=submit]")
    expect(phone.get_by_test_id("who")).to_be_visible()

    phone.goto("/sidebar?external_userid=wmdemo0001zhou")
    expect(phone.get_by_test_id("sb-name")).to_have_text("周**")
    expect(phone.get_by_test_id("sb-stage")).to_have_text("已复投")
    expect(phone.get_by_test_id("sb-risk")).to_contain_text("C4")
    expect(phone.get_by_test_id("sb-risk")).to_contain_text("有效期至")
    expect(phone.get_by_test_id("sb-tags")).to_contain_text("基金")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"

    products = phone.get_by_test_id("sb-product")
    expect(products.first).to_have_attribute("data-eligible", "yes")
    expect(products.last).to_have_attribute("data-eligible", "no")
    unsuitable = phone.locator("[data-testid=sb-product][data-code='FUND-LEV-5']")
    expect(unsuitable.get_by_test_id("sb-decision")).to_contain_text("不适合推荐")
    expect(unsuitable.get_by_test_id("sb-decision")).to_contain_text("客户风险等级C4（成长型）低于产品风险等级R5（高风险）")
    expect(unsuitable.get_by_test_id("sb-recommend")).to_have_count(0)
    shot("sidebar-phone")

    fund = phone.locator("[data-testid=sb-product][data-code='FUND-BAL-3']")
    expect(fund.get_by_test_id("sb-decision")).to_contain_text("可推荐")
    fund.locator("summary").click()
    fund.locator("textarea[name=message]").fill("周先生，您上次问的均衡型基金，资料供参考。")
    shot("sidebar-phone-recommend-form")
    fund.get_by_test_id("sb-recommend").click()

    final = phone.get_by_test_id("sb-final")
    expect(final).to_contain_text("周先生，您上次问的均衡型基金，资料供参考。")
    expect(final).to_contain_text("【基金】均衡配置混合基金（产品代码 FUND-BAL-3，风险等级 R3（中风险））")
    expect(final).to_contain_text(DEFAULT_DISCLOSURES["fund"])
    phone.get_by_test_id("sb-copy").click()
    expect(phone.locator("#copied")).to_have_text("已复制。")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot("sidebar-phone-final-text")

    phone.get_by_test_id("sb-back").click()
    expect(phone.get_by_test_id("sb-recent")).to_contain_text("FUND-BAL-3")

    # Operations see it in 推荐记录 (desktop console), filtered by product.
    log_in("demo.ops")
    page.goto("/customers/recommendations?product_code=FUND-BAL-3")
    expect(page.locator("main h1")).to_have_text("推荐记录")
    row = page.get_by_test_id("recommendation-row").first
    expect(row).to_contain_text("FUND-BAL-3")
    expect(row).to_contain_text("周**")
    expect(row).to_contain_text("demo.advisor1")
    screenshot("recommendations-list")
