"""The fast scan decides exactly what the plain one does: same findings (rule, category, severity,
span, match, source, note) on every message of the labelled development corpus, of the
benchmark's chat corpus and of random texts mixing dictionary phrases, rule cue words,
separators, pinyin, homophones, traditional forms, figures and batch-boundary characters.

The reference (scan_reference.py) reviews one message at a time with `str.find` and no gating;
the engine reviews a batch with one automaton and vectorised gating. A speed-up that changes a
verdict fails here. The snapshot test also pins the findings the engine gave before the
speed-ups (tests/compliance/data/scan_snapshot.json), as long as the rules it was taken with
are the rules in force, on the development lines it was taken on (lines appended since are not
in it).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.bench import scan as bench
from siyu.compliance.matcher import Dictionary, literal_alternatives, rule_vetoes
from siyu.compliance.normalize import BARRIER
from siyu.compliance.phonetic import LEXICON, spelling_variants
from siyu.compliance.review import scan_many
from siyu.compliance.rules import FIRM_TYPES, RULES
from siyu.compliance.seed import seed_dictionary, seed_entries

from .scan_reference import scan_reference

DEV = Path(__file__).parents[2] / "src/siyu/compliance/data/corpus/dev.jsonl"
SNAPSHOT = Path(__file__).parent / "data" / "scan_snapshot.json"


def shape(results):
    return [[(f.category, f.rule, f.start, f.end, f.match, f.severity, f.source, f.phrase, f.note) for f in r]
            for r in results]


def dev_items() -> list[dict]:
    return [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]


def bench_corpus(n_bytes: int, seed: int = 20240601) -> tuple[Dictionary, list[str]]:
    rng = random.Random(seed)
    entries = seed_entries()
    entries += bench._firm_entries(rng, 2000 - len(entries), {e.phrase for e in entries})
    phrases = [e.phrase for e in entries if e.severity != "allow"]
    return Dictionary(entries, version="bench"), bench.generate_corpus(rng, target_bytes=n_bytes, phrases=phrases)


def both(texts, **kw):
    # The rules and the dictionary: the statistical second opinion is not part of the plain path (it is a pure
    # function of the messages the rules leave, tested in test_classifier.py).
    return shape(scan_many(texts, second_opinion=False, **kw)), shape(scan_reference(texts, **kw))


@pytest.mark.parametrize("lexicons", [None, *[frozenset({t}) for t in FIRM_TYPES]])
def test_dev_corpus_as_evaluated(lexicons):
    items = dev_items()
    fast, ref = both([i["text"] for i in items], context="outbound", detectors=False,
                     speakers=[i.get("speaker") for i in items], previous=[i.get("previous") for i in items],
                     lexicons=lexicons)
    assert sum(map(len, fast)) > 100
    assert fast == ref


@pytest.mark.parametrize("context", ["outbound", "archive"])
def test_dev_corpus_with_detectors(context):
    texts = [i["text"] for i in dev_items()]
    fast, ref = both(texts, context=context, allowed_domains=("mybank.com",))
    assert fast == ref
    # The batch and one message at a time agree too.
    assert [shape(scan_many([t], context=context, allowed_domains=("mybank.com",), second_opinion=False))[0]
            for t in texts] == fast


def test_bench_corpus():
    dictionary, lines = bench_corpus(150_000)
    fast, ref = both(lines, dictionary=dictionary, context="archive", allowed_domains=("mybank.com",))
    assert sum(1 for f in fast if f) > 100
    assert fast == ref


def test_veto_words_satisfy_the_unless_on_their_own():
    vetoes = rule_vetoes(RULES)
    assert vetoes, "no rule has a plain-text alternative in its unless: the veto fast path is idle"
    for word, bits in vetoes.items():
        for i, rule in enumerate(RULES):
            if bits >> i & 1:
                assert rule.unless_regex.search(f"前文{word}后文"), (rule.rule_id, word)
    assert literal_alternatives("过往业绩|不代表(?:其)?未来|历史业绩") == ["过往业绩", "历史业绩"]
    assert literal_alternatives("a(?:b|c)") == []


# --- random texts ----------------------------------------------------------------------------------
def _vocabulary() -> list[str]:
    words = [e.phrase for e in seed_entries()]
    for rule in RULES:
        for group in rule.cues:
            words.extend(group[:6])
        if rule.unless:
            words.extend(literal_alternatives(rule.unless)[:4])  # what rules a rule out
    for lex in LEXICON:
        words.extend(spelling_variants(lex.phrase)[:3])
    words += ["不", "没有", "严禁", "谨防", "吗", "？", "，", "。", "“", "”", "骗局", "过往业绩不代表未来表现",
              "年化", "4.5%", "百分之五", "20%", "138 0013 8000", "11010519491231002X", "加我vx：abc12345",
              "https://evt.example.cn/a", "mybank.com", "红包", "扫码", "[图片]", "饱本", "稳转", "无疯险",
              "bao本", "wfx", "保證收益", "穩賺", "NO.1", "no123", "客户", "理财", "基金", "存款", "保险"]
    return words


VOCAB = _vocabulary()
SEPARATORS = ["", " ", "-", "\u200b", "*", "~", "😊", "\n", "！", "、", BARRIER, "\x00", "Ａ", "１"]
FILLER = st.text(alphabet=st.sampled_from("的了是我您这款产品可以放心买收益风险本金一定会涨5%年"), max_size=4)


@st.composite
def message(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        word = draw(st.sampled_from(VOCAB))
        sep = draw(st.sampled_from(SEPARATORS))
        if sep and draw(st.booleans()) and len(word) > 1:
            word = sep.join(word)  # a separator inside a phrase
        parts.append(draw(FILLER) + word + draw(st.sampled_from(SEPARATORS)))
    return "".join(parts)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(message(), min_size=1, max_size=12),
       context=st.sampled_from(["outbound", "archive"]),
       roles=st.data())
def test_random_batches(texts, context, roles):
    speakers = roles.draw(st.none() | st.lists(st.sampled_from([None, "advisor", "customer"]),
                                               min_size=len(texts), max_size=len(texts)))
    previous = roles.draw(st.none() | st.lists(st.none() | st.sampled_from(["保本吗？", "收益稳定吗？", "好的"]),
                                               min_size=len(texts), max_size=len(texts)))
    fast, ref = both(texts, context=context, speakers=speakers, previous=previous, dictionary=seed_dictionary())
    assert fast == ref


# --- snapshot of the engine before the speed-ups --------------------------------------------------
def rules_fingerprint() -> str:
    """What the findings depend on besides the engine: rules, lexicon and seed dictionary."""
    h = hashlib.sha256()
    for r in RULES:
        h.update(repr((r.rule_id, r.category, r.severity, r.pattern, r.cues, r.unless, sorted(r.firm_types or ()),
                       r.numeric, r.scoped, r.note)).encode())
    for lex in LEXICON:
        h.update(repr(lex).encode())
    for e in seed_entries():
        h.update(repr((e.phrase, e.category, e.severity, e.rule, e.notes)).encode())
    for path in ("rules.py", "detectors.py"):
        h.update((Path(__file__).parents[2] / "src/siyu/compliance" / path).read_bytes())
    return h.hexdigest()


def _short(results):
    """The snapshot's form: the regulation text as a short digest (it repeats on every finding)."""
    return [[[c, hashlib.sha256(rule.encode()).hexdigest()[:12], *rest] for c, rule, *rest in r] for r in results]


