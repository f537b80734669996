"""The generalised rule families (issue 11, second pass): each family by its structure, with sentences we wrote
ourselves (not lines of the labelled corpus) — violations in several wordings, and hard negatives that share
their words: prohibitions, refusals, disclosures, customers' questions, market commentary, advice.

Tests run with the statistical second opinion off (`second_opinion=False`) where they pin a rule's behaviour, so
that a rule that stops firing cannot hide behind the model."""

from __future__ import annotations

import pytest

from siyu.compliance.review import scan_many


def rules_only(text: str, **kw) -> list[tuple[str, str, str]]:
    return [(f.category, f.severity, f.source) for f in scan_many([text], detectors=False, second_opinion=False,
                                                                    **kw)[0]]


def held(text: str, **kw) -> bool:
    return bool(rules_only(text, **kw))


def blocked(text: str, **kw) -> bool:
    return any(sev == "block" for _c, sev, _s in rules_only(text, **kw))


FAMILIES: dict[str, list[str]] = {
    # someone covers the loss
    "loss_compensated": [
        "亏了的话我们行会想办法给您补上的",
        "您放心，就算亏了，公司也会全额赔付",
        "跌破本金的部分，平台这边负责补齐",
        "真有损失，我们领导会出面给您兜底",
    ],
    # the loss cannot happen
    "loss_denied": [
        "投进去的钱不会打水漂，这点您放心",
        "风险等级R4其实没什么风险，别被吓到",
        "这款产品几乎没有亏损的可能",
        "您就买吧，这个基金跌不了，我天天盯着",
    ],
    # the money surely comes back whole
    "money_whole": [
        "到期连本带利全部拿回，一分不少",
        "本金一分钱都不会少，到期如数返还",
        "您投的十万，到期连本带息打到卡上",
    ],
    # a figure joined to a certainty word
    "figure_certain": [
        "年化稳在5%左右，比定期强多了",
        "投资10万，一年稳拿8000",
        "收益打底4个点，上不封顶",
        "这款理财年化4.5%，到期保证兑付",
    ],
    # insurance dividends or crediting rates stated as certain
    "dividend_stated": [
        "我们的分红险每年分红都有4%以上，放心",
        "万能账户结算利率5%一直不变，很稳",
        "红利每年至少3.5%，写进计划书了",
    ],
    # superlatives about the return
    "superlative_claim": [
        "抢到就是赚到，最后2小时，收益全场最高",
        "收益行业第一，买到就是赚到",
        "这只基金的回报率在同类里就是天花板",
    ],
    # pressure: countdowns and rushes
    "pressure_countdown": [
        "名额就剩3个了，今晚12点截止，要的赶紧",
        "额度有限，先到先得，这款理财要买趁早",
        "倒计时2天，申购良机不等人",
    ],
    # questionnaire coaching and borrowed identities
    "suitability_coaching": [
        "测评的时候选最能承受风险的那个选项就行",
        "风险测评不过没关系，换您爱人的身份证来买",
        "等级不够的话，用您儿子的账户申购也行",
    ],
    # risk hidden: a high-risk product likened to a safe one
    "hidden_risk": [
        "这款R5的产品其实波动不大，跟货币基金差不多",
        "私募产品风险其实很低，您不用担心",
    ],
    # approval regardless of credit
    "loan_regardless": [
        "负债再高也能贷，找我就对了",
        "征信花了也没事，我们这边照样能批",
        "网贷多也不影响，照样下款",
    ],
    # gifts on purchase
    "gift_on_purchase": [
        "开户并买入任意基金，送您一台空气炸锅",
        "申购满5万元即送价值500元的购物卡",
        "投保成功再送一桶油两箱牛奶",
    ],
    # letter abbreviations of the promise
    "abbrev_promise": [
        "BB理财，稳稳的幸福",
        "这款产品bb的，老人也能买",
    ],
    # disparaging other firms
    "disparagement": [
        "XX银行的理财经理都是新手，啥也不会，还是在我们这买吧",
        "隔壁那家券商的投顾就是卖产品的，根本不管你死活",
        "某某保险公司理赔特别难，买了等于白买，还是选我们",
    ],
}

