"""The wording engine: dictionary hits, variants, negation and disclosures, offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.compliance.matcher import DictEntry, Dictionary
from siyu.compliance.review import review_many, review_text, scan_many
from siyu.compliance.seed import load_seed_file, seed_dictionary, seed_entries


def kinds(verdict):
    return [(f.category, f.severity, f.match, f.start, f.end) for f in verdict.findings]


@pytest.mark.parametrize(
    "text, category, severity, match",
    [
        ("本产品保本保息，请放心", "promise", "block", "保本保息"),
        ("稳赚不赔的好产品", "promise", "block", "稳赚不赔"),
        ("这是零风险投资", "promise", "block", "零风险"),
        ("刚性兑付，到期拿钱", "promise", "block", "刚性兑付"),
        ("预期收益4.5%", "promise", "review", "预期收益"),
        ("我们是行业第一的理财", "superlative", "review", "行业第一"),
        ("本行最强产品", "superlative", "review", "最强"),  # review: it claims nothing about return or safety
        ("本行最强产品，收益领先", "superlative", "block", "最强"),  # ... unless it does
        ("这是唯一的选择", "superlative", "review", "唯一"),
        ("欲购从速！", "pressure", "review", "欲购从速"),
        ("高收益理财，欲购从速！", "pressure", "block", "欲购从速"),
        ("额度仅剩10万", "pressure", "review", "仅剩"),
        ("比存款收益高多了", "comparison", "block", "比存款收益高"),
        ("秒杀银行定期", "comparison", "block", "秒杀银行"),
        ("内部认购名额", "unlicensed", "block", "内部认购"),
        ("带你炒币", "unlicensed", "block", "炒币"),
        ("有事加我微信聊", "off_platform", "block", "加我微信"),
        ("钱私下转账给我就行", "off_platform", "block", "私下转账"),
        ("买基金送豪礼", "incentive", "block", "买基金送"),
        ("行长推荐的产品", "firm", "review", "行长推荐"),
    ],
)
def test_each_category_is_found(text, category, severity, match):
    v = review_text(text)
    assert (category, severity, match) in [(f.category, f.severity, f.match) for f in v.findings], kinds(v)
    assert v.verdict == ("block" if severity == "block" else v.verdict)


def test_the_seed_covers_the_categories_with_rules_and_notes():
    seed = load_seed_file()
    assert 80 <= sum(1 for e in seed.entries if e.severity != "allow") <= 250
    cats = {e.category for e in seed.entries}
    assert {"promise", "superlative", "pressure", "comparison", "unlicensed", "off_platform", "firm",
            "disclosure"} <= cats
    assert all(e.rule.startswith(("《", "本机构")) for e in seed.entries)
    # Every regulation the issue names is cited by name.
    rules = " ".join(e.rule for e in seed.entries)
    for name in ("《商业银行理财业务监督管理办法》", "《证券期货投资者适当性管理办法》",
                 "《关于规范金融机构资产管理业务的指导意见》", "《银行保险机构消费者权益保护管理办法》", "《广告法》"):
        assert name in rules


@pytest.mark.parametrize(
    "text, match, start",
    [
        ("ＮＯ．１的理财，收益高", "ＮＯ．１", 0),
        ("收益保證收益", "保證收益", 2),
        ("穩賺！", "穩賺", 0),
        ("买了就是保 本", "保 本", 4),
        ("买了就是保-本", "保-本", 4),
        ("买了就是保\u200b本", "保\u200b本", 4),
        ("买了就是保😊本", "保😊本", 4),
        ("稳\u3000赚\u3000不\u3000赔", "稳\u3000赚\u3000不\u3000赔", 0),
        ("加我 Ｖ Ｘ 吧", "加我 Ｖ Ｘ", 0),
        ("不买後悔，收益高", "不买後悔", 0),
    ],
)
def test_variants_are_flagged_with_original_offsets(text, match, start):
    v = review_text(text)
    assert v.verdict == "block", kinds(v)
    hit = next(f for f in v.findings if f.source == "dictionary")
    assert (hit.match, hit.start, hit.end) == (match, start, start + len(match))
    assert text[hit.start : hit.end] == hit.match


@pytest.mark.parametrize(
    "text",
    [
        "本产品不保本",
        "非保本浮动收益",
        "不承诺保本",
        "理财非存款，产品有风险，投资须谨慎",
        "过往业绩不代表未来表现",
        "预期收益不代表实际收益",
        "本产品为非保本浮动收益型，不保证收益，过往业绩不代表未来表现",
        "本产品不保本保收益",
        "我们无法保证收益",
        "并非无风险",
        "投资有风险，不存在稳赚不赔的产品",
        "谨防“保本高收益”类诈骗",
        "警惕稳赚不赔的骗局",
        "欢迎参加第一次课",
        "您最好先做风险测评",
        "确保本周完成测评",
        "无风险利率是多少",
        "什么时候到期",
        "打破刚性兑付",
    ],
)
def test_negated_and_disclosure_uses_pass(text):
    v = review_text(text)
    assert [f for f in v.findings if f.source == "dictionary"] == [], kinds(v)


@pytest.mark.parametrize("text", ["不，保本！", "没问题。保本的", "不保本？骗你的，保本！"])
def test_punctuation_breaks_a_negation(text):
    assert review_text(text).verdict == "block"


@pytest.mark.parametrize("text", ["这个产品保本吗？", "是不是保本", "会不会保本呢", "保本么", "您好，这款理财保本吗"])
def test_a_question_is_not_a_promise(text):
    v = review_text(text)
    assert v.verdict == "pass", kinds(v)


@pytest.mark.parametrize("text", ["保本吗？当然！保本保息", "也能包本？能！到期最少拿回全部保费"])
def test_a_question_answered_or_rhetorical_is_still_a_claim(text):
    assert review_text(text).verdict == "block", kinds(review_text(text))


def test_nested_hits_are_reported_once_and_longest():
    v = review_text("亏了包赔")
    assert kinds(v) == [("promise", "block", "亏了包赔", 0, 4)]


def test_ascii_phrases_need_word_boundaries():
    assert review_text("NO.1理财").verdict == "review"
    assert review_text("型号no123").verdict == "pass"


def test_outbound_and_archive_weigh_detectors_differently():
    text = "加我微信 abc12345 看 https://evil.example.com/x"
    out = review_text(text, context="outbound")
    arc = review_text(text, context="archive")
    sev = {f.category: f.severity for f in out.findings}
    assert sev["wechat_id"] == "block" and sev["external_link"] == "block"
    sev = {f.category: f.severity for f in arc.findings}
    assert sev["wechat_id"] == "review" and sev["external_link"] == "review"
    with pytest.raises(ValueError):
        review_text("x", context="inbound")  # type: ignore[arg-type]


def test_customer_pii_in_outbound_is_review():
    v = review_text("您的身份证号11010519491231002X已登记", context="outbound")
    assert v.verdict == "review"
    assert [f.category for f in v.findings] == ["id_number"]


def test_a_corp_entry_overrides_and_extends_the_seed():
    entries = list(seed_entries()) + [
        DictEntry(phrase="第一", category="superlative", severity="block", rule="本机构规定", corp_id=7),
        DictEntry(phrase="第一创业", category="disclosure", severity="allow", rule="机构名称", corp_id=7),
        DictEntry(phrase="金葵花专享", category="firm", severity="review", rule="本机构规定", corp_id=7),
    ]
    d = Dictionary(entries, version="corp7")
    assert review_text("全市第一", dictionary=d).verdict == "block"
    assert review_text("全市第一", dictionary=seed_dictionary()).verdict == "review"
    assert review_text("第一创业证券", dictionary=d).verdict == "pass"
    assert review_text("金葵花专享活动", dictionary=d).verdict == "review"


def test_batches_equal_single_reviews_and_keep_order():
    texts = ["保本", "", "普通消息", "稳赚不赔", "\uffff保本\uffff", "电话13800138000", "不保本"]
    batch = review_many(texts)
    assert batch == [review_text(t) for t in texts]
    assert [v.verdict for v in batch] == ["block", "pass", "pass", "block", "block", "review", "pass"]
    assert batch[4].findings[0].start == 1
    assert scan_many([]) == []


def test_a_dictionary_compiles_once():
    d = seed_dictionary()
    assert d.compiled is d.compiled


_PIECES = st.sampled_from(
    ["保本", "保 本", "保證收益", "穩賺", "不保本", "理财非存款", "第一次", "第一", "NO.1", "ＮＯ．１", "，", "。", " ",
     "\u200b", "😊", "加我微信", "abc123", "13800138000", "138 0013 8000", "https://x.cn/a", "[红包]", "吗", "？",
     "不", "\uffff", "普通", "理财", "收益", "最", "好", "稳", "赚"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=20).map("".join))
def test_offsets_always_slice_the_original(text):
    v = review_text(text, context="archive")
    for f in v.findings:
        assert 0 <= f.start < f.end <= len(text)
        assert text[f.start : f.end] == f.match
    assert v.verdict == ("block" if any(f.severity == "block" for f in v.findings)
                         else "review" if v.findings else "pass")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_PIECES, max_size=8).map("".join), min_size=1, max_size=6))
def test_batch_property(texts):
    assert review_many(texts) == [review_text(t) for t in texts]


def test_every_seed_phrase_is_found_alone_and_every_disclosure_passes():
    from siyu.compliance.normalize import normalize

    seed = load_seed_file()
    keys = [normalize(e.phrase) for e in seed.entries]
    assert len(keys) == len(set(keys)), "two seed entries normalise to the same phrase"
    for e in seed.entries:
        # Pressure words need something to buy in the message (假期最后一天 is no sales push).
        v = review_text(e.phrase if e.category != "pressure" else f"理财产品{e.phrase}")
        if e.severity == "allow":
            assert v.verdict == "pass", (e.phrase, kinds(v))
        else:
            assert any(f.phrase == e.phrase and f.severity == e.severity for f in v.findings), (e.phrase, kinds(v))
