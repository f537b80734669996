"""Corp tags both ways over real HTTP with the WeCom emulator: the tag library read by the sync job
(renames, reorders and deletions at WeCom follow), and a tag added on the 360 page reaching WeCom's
`mark_tag` once, from the right advisor, even when the job runs twice; a refused mark is undone."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from customers.factories import job_context
from siyu.app import create_app
from siyu.config import get_settings
from siyu.customers import contacts, jobs
from siyu.customers.models import CustomerEvent, CustomerTag, CustomerTagGroup, CustomerTagLink, CustomerTagMark
from siyu.db import session_factory, session_scope
from siyu.jobs.models import Job
from siyu.tenancy import audit
from siyu.tenancy import service as tenancy
from siyu.wecom import service as wecom
from siyu.wecom.client import WeComClient
from tenancy.factories import log_in, make_staff
from wecom.conftest import emulator  # noqa: F401 - the emulator fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def wired(emulator, database_url):  # noqa: F811
    slug = "tags-" + uuid.uuid4().hex[:8]
    wecom_id = "ww" + uuid.uuid4().hex[:16]
    secret = "secret-" + uuid.uuid4().hex
    emulator.post("/corps", {
        "corp_id": wecom_id, "name": "标签银行", "secret": secret,
        "staff": [{"userid": "zhangsan", "name": "张三"}, {"userid": "lisi", "name": "李四"}],
        "tag_groups": [{"group_name": "风险偏好", "tags": ["稳健", "进取"], "order": 2},
                       {"group_name": "意向产品", "tags": ["基金", "理财", "保险"], "order": 1}],
    }, expect=201)
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug=slug, name="标签银行")
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                                   token="tok" + uuid.uuid4().hex[:10], aes_key="a" * 43, base_url=emulator.api_url)
        corp_id = corp.id
    client = WeComClient(wecom_id, secret, base_url=emulator.api_url)
    yield corp_id, wecom_id, client
    client.close()


def _run(job, payload: dict, corp_id: int) -> None:
    with session_scope() as s:
        job(s, payload, job_context(corp_id))


def _library(corp_id: int) -> list[tuple[str, list[str]]]:
    with session_scope() as s:
        groups = s.scalars(select(CustomerTagGroup).where(CustomerTagGroup.corp_id == corp_id)
                           .order_by(CustomerTagGroup.sort_order, CustomerTagGroup.id)).all()
        return [(g.name, list(s.scalars(select(CustomerTag.name).where(CustomerTag.group_id == g.id)
                                        .order_by(CustomerTag.sort_order, CustomerTag.id)))) for g in groups]


def _customer_tags(corp_id: int, external_userid: str) -> set[str]:
    with session_scope() as s:
        customer = contacts.get_by_external_id(s, corp_id=corp_id, external_userid=external_userid)
        return set(s.scalars(select(CustomerTag.name).join(CustomerTagLink, CustomerTagLink.tag_id == CustomerTag.id)
                             .where(CustomerTagLink.customer_id == customer.id)))


def _add_customer(emulator, wecom_id, client, corp_id, userids: list[str]) -> tuple[str, int]:  # noqa: F811
    """A customer who added each advisor at WeCom, known to Siyu with its profile read from WeCom."""
    ext = None
    for userid in userids:
        ext = emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": userid, "name": "何女士",
                                                               **({"external_userid": ext} if ext else {})}
                            )["external_userid"]
    _profile_read(client, corp_id, ext)
    with session_scope() as s:
        return ext, contacts.get_by_external_id(s, corp_id=corp_id, external_userid=ext).id


def _profile_read(client, corp_id: int, ext: str) -> None:
    detail = client.get_external_contact(ext)
    with session_scope() as s:
        contacts.apply_profile(s, corp_id=corp_id, detail=detail)


def _wecom_id_of(client, name: str) -> str:
    return next(t.id for g in client.get_corp_tag_list() for t in g.tag if t.name == name)


def _follow_tags(emulator, wecom_id, ext) -> dict[str, list[str]]:  # noqa: F811
    return {f["userid"]: f["tags"] for f in emulator.get(f"/corps/{wecom_id}/follows")
            if f["external_userid"] == ext}


def test_the_sync_job_reads_the_library_and_follows_renames_reorders_and_deletions(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    _run(jobs.sync_corp_tags, {}, corp_id)
    assert _library(corp_id) == [("风险偏好", ["稳健", "进取"]), ("意向产品", ["基金", "理财", "保险"])]
    ext, _customer_id = _add_customer(emulator, wecom_id, client, corp_id, ["zhangsan"])
    client.mark_tag(userid="zhangsan", external_userid=ext, add_tag=[_wecom_id_of(client, "进取"),
                                                                     _wecom_id_of(client, "基金")])
    _profile_read(client, corp_id, ext)
    assert _customer_tags(corp_id, ext) == {"进取", "基金"}

    # At WeCom: 进取 is renamed 积极 and 稳健 deleted; 意向产品 comes first; 基金 and 理财 swap names.
    corp = emulator.state.corp(wecom_id)
    with emulator.state.lock:
        ids = {t.name: t.id for t in corp.tags.values()}
        corp.tags[ids["进取"]].name = "积极"
        del corp.tags[ids["稳健"]]
        corp.tags[ids["基金"]].name, corp.tags[ids["理财"]].name = "理财", "基金"
        for group in corp.tag_groups.values():
            group.order = 5 if group.group_name == "意向产品" else 0
    _run(jobs.sync_corp_tags, {}, corp_id)
    assert _library(corp_id) == [("意向产品", ["理财", "基金", "保险"]), ("风险偏好", ["积极"])]
    assert _customer_tags(corp_id, ext) == {"积极", "理财"}, "the customer keeps their tags under the new names"

    # A whole group deleted at WeCom goes, with its tags and their links; running again changes nothing.
    with emulator.state.lock:
        (risk,) = [g for g in corp.tag_groups.values() if g.group_name == "风险偏好"]
        del corp.tag_groups[risk.group_id]
        for tag_id in [t.id for t in corp.tags.values() if t.group_id == risk.group_id]:
            del corp.tags[tag_id]
    _run(jobs.sync_corp_tags, {}, corp_id)
    _run(jobs.sync_corp_tags, {}, corp_id)
    assert _library(corp_id) == [("意向产品", ["理财", "基金", "保险"])]
    assert _customer_tags(corp_id, ext) == {"理财"}


def _console(corp_id: int, login: str) -> TestClient:
    with session_scope() as s:
        corp = tenancy.get_corp(s, corp_id=corp_id).slug
    client = TestClient(create_app(get_settings()), base_url="http://testserver", follow_redirects=False)
    client.csrf = log_in(client, login, corp=corp)
    return client


def test_a_tag_added_on_the_360_page_is_marked_at_wecom_once_by_the_acting_advisor(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    _run(jobs.sync_corp_tags, {}, corp_id)
    with session_scope() as s:
        zhangsan = make_staff(s, corp_id, roles=["advisor"], login=f"zs.{corp_id}", wecom_userid="zhangsan")
        ops = make_staff(s, corp_id, roles=["operations"], login=f"ops.{corp_id}")
        zhangsan_login, ops_login = zhangsan.login, ops.login
    ext, customer_id = _add_customer(emulator, wecom_id, client, corp_id, ["lisi", "zhangsan"])
    with session_scope() as s:
        fund = s.scalar(select(CustomerTag.id).where(CustomerTag.corp_id == corp_id, CustomerTag.name == "基金"))
        wealth = s.scalar(select(CustomerTag.id).where(CustomerTag.corp_id == corp_id, CustomerTag.name == "理财"))
    advisor = _console(corp_id, zhangsan_login)
    response = advisor.post(f"/customers/{customer_id}/tags",
                            data={"tag_id": str(fund), "action": "add", "csrf_token": advisor.csrf})
    assert response.status_code == 303, response.text
    page = advisor.get(f"/customers/{customer_id}")
    assert "意向产品 · 基金" in page.text and 'data-testid="tag-pending"' in page.text

    # The profile is read from WeCom before the mark is sent: the tag stays.
    _profile_read(client, corp_id, ext)
    assert _customer_tags(corp_id, ext) == {"基金"}

    with session_scope() as s:
        job = s.scalar(select(Job).where(Job.corp_id == corp_id, Job.name == "customers.mark_tag"))
        payload = job.payload
    with session_factory()() as s:  # the worker dies after the call, before the job's transaction commits
        jobs.mark_tag(s, payload, job_context(corp_id))
        s.rollback()
    _run(jobs.mark_tag, payload, corp_id)  # the job runs again: the effect key says it was sent
    _run(jobs.mark_tag, payload, corp_id)
    marks = [c for c in emulator.get(f"/corps/{wecom_id}/calls") if c["endpoint"].endswith("mark_tag")]
    assert len(marks) == 1 and marks[0]["errcode"] == 0
    assert _follow_tags(emulator, wecom_id, ext) == {"lisi": [], "zhangsan": [_wecom_id_of(client, "基金")]}
    with session_scope() as s:
        mark = s.get(CustomerTagMark, payload["mark_id"])
        assert (mark.state, mark.wecom_userid) == ("sent", "zhangsan")
        assert audit.list_entries(s, corp_id=corp_id, action="customer.tag_added")
    _profile_read(client, corp_id, ext)
    assert _customer_tags(corp_id, ext) == {"基金"}

    # Operations follow no one: the first active follow (lisi, who was added first) is marked.
    operations = _console(corp_id, ops_login)
    assert operations.post(f"/customers/{customer_id}/tags",
                           data={"tag_id": str(wealth), "action": "add", "csrf_token": operations.csrf}
                           ).status_code == 303
    with session_scope() as s:
        job = s.scalar(select(Job).where(Job.corp_id == corp_id, Job.name == "customers.mark_tag")
                       .order_by(Job.id.desc()))
        payload = job.payload
    _run(jobs.mark_tag, payload, corp_id)
    assert _follow_tags(emulator, wecom_id, ext)["lisi"] == [_wecom_id_of(client, "理财")]


def test_a_mark_wecom_refuses_is_undone_and_shown(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    _run(jobs.sync_corp_tags, {}, corp_id)
    ext, customer_id = _add_customer(emulator, wecom_id, client, corp_id, ["zhangsan"])
    with session_scope() as s:
        ops = make_staff(s, corp_id, roles=["operations"], login=f"ops2.{corp_id}")
        insurance = s.scalar(select(CustomerTag.id).where(CustomerTag.corp_id == corp_id, CustomerTag.name == "保险"))
        login = ops.login
    corp = emulator.state.corp(wecom_id)
    with emulator.state.lock:  # deleted at WeCom after Siyu last read the library
        del corp.tags[next(t.id for t in corp.tags.values() if t.name == "保险")]
    user = _console(corp_id, login)
    assert user.post(f"/customers/{customer_id}/tags",
                     data={"tag_id": str(insurance), "action": "add", "csrf_token": user.csrf}).status_code == 303
    assert _customer_tags(corp_id, ext) == {"保险"}
    with session_scope() as s:
        payload = s.scalar(select(Job).where(Job.corp_id == corp_id, Job.name == "customers.mark_tag")).payload
    _run(jobs.mark_tag, payload, corp_id)
    assert _customer_tags(corp_id, ext) == set(), "rolled back"
    with session_scope() as s:
        mark = s.get(CustomerTagMark, payload["mark_id"])
        assert (mark.state, mark.errcode) == ("failed", 40068)
        kinds = s.scalars(select(CustomerEvent.kind).where(CustomerEvent.customer_id == customer_id)
                          .order_by(CustomerEvent.id)).all()
        assert kinds[-2:] == ["tags_changed", "tag_mark_failed"]
    page = user.get(f"/customers/{customer_id}")
    assert 'data-testid="tag-mark-failed"' in page.text and "errcode 40068" in page.text
    assert "企业微信拒绝了标签 意向产品 · 保险" in page.text
