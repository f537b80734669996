"""The labelled compliance corpus (src/siyu/compliance/data/corpus, docs/compliance-corpus.md).

These tests validate the data only — schema, balance, coverage and the separation of the
development and test parts. They do not run the wording review; `siyu compliance eval` does that.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).resolve().parents[2] / "src" / "siyu" / "compliance" / "data" / "corpus"
PARTS = {"dev": CORPUS_DIR / "dev.jsonl", "test": CORPUS_DIR / "test.jsonl"}

KEYS = {"id", "text", "label", "expected", "category", "firm_type", "channel", "speaker", "rule", "reason"}
LABELS = {"violation", "ok"}
EXPECTED = {"block", "review", "pass"}
CATEGORIES = {
    "principal_guarantee",
    "return_promise",
    "past_performance",
    "superlative",
    "pressure",
    "disparagement",
    "insurance_as_deposit",
    "suitability_evasion",
    "purchase_incentive",
    "loan_promise",
    "illegal_fundraising",
    "anti_fraud",
    "securities_advice",
    "private_fund_promotion",
}
# Issue 11's severity rule: superlatives and pressure words are "review" unless they claim something
# about a product's return or safety; every other kind of violation blocks.
MAY_BE_REVIEW = {"superlative", "pressure"}
FIRM_TYPES = {"bank", "broker", "fund", "insurance", "consumer_finance", "general"}
CHANNELS = {"welcome", "broadcast", "group", "one_on_one", "moments", "sms", "customer"}
SPEAKERS = {"advisor", "firm", "customer"}


def _load(part: str) -> list[dict]:
    rows = []
    with PARTS[part].open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.endswith("\n"), f"{part}.jsonl line {n}: no newline at the end"
            assert line.strip(), f"{part}.jsonl line {n}: empty line"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                pytest.fail(f"{part}.jsonl line {n}: not JSON ({exc})")
            assert isinstance(row, dict), f"{part}.jsonl line {n}: not a JSON object"
            row["_line"] = n
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict]]:
    return {part: _load(part) for part in PARTS}


def _where(part: str, row: dict) -> str:
    return f"{part}.jsonl line {row['_line']} ({row.get('id')})"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_line_has_exactly_the_schema_keys_and_allowed_values(corpus, part):
    for row in corpus[part]:
        where = _where(part, row)
        assert set(row) - {"_line", "previous"} == KEYS, f"{where}: keys {sorted(set(row) - {'_line'})}"
        if "previous" in row:
            # The message this one answers (a customer's question): the conversation decides the label.
            previous = row["previous"]
            assert isinstance(previous, str) and previous == previous.strip() and previous, f"{where}: previous"
            assert len(previous) <= 150, f"{where}: previous length {len(previous)}"
            assert row["speaker"] != "customer", f"{where}: previous is for answers to a customer"
        assert row["label"] in LABELS, f"{where}: label {row['label']!r}"
        assert row["expected"] in EXPECTED, f"{where}: expected {row['expected']!r}"
        assert row["category"] in CATEGORIES | {"none"}, f"{where}: category {row['category']!r}"
        assert row["firm_type"] in FIRM_TYPES, f"{where}: firm_type {row['firm_type']!r}"
        assert row["channel"] in CHANNELS, f"{where}: channel {row['channel']!r}"
        assert row["speaker"] in SPEAKERS, f"{where}: speaker {row['speaker']!r}"
        for key in ("id", "text", "rule", "reason"):
            assert isinstance(row[key], str) and row[key].strip(), f"{where}: {key} empty"
        assert row["text"] == row["text"].strip(), f"{where}: text has surrounding whitespace"
        assert 10 <= len(row["text"]) <= 150, f"{where}: text length {len(row['text'])}"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_label_category_and_expected_agree(corpus, part):
    for row in corpus[part]:
        where = _where(part, row)
        if row["label"] == "ok":
            assert row["category"] == "none", f"{where}: an ok message has category {row['category']!r}"
            assert row["expected"] == "pass", f"{where}: an ok message expects {row['expected']!r}"
        else:
            assert row["category"] in CATEGORIES, f"{where}: a violation without a category"
            assert row["expected"] != "pass", f"{where}: a violation expected to pass"
            if row["expected"] == "review":
                assert row["category"] in MAY_BE_REVIEW, (
                    f"{where}: only superlatives and pressure may be review, not {row['category']}"
                )


@pytest.mark.parametrize("part", sorted(PARTS))
def test_ids_are_numbered_per_part_and_unique(corpus, part):
    ids = [row["id"] for row in corpus[part]]
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    assert not dupes, f"{part}.jsonl: duplicate ids {dupes}"
    for row in corpus[part]:
        prefix, _, number = row["id"].partition("-")
        assert prefix == part and number.isdigit() and len(number) == 4, f"{_where(part, row)}: id format"


def test_no_message_appears_twice_in_the_corpus(corpus):
    seen: dict[str, str] = {}
    for part, rows in corpus.items():
        for row in rows:
            key = "".join(row["text"].split())
            assert key not in seen, f"{_where(part, row)} repeats {seen[key]}"
            seen[key] = _where(part, row)


def test_size_and_split(corpus):
    dev, test = len(corpus["dev"]), len(corpus["test"])
    assert dev + test >= 700, f"only {dev + test} messages"
    # The test part gives the final figures: it stays large enough for per-category figures to mean
    # something (at least 400 messages, at least 15 violations of each category). The development part
    # grows as new kinds are written for tuning; it never takes lines from the test part.
    assert test >= 400, f"the test part has only {test} messages"
    per_category = Counter(row["category"] for row in corpus["test"] if row["label"] == "violation")
    thin = sorted(c for c in CATEGORIES if per_category[c] < 15)
    assert not thin, f"the test part has fewer than 15 violations of {thin}"
    assert dev >= 300, f"the development part has only {dev} messages"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_labels_are_roughly_balanced(corpus, part):
    labels = Counter(row["label"] for row in corpus[part])
    share = labels["violation"] / sum(labels.values())
    assert 0.45 <= share <= 0.55, f"{part}: {dict(labels)}"


def test_every_category_has_at_least_25_cases_and_appears_in_both_parts(corpus):
    overall = Counter(row["category"] for rows in corpus.values() for row in rows)
    thin = {c: overall[c] for c in CATEGORIES if overall[c] < 25}
    assert not thin, f"categories with fewer than 25 cases: {thin}"
    for part, rows in corpus.items():
        missing = CATEGORIES - {row["category"] for row in rows}
        assert not missing, f"{part}: no case of {sorted(missing)}"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_firm_type_channel_and_speaker_is_represented(corpus, part):
    rows = corpus[part]
    assert FIRM_TYPES == {row["firm_type"] for row in rows}
    assert CHANNELS == {row["channel"] for row in rows}
    assert SPEAKERS == {row["speaker"] for row in rows}
    customers = sum(row["speaker"] == "customer" for row in rows)
    assert customers / len(rows) >= 0.05, f"{part}: only {customers} customer messages"
    # Hard negatives must overlap the violations' topics, including customers' own questions.
    assert any(row["speaker"] == "customer" and row["label"] == "ok" for row in rows)
    # Review cases exist for both kinds that can be review.
    assert MAY_BE_REVIEW == {row["category"] for row in rows if row["expected"] == "review"}


def _trigrams(text: str) -> set[str]:
    s = "".join(text.split())
    return {s[i : i + 3] for i in range(len(s) - 2)}


def test_test_part_is_not_a_paraphrase_of_the_development_part(corpus):
    """Tuning looks at dev only; a test line that is a near copy of a dev line would leak it."""
    dev = [(row, _trigrams(row["text"])) for row in corpus["dev"]]
    for row in corpus["test"]:
        grams = _trigrams(row["text"])
        for other, other_grams in dev:
            overlap = len(grams & other_grams) / max(1, len(grams | other_grams))
            assert overlap < 0.5, f"{_where('test', row)} is close to {_where('dev', other)} ({overlap:.2f})"
