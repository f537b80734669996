"""Rule families beyond phrases: sound-alikes and spellings of the promise lexicon, figures joined to a
promise, paraphrased guarantees, performance without its disclaimer, the kinds without a phrase, and
clause-level scope in both directions. Each family has positives and hard negatives (our own
sentences, not the labelled corpus), and properties (Hypothesis) for the folding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.compliance.phonetic import LEXICON, NOT_BY_SOUND, phonetic_index, spelling_variants
from siyu.compliance.review import review_text, scan_many


def verdict(text: str, **kw) -> str:
    return review_text(text, **kw).verdict


def kinds(text: str, **kw) -> list[tuple[str, str, str, str]]:
    return [(f.source, f.category, f.severity, f.match) for f in review_text(text, **kw).findings]


# --- every finding names its rule, category, severity and span --------------------------------------------------


@pytest.mark.parametrize("text", ["到期宝本，放心", "年化4%稳稳的", "亏了公司兜底", "征信不好也能贷，秒批",
                                  "是的，放心买"])
def test_every_finding_is_explained(text):
    for f in review_text(text, previous="这个保本吗？" if text.startswith("是的") else None).findings:
        assert f.rule and f.category and f.severity in ("block", "review")
        assert text[f.start:f.end] == f.match and f.match


# --- sound-alikes, pinyin, mixed spellings, abbreviations ------------------------------------------------------


@pytest.mark.parametrize("text", ["这款理财宝本保息", "这款理财饱本哦", "稳转不赔的好产品", "无疯险理财",
                                  "零封险，放心冲", "baoben的产品", "这款 bao本 理财", "保ben产品", "wfx理财，闭眼买",
                                  "wen赚不赔"])
def test_sound_alikes_and_spellings_block(text):
    assert verdict(text) == "block", kinds(text)


@pytest.mark.parametrize("text", ["余额宝收益怎么样", "文章写得不错", "报喜不报忧", "抱歉，我刚看到",
                                  "Wi-Fi 密码贴在墙上", "baobei 你好", "本产品不宝本（非保本）"])
def test_harmless_sounds_and_letters_pass(text):
    assert verdict(text) == "pass", kinds(text)


_SEPARATORS = st.sampled_from([" ", "\u200b", "*", "·", "😊", "  ", "\u3000", "_"])


@settings(max_examples=60, deadline=None)
@given(lex=st.sampled_from([x for x in LEXICON if len(x.phrase) >= 2]), data=st.data())
def test_separators_never_lose_a_promise(lex, data):
    seps = [data.draw(_SEPARATORS) for _ in range(len(lex.phrase) - 1)]
    spaced = lex.phrase[0] + "".join(s + c for s, c in zip(seps, lex.phrase[1:], strict=True))
    assert verdict(f"这款产品{spaced}，欢迎咨询") == "block"


@settings(max_examples=60, deadline=None)
@given(lex=st.sampled_from(LEXICON), data=st.data())
def test_pinyin_for_any_characters_never_loses_a_promise(lex, data):
    variant = data.draw(st.sampled_from(spelling_variants(lex.phrase)))
    assert verdict(f"这款产品{variant}，欢迎咨询") == "block", variant


def _homophones() -> dict[str, list[str]]:
    """For each character of the sound lexicon, other common characters that fold to its syllable."""
    idx = phonetic_index()
    out: dict[str, list[str]] = {}
    common = [chr(c) for c in range(0x4E00, 0x9FA6) if _is_common(chr(c))]
    by_token: dict[int, list[str]] = {}
    for ch in common:
        by_token.setdefault(int(idx.table[ord(ch)]), []).append(ch)
    for lex in LEXICON:
        for ch in lex.phrase:
            out[ch] = [c for c in by_token.get(int(idx.table[ord(ch)]), []) if c != ch][:12]
    return out


def _is_common(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


HOMOPHONES = _homophones()


@settings(max_examples=60, deadline=None)
@given(lex=st.sampled_from([x for x in LEXICON if x.phrase not in NOT_BY_SOUND]), data=st.data())
def test_homophones_never_lose_a_promise(lex, data):
    chars = []
    for ch in lex.phrase:
        options = HOMOPHONES.get(ch) or [ch]
        chars.append(data.draw(st.sampled_from([ch, *options])))
    text = f"这款产品{''.join(chars)}，欢迎咨询"
    assert verdict(text) == "block", (text, kinds(text))


# --- figures joined to a promise --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["这只基金至少涨30%", "年化5.2%稳稳的，放心", "一年起码8个点", "分红固定4%，年年有",
                                  "收益锁定在4.5%", "给孩子存一份，18岁稳拿30万", "年化6%是板上钉钉的"])
def test_figures_with_a_promise_block(text):
    assert verdict(text) == "block", kinds(text)


@pytest.mark.parametrize("text", ["业绩比较基准3.2%-3.8%，不代表实际收益", "首付至少30%，以审批为准",
                                  "信用贷年化利率3.6%起（单利），以审批结果为准", "起购金额1万元，风险等级R2",
                                  "保证利率为合同约定的2%，分红不保证", "今年以来跌了8%，建议您先别急着赎回"])
def test_figures_without_a_promise_pass(text):
    assert verdict(text) == "pass", kinds(text)


# --- paraphrased guarantees -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["亏了算公司的，您放心", "真亏了我们来补", "本金一分都不会少", "到期肯定能拿回本金",
                                  "有国企担保兜底", "最坏情况也能拿回本金", "不涨我给您退"])
def test_paraphrased_guarantees_block(text):
    assert verdict(text) == "block", kinds(text)


@pytest.mark.parametrize("text", ["净值型产品可能亏损本金，请谨慎", "我们不承诺保本，也不会替您承担损失",
                                  "大额存单属于存款，本金和利息受存款保险保障", "如果您一定要保本，建议选定期存款"])
def test_true_statements_about_principal_pass(text):
    assert verdict(text) == "pass", kinds(text)


# --- co-occurrence: performance figures need the disclaimer -----------------------------------------------------


def test_performance_needs_its_disclaimer_in_the_same_message():
    text = "这只基金近一年收益23%"
    assert [k[1] for k in kinds(text)] == ["past_performance"]
    assert verdict(text + "，过往业绩不代表未来表现，基金有风险") == "pass"
    assert verdict(text + "。历史业绩不预示未来表现") == "pass"


# --- kinds with no phrase --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,category", [
    ("XX银行的理财都是坑，别去买", "disparagement"),
    ("这款增额寿就跟存定期一样，利息还更高", "insurance_as_deposit"),
    ("测评随便选，选最激进的就能买", "suitability_evasion"),
    ("黑户也能贷，当天下款", "loan_promise"),
    ("买满5万送京东卡", "purchase_incentive"),
    ("推荐3个朋友就回本，每天领收益", "illegal_fundraising"),
    ("把收到的验证码发给我，我帮您操作", "anti_fraud"),
    ("明天这只票必涨停，赶紧上车", "securities_advice"),
    ("私募产品10万起投，欢迎转发朋友圈", "private_fund_promotion"),
])
def test_kinds_without_a_phrase(text, category):
    v = review_text(text)
    assert v.verdict == "block" and category in {f.category for f in v.findings}, kinds(text)


@pytest.mark.parametrize("text", [
    "保险不是存款，提前退保可能有损失",
    "请在手机银行完成风险测评，结果在C3及以上才能购买",
    "贷款额度和利率以审批结果为准，请理性借贷",
    "开户后可以免费体验资讯服务",
    "任何人向您索要验证码都是诈骗，请勿提供",
    "私募基金仅面向合格投资者，需先完成合格投资者认定",
    "虚拟货币相关活动属于非法金融活动，请远离",
])
def test_hard_negatives_of_those_kinds(text):
    assert verdict(text) == "pass", kinds(text)


# --- severity calibrated to the rules ---------------------------------------------------------------------------


def test_superlatives_and_pressure_review_unless_about_return_or_safety():
    assert verdict("这是我们行最贴心的服务") == "review"
    assert verdict("限量发售，额度有限，今天就停售") == "review"
    assert verdict("这款是全市场收益最高的理财") == "block"
    assert verdict("绝对安全的理财") == "block"


# --- scope in both directions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "严禁对外宣传保本保收益",
    "我们绝非保本产品",
    "保本？这是不可能的",
    "说稳赚不赔的，都是骗子",
    "《广告法》规定不得明示或者暗示保本、无风险或者保收益",
    "反诈提醒：凡是承诺“保本高收益”的投资都是骗局",
    "您说的“稳赚不赔”的产品我这里没有",
])
def test_negation_quotation_and_education_pass(text):
    assert verdict(text) == "pass", kinds(text)


def test_questions_and_answers():
    assert verdict("这个产品保本吗？") == "pass"
    assert verdict("这个产品保本吗？", speaker="customer") == "pass"
    # The advisor's answer that confirms what the customer asked is a promise.
    assert verdict("是的，放心吧", previous="这个产品保本吗？", speaker="advisor") == "block"
    assert verdict("不保本的，净值会波动", previous="这个产品保本吗？") == "pass"
    assert verdict("保本吗？当然，保本保息") == "block"


def test_a_customers_words_are_not_the_firms_claims_but_solicitations_count():
    results = scan_many(["这个真能稳赚吗", "推荐3个朋友就回本，每天领收益"], speakers=["customer", "customer"])
    assert results[0] == ()
    assert {f.category for f in results[1]} == {"illegal_fundraising"}


def test_a_disclosure_does_not_hide_a_superlative_about_a_product():
    # "您最好" is an allowed phrase ("您最好先做测评"); it must not hide "最好的产品".
    assert verdict("您最好先做风险测评") == "pass"
    assert verdict("这是您最好的选择，收益全市场最高") == "block"
    assert verdict("这是您最好的理财顾问团队") == "review"


def test_lexicons_switch_firm_type_rules():
    text = "征信不好也能贷，秒批"
    assert verdict(text) == "block"
    assert verdict(text, lexicons=frozenset({"insurance"})) == "pass"
    assert verdict(text, lexicons=frozenset({"consumer_finance"})) == "block"
