"""Suitability (适当性): the rule `decide` (property tests) and the catalogue and assessments behind it."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.compliance import suitability as s
from siyu.compliance.models import CustomerRiskAssessment
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
levels_c = st.sampled_from(s.CUSTOMER_LEVELS)
levels_r = st.sampled_from(s.PRODUCT_LEVELS)
maybe_c = st.one_of(st.none(), levels_c)
expiry = st.one_of(st.none(), st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2032, 1, 1),
                                           timezones=st.just(dt.UTC)))


# --- the rule -------------------------------------------------------------------------------------------


@given(c=levels_c, r=levels_r, exp=expiry)
def test_monotonic_in_the_customer_level(c, r, exp):
    if s.decide(c, r, expires_at=exp, now=NOW).eligible:
        for higher in s.CUSTOMER_LEVELS[s.CUSTOMER_LEVELS.index(c):]:
            assert s.decide(higher, r, expires_at=exp, now=NOW).eligible


@given(c=levels_c, r=levels_r, exp=expiry)
def test_monotonic_in_the_product_level(c, r, exp):
    if s.decide(c, r, expires_at=exp, now=NOW).eligible:
        for lower in s.PRODUCT_LEVELS[: s.PRODUCT_LEVELS.index(r) + 1]:
            assert s.decide(c, lower, expires_at=exp, now=NOW).eligible


@given(c=maybe_c, exp=expiry)
def test_r1_is_for_everyone(c, exp):
    d = s.decide(c, "R1", expires_at=exp, now=NOW)
    assert d.eligible and d.reason_code == "r1_for_all"


@given(c=levels_c, r=levels_r.filter(lambda r: r != "R1"),
       age=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=4000)))
def test_expired_is_never_eligible_above_r1(c, r, age):
    d = s.decide(c, r, expires_at=NOW - age, now=NOW)
    assert not d.eligible and d.reason_code == "assessment_expired"


@given(r=levels_r.filter(lambda r: r != "R1"), exp=expiry)
def test_unknown_is_never_eligible_above_r1(r, exp):
    d = s.decide(None, r, expires_at=exp, now=NOW)
    assert not d.eligible and d.reason_code == "level_unknown"


@given(c=levels_c, r=levels_r)
def test_valid_level_at_least_the_products_is_exactly_eligible(c, r):
    d = s.decide(c, r, expires_at=NOW + dt.timedelta(days=1), now=NOW)
    assert d.eligible == (int(c[1]) >= int(r[1]))


@given(c=maybe_c, r=levels_r, exp=expiry)
def test_every_decision_names_both_levels_and_the_rule(c, r, exp):
    d = s.decide(c, r, expires_at=exp, now=NOW)
    assert r in d.reason and r in d.reason_en
    assert (c or "未知") in d.reason and (c or "unknown") in d.reason_en
    assert "R1" in d.reason and d.reason_code
    assert d.as_dict()["customer_level"] == c and d.as_dict()["product_level"] == r


def test_c1_may_buy_r1_only_and_c5_anything():
    assert [s.decide("C1", r).eligible for r in s.PRODUCT_LEVELS] == [True, False, False, False, False]
    assert all(s.decide("C5", r).eligible for r in s.PRODUCT_LEVELS)
    assert s.decide(" c3 ", "r3").eligible  # case and spaces are forgiven


@pytest.mark.parametrize(("c", "r", "field"), [
    ("C6", "R1", "customer_level"), ("R2", "R2", "customer_level"), ("", "R1", "customer_level"),
    ("C1", "R0", "product_level"), ("C1", None, "product_level"), ("C1", "C1", "product_level"),
])
def test_bad_levels_name_the_field(c, r, field):
    with pytest.raises(InvalidInput) as err:
        s.decide(c, r)
    assert err.value.field == field


def test_a_naive_expiry_is_refused():
    with pytest.raises(InvalidInput) as err:
        s.decide("C3", "R2", expires_at=dt.datetime(2030, 1, 1))
    assert err.value.field == "expires_at"


def test_expiry_is_exclusive():
    assert not s.decide("C3", "R2", expires_at=NOW, now=NOW).eligible
    assert s.decide("C3", "R2", expires_at=NOW + dt.timedelta(seconds=1), now=NOW).eligible


# --- products ------------------------------------------------------------------------------------------------


def test_product_create_edit_deactivate_are_audited(db, corp):
    p = s.create_product(db, corp_id=corp.id, actor="test", code="WM-001", name="稳享90天",
                         product_type="wealth_management",
                         risk_level="r2")
    assert (p.code, p.risk_level, p.is_active) == ("WM-001", "R2", True)
    s.edit_product(db, corp_id=corp.id, actor="test", code="WM-001", risk_level="R3", name="稳享90天（新）")
    s.deactivate_product(db, corp_id=corp.id, actor="test", code="WM-001")
    s.reactivate_product(db, corp_id=corp.id, actor="test", code="WM-001")
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id,
                                                               AuditEntry.action.like("product.%"))
                              .order_by(AuditEntry.seq)))
    assert actions == ["product.created", "product.edited", "product.deactivated", "product.reactivated"]
    entry = db.scalars(select(AuditEntry).where(AuditEntry.chain_id == corp.id,
                                                AuditEntry.action == "product.edited")).one()
    assert entry.detail["changes"]["risk_level"] == ["R2", "R3"]
    # editing to the same values changes nothing and records nothing
    s.edit_product(db, corp_id=corp.id, actor="test", code="WM-001", risk_level="R3")
    assert db.scalar(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id)
                     .order_by(AuditEntry.seq.desc()).limit(1)) == "product.reactivated"


def test_codes_are_unique_per_corp_only(db, corp):
    other = make_corp(db)
    s.create_product(db, corp_id=corp.id, actor="t", code="F1", name="基金", product_type="fund", risk_level="R3")
    with pytest.raises(Conflict) as err:
        s.create_product(db, corp_id=corp.id, actor="t", code="F1", name="又一个", product_type="fund", risk_level="R3")
    assert err.value.field == "code"
    s.create_product(db, corp_id=other.id, actor="t", code="F1", name="别家的", product_type="fund", risk_level="R5")
    assert s.get_product(db, corp_id=corp.id, code="F1").risk_level == "R3"
    assert [p.name for p in s.list_products(db, corp_id=other.id)] == ["别家的"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"code": ""}, "code"), ({"code": "a b"}, "code"), ({"code": "x" * 65}, "code"), ({"code": "-x"}, "code"),
    ({"name": ""}, "name"), ({"name": "a\x00b"}, "name"), ({"name": "n" * 201}, "name"),
    ({"product_type": "stocks"}, "product_type"), ({"risk_level": "R6"}, "risk_level"),
    ({"risk_level": 3}, "risk_level"),
])
def test_bad_product_input_names_the_field_and_writes_nothing(db, corp, kwargs, field):
    values = {"code": "OK1", "name": "名字", "product_type": "fund", "risk_level": "R2"} | kwargs
    with pytest.raises(InvalidInput) as err:
        s.create_product(db, corp_id=corp.id, actor="t", **values)
    assert err.value.field == field
    assert s.list_products(db, corp_id=corp.id) == []


def test_unknown_product_is_not_found_naming_the_product(db, corp):
    for code in ("NOPE", "", "bad code", None):
        with pytest.raises(NotFound) as err:
            s.check_eligibility(db, corp_id=corp.id, customer_ref="wm1", product_code=code)
        assert err.value.field == "product"


# --- assessments and decisions from the database ---------------------------------------------------------


def test_default_expiry_is_one_year_and_a_parameter():
    at = dt.datetime(2024, 2, 29, 9, 30, tzinfo=dt.UTC)
    assert s.default_expiry(at) == dt.datetime(2025, 2, 28, 9, 30, tzinfo=dt.UTC)
    assert s.default_expiry(at, valid_months=6) == dt.datetime(2024, 8, 29, 9, 30, tzinfo=dt.UTC)
    with pytest.raises(InvalidInput) as err:
        s.default_expiry(at, valid_months=0)
    assert err.value.field == "valid_months"


def test_current_assessment_is_the_latest_and_history_is_kept(db, corp):
    now = s.utcnow()
    s.record_assessment(db, corp_id=corp.id, actor="kyc", customer_ref="wm-a", level="C4", source="questionnaire",
                        assessed_at=now - dt.timedelta(days=30))
    # an older assessment pushed later does not replace the newer one
    s.record_assessment(db, corp_id=corp.id, actor="kyc", customer_ref="wm-a", level="C1", source="branch_import",
                        assessed_at=now - dt.timedelta(days=300))
    current = s.current_assessment(db, corp_id=corp.id, customer_ref="wm-a")
    assert current.level == "C4"
    assert current.expires_at == s.default_expiry(now - dt.timedelta(days=30))
    assert [a.level for a in s.assessment_history(db, corp_id=corp.id, customer_ref="wm-a")] == ["C4", "C1"]
    entry = db.scalars(select(AuditEntry).where(AuditEntry.chain_id == corp.id,
                                                AuditEntry.action == "risk_assessment.recorded")).first()
    assert entry.detail["level"] == "C4" and "wm-a" not in str(entry.detail)  # no customer id in the audit detail


def test_check_eligibility_uses_the_assessment_in_force(db, corp):
    s.create_product(db, corp_id=corp.id, actor="t", code="F3", name="混合基金", product_type="fund", risk_level="R3")
    s.create_product(db, corp_id=corp.id, actor="t", code="D1", name="大额存单", product_type="deposit",
                     risk_level="R1")
    unknown = s.check_eligibility(db, corp_id=corp.id, customer_ref="wm-x", product_code="F3")
    assert unknown.reason_code == "level_unknown"
    assert s.check_eligibility(db, corp_id=corp.id, customer_ref="wm-x", product_code="D1").eligible
    s.record_assessment(db, corp_id=corp.id, actor="t", customer_ref="wm-x", level="C2", source="manual")
    d = s.check_eligibility(db, corp_id=corp.id, customer_ref="wm-x", product_code="F3")
    assert not d.eligible and d.reason_code == "level_below" and "C2" in d.reason and "R3" in d.reason
    s.record_assessment(db, corp_id=corp.id, actor="t", customer_ref="wm-x", level="C3", source="firm_kyc_api")
    assert s.check_eligibility(db, corp_id=corp.id, customer_ref="wm-x", product_code="F3").eligible
    later = s.utcnow() + dt.timedelta(days=400)
    expired = s.check_eligibility(db, corp_id=corp.id, customer_ref="wm-x", product_code="F3", now=later)
    assert expired.reason_code == "assessment_expired"
    s.deactivate_product(db, corp_id=corp.id, actor="t", code="F3")
    assert s.check_eligibility(db, corp_id=corp.id, customer_ref="wm-x", product_code="F3").reason_code == \
        "product_inactive"


def test_an_elderly_customers_shorter_validity(db, corp):
    s.create_product(db, corp_id=corp.id, actor="t", code="W2", name="理财", product_type="wealth_management",
                     risk_level="R2")
    at = s.utcnow() - dt.timedelta(days=200)
    s.record_assessment(db, corp_id=corp.id, actor="t", customer_ref="elder", level="C3", source="questionnaire",
                        assessed_at=at, valid_months=6)
    assert s.check_eligibility(db, corp_id=corp.id, customer_ref="elder", product_code="W2").reason_code == \
        "assessment_expired"


def test_batch_uses_the_same_rule(db, corp):
    s.create_product(db, corp_id=corp.id, actor="t", code="F4", name="股票基金", product_type="fund", risk_level="R4")
    for ref, level in (("a", "C5"), ("b", "C3"), ("c", "C4")):
        s.record_assessment(db, corp_id=corp.id, actor="t", customer_ref=ref, level=level, source="manual")
    s.record_assessment(db, corp_id=corp.id, actor="t", customer_ref="d", level="C5", source="manual",
                        assessed_at=s.utcnow() - dt.timedelta(days=500))
    refs = ["a", "b", "c", "d", "e", "a"]
    assert s.eligible_refs(db, corp_id=corp.id, product_code="F4", customer_refs=refs) == ["a", "c"]
    many = s.decide_many(db, corp_id=corp.id, product_code="F4", customer_refs=refs)
    for ref, decision in many.items():
        single = s.check_eligibility(db, corp_id=corp.id, customer_ref=ref, product_code="F4")
        assert (single.eligible, single.reason_code) == (decision.eligible, decision.reason_code)
    assert [d.reason_code for d in many.values()] == ["level_sufficient", "level_below", "level_sufficient",
                                                      "assessment_expired", "level_unknown"]
    with pytest.raises(InvalidInput) as err:
        s.eligible_refs(db, corp_id=corp.id, product_code="F4", customer_refs=["ok", "has space"])
    assert err.value.field == "customer_refs"


def test_assessments_are_per_corp(db, corp):
    other = make_corp(db)
    for c in (corp, other):
        s.create_product(db, corp_id=c.id, actor="t", code="F3", name="基金", product_type="fund", risk_level="R3")
    s.record_assessment(db, corp_id=other.id, actor="t", customer_ref="shared-id", level="C5", source="manual")
    assert s.check_eligibility(db, corp_id=corp.id, customer_ref="shared-id", product_code="F3").reason_code == \
        "level_unknown"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"customer_ref": ""}, "customer_ref"), ({"customer_ref": "a b"}, "customer_ref"),
    ({"customer_ref": "x" * 129}, "customer_ref"), ({"level": "C0"}, "level"), ({"source": "rumour"}, "source"),
    ({"assessed_at": dt.datetime(2030, 1, 1)}, "assessed_at"),
    ({"assessed_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=2)}, "assessed_at"),
    ({"expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}, "expires_at"),
    ({"expires_at": dt.datetime(2099, 1, 1, tzinfo=dt.UTC)}, "expires_at"),
    ({"valid_months": 0}, "valid_months"), ({"valid_months": 61}, "valid_months"),
    ({"reference": "a\x00"}, "reference"),
])
def test_bad_assessment_input_names_the_field_and_writes_nothing(db, corp, kwargs, field):
    values = {"customer_ref": "wm1", "level": "C3", "source": "manual"} | kwargs
    with pytest.raises(InvalidInput) as err:
        s.record_assessment(db, corp_id=corp.id, actor="t", **values)
    assert err.value.field == field
    assert db.scalar(select(CustomerRiskAssessment.id).where(CustomerRiskAssessment.corp_id == corp.id)) is None
