"""`siyu bench segment` runs at a small size and its count agrees with its baselines (the bench fails
otherwise); the real run is a million customers and ten million events and orders."""

from __future__ import annotations

import os

import pytest

from siyu.bench import segment
from siyu.config import get_settings


@pytest.fixture
def own_installation():
    """The benchmark points this process at an installation of its own: put the test database's back."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def test_segment_bench_small(own_installation):
    result = segment.main(["--customers", "3000", "--events", "30000", "--reps", "1"])
    assert result["customers"] == 3000
    assert result["timeline_events"] + result["orders"] == 30000
    assert result["tag_links"] == 6000 and result["risk_assessments"] > 2000
    assert result["count"] > 0  # the compound segment is not empty at this size either
    for key in ("count_seconds", "baseline_handwritten_seconds", "baseline_all_exists_seconds",
                "baseline_one_by_one_seconds"):
        assert result[key] >= 0
