"""The acquisition console: channel codes with counts, the code page with its welcome editor,
posters, personas and follow-ups, in Chinese by default."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from siyu.acquisition import service, welcome
from siyu.acquisition.models import ChannelCode
from siyu.tenancy.models import Role
from tenancy.factories import console_user, fast_argon2, make_corp, make_staff  # noqa: F401


@pytest.fixture
def corp(session):
    corp = make_corp(session, name="活码银行")
    make_staff(session, corp, name="张三", wecom_userid="zhangsan")
    make_staff(session, corp, name="李四", wecom_userid="lisi")
    return corp


@pytest.fixture
def ops(session, corp):
    return console_user(session, corp, roles=(Role.OPERATIONS,))


def _created(session, corp):
    return session.scalars(select(ChannelCode).where(ChannelCode.corp_id == corp.id)).all()


def test_create_a_code_and_see_it_listed(session, corp, ops):
    page = ops.get("/acquisition")
    assert page.status_code == 200 and "渠道活码" in page.text and "种草达人" not in page.text
    persona = service.list_personas(session, corp_id=corp.id)[3]
    r = ops.post("/acquisition/codes", {"name": "手机银行入口", "channel": "mobile_banking", "campaign": "新客礼",
                                        "persona_id": str(persona.id), "advisor": ["zhangsan", "lisi"],
                                        "cap_userid": ["zhangsan", "lisi"], "cap": ["30", ""], "cost": "200",
                                        "expires_on": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text
    (code,) = _created(session, corp)
    assert (code.channel, code.cost_fen, code.multi_advisor) == ("mobile_banking", 20000, True)
    assert {a.userid: a.daily_cap for a in service.code_advisors(session, corp_id=corp.id, code_id=code.id)} == \
        {"zhangsan": 30, "lisi": 0}
    detail = ops.get(r.headers["location"])
    assert "企业微信创建中" in detail.text and code.state in detail.text and "福利官小银" in detail.text
    assert "手机银行入口" in ops.get("/acquisition").text
    assert ops.get(f"/acquisition/codes/{code.id}/poster.png").status_code == 404  # no QR yet
    # While WeCom registers the code, its poster panel asks again by itself; once registered, it stops.
    poll = f'id="poster" hx-get="/acquisition/codes/{code.id}" hx-select="#poster" hx-trigger="every 3s"'
    assert poll in detail.text
    assert 'title="zhangsan">张三</td>' in detail.text  # advisors by name, the WeCom id on hover
    code.qr_url = "https://wework.qpic.cn/wwpic/emulator/abc/0"
    code.status = "active"
    session.flush()
    registered = ops.get(r.headers["location"]).text
    assert 'data-testid="qr"' in registered and "every 3s" not in registered
    png = ops.get(f"/acquisition/codes/{code.id}/poster.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    poster = ops.get(f"/acquisition/codes/{code.id}/poster")
    assert "手机银行入口" in poster.text and "福利官小银" in poster.text


def test_a_refused_form_keeps_its_values_and_writes_nothing(session, corp, ops):
    r = ops.post("/acquisition/codes", {"name": "公众号菜单", "channel": "official_account", "cost": "12.345",
                                        "advisor": ["zhangsan"], "cap_userid": ["zhangsan"], "cap": ["5"]})
    assert r.status_code == 422 and 'data-field="cost"' in r.text and "公众号菜单" in r.text
    r = ops.post("/acquisition/codes", {"name": "公众号菜单", "channel": "official_account"})
    assert r.status_code == 422 and 'data-field="advisor"' in r.text
    assert _created(session, corp) == []


def test_welcome_editor_reviews_and_shows_results(session, corp, ops):
    code = service.create_channel_code(session, corp_id=corp.id, actor="t", name="短信", channel="sms",
                                       advisors=[service.AdvisorSpec("zhangsan")])
    r = ops.post(f"/acquisition/codes/{code.id}/variants", {"text": "保本保息，稳赚不赔", "weight": "1"})
    assert r.status_code == 422 and 'data-field="text"' in r.text and "保本" in r.text
    r = ops.post(f"/acquisition/codes/{code.id}/variants",
                 {"text": "{客户称呼}您好，我是{顾问名}", "weight": "2", "link_url": "https://h5.example/gift",
                  "link_title": "新客礼包"}, follow_redirects=False)
    assert r.status_code == 303
    r = ops.post(f"/acquisition/codes/{code.id}/welcome", {"enabled": "on", "group_keyword": "1",
                                                           "group_invitation": "回复 1 加入理财学习群"},
                 follow_redirects=False)
    assert r.status_code == 303
    page = ops.get(f"/acquisition/codes/{code.id}")
    assert "回复 1 加入理财学习群" in page.text and "新客礼包" not in page.text and "链接" in page.text
    flow = welcome.get_flow(session, corp_id=corp.id, code_id=code.id)
    assert flow.enabled and [r.sent for r in welcome.variant_results(session, corp_id=corp.id, flow_id=flow.id)] == [0]


def test_personas_page_and_edit(session, corp, ops):
    page = ops.get("/acquisition/personas")
    assert all(k in page.text for k in ("种草达人", "知识专家", "专属顾问", "品牌福利官"))
    r = ops.post("/acquisition/personas", {"kind": "knowledge_expert", "display_name": "", "years_experience": "3"})
    assert r.status_code == 422 and 'data-field="display_name"' in r.text
    r = ops.post("/acquisition/personas", {"kind": "knowledge_expert", "display_name": "陈博士",
                                           "title": "首席经济学家", "years_experience": "15"}, follow_redirects=False)
    assert r.status_code == 303 and "陈博士" in ops.get("/acquisition/personas").text


def test_advisors_see_their_own_follow_ups_and_not_the_code_pages(session, corp):
    advisor = console_user(session, corp, roles=(Role.ADVISOR,), wecom_userid="wangwu")
    welcome.record_follow_up(session, corp_id=corp.id, inbox_event_id=1, userid="wangwu", external_userid="wmmine0001",
                             state=None)
    welcome.record_follow_up(session, corp_id=corp.id, inbox_event_id=2, userid="lisi", external_userid="wmother0001",
                             state=None)
    page = advisor.get("/acquisition/follow-ups")
    assert "wmmine0001" in page.text and "wmother0001" not in page.text
    assert advisor.get("/acquisition").status_code == 403
    (mine, other) = sorted(welcome.list_follow_ups(session, corp_id=corp.id), key=lambda f: f.inbox_event_id)
    assert advisor.post(f"/acquisition/follow-ups/{other.id}/done").status_code == 404
    assert advisor.post(f"/acquisition/follow-ups/{mine.id}/done", follow_redirects=False).status_code == 303
    assert "wmmine0001" not in advisor.get("/acquisition/follow-ups").text
