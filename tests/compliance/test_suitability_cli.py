"""`siyu compliance suitability`: one JSON decision; 0 either way, 2 on bad input naming the option."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from siyu.compliance.cli import app

runner = CliRunner()


def test_levels():
    result = runner.invoke(app, ["suitability", "--customer", "C2", "--product", "R3"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["eligible"] is False and record["reason_code"] == "level_below"
    assert (record["customer_level"], record["product_level"]) == ("C2", "R3") and "R3" in record["reason"]
    ok = json.loads(runner.invoke(app, ["suitability", "--customer", "C4", "--product", "R3"]).stdout)
    assert ok["eligible"] is True
    assert json.loads(runner.invoke(app, ["suitability", "--product", "R1"]).stdout)["eligible"] is True


@pytest.mark.parametrize(("args", "option"), [
    (["--customer", "C9", "--product", "R3"], "--customer"),
    (["--customer", "C2", "--product", "X"], "--product"),
    (["--customer", "C2"], "--product"),
    (["--corp", "x", "--customer-ref", "a"], "--product-code"),
    (["--customer", "C2", "--product", "R2", "--corp", "x"], "--customer"),
])
def test_bad_input_exits_2_naming_the_option(args, option):
    result = runner.invoke(app, ["suitability", *args])
    assert result.exit_code == 2
    assert option in result.output


def test_from_the_database(database_url):
    from siyu.compliance import suitability
    from siyu.db import session_scope
    from siyu.tenancy import service

    with session_scope() as s:
        corp = service.create_corp(s, slug="cli-suit", name="命令行银行")
        suitability.create_product(s, corp_id=corp.id, actor="t", code="F3", name="基金", product_type="fund",
                                   risk_level="R3")
        suitability.record_assessment(s, corp_id=corp.id, actor="t", customer_ref="wm-cli", level="C3",
                                      source="manual")
    try:
        result = runner.invoke(app, ["suitability", "--corp", "cli-suit", "--customer-ref", "wm-cli",
                                     "--product-code", "F3"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert record["eligible"] is True and record["customer_ref"] == "wm-cli" and record["product_code"] == "F3"
        missing = runner.invoke(app, ["suitability", "--corp", "cli-suit", "--customer-ref", "wm-cli",
                                      "--product-code", "NOPE"])
        assert missing.exit_code == 2 and "--product-code" in missing.output
        no_corp = runner.invoke(app, ["suitability", "--corp", "nope-corp", "--customer-ref", "a",
                                      "--product-code", "F"])
        assert no_corp.exit_code == 2 and "--corp" in no_corp.output
    finally:
        with session_scope() as s:
            from siyu.tenancy.models import Corp

            s.delete(s.query(Corp).filter_by(slug="cli-suit").one())
