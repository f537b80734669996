"""The third pass of rule families (issue 11): each new family by its structure, with sentences we wrote ourselves
(not lines of the labelled corpus) — violations in several wordings and products, and hard negatives that share
their words. The statistical second opinion is off, so a rule that stops firing cannot hide behind the model."""

from __future__ import annotations

import pytest

from siyu.compliance.review import scan_many


def findings(text: str, **kw):
    return scan_many([text], detectors=False, second_opinion=False, **kw)[0]


def caught_by(text: str, **kw) -> set[str]:
    """The rule ids (or categories, for dictionary hits) that hold the text."""
    return {f.note if f.source == "rule" else f.category for f in findings(text, **kw)}


def blocked(text: str, **kw) -> bool:
    return any(f.severity == "block" for f in findings(text, **kw))


FAMILIES: dict[str, tuple[str, list[str]]] = {
    # a pay-in with periodic pay-outs, "all the principal back", 8 %+ from a project
    "scheme_returns": ("illegal_fundraising", [
        "生态茶园认购一亩3万元，每年年底分红4500，十年后本金全退",
        "我们农庄入股5万，每个月领800块，比打工强",
        "这个充电桩项目年化12%，按季度付息，老乡们都投了",
        "康养会员卡储值2万，每季度返还1200，满三年本息一起还",
    ]),
    # a return stated as fixed, or "nobody lost"
    "fixed_payout": ("return_promise", [
        "这款的收益已经定死了，3.9%，到时候就按这个数给您",
        "每个月固定到账2000收益，比房租还稳",
        "买过这只的客户就没有一个亏的，放心上车",
        "您投50万，一年后给您的只会比55万多",
        "您先放三万，月底准时给您打900利息",
    ]),
    # certainty about a price
    "price_call": ("securities_advice", [
        "这只票下周必破30，现在上车正好",
        "大盘回调到位了，这只龙头后市一定反弹，加仓",
        "我们的模型选出的票次日上涨概率92%",
        "明早竞价进，收盘不低于6个点",
        "这只转债下周必冲150，先上车",
    ]),
    # transfers to "verification" accounts, fees before a loan, codes typed into a link
    "fraud_transfer": ("anti_fraud", [
        "您的账户异常，请把余额转到我们的验证账户，核实后原路退回",
        "放款前需先缴纳2000元解冻费，缴纳后方可提现",
        "请在这个链接里输入您的交易密码完成升级",
        "兄弟借我用下你的银行卡收笔货款，马上转你",
    ]),
    # insurance named or explained as a deposit
    "insurance_named_deposit": ("insurance_as_deposit", [
        "“如意存”三年交费，每年复利递增，XX人寿承保，详询柜台",
        "这其实就是保险公司出的存单，利息比银行高一点",
        "您就理解成零存整取，每年交一万，交满五年就能取",
    ]),
    # health declarations skipped
    "health_hidden": ("suitability_evasion", [
        "甲状腺那个结节您就别写了，核保会麻烦",
        "健康告知那页随便勾一下就行，有点小毛病没关系",
        "住院的事不用写，我帮您搞定",
        "测评不够没事，我在系统里帮您把等级调高一档",
    ]),
    # credit trouble waived
    "loan_credit_waived": ("loan_promise", [
        "有逾期也能批，放心申请",
        "征信那点小问题不影响，直接来办",
        "无需任何证明，点一下马上放款",
        "网黑也不怕，欠多少都能下款",
    ]),
    # the qualified-investor check dodged
    "qualification_dodged": ("private_fund_promotion", [
        "这只私募100万起投，您和同事三个人凑一凑用一个人的名义买",
        "资产证明我来想办法，您只管打款",
        "签个合格投资者承诺函就行，别的不用管",
    ]),
    # expiring offers and countdowns to a discontinuation
    "pressure_expiry": ("pressure", [
        "您的专属提额仅保留至明天18点，过期作废",
        "这款医疗险月底停售，还有三天，要配的抓紧",
    ]),
    # incentives tied to a first purchase or paid out of pocket
    "subsidy_on_purchase": ("purchase_incentive", [
        "您在我这儿买，我自掏腰包再贴您半个点的收益",
        "新客首购满1000元，送50元话费",
        "这单签了，首年保费返您15%",
    ]),
}


