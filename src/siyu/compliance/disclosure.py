"""Risk disclosures (风险揭示): the warning that every product message carries, per product type.

Each product type has a default text (our own wording, in the spirit of the regulators' required
warnings: 理财非存款、产品有风险、投资须谨慎; 基金过往业绩不代表未来表现; …) that a corp may replace with its
own (table `risk_disclosure`, every change audited). `attach_disclosure` appends the disclosures a
message needs: those of the product types of the products attached to it, and of the product types
its text talks about (`detect_product_types`: a small set of product terms matched, like the wording
dictionary, with the Aho–Corasick automaton over normalised text, so full-width, traditional or
spaced-out terms are found too). A disclosure the text already holds (compared normalised) is not
appended again, so attaching twice changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.matcher import CompiledDictionary, DictEntry
from siyu.compliance.models import RiskDisclosure
from siyu.compliance.normalize import BARRIER, normalize
from siyu.compliance.suitability import PRODUCT_TYPES, valid_product_type
from siyu.db import utcnow
from siyu.errors import InvalidInput
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

MAX_TEXT = 1000
SEPARATOR = "\n\n"

DEFAULT_DISCLOSURES: dict[str, str] = {
    "wealth_management": (
        "风险提示：理财非存款，产品有风险，投资须谨慎。理财产品过往业绩不代表其未来表现，业绩比较基准不代表实际收益。"
        "请了解产品风险等级，确认与自身风险承受能力相匹配后再作决定。"
    ),
    "fund": (
        "风险提示：基金有风险，投资须谨慎。基金过往业绩不代表未来表现，基金管理人管理的其他基金的业绩不构成本基金业绩表现的"
        "保证。请阅读基金合同、招募说明书和产品资料概要，了解产品风险等级后审慎选择。"
    ),
    "insurance": (
        "风险提示：保险产品不是存款，也不同于理财产品。保险责任、责任免除、犹豫期及退保可能产生的损失以保险合同条款为准，"
        "利益演示不代表实际收益。请仔细阅读条款，按自身需要审慎投保。"
    ),
    "credit": (
        "温馨提示：贷款额度、利率以审批结果为准，请理性借贷、按时还款，珍惜个人信用记录。"
        "本机构不会以任何名义要求您提前支付费用，谨防诈骗。"
    ),
    "deposit": (
        "温馨提示：存款利率、期限及支取规则以办理时公布的为准。结构性存款不同于一般性存款，具有投资风险，请谨慎投资。"
    ),
}

# Words that make a text product content, per product type. Kept specific: "理财" alone is in every
# finance course ("理财小白训练营"), "存款" in the wealth-management warning itself.
PRODUCT_TERMS: dict[str, tuple[str, ...]] = {
    "wealth_management": ("理财产品", "净值型", "业绩比较基准", "预期收益", "年化收益", "七日年化", "万份收益",
                          "起购", "认购", "申购", "赎回", "封闭期", "银行理财"),
    "fund": ("基金", "定投", "净值", "基金经理", "货币基金", "债券基金", "股票基金", "指数基金", "混合型"),
    "insurance": ("保险", "保单", "保费", "投保", "年金险", "重疾险", "寿险", "万能险", "分红险", "医疗险", "意外险",
                  "增额终身寿", "犹豫期"),
    "credit": ("贷款", "信用贷", "消费贷", "经营贷", "房贷", "车贷", "借款", "借钱", "授信", "放款", "日利率", "年利率",
               "分期还款", "循环额度"),
    "deposit": ("大额存单", "定期存款", "结构性存款", "存款产品", "存款利率", "通知存款", "整存整取"),
}

_compiled: CompiledDictionary | None = None
_lock = threading.Lock()


def _terms() -> CompiledDictionary:
    global _compiled
    if _compiled is None:
        with _lock:
            if _compiled is None:
                _compiled = CompiledDictionary(
                    DictEntry(phrase=term, category=kind, severity="allow", rule="product term")
                    for kind, terms in PRODUCT_TERMS.items() for term in terms
                )
    return _compiled


def _without(ntext: str, disclosures: Iterable[str]) -> str:
    """The normalised text with the disclosures it already holds cut out (their words are no product)."""
    for d in disclosures:
        nd = normalize(d)
        if nd and nd in ntext:
            ntext = ntext.replace(nd, BARRIER)
    return ntext


def detect_product_types(text: str, *, disclosures: Iterable[str] = ()) -> set[str]:
    """The product types a text talks about, from product terms ("基金定投", "大额存单", "信用贷" …).
    Words inside a disclosure (the defaults and `disclosures`) do not count."""
    if not isinstance(text, str) or not text:
        return set()
    ntext = _without(normalize(text), [*DEFAULT_DISCLOSURES.values(), *disclosures])
    compiled = _terms()
    return {compiled.patterns[i].entry.category for i, _s, _e in compiled.find_raw(ntext)}


# --- per-corp texts ---------------------------------------------------------------------------------------


def _corp(corp_id: object) -> int:
    if not isinstance(corp_id, int) or isinstance(corp_id, bool) or not 1 <= corp_id <= 2**63 - 1:
        raise InvalidInput("invalid corp", field="corp_id")
    return corp_id


def disclosure_texts(session: Session, *, corp_id: int) -> dict[str, str]:
    """The disclosure in force for each product type: the corp's own, else the default."""
    texts = dict(DEFAULT_DISCLOSURES)
    for kind, text in session.execute(
        select(RiskDisclosure.product_type, RiskDisclosure.text).where(RiskDisclosure.corp_id == _corp(corp_id))
    ):
        if kind in texts:
            texts[kind] = text
    return texts


