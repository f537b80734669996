"""The home page per role in a real browser: each demo role sees its section of today's work, and a
figure followed to its list shows as many rows as it said. Screenshots per role (desktop)."""

from __future__ import annotations

import re

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
