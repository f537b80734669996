"""Evaluation of the wording review on labelled messages (标注语料评测).

A labelled file is JSON lines, one message each:
    {"id", "text", "label": "violation"|"ok", "expected": "block"|"review"|"pass", "category",
     "speaker": "advisor"|"firm"|"customer", "previous": "…" (optional), "firm_type", "channel", "rule", "reason"}
(`expected`, `category`, `speaker`, `previous` and the rest are optional.) A violation counts as
caught when the verdict is not "pass"; an ok message as cleared when it is "pass".

Figures: recall (caught violations / violations), specificity (cleared ok / ok), precision (caught
violations / everything held), severity agreement (verdict == expected, over lines that have
`expected`), per category (recall for its violations, specificity for its ok lines), and every miss
and false alarm with its id, text and the findings. `compare` runs two dictionaries over the same
lines and lists what changes (new hits, lost hits): the regression test of a dictionary draft.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from siyu.compliance.matcher import Dictionary
from siyu.compliance.review import Finding, scan_many, verdict_of

LABELS = ("violation", "ok")
VERDICTS = ("block", "review", "pass")
SPEAKERS = ("advisor", "firm", "customer")
MAX_TEXT = 100_000


@dataclass(frozen=True, slots=True)
class Labelled:
    id: str
    text: str
    label: str
    expected: str | None = None
    category: str = ""
    speaker: str | None = None
    previous: str | None = None
    firm_type: str = ""


class LabelledFileError(ValueError):
    """Lines of a labelled file that cannot be read: [(line number, field, message)]."""

    def __init__(self, errors: list[tuple[int, str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"line {n}: {f}: {m}" for n, f, m in errors[:20]))


def parse_labelled(lines: Iterable[str | bytes]) -> list[Labelled]:
    """Read labelled JSON lines; every bad line is reported (line number and field), none is kept."""
    out: list[Labelled] = []
    errors: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for n, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                errors.append((n, "line", "not UTF-8"))
                continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append((n, "line", f"not valid JSON: {exc.msg}"))
            continue
        if not isinstance(obj, dict):
            errors.append((n, "line", "expected a JSON object"))
            continue
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            errors.append((n, "text", "must be a non-empty string"))
            continue
        if len(text) > MAX_TEXT:
            errors.append((n, "text", f"longer than {MAX_TEXT} characters"))
            continue
        label = obj.get("label")
        if label not in LABELS:
            errors.append((n, "label", "must be \"violation\" or \"ok\""))
            continue
        expected = obj.get("expected")
        if expected is not None and expected not in VERDICTS:
            errors.append((n, "expected", "must be \"block\", \"review\" or \"pass\""))
            continue
        speaker = obj.get("speaker")
        if speaker is not None and speaker not in SPEAKERS:
            errors.append((n, "speaker", "must be \"advisor\", \"firm\" or \"customer\""))
            continue
        previous = obj.get("previous")
        if previous is not None and not isinstance(previous, str):
            errors.append((n, "previous", "must be a string"))
            continue
        msg_id = obj.get("id", n)
        if isinstance(msg_id, (dict, list, bool)) or msg_id is None:
            errors.append((n, "id", "must be a string or a number"))
            continue
        msg_id = str(msg_id)
        if msg_id in seen:
            errors.append((n, "id", f"{msg_id!r} appears twice"))
            continue
        seen.add(msg_id)
        category = obj.get("category") or ""
        out.append(Labelled(id=msg_id, text=text, label=label, expected=expected,
                            category=str(category) if label == "violation" else (str(category) or "none"),
                            speaker=speaker, previous=previous, firm_type=str(obj.get("firm_type") or "")))
    if errors:
        raise LabelledFileError(errors)
    return out


def review_labelled(items: Sequence[Labelled], *, dictionary: Dictionary | None = None,
                    lexicons: frozenset[str] | None = None, second_opinion: bool = True) -> list[tuple[Finding, ...]]:
    return scan_many([i.text for i in items], context="outbound", dictionary=dictionary, detectors=False,
                     speakers=[i.speaker for i in items], previous=[i.previous for i in items], lexicons=lexicons,
                     second_opinion=second_opinion)


@dataclass
class Counts:
    violations: int = 0
    caught: int = 0
    ok: int = 0
    cleared: int = 0

    @property
    def recall(self) -> float | None:
        return self.caught / self.violations if self.violations else None

    @property
    def specificity(self) -> float | None:
        return self.cleared / self.ok if self.ok else None


@dataclass
class Report:
    total: Counts = field(default_factory=Counts)
    by_category: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    held: int = 0
    model_caught: int = 0  # violations held by the statistical second opinion alone
    model_false_alarms: int = 0  # ok lines held by it alone
    severity_lines: int = 0
    severity_agree: int = 0
    misses: list[dict] = field(default_factory=list)
    false_alarms: list[dict] = field(default_factory=list)
    severity_mismatches: list[dict] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.total.caught / self.held if self.held else None

    @property
    def severity_agreement(self) -> float | None:
        return self.severity_agree / self.severity_lines if self.severity_lines else None

    def figures(self) -> dict:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "lines": self.total.violations + self.total.ok,
            "violations": self.total.violations,
            "ok": self.total.ok,
            "recall": r(self.total.recall),
            "specificity": r(self.total.specificity),
            "precision": r(self.precision),
            "severity_agreement": r(self.severity_agreement),
            "misses": len(self.misses),
            "false_alarms": len(self.false_alarms),
            "model_only_caught": self.model_caught,
            "model_only_false_alarms": self.model_false_alarms,
            "by_category": {
                cat: {"violations": c.violations, "recall": r(c.recall), "ok": c.ok, "specificity": r(c.specificity)}
                for cat, c in sorted(self.by_category.items())
            },
        }


def _brief(findings: Sequence[Finding]) -> list[dict]:
    return [{"category": f.category, "severity": f.severity, "source": f.source, "match": f.match,
             "note": f.note} for f in findings]


def evaluate(items: Sequence[Labelled], *, dictionary: Dictionary | None = None,
             lexicons: frozenset[str] | None = None, second_opinion: bool = True,
             findings_of: Sequence[Sequence[Finding]] | None = None) -> Report:
    """The figures of `items` reviewed now, or of the findings already made for them (`findings_of`, in order)."""
    report = Report()
    if findings_of is None:
        findings_of = review_labelled(items, dictionary=dictionary, lexicons=lexicons, second_opinion=second_opinion)
    for item, findings in zip(items, findings_of, strict=True):
        verdict = verdict_of(findings)
        held = verdict != "pass"
        report.held += held
        if held and all(f.source == "model" for f in findings):
            if item.label == "violation":
                report.model_caught += 1
            else:
                report.model_false_alarms += 1
        cat = report.by_category[item.category or ("none" if item.label == "ok" else "uncategorised")]
        line = {"id": item.id, "text": item.text, "category": item.category, "expected": item.expected,
                "verdict": verdict, "findings": _brief(findings)}
        if item.label == "violation":
            report.total.violations += 1
            cat.violations += 1
            report.total.caught += held
            cat.caught += held
            if not held:
                report.misses.append(line)
        else:
            report.total.ok += 1
            cat.ok += 1
            report.total.cleared += not held
            cat.cleared += not held
            if held:
                report.false_alarms.append(line)
        if item.expected is not None:
            report.severity_lines += 1
            if verdict == item.expected:
                report.severity_agree += 1
            else:
                report.severity_mismatches.append(line)
    return report


def format_report(report: Report, *, show_severity: bool = False) -> str:
    f = report.figures()

    def pct(x: float | None) -> str:
        return "  –  " if x is None else f"{x * 100:5.1f}%"

    out = [
        f"lines {f['lines']}  violations {f['violations']}  ok {f['ok']}",
        f"recall {pct(f['recall'])}  specificity {pct(f['specificity'])}  precision {pct(f['precision'])}  "
        f"severity agreement {pct(f['severity_agreement'])}",
        f"held by the statistical second opinion alone: {f['model_only_caught']} violation(s), "
        f"{f['model_only_false_alarms']} ok line(s)",
        "",
        f"{'category':<24}{'violations':>11}{'recall':>9}{'ok':>6}{'specificity':>13}",
    ]
    for cat, c in f["by_category"].items():
        out.append(f"{cat:<24}{c['violations']:>11}{pct(c['recall']):>9}{c['ok']:>6}{pct(c['specificity']):>13}")
    for title, rows in (("misses (violations passed)", report.misses),
                        ("false alarms (ok lines held)", report.false_alarms),
                        *((("severity disagreements", report.severity_mismatches),) if show_severity else ())):
        out.append("")
        out.append(f"{title}: {len(rows)}")
        for row in rows:
            why = "; ".join(f"{x['severity']} {x['category']}{' (model)' if x['source'] == 'model' else ''} "
                            f"“{x['match']}”" for x in row["findings"]) or "no finding"
            out.append(f"  {row['id']} [{row['category']}, expected {row['expected']}, got {row['verdict']}] "
                       f"{row['text']}  — {why}")
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Change:
    id: str
    text: str
    label: str
    before: str
    after: str
    gained: tuple[tuple[str, str, str], ...]  # findings (severity, category, match) the draft adds
    lost: tuple[tuple[str, str, str], ...]  # findings the draft no longer raises

    @property
    def kind(self) -> str:
        """"new_hit" (held now, passed before), "lost_hit" (passed now, held before), or "severity"."""
        if self.before == "pass" and self.after != "pass":
            return "new_hit"
        if self.before != "pass" and self.after == "pass":
            return "lost_hit"
        return "severity"

    @property
    def good(self) -> bool:
        """Whether the change agrees with the label."""
        if self.kind == "new_hit":
            return self.label == "violation"
        if self.kind == "lost_hit":
            return self.label == "ok"
        return True


def _keys(findings: Sequence[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.category, f.match) for f in findings]


def compare(items: Sequence[Labelled], *, current: Dictionary, draft: Dictionary,
            lexicons: frozenset[str] | None = None) -> tuple[Report, Report, list[Change]]:
    """The labelled lines reviewed with the dictionary in force and with the draft: both reports and
    every line whose verdict or findings differ."""
    # The dictionary's regression test: the rules and the dictionary alone (the statistical second opinion does
    # not depend on the dictionary, and would only blur what the draft changes).
    a = review_labelled(items, dictionary=current, lexicons=lexicons, second_opinion=False)
    b = review_labelled(items, dictionary=draft, lexicons=lexicons, second_opinion=False)
    changes: list[Change] = []
    for item, fa, fb in zip(items, a, b, strict=True):
        ka, kb = _keys(fa), _keys(fb)
        va, vb = verdict_of(fa), verdict_of(fb)
        if va == vb and sorted(ka) == sorted(kb):
            continue
        changes.append(Change(id=item.id, text=item.text, label=item.label, before=va, after=vb,
                              gained=tuple(k for k in kb if k not in ka), lost=tuple(k for k in ka if k not in kb)))
    before = evaluate(items, dictionary=current, lexicons=lexicons, second_opinion=False)
    return before, evaluate(items, dictionary=draft, lexicons=lexicons, second_opinion=False), changes
