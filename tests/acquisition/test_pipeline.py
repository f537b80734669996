"""A channel code end to end over real HTTP: Siyu creates the contact way at the emulated WeCom, a
customer adds through it, the emulator pushes the signed callback to Siyu's server, a real worker
attributes the add to the code and sends the channel's persona welcome within WeCom's 20 s; an
advisor who reaches their daily cap is taken off the code at WeCom; a lost customer is counted."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from compliance.gate import approve_all
from siyu.acquisition import service, welcome
from siyu.acquisition.models import ChannelAdd, WelcomeFollowUp
from siyu.db import session_scope
from siyu.tenancy.models import Corp
from siyu.wecom import service as wecom
from siyu.wecom.models import WecomOutbound
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401  (the emulator server fixture)
from wecom.test_pipeline import siyu_server, wait_for, worker  # noqa: F401  (server and worker fixtures)

pytestmark = pytest.mark.slow

DEFAULT = "您好，欢迎关注，我是您的顾问。"
FLOW = "{客户称呼}您好，我是{顾问头衔}{顾问名}，新客礼包已为您准备好。"


@pytest.fixture
def wired(emulator, siyu_server, worker):  # noqa: F811
    wired_corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="获客管道银行",
                                slug_prefix="acq", siyu_staff=("zhangsan", "lisi"))
    with session_scope() as s:
        corp = s.get(Corp, wired_corp.corp_id)
        wecom.set_default_welcome(s, corp_id=corp.id, actor="test", text=DEFAULT, enabled=True)
        expert = next(p for p in service.list_personas(s, corp_id=corp.id) if p.kind == "knowledge_expert")
        code = service.create_channel_code(
            s, corp_id=corp.id, actor="test", name="春季投放", channel="ad", campaign="春季理财节",
            persona_id=expert.id, cost_fen=30_000,
            advisors=[service.AdvisorSpec("zhangsan", daily_cap=1), service.AdvisorSpec("lisi")])
        welcome.add_variant(s, corp_id=corp.id, actor="test", code_id=code.id, text=FLOW,
                            attachments=welcome.build_attachments(link_url="https://h5.example/gift",
                                                                  link_title="新客礼包"))
        welcome.save_flow(s, corp_id=corp.id, actor="test", code_id=code.id, enabled=True, group_keyword="1",
                          group_invitation="回复 1 加入理财学习群")
        approve_all(s, corp.id)  # compliance approves the welcomes
        return corp.id, wired_corp.wecom_id, code.id


def _code(corp_id, code_id):
    with session_scope() as s:
        code = service.get_channel_code(s, corp_id=corp_id, code_id=code_id)
        stats = service.code_stats(s, corp_id=corp_id, codes=[code])[code.id]
        s.expunge(code)
        return code, stats


def test_an_add_through_a_channel_code_gets_its_persona_welcome_and_is_counted(emulator, wired):  # noqa: F811
    corp_id, wecom_id, code_id = wired
    code = wait_for(lambda: (c := _code(corp_id, code_id)[0]).status == "active" and c, timeout=20)
    (way,) = [w for w in emulator.get(f"/corps/{wecom_id}/contact_ways") if w["config_id"] == code.config_id]
    assert (way["state"], way["type"], way["users"], way["qr_code"]) == (code.state, 2, ["zhangsan", "lisi"],
                                                                         code.qr_url)

    # 1. A customer scans the code and is added by zhangsan: the channel's welcome, as 李老师.
    started = time.monotonic()
    added = emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": code.config_id, "userid": "zhangsan",
                                                             "name": "陈女士"})
    (sent,) = wait_for(lambda: emulator.get(f"/corps/{wecom_id}/welcomes"), timeout=20)
    assert time.monotonic() - started < 20
    assert sent["external_userid"] == added["external_userid"]
    assert sent["text"] == "陈女士您好，我是理财知识讲师李老师，新客礼包已为您准备好。\n\n回复 1 加入理财学习群", \
        "the flow's approved group invitation ends the welcome"
    assert sent["attachments"] == [{"msgtype": "link", "link": {"title": "新客礼包", "url": "https://h5.example/gift"}}]

    # 2. The add is attributed to the code and its counters move.
    def attributed():
        with session_scope() as s:
            return s.scalars(select(ChannelAdd).where(ChannelAdd.corp_id == corp_id)).all()
    (add,) = wait_for(attributed)
    assert (add.code_id, add.advisor_userid, add.external_userid) == (code_id, "zhangsan", added["external_userid"])
    _, stats = _code(corp_id, code_id)
    assert (stats.adds_today, stats.adds_total, stats.cost_per_add_fen) == (1, 1, 30_000)

    # 3. zhangsan's cap is 1: WeCom is told to offer only lisi on this code now.
    wait_for(lambda: [w for w in emulator.get(f"/corps/{wecom_id}/contact_ways")
                      if w["config_id"] == code.config_id][0]["users"] == ["lisi"], timeout=20)
    second = emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": code.config_id})
    assert second["userid"] == "lisi"

    # 4. An add outside any channel code gets the corp's default welcome.
    direct = emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": "zhangsan"})
    welcomes = wait_for(lambda: len(w := emulator.get(f"/corps/{wecom_id}/welcomes")) >= 3 and w, timeout=20)
    texts = {w["external_userid"]: w["text"] for w in welcomes}
    assert texts[direct["external_userid"]] == DEFAULT
    assert texts[second["external_userid"]].endswith("我是理财知识讲师李老师，新客礼包已为您准备好。\n\n"
                                                     "回复 1 加入理财学习群")
    assert len(welcomes) == 3, "one welcome per add"

    # 5. The first customer deletes zhangsan: the code counts one lost.
    emulator.post(f"/corps/{wecom_id}/delete_follow", {"userid": "zhangsan",
                                                       "external_userid": added["external_userid"]})
    wait_for(lambda: _code(corp_id, code_id)[1].lost == 1, timeout=20)
    _, stats = _code(corp_id, code_id)
    assert (stats.adds_total, stats.active, stats.cost_per_add_fen) == (2, 1, 15_000)
    with session_scope() as s:
        flow = welcome.get_flow(s, corp_id=corp_id, code_id=code_id)
        (result,) = welcome.variant_results(s, corp_id=corp_id, flow_id=flow.id)
        assert (result.sent, result.not_sent) == (2, 0)
        outs = s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)).all()
        by_endpoint = sorted((o.endpoint, o.state) for o in outs)
        assert by_endpoint == [("add_contact_way", "sent"), ("send_welcome_msg", "sent"),
                               ("send_welcome_msg", "sent"), ("send_welcome_msg", "sent"),
                               ("update_contact_way", "sent")]


def test_an_add_without_a_welcome_code_becomes_a_follow_up(emulator, wired):  # noqa: F811
    corp_id, wecom_id, code_id = wired
    code = wait_for(lambda: (c := _code(corp_id, code_id)[0]).status == "active" and c, timeout=20)
    emulator.admin.patch(f"/corps/{wecom_id}/limits", json={"issue_welcome_codes": False}).raise_for_status()
    added = emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": code.config_id, "userid": "lisi"})

    def follow_ups():
        with session_scope() as s:
            return s.scalars(select(WelcomeFollowUp).where(WelcomeFollowUp.corp_id == corp_id)).all()
    (row,) = wait_for(follow_ups, timeout=20)
    assert (row.advisor_userid, row.external_userid, row.code_id) == ("lisi", added["external_userid"], code_id)
    assert emulator.get(f"/corps/{wecom_id}/welcomes") == []
    wait_for(lambda: _code(corp_id, code_id)[1].adds_total == 1, timeout=20)
