"""Corp tags marked in Siyu (the console's 360 page): the change shows at once with its timeline and
audit entries, a pending mark survives a profile read from WeCom, Siyu-only tags stay local, and
who may tag whom (advisors their own customers, another corp nothing); the tag library page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from customers.factories import job_context, make_customer, profile
from siyu.customers import contacts, jobs, tags
from siyu.customers.models import CustomerEvent, CustomerTag, CustomerTagGroup, CustomerTagLink, CustomerTagMark
from siyu.jobs.models import Job
from siyu.jobs.registry import builtin_schedules
from siyu.tenancy import audit
from tenancy.factories import console_user, make_corp, make_staff, principal_of


@pytest.fixture
def corp(session):
    corp = make_corp(session)
    zhang = make_staff(session, corp, name="张顾问", wecom_userid="zhang")
    li = make_staff(session, corp, name="李顾问", wecom_userid="li")
    customer = make_customer(session, corp.id, userid="zhang", name="周杰", tags=[("et-fund", "意向", "基金")])
    other = make_customer(session, corp.id, userid="li", name="吴敏")
    group = session.scalar(select(CustomerTagGroup).where(CustomerTagGroup.corp_id == corp.id))
    local = CustomerTag(corp_id=corp.id, group_id=group.id, name="重点客户")  # Siyu's own: no WeCom id
    wecom_tag = CustomerTag(corp_id=corp.id, group_id=group.id, name="理财", wecom_tag_id="et-wealth")
    session.add_all([local, wecom_tag])
    session.flush()
    return corp, zhang, li, customer, other, local, wecom_tag


def _linked(session, customer_id: int) -> set[str]:
    return set(session.scalars(select(CustomerTag.name).join(CustomerTagLink, CustomerTagLink.tag_id == CustomerTag.id)
                               .where(CustomerTagLink.customer_id == customer_id)))


def _post(user, customer_id: int, tag_id, action: str = "add"):
    return user.post(f"/customers/{customer_id}/tags",
                     data={"tag_id": str(tag_id), "action": action, "csrf_token": user.csrf})


def test_an_advisor_adds_a_tag_to_their_customer_at_once_and_a_job_sends_it(session, corp):
    corp, zhang, _li, customer, _other, _local, wecom_tag = corp
    user = console_user(session, corp, roles=["advisor"], wecom_userid="zhang2")
    contacts.record_add(session, corp_id=corp.id, external_userid=customer.external_userid, wecom_userid="zhang2",
                        at=customer.first_added_at, source_key="test:zhang2")
    response = _post(user, customer.id, wecom_tag.id)
    assert response.status_code == 303, response.text
    assert "理财" in _linked(session, customer.id)
    mark = session.scalar(select(CustomerTagMark).where(CustomerTagMark.customer_id == customer.id))
    assert (mark.state, mark.action, mark.wecom_userid, mark.actor_staff_id) == ("pending", "add", "zhang2",
                                                                                 user.staff.id)
    job = session.scalar(select(Job).where(Job.name == "customers.mark_tag", Job.corp_id == corp.id))
    assert job.payload == {"mark_id": mark.id}
    event = session.scalar(select(CustomerEvent).where(CustomerEvent.customer_id == customer.id,
                                                       CustomerEvent.kind == "tags_changed",
                                                       CustomerEvent.actor_staff_id == user.staff.id))
    assert event.detail["added"] == ["意向 · 理财"] and event.actor == user.staff.login
    (entry,) = audit.list_entries(session, corp_id=corp.id, action="customer.tag_added")
    assert entry.detail["tag_id"] == wecom_tag.id
    page = user.get(f"/customers/{customer.id}")
    assert 'data-testid="tag-pending"' in page.text and "意向 · 理财" in page.text
    # Adding it again changes nothing and sends nothing.
    assert _post(user, customer.id, wecom_tag.id).status_code == 303
    assert len(session.scalars(select(CustomerTagMark).where(CustomerTagMark.customer_id == customer.id)).all()) == 1


def test_the_first_active_follow_marks_when_the_actor_does_not_follow(session, corp):
    corp, _zhang, _li, customer, _other, _local, wecom_tag = corp
    user = console_user(session, corp, roles=["operations"])
    assert _post(user, customer.id, wecom_tag.id).status_code == 303
    mark = session.scalar(select(CustomerTagMark).where(CustomerTagMark.customer_id == customer.id))
    assert mark.wecom_userid == "zhang"


def test_a_siyu_only_tag_stays_local(session, corp):
    corp, _zhang, _li, customer, _other, local, _wecom_tag = corp
    user = console_user(session, corp, roles=["operations"])
    assert _post(user, customer.id, local.id).status_code == 303
    assert "重点客户" in _linked(session, customer.id)
    assert session.scalar(select(CustomerTagMark).where(CustomerTagMark.customer_id == customer.id)) is None
    assert _post(user, customer.id, local.id, "remove").status_code == 303
    assert "重点客户" not in _linked(session, customer.id)
    assert [e.action for e in audit.list_entries(session, corp_id=corp.id) if e.action.startswith("customer.tag")] \
        == ["customer.tag_removed", "customer.tag_added"]


def test_a_pending_mark_wins_over_a_profile_read_until_it_is_sent(session, corp):
    corp, zhang, _li, customer, _other, _local, wecom_tag = corp
    principal = principal_of(zhang)
    fund = session.scalar(select(CustomerTag).where(CustomerTag.wecom_tag_id == "et-fund",
                                                    CustomerTag.corp_id == corp.id))
    add = tags.change_tag(session, principal=principal, customer_id=customer.id, tag_id=wecom_tag.id, action="add")
    remove = tags.change_tag(session, principal=principal, customer_id=customer.id, tag_id=fund.id, action="remove")
    wecom_truth = profile(customer.external_userid, "周杰",
                          [{"userid": "zhang", "tags": [("et-fund", "意向", "基金")]}])
    contacts.apply_profile(session, corp_id=corp.id, detail=wecom_truth)
    assert _linked(session, customer.id) == {"理财"}, "WeCom's answer predates both marks"
    tags.finish_mark(session, corp_id=corp.id, mark_id=add.id, state="sent", userid="zhang")
    tags.finish_mark(session, corp_id=corp.id, mark_id=remove.id, state="sent", userid="zhang")
    contacts.apply_profile(session, corp_id=corp.id, detail=wecom_truth)
    assert _linked(session, customer.id) == {"基金"}, "once sent, WeCom's truth is read again"


def test_an_advisor_cannot_tag_another_advisors_customer(session, corp):
    corp, _zhang, _li, _customer, other, _local, wecom_tag = corp
    user = console_user(session, corp, roles=["advisor"], wecom_userid="zhang3")
    response = _post(user, other.id, wecom_tag.id)
    assert response.status_code == 404
    assert _linked(session, other.id) == set()
    reader = console_user(session, corp, roles=["compliance"])
    assert _post(reader, other.id, wecom_tag.id).status_code == 403
    assert 'data-testid="tag-form"' not in reader.get(f"/customers/{other.id}").text
    assert session.scalar(select(CustomerTagMark).where(CustomerTagMark.customer_id == other.id)) is None


def test_another_corps_caller_and_tags_are_not_found(session, corp):
    corp, _zhang, _li, customer, _other, _local, wecom_tag = corp
    stranger_corp = make_corp(session)
    stranger = console_user(session, stranger_corp, roles=["administrator"])
    assert _post(stranger, customer.id, wecom_tag.id).status_code == 404
    foreign_group = CustomerTagGroup(corp_id=stranger_corp.id, name="外部")
    session.add(foreign_group)
    session.flush()
    foreign = CustomerTag(corp_id=stranger_corp.id, group_id=foreign_group.id, name="外部标签", wecom_tag_id="et-x")
    session.add(foreign)
    session.flush()
    user = console_user(session, corp, roles=["operations"])
    response = _post(user, customer.id, foreign.id)
    assert response.status_code == 404 and 'data-field="tag_id"' in response.text
    assert "外部标签" not in _linked(session, customer.id)


@pytest.mark.parametrize(("tag_id", "action", "field"), [
    ("", "add", "tag_id"), ("abc", "add", "tag_id"), ("-3", "add", "tag_id"), ("99999999999999999999", "add", "tag_id"),
    (None, "toggle", "action"),
])
def test_bad_input_names_the_field_and_stores_nothing(session, corp, tag_id, action, field):
    corp, _zhang, _li, customer, _other, _local, wecom_tag = corp
    user = console_user(session, corp, roles=["operations"])
    before = _linked(session, customer.id)
    response = _post(user, customer.id, wecom_tag.id if tag_id is None else tag_id, action)
    assert response.status_code == 422 and f'data-field="{field}"' in response.text
    assert _linked(session, customer.id) == before
    assert session.scalar(select(CustomerTagMark).where(CustomerTagMark.customer_id == customer.id)) is None


def test_a_customer_nobody_follows_cannot_be_marked_in_wecom(session, corp):
    corp, zhang, _li, customer, _other, _local, wecom_tag = corp
    contacts.record_end(session, corp_id=corp.id, external_userid=customer.external_userid, wecom_userid="zhang",
                        at=customer.first_added_at.replace(year=2027), status=contacts.FollowStatus.LOST)
    user = console_user(session, corp, roles=["operations"])
    response = _post(user, customer.id, wecom_tag.id)
    assert response.status_code == 409 and 'data-field="tag_id"' in response.text
    assert "理财" not in _linked(session, customer.id)


def test_the_tag_library_page_and_its_sync_button(session, corp):
    corp, *_rest = corp
    ops = console_user(session, corp, roles=["operations"])
    page = ops.get("/customer-tags")
    assert page.status_code == 200 and "<h1>标签库</h1>" in page.text
    assert "理财" in page.text and "重点客户" in page.text and "仅私域" in page.text
    assert 'href="/customer-tags"' in ops.get("/customers").text
    response = ops.post("/customer-tags/sync", data={"csrf_token": ops.csrf})
    assert response.status_code == 303
    assert session.scalar(select(Job).where(Job.name == "customers.sync_corp_tags", Job.corp_id == corp.id))
    assert audit.list_entries(session, corp_id=corp.id, action="customer_tags.sync_requested")
    advisor = console_user(session, corp, roles=["advisor"])
    assert advisor.get("/customer-tags").status_code == 403
    assert advisor.post("/customer-tags/sync", data={"csrf_token": advisor.csrf}).status_code == 403


def test_the_daily_schedule_enqueues_one_sync_per_connected_corp_per_day(session, corp):
    corp, *_rest = corp
    assert any(s.key == "customers.daily_tag_sync" for s in builtin_schedules())
    corp.wecom_corp_id = "wwdaily" + str(corp.id)
    session.flush()
    jobs.daily_tag_sync(session, {}, job_context(corp.id))
    jobs.daily_tag_sync(session, {}, job_context(corp.id, job_id=2))
    syncs = session.scalars(select(Job).where(Job.name == "customers.sync_corp_tags", Job.corp_id == corp.id)).all()
    assert len(syncs) == 1
