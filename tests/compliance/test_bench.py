"""`siyu bench scan` runs and reports its figures (a small corpus here; the real run is 10 MB)."""

from __future__ import annotations

from siyu.bench import scan


def test_scan_bench_small():
    result = scan.main(["--mb", "0.3", "--entries", "2100", "--runs", "1", "--workers", "1"])
    assert result["entries"] == 2100
    assert result["corpus_mb"] >= 0.3
    assert result["findings"] > 0
    for key in ("mb_per_s", "mb_per_s_1_core", "baseline_ac_mb_per_s", "ratio_to_ac"):
        assert result[key] > 0
    # The baseline does the same work on the same text: it finds the phrases the corpus holds.
    assert result["baseline_matches"] > 0


def test_scan_bench_says_where_the_time_goes():
    from siyu.compliance.review import STAGES

    result = scan.main(["--mb", "0.2", "--runs", "1", "--workers", "1"])
    assert list(result["stages_cpu_ms"]) == list(STAGES)
    assert sum(result["stages_cpu_ms"].values()) > 0
