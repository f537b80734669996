"""`siyu bench customers` runs and reports its figures (a few thousand customers here; the real run is a million)."""

from __future__ import annotations

import os

import pytest

from siyu.bench import customers
from siyu.config import get_settings


@pytest.fixture
def own_installation():
    """The benchmark points this process at an installation of its own (environment and keys): put
    the test database's back afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def test_customers_bench_small(own_installation):
    result = customers.main(["--customers", "3000", "--advisors", "6", "--reps", "2", "--baseline-reps", "1",
                             "--batch", "1000"])
    assert result["customers"] == 3000 and result["follows"] >= 3000 and result["tag_links"] > 0
    assert set(result["queries"]) >= {"list_first_page", "filter_stage", "filter_advisor", "filter_tag",
                                      "filter_state_prefix", "filter_added_range", "filter_combined", "search_name",
                                      "search_part_of_name",
                                      "customer_360"}
    for figures in result["queries"].values():
        assert figures["p95_ms"] >= figures["p50_ms"] > 0 and figures["baseline_plain_p50_ms"] > 0
    assert result["p95_ms"] > 0 and result["baseline_plain_p95_ms"] > 0