OK: list[str] = [
    # refusals, prohibitions and disclosures
    "说实话，这款没法保证年化5%，净值每天都会变",
    "投资没有稳赚不赔的，收益越高风险越大",
    "我们不会因为您购买产品而赠送任何礼品或返现",
    "购买基金不会有任何礼品赠送，请以产品说明书为准",
    "贷款能否批下来要看综合评估，我们不能保证一定通过",
    "请不要用家人的账户替自己购买产品，这是不允许的",
    "风险测评请您根据真实情况如实填写",
    "基金有风险，即使是货币基金也不能保证一定不亏",
    # questions, reported questions, wishes
    "最近很多人问保本理财，其实资管新规之后已经没有保本理财了",
    "客户：这款产品有没有风险啊？会不会亏本？",
    "如果您一定要保本，那只能选择存款或国债",
    # facts that share the words
    "存款保险制度下，同一银行50万以内的存款本息全额赔付",
    "您的定期存款明天到期，到期后本息会自动转入活期",
    "这款车险出险后保险公司会按条款赔付，具体以定损为准",
    "上半年沪深300指数上涨了8%，市场情绪有所回暖",
    "这个问题问得好，最好的办法是分散配置",
    "这款产品风险等级R2，业绩比较基准3%-3.5%，不代表实际收益",
    "基金的过往业绩不代表其未来表现，近一年收益15.2%仅供参考，投资需谨慎",
    "不同券商的佣金和服务差别较大，开户前请对比清楚",
    "本次活动的红包与购买产品无关，所有群友都可以参加",
    "很多人以为保险就是存钱，其实保险和存款是两回事",
    "您好，本月信用卡账单已出，最低还款额500元",
    "宝宝们晚上好，今天的打卡题目已经发到群里了",
]


@pytest.mark.parametrize(("family", "text"), [(f, t) for f, ts in FAMILIES.items() for t in ts])
def test_family_catches_its_kind(family, text):
    findings = rules_only(text)
    assert findings, f"{family}: nothing found in {text!r}"
    assert all(src in ("rule", "dictionary", "phonetic") for _c, _s, src in findings)


@pytest.mark.parametrize("family", ["loss_compensated", "loss_denied", "money_whole", "figure_certain",
                                    "dividend_stated", "loan_regardless", "gift_on_purchase", "suitability_coaching",
                                    "disparagement", "abbrev_promise"])
def test_families_that_block(family):
    for text in FAMILIES[family]:
        assert blocked(text), (family, text, rules_only(text))


def test_pressure_alone_is_review_and_with_a_return_claim_blocks():
    assert rules_only("名额就剩3个了，今晚12点截止，要的赶紧") == [("pressure", "review", "rule")] or all(
        sev == "review" for _c, sev, _s in rules_only("名额就剩3个了，今晚12点截止，要的赶紧"))
    assert blocked("最后2小时，收益全场最高")


@pytest.mark.parametrize("text", OK)
def test_hard_negatives_pass(text):
    assert not held(text), rules_only(text)


def test_a_negation_inside_the_match_clears_an_incentive():
    assert blocked("买这只基金送您一台空气炸锅")
    assert not held("买这只基金不会送您任何礼品")


def test_market_commentary_is_not_a_product_record_but_a_fund_figure_is():
    assert not held("今年以来创业板指数上涨了12%，板块轮动加快")
    assert blocked("我们这只基金今年以来上涨了12%，赶紧上车")


def test_loan_families_follow_the_lexicons():
    text = "负债再高也能贷，找我就对了"
    assert blocked(text, lexicons=frozenset({"consumer_finance"}))
    assert not held(text, lexicons=frozenset({"insurance"}))
