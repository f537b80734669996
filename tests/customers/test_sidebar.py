"""The advisor's chat sidebar: the customer's profile and every active product with the suitability
decision for this customer; a recommendation checked again on the server (suitability, wording,
consent), recorded with its evidence, on the timeline, in the list and its audited CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

import pytest
from sqlalchemy import select, update

from customers.factories import make_customer
from siyu.compliance import suitability
from siyu.compliance.disclosure import DEFAULT_DISCLOSURES, SEPARATOR
from siyu.customers import sidebar
from siyu.customers.models import CustomerEvent, ProductRecommendation
from siyu.db import utcnow
from siyu.errors import Forbidden, InvalidInput, NotFound
from siyu.privacy import service as privacy
from siyu.tenancy.models import AuditEntry
from tenancy.factories import console_user, make_client, make_corp, make_staff, principal_of

PROMISE = "保本保息，稳赚不赔"


@pytest.fixture
def shop(session):
    """A corp with a catalogue R1–R5, advisor 张 following 周 (C3), 吴 (never assessed), 郑 (C5, expired)."""
    corp = make_corp(session)
    zhang = make_staff(session, corp, name="张顾问", wecom_userid="zhang", login=f"zhang.{corp.id}")
    li = make_staff(session, corp, name="李顾问", wecom_userid="li", login=f"li.{corp.id}")
    for code, name, kind, level in (("DEP-1", "七天通知存款", "deposit", "R1"),
                                    ("WM-2", "稳健理财 2 号", "wealth_management", "R2"),
                                    ("FUND-3", "均衡混合基金", "fund", "R3"), ("FUND-4", "成长股票基金", "fund", "R4"),
                                    ("FUND-5", "杠杆指数基金", "fund", "R5")):
        suitability.create_product(session, corp_id=corp.id, actor="test", code=code, name=name, product_type=kind,
                                   risk_level=level)
    zhou = make_customer(session, corp.id, userid="zhang", name="周杰", state="qr-branch-1",
                         tags=[("t1", "意向", "基金")])
    wu = make_customer(session, corp.id, userid="zhang", name="吴敏")
    zheng = make_customer(session, corp.id, userid="zhang", name="郑凯")
    li_customer = make_customer(session, corp.id, userid="li", name="冯丽")
    now = utcnow()
    suitability.record_assessment(session, corp_id=corp.id, actor="test", customer_ref=zhou.external_userid,
                                  level="C3", source="firm_kyc_api", assessed_at=now - dt.timedelta(days=10))
    suitability.record_assessment(session, corp_id=corp.id, actor="test", customer_ref=zheng.external_userid,
                                  level="C5", source="questionnaire", assessed_at=now - dt.timedelta(days=400))
    return dict(corp=corp, zhang=zhang, li=li, zhou=zhou, wu=wu, zheng=zheng, li_customer=li_customer)


def _options(view) -> dict[str, sidebar.ProductOption]:
    return {p.code: p for p in view.products}


# --- service ------------------------------------------------------------------------------------------------------


def test_the_view_decides_each_product_for_this_customer_eligible_first(session, shop):
    view = sidebar.sidebar_view(session, principal=principal_of(shop["zhang"]),
                                external_userid=shop["zhou"].external_userid)
    assert view.detail.row.name_masked == "周*" and view.detail.risk.level == "C3"
    assert [p.code for p in view.products] == ["DEP-1", "WM-2", "FUND-3", "FUND-4", "FUND-5"]
    options = _options(view)
    assert [options[c].decision.eligible for c in ("DEP-1", "WM-2", "FUND-3", "FUND-4", "FUND-5")] == \
        [True, True, True, False, False]
    assert options["DEP-1"].decision.reason_code == "r1_for_all"
    assert options["FUND-4"].decision.reason == suitability.decide("C3", "R4").reason
    assert "低于产品风险等级R4" in options["FUND-4"].decision.reason


def test_not_assessed_and_expired_customers_may_be_offered_r1_only(session, shop):
    for who, code in (("wu", "level_unknown"), ("zheng", "assessment_expired")):
        view = sidebar.sidebar_view(session, principal=principal_of(shop["zhang"]),
                                    external_userid=shop[who].external_userid)
        assert [p.code for p in view.products if p.decision.eligible] == ["DEP-1"], who
        assert {p.decision.reason_code for p in view.products if not p.decision.eligible} == {code}
    suitability.deactivate_product(session, corp_id=shop["corp"].id, actor="test", code="FUND-5")
    view = sidebar.sidebar_view(session, principal=principal_of(shop["zhang"]),
                                external_userid=shop["zhou"].external_userid)
    assert "FUND-5" not in _options(view)


def test_a_recommendation_is_recorded_with_its_evidence_and_the_fund_disclosure(session, shop):
    zhang, zhou = shop["zhang"], shop["zhou"]
    row = sidebar.recommend(session, principal=principal_of(zhang), external_userid=zhou.external_userid,
                            product_code="FUND-3", message="您上次问的均衡型产品，供参考。")
    assert row.final_text == ("您上次问的均衡型产品，供参考。\n【基金】均衡混合基金（产品代码 FUND-3，"
                              "风险等级 R3（中风险））" + SEPARATOR + DEFAULT_DISCLOSURES["fund"])
    assert (row.customer_level, row.product_risk_level, row.decision_code) == ("C3", "R3", "level_sufficient")
    assert row.advisor_staff_id == zhang.id and row.disclosed == ["fund"] and row.verdict == "pass"
    assert row.explanation == suitability.decide("C3", "R3").reason
    event = session.scalar(select(CustomerEvent).where(CustomerEvent.customer_id == zhou.id,
                                                       CustomerEvent.kind == "product_recommended"))
    assert event.detail["product_code"] == "FUND-3" and event.actor_staff_id == zhang.id
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.product_recommended",
                                                    AuditEntry.chain_id == shop["corp"].id))
    assert entry.target_id == str(row.id)
    # R1 for a customer never assessed; no message: the product line alone, with the deposit notice.
    r1 = sidebar.recommend(session, principal=principal_of(zhang), external_userid=shop["wu"].external_userid,
                           product_code="DEP-1")
    assert r1.final_text.startswith("为您推荐：【存款】七天通知存款") and r1.customer_level is None
    assert r1.final_text.endswith(DEFAULT_DISCLOSURES["deposit"]) and r1.decision_code == "r1_for_all"


@pytest.mark.parametrize("who, code, reason_code", [
    ("zhou", "FUND-4", "level_below"), ("wu", "FUND-3", "level_unknown"), ("zheng", "WM-2", "assessment_expired")])
def test_an_ineligible_product_is_refused_naming_the_field_and_nothing_is_stored(session, shop, who, code,
                                                                                 reason_code):
    with pytest.raises(sidebar.NotSuitable) as refused:
        sidebar.recommend(session, principal=principal_of(shop["zhang"]), external_userid=shop[who].external_userid,
                          product_code=code)
    assert refused.value.field == "product_code" and refused.value.decision.reason_code == reason_code
    assert refused.value.status_code == 422
    assert session.scalar(select(ProductRecommendation.id)) is None


def test_the_server_decides_again_when_the_page_was_stale(session, shop):
    """The page showed FUND-3 eligible for 周 (C3); a new assessment at C2 arrives before the click."""
    zhang, zhou = shop["zhang"], shop["zhou"]
    view = sidebar.sidebar_view(session, principal=principal_of(zhang), external_userid=zhou.external_userid)
    assert _options(view)["FUND-3"].decision.eligible
    suitability.record_assessment(session, corp_id=shop["corp"].id, actor="test", customer_ref=zhou.external_userid,
                                  level="C2", source="questionnaire")
    with pytest.raises(sidebar.NotSuitable) as refused:
        sidebar.recommend(session, principal=principal_of(zhang), external_userid=zhou.external_userid,
                          product_code="FUND-3")
    assert refused.value.decision.customer_level == "C2"
    # …and a product deactivated since the page was drawn.
    suitability.deactivate_product(session, corp_id=shop["corp"].id, actor="test", code="WM-2")
    with pytest.raises(sidebar.NotSuitable) as refused:
        sidebar.recommend(session, principal=principal_of(zhang), external_userid=zhou.external_userid,
                          product_code="WM-2")
    assert refused.value.decision.reason_code == "product_inactive"


def test_blocked_wording_is_refused_with_the_phrases(session, shop):
    with pytest.raises(sidebar.Blocked) as blocked:
        sidebar.recommend(session, principal=principal_of(shop["zhang"]), external_userid=shop["zhou"].external_userid,
                          product_code="FUND-3", message="这只基金" + PROMISE)
    assert blocked.value.field == "message" and {"保本保息", "稳赚不赔"} <= set(blocked.value.phrases)
    assert session.scalar(select(ProductRecommendation.id)) is None


def test_a_customer_who_withdrew_marketing_consent_gets_no_recommendation(session, shop):
    zhou = shop["zhou"]
    privacy.record_consent(session, corp_id=shop["corp"].id, actor="test", external_userid=zhou.external_userid,
                           purpose="marketing", granted=False, source="chat", note="TD")
    with pytest.raises(Forbidden):
        sidebar.recommend(session, principal=principal_of(shop["zhang"]), external_userid=zhou.external_userid,
                          product_code="DEP-1")


def test_only_the_advisor_who_follows_the_customer_recommends(session, shop):
    with pytest.raises(NotFound):
        sidebar.recommend(session, principal=principal_of(shop["li"]), external_userid=shop["zhou"].external_userid,
                          product_code="DEP-1")
    compliance = make_staff(session, shop["corp"], roles=["compliance"])
    with pytest.raises(Forbidden):
        sidebar.recommend(session, principal=principal_of(compliance), external_userid=shop["zhou"].external_userid,
                          product_code="DEP-1")
    with pytest.raises(InvalidInput) as bad:
        sidebar.recommend(session, principal=principal_of(shop["zhang"]), external_userid=shop["zhou"].external_userid,
                          product_code="DEP-1", message="x" * 301)
    assert bad.value.field == "message"


def test_retention_purge_and_data_subject_requests(session, shop):
    corp_id, zhou = shop["corp"].id, shop["zhou"]
    row = sidebar.recommend(session, principal=principal_of(shop["zhang"]), external_userid=zhou.external_userid,
                            product_code="FUND-3")
    exported = privacy.subject_domains()
    customers = next(d for d in exported if d.name == "customers")
    bundle = customers.exporter(session, corp_id=corp_id, external_userid=zhou.external_userid)
    assert [r["product_code"] for r in bundle["recommendations"]] == ["FUND-3"]
    erased = customers.eraser(session, corp_id=corp_id, external_userid=zhou.external_userid)
    assert {"record": "product_recommendations", "count": 1} == {k: v for k, v in erased.kept[0].items()
                                                                 if k != "reason"}
    assert session.get(ProductRecommendation, row.id) is not None
    purge = next(fn for fn in privacy.purgers()["order"] if fn is sidebar.purge_recommendations)
    assert purge(session, corp_id=corp_id, before=utcnow() - dt.timedelta(days=1), limit=500) == 0
    session.execute(update(ProductRecommendation).values(created_at=utcnow() - dt.timedelta(days=21 * 365)))
    assert purge(session, corp_id=corp_id, before=utcnow() - dt.timedelta(days=20 * 365), limit=500) == 1


# --- pages --------------------------------------------------------------------------------------------------------


def _logged_in(session, staff):
    from tenancy.factories import ConsoleClient, log_in

    client = make_client(session)
    return ConsoleClient(client, staff, log_in(client, staff))


def test_the_sidebar_page_in_chinese_and_english(session, shop):
    user = _logged_in(session, shop["zhang"])
    page = user.get("/sidebar", params={"external_userid": shop["zhou"].external_userid})
    assert page.status_code == 200 and "周*" in page.text and "周杰" not in page.text
    assert 'width=device-width' in page.text and "C3" in page.text and "qr-branch-1" in page.text
    assert re.findall(r'data-code="([^"]+)" data-eligible="(\w+)"', page.text) == [
        ("DEP-1", "yes"), ("WM-2", "yes"), ("FUND-3", "yes"), ("FUND-4", "no"), ("FUND-5", "no")]
    assert "不适合推荐" in page.text and "客户风险等级C3（平衡型）低于产品风险等级R4（中高风险）" in page.text
    assert page.text.count('data-testid="sb-recommend"') == 3
    english = user.get("/sidebar", params={"external_userid": shop["zhou"].external_userid, "lang": "en"})
    assert "The customer's risk level C3 is below the product's R4" in html.unescape(english.text)
    assert "Not suitable" in english.text
    unassessed = user.get("/sidebar", params={"external_userid": shop["wu"].external_userid, "lang": "zh_CN"})
    assert "未测评" in unassessed.text
    expired = user.get("/sidebar", params={"external_userid": shop["zheng"].external_userid})
    assert "已过期" in expired.text


def test_recommend_from_the_page_shows_the_final_text_and_refuses_naming_the_field(session, shop):
    user, zhou = _logged_in(session, shop["zhang"]), shop["zhou"]
    done = user.post("/sidebar/recommend", {"external_userid": zhou.external_userid, "product_code": "FUND-3",
                                            "message": "供您参考"})
    assert done.status_code == 200 and 'data-testid="sb-final"' in done.text
    assert DEFAULT_DISCLOSURES["fund"] in done.text and "sendChatMessage" in done.text
    refused = user.post("/sidebar/recommend", {"external_userid": zhou.external_userid, "product_code": "FUND-5"})
    assert refused.status_code == 422 and 'data-field="product_code"' in refused.text
    assert "低于产品风险等级R5" in refused.text
    blocked = user.post("/sidebar/recommend", {"external_userid": zhou.external_userid, "product_code": "FUND-3",
                                               "message": PROMISE})
    assert blocked.status_code == 422 and 'data-field="message"' in blocked.text and "保本保息" in blocked.text
    unknown = user.post("/sidebar/recommend", {"external_userid": zhou.external_userid, "product_code": "NOPE"})
    assert unknown.status_code == 404 and 'data-field="product_code"' in unknown.text
    bad = user.get("/sidebar", params={"external_userid": "bad id!"})
    assert bad.status_code == 422 and 'data-field="external_userid"' in bad.text
    assert session.scalar(select(ProductRecommendation.product_code)) == "FUND-3"
    # The 360 page's timeline shows it.
    detail = user.get(f"/customers/{zhou.id}")
    assert 'data-testid="event-product_recommended"' in detail.text and "FUND-3" in detail.text


def test_an_advisor_opens_only_their_customers_and_another_corp_nothing(session, shop):
    li = _logged_in(session, shop["li"])
    assert li.get("/sidebar", params={"external_userid": shop["zhou"].external_userid}).status_code == 404
    assert li.post("/sidebar/recommend", {"external_userid": shop["zhou"].external_userid,
                                          "product_code": "DEP-1"}).status_code == 404
    assert li.get("/sidebar", params={"external_userid": shop["li_customer"].external_userid}).status_code == 200
    other = console_user(session, make_corp(session), roles=["administrator", "advisor"])
    assert other.get("/sidebar", params={"external_userid": shop["zhou"].external_userid}).status_code == 404
    assert other.post("/sidebar/recommend", {"external_userid": shop["zhou"].external_userid,
                                             "product_code": "DEP-1"}).status_code == 404
    assert session.scalar(select(ProductRecommendation.id)) is None
    assert make_client(session).get("/sidebar", params={"external_userid": "x"},
                                    follow_redirects=False).status_code in (303, 401)


def test_the_recommendations_list_filters_and_exports_audited(session, shop):
    zhang = shop["zhang"]
    for code in ("DEP-1", "FUND-3"):
        sidebar.recommend(session, principal=principal_of(zhang), external_userid=shop["zhou"].external_userid,
                          product_code=code)
    ops = console_user(session, shop["corp"], roles=["compliance"])
    page = ops.get("/customers/recommendations")
    assert page.status_code == 200 and page.text.count('data-testid="recommendation-row"') == 2
    assert "推荐记录" in page.text
    assert ops.get("/customers/recommendations", params={"product_code": "FUND-3"}).text.count(
        'data-testid="recommendation-row"') == 1
    assert ops.get("/customers/recommendations", params={"advisor_id": str(shop["li"].id)}).text.count(
        'data-testid="recommendation-row"') == 0
    bad = ops.get("/customers/recommendations", params={"date_from": "2026-02-30"})
    assert bad.status_code == 422 and 'data-field="date_from"' in bad.text
    export = ops.get("/customers/recommendations/export/csv", params={"product_code": "FUND-3"})
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert len(rows) == 2 and rows[1][4] == "FUND-3" and rows[1][2] == "周*" and "周杰" not in export.text
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "recommendations.exported",
                                                    AuditEntry.chain_id == shop["corp"].id))
    assert entry.detail["rows"] == 1 and entry.detail["filter"] == {"product_code": "FUND-3"}
    # An advisor sees their own recommendations only and takes no export.
    li = _logged_in(session, shop["li"])
    assert li.get("/customers/recommendations").text.count('data-testid="recommendation-row"') == 0
    assert li.get("/customers/recommendations/export/csv").status_code == 403
