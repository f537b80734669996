"""The customers domain's service: subscribers to WeCom's contact events (idempotent, order-tolerant),
the profile read from WeCom, visibility by role and department, search, filters and keyset pages,
notes, the firm's identity link and audited unmasking."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text

from customers.factories import T0, add_payload, external_id, job_context, make_customer, profile
from siyu.compliance import suitability
from siyu.customers import contacts, jobs, service
from siyu.customers.models import Customer, CustomerEvent, CustomerFollow, CustomerTagLink
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.jobs.models import Job
from siyu.tenancy import audit
from siyu.tenancy import service as tenancy
from tenancy.factories import make_corp, make_staff, principal_of


@pytest.fixture
def org(session):
    """A corp with two branches under a retail department: advisors in each, a team lead who sees
    the retail subtree, an operations manager and a compliance officer."""
    corp = make_corp(session)
    retail = tenancy.create_department(session, corp_id=corp.id, name="零售部")
    east = tenancy.create_department(session, corp_id=corp.id, name="东区支行", parent_id=retail.id)
    west = tenancy.create_department(session, corp_id=corp.id, name="西区支行")
    staff = {
        "zhang": make_staff(session, corp, name="张顾问", wecom_userid="zhang", department_id=east.id),
        "li": make_staff(session, corp, name="李顾问", wecom_userid="li", department_id=east.id),
        "wang": make_staff(session, corp, name="王顾问", wecom_userid="wang", department_id=west.id),
        "lead": make_staff(session, corp, name="刘主管", wecom_userid="lead", department_id=retail.id,
                           sees_department=True),
        "ops": make_staff(session, corp, name="运营", roles=["operations"]),
        "compliance": make_staff(session, corp, name="合规", roles=["compliance"]),
    }
    return corp, staff


def _events(session, customer_id: int) -> list[str]:
    return list(session.scalars(select(CustomerEvent.kind).where(CustomerEvent.customer_id == customer_id)
                                .order_by(CustomerEvent.at, CustomerEvent.id)))


def _snapshot(session, corp_id: int):
    session.expire_all()
    return (
        session.execute(select(Customer.id, Customer.stage, Customer.first_added_at, Customer.lost_at,
                               Customer.name_hash).where(Customer.corp_id == corp_id).order_by(Customer.id)).all(),
        session.execute(select(CustomerFollow.id, CustomerFollow.status, CustomerFollow.add_time,
                               CustomerFollow.ended_at, CustomerFollow.state, CustomerFollow.staff_id)
                        .where(CustomerFollow.corp_id == corp_id).order_by(CustomerFollow.id)).all(),
        session.scalar(select(func.count()).select_from(CustomerEvent).where(CustomerEvent.corp_id == corp_id)),
        session.scalar(select(func.count()).select_from(Job).where(Job.corp_id == corp_id)),
    )


# --- subscribers ------------------------------------------------------------------------------------------------


def test_an_add_records_customer_follow_and_timeline_once(session, org):
    corp, staff = org
    ext = external_id()
    payload = add_payload("zhang", ext, state="ad-douyin-2026")
    jobs.upsert_contact(session, payload, job_context(corp.id))
    customer = contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext)
    assert customer.stage == "new" and customer.first_added_at == T0 and customer.name is None
    (follow,) = session.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == customer.id)).all()
    assert (follow.staff_id, follow.wecom_userid, follow.state, follow.status, follow.add_time) == (
        staff["zhang"].id, "zhang", "ad-douyin-2026", "active", T0)
    assert _events(session, customer.id) == ["added"]
    fetch = session.scalars(select(Job).where(Job.name == jobs.FETCH_PROFILE, Job.corp_id == corp.id)).all()
    assert [j.payload for j in fetch] == [{"external_userid": ext}]

    before = _snapshot(session, corp.id)
    jobs.upsert_contact(session, payload, job_context(corp.id, job_id=2))  # redelivered / re-run
    assert _snapshot(session, corp.id) == before


def test_a_second_advisor_adds_the_same_customer(session, org):
    corp, staff = org
    ext = external_id()
    jobs.upsert_contact(session, add_payload("zhang", ext, state="a"), job_context(corp.id))
    jobs.upsert_contact(session, add_payload("li", ext, at=T0 + dt.timedelta(days=3), state="b"), job_context(corp.id))
    customer = contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext)
    follows = session.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == customer.id)
                              .order_by(CustomerFollow.id)).all()
    assert [(f.wecom_userid, f.state) for f in follows] == [("zhang", "a"), ("li", "b")]
    assert customer.first_added_at == T0


def test_an_advisor_unknown_to_siyu_is_linked_when_known(session, org):
    corp, _staff = org
    ext = external_id()
    jobs.upsert_contact(session, add_payload("newcomer", ext), job_context(corp.id))
    follow = session.scalar(select(CustomerFollow).where(CustomerFollow.wecom_userid == "newcomer"))
    assert follow.staff_id is None
    newcomer = make_staff(session, corp, wecom_userid="newcomer")
    jobs.contact_edited(session, {**add_payload("newcomer", ext), "change_type": "edit_external_contact"},
                        job_context(corp.id))
    contacts.apply_profile(session, corp_id=corp.id, detail=profile(ext, "钱七", [{"userid": "newcomer"}]))
    assert follow.staff_id == newcomer.id


def test_losing_the_last_advisor_makes_the_customer_lost(session, org):
    corp, _staff = org
    ext = external_id()
    jobs.upsert_contact(session, add_payload("zhang", ext), job_context(corp.id))
    jobs.upsert_contact(session, add_payload("li", ext, at=T0 + dt.timedelta(hours=1)), job_context(corp.id))
    customer = contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext)

    deleted = add_payload("zhang", ext, at=T0 + dt.timedelta(days=1))
    jobs.contact_deleted(session, deleted, job_context(corp.id))
    assert customer.stage == "new", "another advisor still follows"
    lost = add_payload("li", ext, at=T0 + dt.timedelta(days=2))
    jobs.contact_lost(session, lost, job_context(corp.id))
    assert customer.stage == "lost" and customer.lost_at == T0 + dt.timedelta(days=2)
    statuses = dict(session.execute(select(CustomerFollow.wecom_userid, CustomerFollow.status)
                                    .where(CustomerFollow.customer_id == customer.id)).all())
    assert statuses == {"zhang": "deleted_by_staff", "li": "lost"}
    assert _events(session, customer.id) == ["added", "added", "deleted_by_staff", "lost", "stage_changed"]

    before = _snapshot(session, corp.id)
    jobs.contact_deleted(session, deleted, job_context(corp.id))
    jobs.contact_lost(session, lost, job_context(corp.id))
    assert _snapshot(session, corp.id) == before


def test_a_customer_who_comes_back_keeps_their_stage(session, org):
    corp, _staff = org
    customer = make_customer(session, corp.id, userid="zhang", stage="invested")
    jobs.contact_lost(session, add_payload("zhang", customer.external_userid, at=T0 + dt.timedelta(days=5)),
                      job_context(corp.id))
    assert customer.stage == "lost"
    jobs.upsert_contact(session, add_payload("zhang", customer.external_userid, at=T0 + dt.timedelta(days=9),
                                             state="winback"), job_context(corp.id))
    follow = session.scalar(select(CustomerFollow).where(CustomerFollow.customer_id == customer.id))
    assert (follow.status, follow.state, follow.ended_at) == ("active", "winback", None)
    assert customer.stage == "invested" and customer.lost_at is None


def test_events_out_of_order_settle_on_the_latest(session, org):
    corp, _staff = org
    ext = external_id()
    # The deletion is processed before the add it ends: nothing to end yet.
    jobs.contact_lost(session, add_payload("zhang", ext, at=T0 + dt.timedelta(hours=1)), job_context(corp.id))
    assert contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext) is None
    # An old add arriving after a later end does not bring the follow back.
    jobs.upsert_contact(session, add_payload("zhang", ext, at=T0 + dt.timedelta(days=1)), job_context(corp.id))
    jobs.contact_lost(session, add_payload("zhang", ext, at=T0 + dt.timedelta(days=2)), job_context(corp.id))
    jobs.upsert_contact(session, add_payload("zhang", ext, at=T0 + dt.timedelta(hours=30)), job_context(corp.id))
    follow = session.scalar(select(CustomerFollow).where(CustomerFollow.wecom_userid == "zhang",
                                                         CustomerFollow.corp_id == corp.id))
    assert follow.status == "lost" and follow.ended_at == T0 + dt.timedelta(days=2)


def test_edit_of_an_unknown_customer_records_the_add_and_reads_the_profile(session, org):
    corp, _staff = org
    ext = external_id()
    payload = {**add_payload("wang", ext), "change_type": "edit_external_contact"}
    jobs.contact_edited(session, payload, job_context(corp.id))
    customer = contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext)
    assert _events(session, customer.id) == ["added", "edited"]
    before = _snapshot(session, corp.id)
    jobs.contact_edited(session, payload, job_context(corp.id))
    assert _snapshot(session, corp.id) == before


def test_a_failed_transfer_is_on_the_timeline(session, org):
    corp, _staff = org
    customer = make_customer(session, corp.id, userid="zhang")
    payload = {**add_payload("zhang", customer.external_userid), "fail_reason": "customer_refused"}
    jobs.transfer_failed(session, payload, job_context(corp.id))
    jobs.transfer_failed(session, payload, job_context(corp.id))
    event = session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == customer.id,
                                                        CustomerEvent.kind == "transfer_failed")).one()
    assert event.detail["fail_reason"] == "customer_refused"


def test_bad_payloads_fail_for_good(session, org):
    from siyu.jobs.registry import PermanentFailure

    corp, _staff = org
    with pytest.raises(PermanentFailure):
        jobs.upsert_contact(session, {"userid": "zhang"}, job_context(corp.id))
    with pytest.raises(PermanentFailure):
        jobs.upsert_contact(session, add_payload("zhang", external_id()), job_context(None))


class FakeClient:
    def __init__(self, detail):
        self.detail, self.calls = detail, 0

    def get_external_contact(self, external_userid):
        self.calls += 1
        assert external_userid == self.detail.external_contact.external_userid
        return self.detail


def test_the_profile_job_writes_name_remarks_and_tags_once(session, org, monkeypatch):
    corp, _staff = org
    ext = external_id()
    jobs.upsert_contact(session, add_payload("zhang", ext, state="qr-1"), job_context(corp.id))
    detail = profile(ext, "陈小红", [
        {"userid": "zhang", "remark": "陈姐 理财", "createtime": int(T0.timestamp()), "state": "qr-1",
         "tags": [("et1", "风险等级", "C3"), ("et2", "意向", "基金")]},
    ], gender=2, unionid="oUnion123")
    client = FakeClient(detail)
    monkeypatch.setattr(jobs, "wecom_client", lambda corp_id: client)
    jobs.fetch_profile(session, {"external_userid": ext}, job_context(corp.id))
    customer = contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext)
    assert (customer.name, customer.gender, customer.unionid) == ("陈小红", 2, "oUnion123")
    assert customer.name_hash == contacts.name_hash("陈小红") and customer.profile_synced_at is not None
    stored = session.scalar(text("SELECT name FROM customer WHERE id = :id"), {"id": customer.id})
    assert "陈" not in stored, "the name is encrypted at rest"
    follow = session.scalar(select(CustomerFollow).where(CustomerFollow.customer_id == customer.id))
    assert follow.remark == "陈姐 理财" and follow.add_way == 1
    assert len(session.scalars(select(CustomerTagLink).where(CustomerTagLink.customer_id == customer.id)).all()) == 2

    before = _snapshot(session, corp.id)
    jobs.fetch_profile(session, {"external_userid": ext}, job_context(corp.id))
    assert _snapshot(session, corp.id) == before and client.calls == 2

    # A tag removed in WeCom goes; one added comes.
    detail.follow_user[0].tags = detail.follow_user[0].tags[:1] + [
        detail.follow_user[0].tags[0].model_copy(update={"tag_id": "et3", "tag_name": "高净值"})]
    jobs.fetch_profile(session, {"external_userid": ext}, job_context(corp.id))
    names = service.customer_detail(session, principal=principal_of(_staff["ops"]), customer_id=customer.id).tags
    assert sorted(t.name for t in names) == ["C3", "高净值"]
    assert _events(session, customer.id).count("tags_changed") == 2


def test_the_profile_job_without_a_connection_does_nothing(session, org, monkeypatch):
    corp, _staff = org
    monkeypatch.setattr(jobs, "wecom_client", lambda corp_id: None)
    jobs.fetch_profile(session, {"external_userid": external_id()}, job_context(corp.id))


# --- visibility ---------------------------------------------------------------------------------------------------


@pytest.fixture
def book(session, org):
    """Customers of each advisor (two of them followed by two advisors)."""
    corp, staff = org
    made = {
        "zhang1": make_customer(session, corp.id, userid="zhang", name="周一", state="qr-a1"),
        "zhang2": make_customer(session, corp.id, userid="zhang", name="周二", state="ad-x"),
        "li1": make_customer(session, corp.id, userid="li", name="李一"),
        "wang1": make_customer(session, corp.id, userid="wang", name="王一"),
        "lead1": make_customer(session, corp.id, userid="lead", name="刘一"),
    }
    jobs.upsert_contact(session, add_payload("wang", made["zhang1"].external_userid, at=T0 + dt.timedelta(days=1)),
                        job_context(corp.id))
    return made


def _names(session, principal, **filters) -> set[str]:
    page = service.list_customers(session, principal=principal, filters=service.make_filters(**filters), limit=200)
    by_id = {c.id: c.name for c in session.scalars(select(Customer).where(Customer.id.in_([r.id for r in page.rows])))}
    return {by_id[r.id] for r in page.rows}


def test_advisors_see_their_own_customers(session, org, book):
    _corp, staff = org
    assert _names(session, principal_of(staff["zhang"])) == {"周一", "周二"}
    assert _names(session, principal_of(staff["li"])) == {"李一"}
    assert _names(session, principal_of(staff["wang"])) == {"王一", "周一"}
    # the team lead sees the retail subtree (east branch and themselves), not the west branch
    assert _names(session, principal_of(staff["lead"])) == {"周一", "周二", "李一", "刘一"}
    everyone = {"周一", "周二", "李一", "王一", "刘一"}
    assert _names(session, principal_of(staff["ops"])) == everyone
    assert _names(session, principal_of(staff["compliance"])) == everyone


def test_an_advisor_cannot_reach_another_advisors_customer(session, org, book):
    _corp, staff = org
    li = principal_of(staff["li"])
    with pytest.raises(NotFound):
        service.customer_detail(session, principal=li, customer_id=book["zhang2"].id)
    with pytest.raises(NotFound):
        service.get_customer_by_external_id(session, principal=li, external_userid=book["zhang2"].external_userid)
    with pytest.raises(NotFound):
        service.unmask_customer(session, principal=li, customer_id=book["zhang2"].id)
    with pytest.raises(NotFound):
        service.add_note(session, principal=li, customer_id=book["zhang2"].id, text="不该看到")
    # filtering by another advisor shows nothing rather than their customers
    assert _names(session, li, staff_id=staff["zhang"].id) == set()
    assert service.stage_counts(session, principal=li)["new"] == 1


def test_a_lost_follow_no_longer_shows_the_customer_to_that_advisor(session, org, book):
    corp, staff = org
    jobs.contact_lost(session, add_payload("wang", book["zhang1"].external_userid, at=T0 + dt.timedelta(days=2)),
                      job_context(corp.id))
    assert _names(session, principal_of(staff["wang"])) == {"王一"}
    assert "周一" in _names(session, principal_of(staff["zhang"]))


def test_another_corps_staff_see_nothing(session, org, book):
    other = make_corp(session)
    admin = make_staff(session, other, roles=["administrator"])
    principal = principal_of(admin)
    assert service.list_customers(session, principal=principal).rows == []
    assert service.count_customers(session, principal=principal) == 0
    with pytest.raises(NotFound):
        service.customer_detail(session, principal=principal, customer_id=book["li1"].id)


# --- search, filters, pages ------------------------------------------------------------------------------------------


def test_search_by_name_external_id_remark_and_firm_id(session, org, book):
    corp, staff = org
    ops = principal_of(staff["ops"])
    assert _names(session, ops, q="周一") == {"周一"}
    assert _names(session, ops, q=" 周一 ") == {"周一"}
    assert _names(session, ops, q="周") == {"周一", "周二"}, "a part of a name finds every customer it is in"
    assert _names(session, ops, q="周三") == set()
    assert _names(session, ops, q=book["li1"].external_userid) == {"李一"}
    remarked = make_customer(session, corp.id, userid="li", name="孙二", remark="孙总 VIP")
    assert _names(session, ops, q="孙总 vip") == {"孙二"}
    service.link_firm_customer(session, principal=ops, external_userid=remarked.external_userid,
                               firm_customer_id="C-000123")
    assert _names(session, ops, q="C-000123") == {"孙二"}
    assert _names(session, principal_of(staff["zhang"]), q="孙二") == set(), "search stays within visibility"


def test_filters_alone_and_combined(session, org, book):
    corp, staff = org
    ops = principal_of(staff["ops"])
    early = make_customer(session, corp.id, userid="li", name="早客",
                          at=dt.datetime(2026, 1, 31, 16, 30, tzinfo=dt.UTC), state="qr-a2",
                          tags=[("t1", "意向", "基金")], stage="invested")
    make_customer(session, corp.id, userid="zhang", name="晚客", at=dt.datetime(2026, 2, 1, 16, 0, tzinfo=dt.UTC),
                  tags=[("t1", "意向", "基金")])
    tag_id = session.scalar(select(CustomerTagLink.tag_id).where(CustomerTagLink.customer_id == early.id))
    assert _names(session, ops, stage="invested") == {"早客"}
    assert _names(session, ops, staff_id=staff["zhang"].id) == {"周一", "周二", "晚客"}
    assert _names(session, ops, tag_id=tag_id) == {"早客", "晚客"}
    assert _names(session, ops, state="qr-a") == {"周一", "早客"}
    assert _names(session, ops, state="QR-A") == set(), "the state prefix is case-sensitive, as WeCom's state is"
    # 2026-01-31 16:30 UTC is 2026-02-01 00:30 in Shanghai: the day is the calendar day in China
    assert _names(session, ops, added_from="2026-02-01", added_to="2026-02-01") == {"早客"}
    assert _names(session, ops, added_to="2026-02-01") == {"早客"}
    assert _names(session, ops, tag_id=tag_id, staff_id=staff["zhang"].id, added_from="2026-02-02") == {"晚客"}
    counts = service.stage_counts(session, principal=ops)
    assert counts["invested"] == 1 and sum(counts.values()) == service.count_customers(session, principal=ops) == 7


@pytest.mark.parametrize(("field", "value"), [
    ("stage", "vip"), ("staff_id", "abc"), ("staff_id", "9" * 30), ("tag_id", "-1"), ("added_from", "2026-13-01"),
    ("q", "x" * 200), ("state", "a\x00"),
])
def test_bad_filters_name_the_field(field, value):
    with pytest.raises(InvalidInput) as exc:
        service.make_filters(**{field: value})
    assert exc.value.field == field


def test_the_date_range_must_be_in_order():
    with pytest.raises(InvalidInput) as exc:
        service.make_filters(added_from="2026-03-02", added_to="2026-03-01")
    assert exc.value.field == "added_from"


def test_keyset_pages_cover_every_customer_once_newest_first(session, org):
    corp, staff = org
    ops = principal_of(staff["ops"])
    same_time = T0 + dt.timedelta(days=10)
    for i in range(23):
        make_customer(session, corp.id, userid="zhang", name=f"客户{i}",
                      at=same_time if i % 3 == 0 else T0 + dt.timedelta(hours=i))
    seen, after, pages = [], None, 0
    while True:
        page = service.list_customers(session, principal=ops, after=after, limit=5)
        seen += [(r.first_added_at, r.id) for r in page.rows]
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert pages == 5 and len(seen) == len(set(seen)) == 23
    assert seen == sorted(seen, reverse=True)


def test_a_forged_cursor_is_refused_by_name():
    for bad in ("5", "abc-1", "1-0", "-1-2", "1-" + "9" * 30):
        with pytest.raises(InvalidInput) as exc:
            service.decode_cursor(bad)
        assert exc.value.field == "after"


def test_names_leave_the_service_masked(session, org, book):
    _corp, staff = org
    page = service.list_customers(session, principal=principal_of(staff["ops"]), filters=service.make_filters(q="周一"))
    assert [r.name_masked for r in page.rows] == ["周*"]


# --- one customer: notes, link, unmask, risk -------------------------------------------------------------------


def test_notes_are_written_by_advisors_and_read_by_compliance(session, org, book):
    _corp, staff = org
    customer = book["zhang1"]
    note = service.add_note(session, principal=principal_of(staff["zhang"]), customer_id=customer.id,
                            text="客户关心养老规划，\n下周约见。")
    stored = session.scalar(text("SELECT text FROM customer_note WHERE id = :id"), {"id": note.id})
    assert "养老" not in stored, "notes are encrypted at rest"
    detail = service.customer_detail(session, principal=principal_of(staff["compliance"]), customer_id=customer.id)
    assert [(n.author, n.text) for n in detail.notes] == [("张顾问", "客户关心养老规划，\n下周约见。")]
    assert "note_added" in [e.kind for e in detail.events]
    with pytest.raises(Forbidden):
        service.add_note(session, principal=principal_of(staff["compliance"]), customer_id=customer.id, text="x")
    for bad in ("", "  ", "x" * 2001, "a\x00b"):
        with pytest.raises(InvalidInput) as exc:
            service.add_note(session, principal=principal_of(staff["zhang"]), customer_id=customer.id, text=bad)
        assert exc.value.field == "text"


def test_linking_the_firms_customer_id(session, org, book):
    corp, staff = org
    ops = principal_of(staff["ops"])
    ext = book["li1"].external_userid
    customer = service.link_firm_customer(session, principal=ops, external_userid=ext, firm_customer_id="880001")
    assert customer.firm_customer_id == "880001"
    entries = audit.list_entries(session, corp_id=corp.id, action="customer.linked")
    assert len(entries) == 1 and "880001" not in str(entries[0].detail)
    service.link_firm_customer(session, principal=ops, external_userid=ext, firm_customer_id="880001")
    assert len(audit.list_entries(session, corp_id=corp.id, action="customer.linked")) == 1, "same link: no change"
    with pytest.raises(Conflict) as exc:
        service.link_firm_customer(session, principal=ops, external_userid=book["wang1"].external_userid,
                                   firm_customer_id="880001")
    assert exc.value.field == "firm_customer_id"
    with pytest.raises(InvalidInput):
        service.link_firm_customer(session, principal=ops, external_userid=ext, firm_customer_id="a b")
    assert audit.verify_chain(session, chain_id=corp.id)["ok"]


def test_unmasking_is_audited(session, org, book):
    corp, staff = org
    zhang = principal_of(staff["zhang"])
    unmasked = service.unmask_customer(session, principal=zhang, customer_id=book["zhang2"].id, ip="10.0.0.8")
    assert unmasked.name == "周二"
    (entry,) = audit.list_entries(session, corp_id=corp.id, action="customer.unmasked")
    assert (entry.actor, entry.target_id, entry.ip) == (staff["zhang"].login, str(book["zhang2"].id), "10.0.0.8")
    assert "周二" not in str(entry.detail)


def test_the_360_view_shows_the_risk_level_from_compliance(session, org, book):
    corp, staff = org
    ops = principal_of(staff["ops"])
    customer = book["wang1"]
    assert service.customer_detail(session, principal=ops, customer_id=customer.id).risk is None
    suitability.record_assessment(session, corp_id=corp.id, actor="test", customer_ref=customer.external_userid,
                                  level="C3", source="firm_kyc_api")
    risk = service.customer_detail(session, principal=ops, customer_id=customer.id).risk
    assert (risk.level, risk.expired) == ("C3", False)
    # an assessment recorded under the firm's id, later, is the one in force
    service.link_firm_customer(session, principal=ops, external_userid=customer.external_userid,
                               firm_customer_id="K-77")
    suitability.record_assessment(session, corp_id=corp.id, actor="test", customer_ref="K-77", level="C4",
                                  source="firm_kyc_api")
    assert service.customer_detail(session, principal=ops, customer_id=customer.id).risk.level == "C4"


def test_dashboard_chart_counts_what_the_caller_sees(session, org, book):
    _corp, staff = org
    assert service.dashboard_charts(session, principal=principal_of(staff["li"])) == []
    (chart,) = service.dashboard_charts(session, principal=principal_of(staff["ops"]))
    assert len(chart["x"]) == 14 and sum(chart["series"][0]["values"]) == 0  # T0 is long before today
