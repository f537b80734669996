"""产品与适当性 in a real browser: a compliance officer adds a product, records a customer's risk
level and checks eligibility; the decision and its reason are shown (screenshot in test-artifacts)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_add_a_product_and_check_eligibility(page, log_in, screenshot):
    code = f"FUND-{uuid.uuid4().hex[:6].upper()}"
    ref = f"wm-e2e-{uuid.uuid4().hex[:6]}"
    log_in("demo.compliance")
    page.locator("nav.sidebar a[href='/compliance/products']").click()
    expect(page.locator("main h1")).to_have_text("产品与适当性")

    form = page.get_by_test_id("product-form")
    form.locator("#code").fill(code)
    form.locator("#name").fill("稳健混合基金")
    form.locator("#product_type").select_option("fund")
    form.locator("#risk_level").select_option("R3")
    form.locator("button[type=submit]").click()
    row = page.locator(f"#product-{code}")
    expect(row).to_contain_text("稳健混合基金")
    expect(row).to_contain_text("R3")

    assessment = page.get_by_test_id("assessment-form")
    assessment.locator("#customer_ref").fill(ref)
    assessment.locator("#level").select_option("C2")
    assessment.locator("button[type=submit]").click()
    expect(page.get_by_test_id("assessment-notice")).to_be_visible()

    check = page.get_by_test_id("check-form")
    check.locator("#check_customer_ref").fill(ref)
    check.locator("#check_product_code").select_option(code)
    check.locator("button[type=submit]").click()
    decision = page.get_by_test_id("decision")
    expect(decision.locator("[data-eligible]")).to_have_attribute("data-eligible", "false")
    expect(page.get_by_test_id("decision-reason")).to_contain_text(re.compile(r"C2.*R3"))
    screenshot("compliance-suitability")

    check.locator("#check_customer_ref").fill("wm-nobody")
    check.locator("button[type=submit]").click()
    expect(page.get_by_test_id("decision-reason")).to_contain_text("未知")


def test_operations_reads_but_does_not_edit(page, log_in):
    log_in("demo.ops")
    page.goto("/compliance/products")
    expect(page.locator("main h1")).to_have_text("产品与适当性")
    expect(page.get_by_test_id("product-form")).to_have_count(0)
    expect(page.get_by_test_id("check-form")).to_be_visible()
