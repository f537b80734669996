"""`siyu compliance eval FILE`: recall, specificity, precision overall and per category, every miss and
false alarm with its id, thresholds that fail the run, and bad lines named."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from siyu.compliance.cli import app
from siyu.compliance.evaluation import evaluate, parse_labelled

LINES = [
    {"id": "v-1", "text": "这款理财保本保息", "label": "violation", "expected": "block",
     "category": "principal_guarantee"},
    {"id": "v-2", "text": "年化5%稳稳的", "label": "violation", "expected": "block", "category": "return_promise"},
    {"id": "v-3", "text": "这是一个平平无奇的句子", "label": "violation", "expected": "review", "category": "pressure"},
    {"id": "o-1", "text": "理财非存款，产品有风险", "label": "ok", "expected": "pass"},
    {"id": "o-2", "text": "这个产品保本吗？", "label": "ok", "expected": "pass", "speaker": "customer"},
    {"id": "o-3", "text": "限时抢购，额度有限", "label": "ok", "expected": "pass"},
]


def _file(tmp_path, rows, name="set.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


def test_figures_and_every_miss_and_false_alarm(tmp_path):
    out = CliRunner().invoke(app, ["eval", str(_file(tmp_path, LINES))])
    assert out.exit_code == 0, out.output
    assert "recall  66.7%" in out.output and "specificity  66.7%" in out.output
    assert "precision  66.7%" in out.output
    assert "v-3 [pressure, expected review, got pass] 这是一个平平无奇的句子" in out.output
    assert "o-3 [none, expected pass, got review] 限时抢购，额度有限" in out.output
    assert "principal_guarantee" in out.output and "return_promise" in out.output
    as_json = json.loads(CliRunner().invoke(app, ["eval", str(_file(tmp_path, LINES)), "--json"]).output)
    assert as_json["miss_ids"] == ["v-3"] and as_json["false_alarm_ids"] == ["o-3"]
    assert as_json["by_category"]["principal_guarantee"] == {"violations": 1, "recall": 1.0, "ok": 0,
                                                             "specificity": None}
    assert as_json["severity_agreement"] == round(4 / 6, 4)


def test_thresholds_fail_the_run(tmp_path):
    path = _file(tmp_path, LINES)
    ok = CliRunner().invoke(app, ["eval", str(path), "--min-recall", "0.6", "--min-specificity", "0.6"])
    assert ok.exit_code == 0
    low = CliRunner().invoke(app, ["eval", str(path), "--min-recall", "0.95"])
    assert low.exit_code == 1 and "recall 0.6667 < 0.95" in low.output
    assert CliRunner().invoke(app, ["eval", str(path), "--min-specificity", "0.9"]).exit_code == 1


def test_bad_lines_are_named_and_nothing_is_evaluated(tmp_path):
    path = _file(tmp_path, [LINES[0], "{not json", {"id": "x", "text": "好", "label": "bad"},
                            {"id": "v-1", "text": "重复", "label": "ok"}, {"id": "y", "text": "好", "label": "ok",
                                                                          "speaker": "robot"}])
    out = CliRunner().invoke(app, ["eval", str(path)])
    assert out.exit_code == 2
    for expected in ("line 2: line: not valid JSON", "line 3: label:", "line 4: id: 'v-1' appears twice",
                     "line 5: speaker:"):
        assert expected in out.output
    assert CliRunner().invoke(app, ["eval", str(tmp_path / "missing.jsonl")]).exit_code == 2
    assert CliRunner().invoke(app, ["eval", str(path), "--lexicon", "casino"]).exit_code == 2


def test_evaluate_counts_a_review_as_caught():
    report = evaluate(parse_labelled([json.dumps(x, ensure_ascii=False) for x in LINES]))
    assert (report.total.violations, report.total.caught, report.total.ok, report.total.cleared) == (3, 2, 3, 2)
    assert report.held == 3
