"""`siyu bench import` runs end to end on a small file and reports its figures (the real run is
100,000 rows)."""

from __future__ import annotations

import importlib
import os

import pytest

from siyu import db as siyu_db
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


def test_import_bench_small(own_installation):
    bench = importlib.import_module("siyu.bench.import")
    result = bench.main(["--rows", "3000", "--advisors", "5", "--xlsx", "--bad-rows-file", "500"])
    for kind in ("csv", "xlsx"):
        assert result[kind]["imported"] == 3000 and result[kind]["bad"] == 0 and result[kind]["rows_per_s"] > 0
    check = result["bad_rows_check"]
    # 10 bad rows, in turn a malformed phone, an unknown advisor and a repeated phone: 3 duplicates.
    assert check == {"rows": 500, "bad": 10, "expected_bad": 10, "duplicates": 3, "leads_before_skip": 0,
                     "import_all_refused": True, "imported_after_skip": 490, "ok": True}
    assert result["baseline"]["rows"] == 3000 and "meets_target" in result
