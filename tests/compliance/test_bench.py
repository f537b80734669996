"""`siyu bench scan` runs and reports its figures (a small corpus here; the real run is 10 MB)."""

from __future__ import annotations

from siyu.bench import scan


def test_scan_bench_small():
    result = scan.main(["--mb", "0.3", "--entries", "2100", "--baseline-mb", "0.05", "--workers", "1"])
    assert result["entries"] == 2100
    assert result["corpus_mb"] >= 0.3
    assert result["findings"] > 0
    for key in ("mb_per_s", "baseline_regex_mb_per_s", "speedup"):
        assert result[key] > 0
