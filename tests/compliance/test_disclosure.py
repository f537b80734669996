"""Risk disclosures (风险揭示): defaults per product type, per-corp texts, attached once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from siyu.compliance import disclosure as d
from siyu.compliance.review import review_text
from siyu.errors import InvalidInput
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp


@pytest.mark.parametrize("kind", list(d.DEFAULT_DISCLOSURES))
def test_default_texts_pass_review_and_are_not_product_content_themselves(kind):
    text = d.DEFAULT_DISCLOSURES[kind]
    assert review_text(text).verdict == "pass"
    assert d.detect_product_types(text) == set()


def test_defaults_carry_the_required_warnings():
    assert "理财非存款" in d.DEFAULT_DISCLOSURES["wealth_management"]
    assert "投资须谨慎" in d.DEFAULT_DISCLOSURES["wealth_management"]
    assert "基金过往业绩不代表未来表现" in d.DEFAULT_DISCLOSURES["fund"]
    assert "以审批结果为准" in d.DEFAULT_DISCLOSURES["credit"] and "理性借贷" in d.DEFAULT_DISCLOSURES["credit"]


@pytest.mark.parametrize(("text", "kinds"), [
    ("本周主推：稳健基金定投，欢迎咨询", {"fund"}),
    ("新发理财产品，业绩比较基准 3.2%", {"wealth_management"}),
    ("大額存單 利率上浮", {"deposit"}),  # traditional characters
    ("信 用 贷 最高 30 万", {"credit"}),  # inserted spaces
    ("重疾险 限时投保", {"insurance"}),
    ("欢迎加入理财小白训练营，今晚 8 点开课", set()),
    ("", set()),
])
def test_product_content_is_detected(text, kinds):
    assert d.detect_product_types(text) == kinds


def test_attach_appends_once(db, corp):
    text = "本周主推：稳健基金定投"
    once = d.attach_disclosure(db, corp_id=corp.id, text=text)
    assert once.startswith(text) and d.DEFAULT_DISCLOSURES["fund"] in once
    assert d.attach_disclosure(db, corp_id=corp.id, text=once) == once
    assert d.attach_disclosure(db, corp_id=corp.id, text="早上好！") == "早上好！"


def test_attach_for_attached_products_and_detected_content(db, corp):
    out = d.attach_disclosure(db, corp_id=corp.id, text="点击查看今天的产品", product_types={"insurance", "credit"})
    assert d.DEFAULT_DISCLOSURES["insurance"] in out and d.DEFAULT_DISCLOSURES["credit"] in out
    assert out.index(d.DEFAULT_DISCLOSURES["insurance"]) < out.index(d.DEFAULT_DISCLOSURES["credit"])
    both = d.needed_disclosures(db, corp_id=corp.id, text="基金定投", product_types=["deposit"])
    assert [k for k, _ in both] == ["fund", "deposit"]
    with pytest.raises(InvalidInput) as err:
        d.attach_disclosure(db, corp_id=corp.id, text="x", product_types={"stocks"})
    assert err.value.field == "product_types"


def test_a_corps_own_text_replaces_the_default_and_is_audited(db, corp):
    other = make_corp(db)
    own = "风险提示：基金有风险，投资须谨慎。本机构自定文本。"
    d.set_disclosure(db, corp_id=corp.id, actor="compliance", product_type="fund", text=own)
    assert d.disclosure_texts(db, corp_id=corp.id)["fund"] == own
    assert d.disclosure_texts(db, corp_id=other.id)["fund"] == d.DEFAULT_DISCLOSURES["fund"]
    out = d.attach_disclosure(db, corp_id=corp.id, text="基金定投")
    assert own in out and d.DEFAULT_DISCLOSURES["fund"] not in out
    d.reset_disclosure(db, corp_id=corp.id, actor="compliance", product_type="fund")
    assert d.disclosure_texts(db, corp_id=corp.id)["fund"] == d.DEFAULT_DISCLOSURES["fund"]
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id,
                                                               AuditEntry.action.like("risk_disclosure.%"))
                              .order_by(AuditEntry.seq)))
    assert actions == ["risk_disclosure.set", "risk_disclosure.reset"]


@pytest.mark.parametrize(("kind", "text", "field"), [
    ("fund", "", "text"), ("fund", "  ", "text"), ("fund", "x" * 1001, "text"), ("fund", "a\x00b", "text"),
    ("fund", "本基金保本保收益", "text"), ("stocks", "风险提示", "product_type"),
])
def test_bad_disclosures_are_refused(db, corp, kind, text, field):
    with pytest.raises(InvalidInput) as err:
        d.set_disclosure(db, corp_id=corp.id, actor="t", product_type=kind, text=text)
    assert err.value.field == field
    assert d.corp_overrides(db, corp_id=corp.id) == {}
