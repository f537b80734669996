"""系统对接 in a real browser: an administrator adds a webhook endpoint and sees its secret once; an
order pushed through the REST API shows as holdings on the customer's 360 page (screenshots in
test-artifacts)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_webhooks_page_and_holdings_on_the_360_page(page, log_in, screenshot, live_server):
    log_in("demo.admin")
    page.locator("nav.sidebar a[href='/integration/webhooks']").click()
    expect(page.locator("main h1")).to_have_text("事件回调")
    page.locator("#url").fill("https://firm.example/siyu/hooks")
    page.get_by_test_id("webhook-form").locator("input[value='customer.invested']").check()
    page.get_by_test_id("webhook-form").locator("input[value='customer.stage_changed']").check()
    page.get_by_test_id("webhook-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("new-webhook-secret")).to_be_visible()
    expect(page.get_by_test_id("webhook-endpoints")).to_contain_text("https://firm.example/siyu/hooks")
    expect(page.get_by_test_id("webhook-endpoints")).to_contain_text("客户投资")
    screenshot("integration-webhooks")

    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {live_server.demo['api_key']}"})
    first = api.get("/api/v1/customers", params={"limit": 1}).json()["items"][0]
    firm_id = "E2E-" + uuid.uuid4().hex[:8]
    assert api.post(f"/api/v1/customers/{first['external_userid']}/link",
                    json={"firm_customer_id": firm_id}).status_code == 200
    for path, order_id, amount in (("orders", "O-1", 5_000_000_00), ("redemptions", "R-1", 1_234_56)):
        answer = api.post(f"/api/v1/integration/{path}", json={
            "order_id": order_id + firm_id, "firm_customer_id": firm_id, "amount_fen": amount,
            "product_code": "WM-90D", "occurred_at": "2026-03-02T10:00:00+08:00"})
        assert answer.status_code == 201, answer.text

    page.goto(f"/customers?q={firm_id}")
    page.get_by_test_id("customer-row").first.locator("a.strong").click()
    holdings = page.get_by_test_id("holdings")
    expect(holdings.get_by_test_id("holding-row")).to_contain_text("WM-90D")
    expect(holdings).to_contain_text("5,000,000.00")
    expect(holdings).to_contain_text("4,998,765.44")
    screenshot("integration-holdings-360")
