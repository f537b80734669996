"""`siyu bench broadcast` runs end to end at a small size (the real run is 1,000,000 customers): the
plan's reasons add up to the segment, and every reason the data seeds shows up."""

from __future__ import annotations

import os

import pytest

from siyu import db as siyu_db
from siyu.bench import broadcast
from siyu.config import get_settings


@pytest.fixture
def own_installation(database_url):
    """The benchmark points this process at an installation of its own: put the test database back."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        siyu_db.configure(database_url)


def test_broadcast_bench_small(own_installation):
    result = broadcast.main(["--customers", "3000", "--advisors", "5", "--reps", "1"])
    assert result["reasons_add_up"] and 0 < result["recipients"] < result["segment"] < 3000
    assert {"not_friend", "no_advisor", "opted_out", "holdout_global", "holdout_broadcast", "unsuitable",
            "capped_day"} <= set(result["excluded"])
    assert result["seconds"] > 0 and result["baseline_segment_count_seconds"] >= 0 and result["peak_rss_mb"] > 0
