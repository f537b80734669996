"""`siyu bench analytics` runs and reports its figures (a few thousand events here; the real run is
ten million)."""

from __future__ import annotations

import os

import pytest

from siyu.bench import analytics
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


def test_generated_events_are_exact_and_realistic():
    events = analytics.generate(5000, seed=1)
    assert len(events["ts"]) == 5000 and (events["ts"][1:] >= events["ts"][:-1]).all()
    kinds = {analytics.TYPES[k] for k in set(events["type"].tolist())}
    assert {"customer.added", "customer.verified", "group.joined", "order.invested", "order.matured",
            "order.redeemed", "campaign.reward_paid", "coupon.redeemed", "message.received"} <= kinds
    added = events["type"] == analytics.T["customer.added"]
    assert added.sum() == 500 and (events["channel"][added] >= 0).all()


def test_analytics_bench_small(own_installation):
    result = analytics.main(["--events", "3000", "--reps", "1", "--batch", "700"])
    assert result["events"] == 3000 and result["copied"] == 3000 and result["customers"] == 300
    assert set(result["duckdb_s"]) == set(result["sqlite_s"]) == {"funnel", "retention", "reinvestment", "cac"}
    assert all(v > 0 for v in [*result["duckdb_s"].values(), *result["sqlite_s"].values()])
    assert result["same_answers"] is True
    assert result["funnel"][0] == 300 and result["funnel"][0] >= result["funnel"][-1]
    assert result["load_s"] > 0 and result["cac_rows"] == len(analytics.CHANNELS)
