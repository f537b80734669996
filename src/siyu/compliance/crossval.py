"""Cross-validated figures of the whole wording review (审查引擎的交叉验证).

The rules and the dictionary were written looking at the development corpus, so their figures on it say
little about unseen messages; the statistical second opinion, though, can be measured honestly there: split
the labelled lines into k folds, train the model on k − 1 of them (its threshold picked on ITS training
lines' own out-of-fold scores, exactly as `siyu compliance train` does), and review the held-out fold with
the whole engine using that model. Every line is reviewed once by a model that never saw it.

`siyu compliance cv FILE…` prints the figures, and the lines the rules and the dictionary miss (caught by
the out-of-fold model alone, or not at all) per category, and the false alarms with what raised them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from siyu.compliance import classifier
from siyu.compliance.evaluation import Labelled, Report, evaluate, review_labelled
from siyu.compliance.matcher import Dictionary
from siyu.compliance.review import Finding


def folds_of(items: Sequence[Labelled], folds: int, seed: int) -> np.ndarray:
    """Stratified fold numbers (violations and ok lines spread evenly), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    y = np.array([i.label == "violation" for i in items])
    fold = np.empty(len(items), dtype=int)
    for label in (False, True):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % folds
    return fold


@dataclass
class CrossValidation:
    report: Report
    findings: list[tuple[Finding, ...]]
    thresholds: list[float]


def cross_validate_engine(items: Sequence[Labelled], *, folds: int = 5, seed: int = 7,
                          target: float = classifier.TARGET_SPECIFICITY, dictionary: Dictionary | None = None,
                          lexicons: frozenset[str] | None = None) -> CrossValidation:
    """Every line reviewed by the whole engine with a model trained without its fold."""
    fold = folds_of(items, folds, seed)
    found: list[tuple[Finding, ...]] = [()] * len(items)
    thresholds = []
    for f in range(folds):
        train = [classifier.Example(i.text, i.label == "violation", i.category or "none")
                 for i, k in zip(items, fold, strict=True) if k != f]
        arrays, _report = classifier.train(train, folds=folds, seed=seed, target=target)
        model = classifier.Model(arrays)
        thresholds.append(model.threshold)
        held_out = [j for j in range(len(items)) if fold[j] == f]
        with classifier.using(model):
            out = review_labelled([items[j] for j in held_out], dictionary=dictionary, lexicons=lexicons)
        for j, fs in zip(held_out, out, strict=True):
            found[j] = fs
    return CrossValidation(evaluate(items, findings_of=found), found, thresholds)


def format_cross_validation(items: Sequence[Labelled], cv: CrossValidation) -> str:
    f = cv.report.figures()
    lines = [f"lines {f['lines']}  cross-validated: recall {f['recall'] * 100:.1f}%  specificity "
             f"{f['specificity'] * 100:.1f}%  precision {f['precision'] * 100:.1f}%",
             f"held by the out-of-fold model alone: {f['model_only_caught']} violation(s), "
             f"{f['model_only_false_alarms']} ok line(s); thresholds " + ", ".join(f"{t:.2f}" for t in cv.thresholds),
             "", "violations the rules and the dictionary miss (model: caught by the model alone):"]
    by_cat: dict[str, list[str]] = {}
    for item, fs in zip(items, cv.findings, strict=True):
        if item.label != "violation" or any(x.source != "model" for x in fs):
            continue
        how = "model" if fs else "MISS "
        by_cat.setdefault(item.category, []).append(f"  {how} {item.id} {item.text}")
    for cat in sorted(by_cat):
        lines.append(f"{cat} ({len(by_cat[cat])})")
        lines.extend(by_cat[cat])
    lines += ["", "false alarms:"]
    for item, fs in zip(items, cv.findings, strict=True):
        if item.label == "ok" and fs:
            why = "; ".join(f"{x.severity} {x.source} {x.category} “{x.match}”" for x in fs)
            lines.append(f"  {item.id} {item.text}  — {why}")
    return "\n".join(lines)
