"""`siyu analytics import` and `siyu report …` as an operator runs them, on an installation of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siyu.migrate import upgrade


@pytest.fixture
def siyu(tmp_path):
    url = f"sqlite:///{tmp_path / 'siyu.db'}"
    upgrade("head", url)
    env = dict(os.environ, SIYU_DATA_DIR=str(tmp_path / "var"), SIYU_DATABASE_URL=url, COLUMNS="200",
               NO_COLOR="1", TERM="dumb")
    env.pop("SIYU_ANALYTICS_DUCKDB", None)
    env.pop("SIYU_CLICKHOUSE_URL", None)
    script = Path(sys.executable).with_name("siyu")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=120)

    return run


LINES = [
    {"customer_id": 1, "type": "customer.added", "ts": "2026-03-02T10:00:00+08:00", "channel": "ad",
     "campaign": "spring"},
    {"customer_id": 1, "type": "customer.verified", "ts": "2026-03-02T10:05:00+08:00"},
    {"customer_id": 1, "type": "order.invested", "ts": "2026-03-04T10:00:00+08:00", "amount_fen": 1_000_000},
    {"customer_id": 1, "type": "order.matured", "ts": "2026-04-04T10:00:00+08:00", "amount_fen": 1_000_000},
    {"customer_id": 1, "type": "order.invested", "ts": "2026-04-06T10:00:00+08:00", "amount_fen": 1_000_000},
    {"customer_id": 1, "type": "campaign.reward_paid", "ts": "2026-03-03T10:00:00+08:00", "amount_fen": 801},
    {"customer_id": "b-2", "type": "customer.added", "ts": "2026-03-03T10:00:00+08:00", "channel": "ad"},
    {"customer_id": "b-2", "type": "customer.verified", "ts": "2026-03-20T10:00:00+08:00"},
]


def test_import_then_report(siyu, tmp_path):
    data = tmp_path / "events.jsonl"
    bad = [*LINES[:3], {"customer_id": 9, "type": "order.invested", "ts": "2026-03-04 10:00"}, *LINES[3:]]
    data.write_text("\n".join(json.dumps(o) for o in bad) + "\n")
    refused = siyu("analytics", "import", str(data))
    assert refused.returncode == 1
    assert "line 4: ts: no UTC offset" in refused.stderr and "nothing loaded" in refused.stderr
    loaded = siyu("analytics", "import", str(data), "--skip-bad")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.startswith("8 events loaded, 0 already there, 1 bad lines skipped")
    assert siyu("analytics", "import", str(data), "--skip-bad").stdout.startswith("0 events loaded, 8 already there")

    funnel = siyu("report", "funnel", "--steps", "customer.added,customer.verified,order.invested",
                  "--window-days", "7", "--json")
    assert funnel.returncode == 0, funnel.stderr
    assert json.loads(funnel.stdout) == {"steps": [{"name": "customer.added", "customers": 2},
                                                   {"name": "customer.verified", "customers": 1},
                                                   {"name": "order.invested", "customers": 1}]}
    for engine in ("sql", "clickhouse"):
        other = siyu("report", "funnel", "--steps", "customer.added,customer.verified,order.invested",
                     "--window-days", "7", "--json", "--engine", engine)
        assert json.loads(other.stdout) == json.loads(funnel.stdout), other.stderr

    cac = json.loads(siyu("report", "cac", "--by", "channel", "--json").stdout)
    assert cac == {"rows": [{"channel": "ad", "cost_fen": 801, "customers": 2, "cac_fen": 401}]}
    by_campaign = json.loads(siyu("report", "cac", "--by", "campaign", "--json").stdout)
    assert by_campaign == {"rows": [{"campaign": "spring", "cost_fen": 801, "customers": 1, "cac_fen": 801},
                                    {"campaign": None, "cost_fen": 0, "customers": 1, "cac_fen": 0}]}
    retention = json.loads(siyu("report", "retention", "--by", "channel", "--weeks", "3", "--json").stdout)
    assert [(r["cohort_week"], r["channel"], r["customers"]) for r in retention["rows"]] == [("2026-03-02", "ad", 2)]
    assert [w["active"] for w in retention["rows"][0]["weeks"]] == [1, 0, 1, 0]
    reinvest = json.loads(siyu("report", "reinvestment", "--days", "30", "--json").stdout)
    assert (reinvest["customers"], reinvest["reinvested_customers"], reinvest["median_days"]) == (1, 1, 2.0)
    ranged = json.loads(siyu("report", "cac", "--by", "channel", "--json", "--from", "2026-03-03").stdout)
    assert ranged["rows"] == [{"channel": "ad", "cost_fen": 801, "customers": 1, "cac_fen": 801}]

    table = siyu("report", "cac", "--by", "channel")
    assert table.returncode == 0 and "cost_fen" in table.stdout and "401" in table.stdout
    assert "2026-04" in siyu("report", "reinvestment", "--days", "30").stdout

    snap = siyu("analytics", "snapshot", "--out", str(tmp_path / "snap"))
    assert snap.returncode == 0 and snap.stdout.startswith("8 events")
    from_snapshot = siyu("report", "cac", "--by", "channel", "--json", "--snapshot", str(tmp_path / "snap"))
    assert json.loads(from_snapshot.stdout) == cac


@pytest.mark.parametrize(("args", "message"), [
    (["funnel", "--steps", "customer.added,order.bought", "--window-days", "7"], "unknown step 'order.bought'"),
    (["funnel", "--steps", "customer.added", "--window-days", "0"], "window_days must be a whole number above 0"),
    (["reinvestment", "--days", "-3"], "days must be a whole number above 0"),
    (["cac", "--by", "advisor"], "by must be channel or campaign"),
    (["cac", "--corp", "no-such-corp"], "--corp: no corp with the code 'no-such-corp'"),
    (["cac", "--from", "2026-13-01"], "--from: not a date"),
    (["cac", "--from", "2026-03-02", "--to", "2026-03-01"], "after --to"),
    (["cac", "--engine", "spark"], "--engine: one of duckdb, clickhouse, sql"),
])
def test_bad_options_are_clear_errors(database_url, args, message):
    from typer.testing import CliRunner

    from siyu.cli import app

    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 2
    assert message in result.stderr
