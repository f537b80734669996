"""Cross-validation of the whole review (crossval.py, `siyu compliance cv`): every line is reviewed by a model
that never saw it, `classifier.using` puts a model in force only inside its block, and the test part is refused."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from siyu.cli import app
from siyu.compliance import classifier
from siyu.compliance.crossval import cross_validate_engine, folds_of
from siyu.compliance.evaluation import Labelled
from siyu.compliance.review import scan_many

# Our own lines: a violation kind no rule lists (a membership card that pays back monthly) and plain service chat.
BAD = ["会员卡充值{n}万，每个月返您{m}百，养老钱躺着就来了", "入会交{n}万，每月到手{m}百块，第三年本金还给您"]
GOOD = ["您好，网点{n}号起调整营业时间，周末{m}点开门，欢迎来办理", "提醒您第{n}期课程周{m}晚上开讲，记得准时进群"]


def lines() -> list[Labelled]:
    out = []
    for k in range(24):
        n, m = k % 7 + 1, k % 5 + 2
        out.append(Labelled(f"v{k}", BAD[k % 2].format(n=n, m=m), "violation", "block", "illegal_fundraising",
                            "advisor"))
        out.append(Labelled(f"o{k}", GOOD[k % 2].format(n=n, m=m), "ok", "pass", "", "advisor"))
    return out


def test_folds_are_stratified_and_deterministic():
    items = lines()
    a, b = folds_of(items, 4, 7), folds_of(items, 4, 7)
    assert (a == b).all()
    for f in range(4):
        labels = [i.label for i, k in zip(items, a, strict=True) if k == f]
        assert labels.count("violation") == labels.count("ok") == 6


def test_every_line_is_reviewed_by_a_model_trained_without_it():
    items = lines()
    cv = cross_validate_engine(items, folds=3)
    assert len(cv.findings) == len(items) and len(cv.thresholds) == 3
    figures = cv.report.figures()
    assert figures["lines"] == 48 and figures["specificity"] == 1.0
    # the out-of-fold models learnt the kind from the other folds: violations held by the model alone
    assert figures["model_only_caught"] > 0


def test_using_puts_a_model_in_force_only_inside_the_block():
    shipped = classifier.default_model()
    with classifier.using(None):
        assert classifier.default_model() is None
        text = "本金托底了，您放一百个心，到期拿钱走人，年年都有钱拿"
        assert not [f for f in scan_many([text], detectors=False)[0] if f.source == "model"]
    assert classifier.default_model() is shipped


def test_the_cli_refuses_the_test_part_and_prints_figures(tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text("", encoding="utf-8")
    assert CliRunner().invoke(app, ["compliance", "cv", str(test)]).exit_code == 2
    dev = tmp_path / "lines.jsonl"
    dev.write_text("\n".join(json.dumps({"id": i.id, "text": i.text, "label": i.label, "category": i.category},
                                        ensure_ascii=False) for i in lines()), encoding="utf-8")
    result = CliRunner().invoke(app, ["compliance", "cv", str(dev), "--folds", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["lines"] == 48 and out["folds"] == 2 and len(out["thresholds"]) == 2