def snapshot_now(dev_lines: int | None = None) -> dict:
    # The development corpus grows (new lines are written for tuning); the snapshot pins the findings on the
    # lines it was taken on, the first `dev_lines` of them.
    items = dev_items()[:dev_lines]
    dictionary, lines = bench_corpus(300_000, seed=7)
    return {
        "dev_eval": _short(shape(scan_many([i["text"] for i in items], context="outbound", detectors=False,
                                    speakers=[i.get("speaker") for i in items],
                                    previous=[i.get("previous") for i in items]))),
        "dev_archive": _short(shape(scan_many([i["text"] for i in items], context="archive"))),
        "bench": _short(shape(scan_many(lines, dictionary=dictionary, context="archive",
                                        allowed_domains=("mybank.com",)))),
    }


def test_findings_as_before_the_speed_ups():
    saved = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    if saved["fingerprint"] != rules_fingerprint():
        pytest.skip("the rules changed since the snapshot: the reference tests above still compare the paths; "
                    "refresh with `python -m tests.compliance.test_scan_equivalence` after checking them")
    now = json.loads(json.dumps(snapshot_now(dev_lines=len(saved["dev_eval"])), ensure_ascii=False))
    for key in ("dev_eval", "dev_archive", "bench"):
        assert now[key] == saved[key], key


if __name__ == "__main__":  # refresh the snapshot (only when the rules changed on purpose)
    data = {"fingerprint": rules_fingerprint(), **snapshot_now()}
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