@pytest.mark.parametrize("family,text", [(f, t) for f, (_c, texts) in FAMILIES.items() for t in texts])
def test_family_catches_its_kind(family, text):
    found = findings(text)
    assert found, f"{family}: nothing found in {text!r}"
    category = FAMILIES[family][0]
    assert any(f.category == category or f.note == family for f in found) or blocked(text), (family, found)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "pressure_expiry"])
def test_families_block(family):
    for text in FAMILIES[family][1]:
        assert blocked(text), (family, text, findings(text))


def test_an_expiring_offer_is_review():
    for text in FAMILIES["pressure_expiry"][1]:
        assert {f.severity for f in findings(text)} == {"review"}, findings(text)


HARD_NEGATIVES = [
    # annuities and deposits as the contract states them
    "年金险交5万，合同约定每年领2000，具体以保单为准",
    "大额存单20万起存，到期本息一起还，受存款保险保护",
    # honest answers and warnings that share the words
    "收益没有定死的，净值型产品每天都在变，我没法给您一个固定数",
    "凡是要您把钱转到所谓验证账户的，都是诈骗，请直接挂断",
    "放款前要求先交解冻费的都是骗局，正规机构不会这样做",
    "健康告知一定要如实填写，结节、住院都要写，别嫌麻烦",
    "征信有逾期会影响审批，您先把逾期还上",
    "私募门槛100万，不能拼团凑单，也不能用别人的名义买",
    "这次读书会报名保留至周五，免费参加",
    "这只股票明天会不会涨？我也说不准",
    "定期存款的利率是固定的，3年期2.35%",
    "首购不送任何礼品，费率按公告执行",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negatives_pass(text):
    assert not findings(text), findings(text)


def test_a_disclaimer_contradicted_does_not_excuse_a_fixed_dividend():
    assert not findings("分红不保证，演示利率仅供参考，实际以公司公告为准")
    assert blocked("计划书上写着分红不保证，其实每年5%的分红基本是固定的")


def test_bragging_is_no_negation_and_ours_is_the_real_one_is_no_warning():
    assert blocked("不是我吹，这款理财真的零风险")
    assert blocked("外面那些都是骗局，我们这个才是真正的保本理财")
    assert not findings("凡是说保本的都是骗局，大家提高警惕")


def test_a_product_over_deposits_is_still_a_product():
    assert blocked("不可能亏本的，这个产品的底层全是存款")
    assert not findings("存款是保本的，受存款保险保护")


def test_a_customer_who_solicits_in_the_group_is_held():
    found = scan_many(["我投的这个项目零风险，有想加入的私我"], detectors=False, second_opinion=False,
                      speakers=["customer"])[0]
    assert found and found[0].category == "illegal_fundraising" and found[0].severity == "block"
    # the same promise with no invitation is the customer's own opinion
    assert not scan_many(["我觉得这个项目零风险"], detectors=False, second_opinion=False, speakers=["customer"])[0]
    # a request to the group is no question; a question to the firm still is
    assert scan_many(["谁能帮我收个验证码？发我就行，给红包"], detectors=False, second_opinion=False,
                     speakers=["customer"])[0]
    assert not scan_many(["有人让我把验证码发给他，这是你们的人吗？"], detectors=False, second_opinion=False,
                         speakers=["customer"])[0]


def test_the_new_families_share_cue_bits():
    from siyu.compliance.rules import NUMERAL_BIT, CueIndex

    index = CueIndex()
    assert max(index.need) < NUMERAL_BIT
    by_id = {r.rule_id: need for r, need in zip(index.rules, index.need, strict=True)}
    assert by_id["scheme_returns"] == by_id["illegal_fundraising"]
    assert by_id["health_hidden"] == by_id["declaration_skip"]


def test_tone_marked_pinyin_and_kin_of_the_promises():
    assert blocked("这款理财 bǎo běn，放心买")
    assert blocked("年金险保受益，领到老")
    assert not findings("身故保险金的受益人请填写配偶")


def test_a_quoted_disclaimer_then_broken_is_no_disclaimer():
    assert blocked("都说过往业绩不代表未来，但这位经理年年正收益")
    assert not findings("这只债基过去三年每年都是正收益，但这是过去的情况，并不代表今后也会如此")
    assert not findings("分红不固定，演示利率是中档假设，实际每年由公司决定")
