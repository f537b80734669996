"""Red-line moderation over the emulator, end to end: a simulated outsider (a WeChat user who is no
advisor's contact) scans the group QR code, joins a customer group and posts an ad with a phone
number; the chat-archive feed brings the message in (a real poll job over HTTP, run by a real worker),
the archive announces the group messages, the moderation subscriber raises one alert that reaches the
group's owner with the evidence; the feed delivering everything again changes nothing."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from communities.test_pipeline import _group, _idle, wait_for
from siyu.communities import moderation
from siyu.communities.models import ModerationHit
from siyu.compliance import archive
from siyu.db import session_scope
from siyu.jobs.service import enqueue
from siyu.tenancy.models import Staff
from tenancy.factories import principal_of
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401 - the emulator fixture
from wecom.test_pipeline import siyu_server, worker  # noqa: F401 - a real server and worker

pytestmark = pytest.mark.slow

AD = "各位好，内部渠道高收益理财产品，名额有限，私聊我，电话 13800138000"


def _poll(corp_id: int) -> None:
    """What the minute schedule does: one archive poll of the corp, run by the worker."""
    with session_scope() as s:
        enqueue(s, name="compliance.archive_poll", payload={}, corp_id=corp_id,
                idempotency_key=f"test-poll:{uuid.uuid4().hex}")


def _hits(corp_id: int) -> list[ModerationHit]:
    with session_scope() as s:
        rows = list(s.scalars(select(ModerationHit).where(ModerationHit.corp_id == corp_id)))
        s.expunge_all()
        return rows


def test_an_outsiders_ad_reaches_the_owner_once(emulator, siyu_server, worker):  # noqa: F811
    corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="红线管道银行", slug_prefix="redl",
                          siyu_staff=("zhangsan",))
    wecom_id = corp.wecom_id
    member = emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": "zhangsan", "name": "何女士"},
                           expect=201)["external_userid"]
    outsider = emulator.post(f"/corps/{wecom_id}/customers", {"name": "推广小王"}, expect=201)["external_userid"]
    for who in (member, outsider):  # both agree to archiving when WeCom asks them (msg_audit_approved)
        emulator.post(f"/corps/{wecom_id}/archive/consent", {"external_userid": who, "userid": "zhangsan",
                                                              "agree": True})
    chat_id = emulator.post(f"/corps/{wecom_id}/group_chats", {"owner": "zhangsan", "name": "稳健理财福利群",
                                                               "members": [member]}, expect=201)["chat_id"]
    emulator.post(f"/corps/{wecom_id}/group_chats/{chat_id}/join", {"member_id": outsider, "scene": 3})
    wait_for(lambda: (g := _group(corp.corp_id, chat_id)) is not None and g.member_count == 3)

    emulator.post(f"/corps/{wecom_id}/messages", {"from": member, "roomid": chat_id, "text": "周五的活动几点开始？"})
    emulator.post(f"/corps/{wecom_id}/messages", {"from": "zhangsan", "roomid": chat_id,
                                                  "text": "周五晚8点，我的电话 13900139000"})
    sent = emulator.post(f"/corps/{wecom_id}/messages", {"from": outsider, "roomid": chat_id, "text": AD})
    assert sent["archived"]
    _poll(corp.corp_id)
    (hit,) = wait_for(lambda: _hits(corp.corp_id))
    wait_for(lambda: _idle(corp.corp_id))

    assert (hit.msgid, hit.chat_id, hit.member_id, hit.owner_userid) == (sent["msgid"], chat_id, outsider, "zhangsan")
    assert hit.severity == "block" and hit.suggested_action == "remove"
    assert {"phone", "outsider_ad"} <= set(hit.categories)
    phone = next(f for f in hit.findings if f["category"] == "phone")
    assert AD[phone["start"]:phone["end"]] == "13800138000"
    with session_scope() as s:
        owner = s.scalar(select(Staff).where(Staff.corp_id == corp.corp_id, Staff.wecom_userid == "zhangsan"))
        (row,) = moderation.list_hits(s, principal=principal_of(owner))
        assert row.may_handle and row.group_name == "稳健理财福利群" and row.member_name == "推***"
        assert "13800138000" in row.excerpt
        assert moderation.open_count_for_owner(s, principal=principal_of(owner)) == 1

    with session_scope() as s:  # the feed delivers everything again (a reset cursor, a redelivery)
        archive.get_cursor(s, corp_id=corp.corp_id).seq = 0
    _poll(corp.corp_id)
    wait_for(lambda: _idle(corp.corp_id))
    with session_scope() as s:
        assert archive.get_cursor(s, corp_id=corp.corp_id).seq >= 3
        assert s.scalar(select(func.count()).select_from(ModerationHit).where(
            ModerationHit.corp_id == corp.corp_id)) == 1, "a redelivered message raises nothing new"
