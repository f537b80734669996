"""The statistical second opinion (classifier.py): it may only raise "review" on a message the rules let pass,
never clears or lowers a rule's finding, explains itself (category, score, the n-grams that weighed most, a span
of the original text), stays quiet on ordinary chat, customers' questions and standard disclosures, and is
trained reproducibly by `siyu compliance train` with a threshold picked on out-of-fold scores."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from siyu.bench import scan as bench
from siyu.compliance import classifier
from siyu.compliance.review import review_text, scan_many

# Our own sentences (not lines of the labelled corpus): paraphrased promises no rule lists.
PARAPHRASES = ["本金托底了，您放一百个心，到期拿钱走人", "这个产品年年都有钱拿，比存银行划算多了，收益妥妥的"]


def model_findings(text: str, **kw):
    return [f for f in review_text(text, **kw).findings if f.source == "model"]


def test_the_shipped_model_loads_and_has_a_threshold():
    m = classifier.default_model()
    assert m is not None and np.isfinite(m.threshold) and len(m.categories) >= 10


def test_opinions_are_review_only_and_explained():
    m = classifier.default_model()
    ops = m.opinions(PARAPHRASES)
    assert ops, "the model holds none of the paraphrased promises"
    for i, op in ops.items():
        assert 0.5 < op.score <= 1.0 and op.category in m.categories
        assert op.reasons and all(r in PARAPHRASES[i] for r in op.reasons)
        assert PARAPHRASES[i][op.start:op.end] == op.reasons[0]


def test_a_model_finding_in_a_review_names_rule_category_span_and_reason():
    text = "您放心，这个产品收益年年都有，本金也不用操心，跟存定期差不多，还比定期多，买就对了"
    held = scan_many([text], detectors=False)[0]
    rules_only = scan_many([text], detectors=False, second_opinion=False)[0]
    model = [f for f in held if f.source == "model"]
    if rules_only:  # the rules already hold it: the model adds nothing
        assert not model
    else:
        assert model and all(f.severity == "review" for f in model)
        f = model[0]
        assert f.rule and f.category and text[f.start:f.end] == f.match and "依据" in (f.note or "")


def test_it_never_clears_or_lowers_a_rule_finding():
    for text in ["这款理财保本保息，稳赚不赔", "亏了公司兜底", "征信不好也能贷，秒批"]:
        with_model = scan_many([text], detectors=False)[0]
        without = scan_many([text], detectors=False, second_opinion=False)[0]
        assert without and list(with_model) == list(without)


@pytest.mark.parametrize("text", [
    "本产品不保本。理财非存款，产品有风险，投资须谨慎",
    "您好，欢迎添加您的专属顾问，有任何问题随时联系我。",
    "基金有风险，投资需谨慎，过往业绩不代表未来表现",
])
def test_disclosures_and_greetings_pass(text):
    assert review_text(text).verdict == "pass"


def test_a_customers_question_is_never_held_by_the_model():
    text = "我想问一下这个理财本金安全吗，年年都有收益吗？"
    assert not model_findings(text, speaker="customer")


def test_ordinary_service_chat_is_not_the_models_to_judge():
    rng = random.Random(7)
    lines = [bench._fill(rng, rng.choice(bench._TEMPLATES)) for _ in range(3000)]
    held = [t for t, f in zip(lines, scan_many(lines, detectors=False), strict=True) if f]
    assert held == []


def test_a_lexicon_the_corp_left_off_is_not_raised_by_the_model():
    text = "朋友圈看到的，说有个渠道可以帮忙做资料，下款很快，额度也高，有兴趣的可以聊聊"
    for f in model_findings(text, lexicons=frozenset({"insurance"})):
        assert f.category not in ("loan_promise", "private_fund_promotion")


def test_negation_marks_the_ngrams_that_follow_it():
    from siyu.compliance.normalize import normalize_clauses

    codes = normalize_clauses("不保本。保本").codes
    marked = classifier.negated_positions(codes)
    assert marked[1] and marked[2] and not marked[4] and not marked[5]


def test_the_threshold_keeps_the_target_specificity_on_out_of_fold_scores():
    scores = np.array([-3.0, -2.0, -1.0, 0.5, 2.0, 3.0, 0.2, 4.0])
    violation = np.array([False, False, False, False, True, True, True, True])
    th = classifier.pick_threshold(scores, violation, 0.75)
    figs = classifier.figures_at(scores, violation, th)
    assert figs["specificity"] == 0.75 and figs["recall"] == 1.0  # the lowest threshold that keeps 3 of 4 ok below


def _lines(n: int) -> list[str]:
    rng = random.Random(3)
    viol = ["保证年化{}%，到期本金一分不少", "亏了我们兜底，稳拿{}个点", "最少{}%的收益，跑不掉的"]
    ok = ["基金有风险，近一年收益{}%，过往业绩不代表未来表现", "本行{}年期定期存款利率以公告为准",
          "第{}期理财课今晚八点开讲"]
    out = []
    for i in range(n):
        kind = viol if i % 2 else ok
        out.append(json.dumps({"id": f"x-{i}", "text": rng.choice(kind).format(rng.randint(2, 9)),
                               "label": "violation" if i % 2 else "ok",
                               "category": "return_promise" if i % 2 else "none"}, ensure_ascii=False))
    return out


def test_train_command_is_reproducible_and_refuses_the_test_part(tmp_path):
    data = tmp_path / "set.jsonl"
    data.write_text("\n".join(_lines(60)) + "\n", encoding="utf-8")
    outs = []
    for k in range(2):
        out = tmp_path / f"m{k}.npz"
        proc = subprocess.run([sys.executable, "-m", "siyu.cli", "compliance", "train", str(data), "--out", str(out),
                               "--folds", "3"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["examples"] == 60 and set(report["cv"]) >= {"recall", "specificity", "threshold"}
        outs.append(out.read_bytes())
    m0 = classifier.Model.load(tmp_path / "m0.npz")
    m1 = classifier.Model.load(tmp_path / "m1.npz")
    assert m0.threshold == m1.threshold and np.array_equal(m0.w, m1.w)
    bad = tmp_path / "test.jsonl"
    bad.write_text(data.read_text(encoding="utf-8"), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "siyu.cli", "compliance", "train", str(bad), "--out",
                           str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "test part" in proc.stderr