def corp_overrides(session: Session, *, corp_id: int) -> dict[str, RiskDisclosure]:
    return {d.product_type: d for d in session.scalars(
        select(RiskDisclosure).where(RiskDisclosure.corp_id == _corp(corp_id)))}


def _clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput("the disclosure text is required", field="text")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput("the disclosure text is required", field="text")
    if len(text) > MAX_TEXT:
        raise InvalidInput("the disclosure text is at most %(max)s characters", field="text", params={"max": MAX_TEXT})
    if any(ord(c) < 32 and c != "\n" or c == "\x7f" for c in text) or BARRIER in text:
        raise InvalidInput("the disclosure text holds control characters", field="text")
    return text


def set_disclosure(session: Session, *, corp_id: int, actor: Principal | str, product_type: str,
                   text: str) -> RiskDisclosure:
    """Replace the default disclosure of one product type with the corp's own text.

    The text goes through the corp's wording review first: a warning that itself promises something
    ("保本") is refused."""
    from siyu.compliance.dictionary import load_dictionary
    from siyu.compliance.review import review_text

    corp_id = _corp(corp_id)
    kind = valid_product_type(product_type)
    text = _clean_text(text)
    verdict = review_text(text, dictionary=load_dictionary(session, corp_id=corp_id))
    if verdict.blocked:
        first = next(f for f in verdict.findings if f.severity == "block")
        raise InvalidInput("the disclosure text does not pass the wording review: %(match)s", field="text",
                           params={"match": first.match})
    row = session.scalar(select(RiskDisclosure).where(RiskDisclosure.corp_id == corp_id,
                                                      RiskDisclosure.product_type == kind))
    before = row.text if row else DEFAULT_DISCLOSURES[kind]
    if row is None:
        row = RiskDisclosure(corp_id=corp_id, product_type=kind, text=text)
        session.add(row)
    elif row.text == text:
        return row
    else:
        row.text = text
        row.updated_at = utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="risk_disclosure.set", target_type="risk_disclosure",
                 target_id=kind, detail={"product_type": kind, "changes": {"text": [before, text]}})
    return row


def reset_disclosure(session: Session, *, corp_id: int, actor: Principal | str, product_type: str) -> None:
    """Go back to the default disclosure of a product type."""
    corp_id = _corp(corp_id)
    kind = valid_product_type(product_type)
    row = session.scalar(select(RiskDisclosure).where(RiskDisclosure.corp_id == corp_id,
                                                      RiskDisclosure.product_type == kind))
    if row is None:
        return
    before = row.text
    session.delete(row)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="risk_disclosure.reset", target_type="risk_disclosure",
                 target_id=kind,
                 detail={"product_type": kind, "changes": {"text": [before, DEFAULT_DISCLOSURES[kind]]}})


# --- attaching ----------------------------------------------------------------------------------------------


def needed_disclosures(session: Session, *, corp_id: int, text: str,
                       product_types: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(product type, disclosure) pairs that `text` lacks: for the attached products' types and the
    types the text talks about, in the catalogue's order of types, each distinct text once."""
    if not isinstance(text, str):
        raise InvalidInput("the text is required", field="text")
    kinds = {valid_product_type(k, field="product_types") for k in (product_types or ())}
    texts = disclosure_texts(session, corp_id=corp_id)
    kinds |= detect_product_types(text, disclosures=texts.values())
    ntext = normalize(text)
    out: list[tuple[str, str]] = []
    added: set[str] = set()
    for kind in PRODUCT_TYPES:
        if kind not in kinds:
            continue
        disclosure = texts[kind]
        key = normalize(disclosure)
        if key in added or (key and key in ntext):
            continue
        added.add(key)
        out.append((kind, disclosure))
    return out


def attach_disclosure(session: Session, *, corp_id: int, text: str,
                      product_types: Iterable[str] | None = None) -> str:
    """`text` with the risk disclosures it needs appended (unchanged when it needs none or holds them)."""
    return append_disclosures(text, needed_disclosures(session, corp_id=corp_id, text=text,
                                                       product_types=product_types))


def append_disclosures(text: str, needed: Iterable[tuple[str, str]]) -> str:
    """`text` followed by the disclosures of `needed_disclosures` (unchanged when there are none)."""
    needed = list(needed)
    if not needed:
        return text
    return text.rstrip() + SEPARATOR + "\n".join(d for _kind, d in needed)
