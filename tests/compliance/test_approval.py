"""Maker–checker approval of outbound content: the state machine, the review and disclosures that go with
each version, history and audit, and isolation between corps."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from siyu.compliance import approval, suitability
from siyu.compliance.disclosure import DEFAULT_DISCLOSURES
from siyu.compliance.service import approved_content
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp, make_staff, principal_of

PLAIN = "您好，欢迎添加您的专属顾问，有任何问题随时联系我。"


def ref(corp) -> str:
    """The owner of the content of these tests: the corp (its default welcome), as a reference string."""
    return f"corp:{corp.id}"


def persona(db, corp, n: int = 0) -> tuple[str, int]:
    from siyu.acquisition import service as acquisition

    return ("persona", acquisition.list_personas(db, corp_id=corp.id)[n].id)


@pytest.fixture
def maker(db, corp):
    return principal_of(make_staff(db, corp, roles=("operations",)))


@pytest.fixture
def checker(db, corp):
    return principal_of(make_staff(db, corp, roles=("compliance",)))


def _create(db, corp, maker, text=PLAIN, **kwargs):
    return approval.create_item(db, corp_id=corp.id, actor=maker, kind="welcome", owner=("corp", corp.id),
                                title="渠道欢迎语", text=text, **kwargs)


def test_draft_submit_approve_then_in_force(db, corp, maker, checker):
    item = _create(db, corp, maker)
    assert item.status == "draft" and approval.approved_text(db, corp.id, "welcome", ref(corp)) is None
    version = approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    assert version.status == "submitted" and version.verdict == "pass" and item.status == "submitted"
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id, comment="可以")
    assert item.status == "approved" and item.approved_version == 1
    assert approval.approved_text(db, corp.id, "welcome", ref(corp)) == PLAIN
    assert approved_content(db, corp_id=corp.id, kind="welcome", ref=ref(corp)).final_text == PLAIN
    events = approval.history(db, corp_id=corp.id, item_id=item.id)
    assert [(e.action, e.actor) for e in events] == [("created", maker.label), ("submitted", maker.label),
                                                     ("approved", checker.label)]
    assert events[-1].comment == "可以" and events[-1].verdict == "pass"
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id,
                                                         AuditEntry.action.like("content.%"))).all()
    assert actions == ["content.created", "content.submitted", "content.approved"]


def test_the_maker_cannot_approve_their_own_content(db, corp):
    admin = principal_of(make_staff(db, corp, roles=("administrator",)))
    item = approval.create_item(db, corp_id=corp.id, actor=admin, kind="persona_intro", owner=persona(db, corp),
                                title="t", text=PLAIN)
    approval.submit(db, corp_id=corp.id, actor=admin, item_id=item.id)
    with pytest.raises(Forbidden):
        approval.approve(db, corp_id=corp.id, actor=admin, item_id=item.id)
    with pytest.raises(Forbidden):
        approval.reject(db, corp_id=corp.id, actor=admin, item_id=item.id, comment="no")
    ops = principal_of(make_staff(db, corp, roles=("operations",)))
    with pytest.raises(Forbidden):  # another person, but not a checker
        approval.approve(db, corp_id=corp.id, actor=ops, item_id=item.id)
    other_admin = principal_of(make_staff(db, corp, roles=("administrator",)))
    assert approval.approve(db, corp_id=corp.id, actor=other_admin, item_id=item.id).status == "approved"


def test_the_submitter_cannot_approve_either(db, corp, maker):
    officer = principal_of(make_staff(db, corp, roles=("compliance", "operations")))
    item = _create(db, corp, maker)
    approval.submit(db, corp_id=corp.id, actor=officer, item_id=item.id)
    with pytest.raises(Forbidden):
        approval.approve(db, corp_id=corp.id, actor=officer, item_id=item.id)


def test_blocked_text_cannot_be_submitted(db, corp, maker):
    item = _create(db, corp, maker, text="本产品保本保收益，稳赚不赔！")
    version = approval.get_version(db, corp_id=corp.id, item_id=item.id)
    assert version.verdict == "block" and any(f["match"] == "保本保收益" for f in version.findings)
    with pytest.raises(InvalidInput) as refused:
        approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    assert refused.value.field == "text" and "保本保收益" in refused.value.message
    assert version.status == "draft" and item.status == "draft"


def test_review_verdict_can_be_submitted_with_findings(db, corp, maker, checker):
    item = _create(db, corp, maker, text="本期精选高收益机会，欢迎咨询。")
    version = approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    assert version.verdict == "review" and version.findings
    marked = [s for s in approval.segments(version.final_text, version.findings) if s.finding]
    assert marked and marked[0].text == "高收益" and marked[0].finding["category"] == "promise"
    assert "".join(s.text for s in approval.segments(version.final_text, version.findings)) == version.final_text


def test_approved_version_is_immutable_and_a_new_version_needs_approval(db, corp, maker, checker):
    item = _create(db, corp, maker)
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id)
    v1 = approval.get_version(db, corp_id=corp.id, item_id=item.id, number=1)

    v2 = approval.edit(db, corp_id=corp.id, actor=maker, item_id=item.id, text="您好，新年快乐！欢迎添加顾问。")
    assert v2.number == 2 and v2.status == "draft" and v1.text == PLAIN and v1.status == "approved"
    assert item.status == "draft" and item.approved_version == 1
    assert approval.approved_text(db, corp.id, "welcome", ref(corp)) == PLAIN  # the old one stays in force
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    with pytest.raises(Conflict):  # awaiting approval: not editable
        approval.edit(db, corp_id=corp.id, actor=maker, item_id=item.id, text="再改一次")
    assert approval.approved_text(db, corp.id, "welcome", ref(corp)) == PLAIN
    approval.reject(db, corp_id=corp.id, actor=checker, item_id=item.id, comment="节日用语请换")
    assert item.status == "rejected" and approval.approved_text(db, corp.id, "welcome", ref(corp)) == PLAIN
    with pytest.raises(Conflict):
        approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id)

    v3 = approval.edit(db, corp_id=corp.id, actor=maker, item_id=item.id, text="您好！欢迎添加顾问。")
    assert v3.number == 3 and approval.get_version(db, corp_id=corp.id, item_id=item.id, number=2).status == "rejected"
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id, version=3)
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id, version=3)
    assert approval.approved_text(db, corp.id, "welcome", ref(corp)) == "您好！欢迎添加顾问。"
    assert [v.status for v in approval.versions(db, corp_id=corp.id, item_id=item.id)] == \
        ["superseded", "rejected", "approved"]
    assert [e.action for e in approval.history(db, corp_id=corp.id, item_id=item.id)] == [
        "created", "submitted", "approved", "new_version", "submitted", "rejected", "new_version", "submitted",
        "approved"]


def test_reject_needs_a_comment_and_stale_versions_conflict(db, corp, maker, checker):
    item = _create(db, corp, maker)
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    with pytest.raises(InvalidInput) as refused:
        approval.reject(db, corp_id=corp.id, actor=checker, item_id=item.id, comment="  ")
    assert refused.value.field == "comment"
    with pytest.raises(Conflict) as stale:
        approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id, version=7)
    assert stale.value.field == "version"
    approval.add_comment(db, corp_id=corp.id, actor=checker, item_id=item.id, comment="请补充活动时间")
    assert approval.history(db, corp_id=corp.id, item_id=item.id)[-1].comment == "请补充活动时间"


def test_a_draft_is_edited_in_place(db, corp, maker):
    item = _create(db, corp, maker)
    version = approval.edit(db, corp_id=corp.id, actor=maker, item_id=item.id, text="改过的欢迎语", title="新标题")
    assert version.number == 1 and version.text == "改过的欢迎语" and item.title == "新标题"


def test_disclosure_appended_when_a_product_is_attached(db, corp, maker, checker):
    suitability.create_product(db, corp_id=corp.id, actor="system", code="WM-01", name="稳享 90 天",
                               product_type="wealth_management", risk_level="R2")
    item = _create(db, corp, maker, text="稳享 90 天本周开放，欢迎了解。", product_codes=["WM-01"])
    version = approval.get_version(db, corp_id=corp.id, item_id=item.id)
    assert version.product_codes == ["WM-01"] and version.product_types == ["wealth_management"]
    assert version.disclosure_types == ["wealth_management"]
    assert version.text == "稳享 90 天本周开放，欢迎了解。"
    assert version.final_text.startswith(version.text) and version.final_text.endswith(
        DEFAULT_DISCLOSURES["wealth_management"])
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id)
    assert approval.approved_text(db, corp.id, "welcome", ref(corp)) == version.final_text


def test_disclosure_appended_for_product_content_and_product_types(db, corp, maker):
    item = approval.create_item(db, corp_id=corp.id, actor=maker, kind="persona_intro", owner=persona(db, corp),
                                title="基金",
                                text="本周基金定投课开讲，欢迎报名。", product_types=["insurance"])
    version = approval.get_version(db, corp_id=corp.id, item_id=item.id)
    assert version.disclosure_types == ["fund", "insurance"]
    assert DEFAULT_DISCLOSURES["fund"] in version.final_text and DEFAULT_DISCLOSURES["insurance"] in version.final_text
    plain = approval.get_version(db, corp_id=corp.id, item_id=_create(db, corp, maker).id)
    assert plain.final_text == plain.text and plain.disclosure_types == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"kind": "poster"}, "kind"),
    ({"owner": "has space"}, "owner"),
    ({"owner": ""}, "owner"),
    ({"owner": "channel_code:42"}, "owner"),  # no such owner type: free text is not an owner
    ({"owner": "corp:999999999"}, "owner"),  # another corp, or none
    ({"owner": "persona:1", "kind": "welcome"}, "kind"),  # a persona has no welcome
    ({"title": ""}, "title"),
    ({"text": "  "}, "text"),
    ({"text": "x" * 5000}, "text"),
    ({"text": "a\x00b"}, "text"),
    ({"product_codes": ["NOPE"]}, "product_codes"),
    ({"product_types": ["stocks"]}, "product_types"),
    ({"attachments": [{"type": "video"}]}, "attachments"),
    ({"attachments": [{"type": "link", "url": "javascript:alert(1)"}]}, "attachments"),
    ({"attachments": [{"type": "image"}]}, "attachments"),
])
def test_bad_input_names_the_field(db, corp, maker, kwargs, field):
    values = {"kind": "welcome", "owner": ref(corp), "title": "t", "text": PLAIN} | kwargs
    if values["owner"] == "persona:1":
        values["owner"] = f"persona:{persona(db, corp)[1]}"
    with pytest.raises((InvalidInput, NotFound)) as refused:
        approval.create_item(db, corp_id=corp.id, actor=maker, **values)
    assert refused.value.field == field


def test_attachments_are_kept(db, corp, maker):
    item = _create(db, corp, maker, attachments=[{"type": "link", "url": "https://example.com/a", "title": "活动"},
                                                 {"type": "miniprogram", "appid": "wx123", "page": "pages/a"}])
    version = approval.get_version(db, corp_id=corp.id, item_id=item.id)
    assert [a["type"] for a in version.attachments] == ["link", "miniprogram"]


def test_one_item_per_owner_and_save_draft(db, corp, maker):
    _create(db, corp, maker)
    with pytest.raises(Conflict):
        _create(db, corp, maker)
    version = approval.save_draft(db, corp_id=corp.id, actor=maker, kind="welcome", owner=("corp", corp.id),
                                  title="t", text="改过")
    assert version.number == 1 and version.text == "改过"
    fresh = approval.save_draft(db, corp_id=corp.id, actor=maker, kind="persona_intro", owner=persona(db, corp),
                                title="t", text="人设介绍")
    assert fresh.status == "draft"


def test_corps_do_not_see_each_others_content(db, corp, maker, checker):
    item = _create(db, corp, maker)
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id)
    other = make_corp(db)
    other_checker = principal_of(make_staff(db, other, roles=("compliance",)))
    assert approval.approved_text(db, other.id, "welcome", ref(corp)) is None
    with pytest.raises(InvalidInput) as foreign:  # another corp's object is no owner of this corp's content
        approval.create_item(db, corp_id=other.id, actor=other_checker, kind="welcome", owner=("corp", corp.id),
                             title="t", text=PLAIN)
    assert foreign.value.field == "owner"
    assert approval.list_items(db, corp_id=other.id) == []
    with pytest.raises(NotFound):
        approval.get_item(db, corp_id=other.id, item_id=item.id)
    with pytest.raises(NotFound):
        approval.add_comment(db, corp_id=other.id, actor=other_checker, item_id=item.id, comment="x")
    with pytest.raises(NotFound):
        approval.edit(db, corp_id=other.id, actor=other_checker, item_id=item.id, text="x")


def test_diff_between_versions():
    ops = approval.diff("欢迎添加顾问", "欢迎添加专属顾问")
    assert ("insert", "专属") in ops and "".join(p for op, p in ops if op != "delete") == "欢迎添加专属顾问"


# --- four eyes: whoever wrote ANY version, or submitted it, may not decide -----------------------------------


def test_four_eyes_covers_every_version_not_only_the_latest(db, corp, maker, checker):
    officer = principal_of(make_staff(db, corp, roles=("compliance", "operations")))
    item = _create(db, corp, officer)  # v1 written by someone who is also a checker
    approval.submit(db, corp_id=corp.id, actor=officer, item_id=item.id)
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id)
    approval.edit(db, corp_id=corp.id, actor=maker, item_id=item.id, text="您好！欢迎添加顾问。")  # v2 by another
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    with pytest.raises(Forbidden) as refused:
        approval.approve(db, corp_id=corp.id, actor=officer, item_id=item.id)
    assert "four eyes" in refused.value.message
    with pytest.raises(Forbidden):
        approval.reject(db, corp_id=corp.id, actor=officer, item_id=item.id, comment="no")
    assert not approval.may_decide(db, officer, item) and approval.may_decide(db, checker, item)
    assert approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id).number == 2


def test_four_eyes_remembers_an_earlier_writer_of_a_draft_edited_in_place(db, corp, maker, checker):
    officer = principal_of(make_staff(db, corp, roles=("compliance", "operations")))
    item = _create(db, corp, officer)
    approval.edit(db, corp_id=corp.id, actor=maker, item_id=item.id, text="改过的欢迎语")  # same draft, new writer
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    assert approval.get_version(db, corp_id=corp.id, item_id=item.id).created_by_staff_id == maker.staff_id
    with pytest.raises(Forbidden):
        approval.approve(db, corp_id=corp.id, actor=officer, item_id=item.id)
    approval.approve(db, corp_id=corp.id, actor=checker, item_id=item.id)


def test_an_api_key_or_job_never_approves(db, corp, maker):
    from siyu.tenancy.principal import Principal

    item = _create(db, corp, maker)
    approval.submit(db, corp_id=corp.id, actor=maker, item_id=item.id)
    key = Principal(corp_id=corp.id, kind="api_key", label="key", roles=frozenset({"compliance"}))
    with pytest.raises(Forbidden):
        approval.approve(db, corp_id=corp.id, actor=key, item_id=item.id)
