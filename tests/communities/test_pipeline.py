"""From WeCom's group events to Siyu's groups, over real HTTP: the emulator pushes signed
`change_external_chat` callbacks to Siyu's endpoint (a real server), a real worker runs the
communities subscribers, which read each group back with `groupchat/get`. Redeliveries change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from siyu.communities import sync
from siyu.communities.jobs import enqueue_sync
from siyu.communities.models import GroupChat, GroupMember
from siyu.customers import contacts
from siyu.db import session_scope
from siyu.jobs.events import subscribe
from siyu.jobs.models import Job
from siyu.wecom.client import WeComClient
from waiting import wait_for
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401 - the emulator fixture
from wecom.test_pipeline import siyu_server, worker  # noqa: F401 - a real server and worker

pytestmark = pytest.mark.slow

# What analytics will hear: a subscriber of this test module records the domain events.
HEARD: list[tuple[str, dict]] = []


@subscribe("group.joined", name="tests.communities.heard_joined")
def _heard_joined(session, payload, job):
    HEARD.append(("joined", payload))


@subscribe("group.left", name="tests.communities.heard_left")
def _heard_left(session, payload, job):
    HEARD.append(("left", payload))


@pytest.fixture
def wired(emulator, siyu_server, worker):  # noqa: F811
    corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="社群管道银行", slug_prefix="comm",
                          siyu_staff=("zhangsan",))
    client = WeComClient(corp.wecom_id, corp.secret, base_url=emulator.api_url)
    yield corp.corp_id, corp.wecom_id, client
    client.close()


def _group(corp_id: int, chat_id: str) -> GroupChat | None:
    with session_scope() as s:
        group = sync.get_by_chat_id(s, corp_id=corp_id, chat_id=chat_id)
        if group is not None:
            s.expunge(group)
        return group


def _stays(corp_id: int, chat_id: str) -> list[tuple]:
    with session_scope() as s:
        group = sync.get_by_chat_id(s, corp_id=corp_id, chat_id=chat_id)
        rows = s.scalars(select(GroupMember).where(GroupMember.group_id == group.id).order_by(GroupMember.id))
        return [(r.member_id, r.member_type, r.join_scene, r.invitor_userid, r.state, r.left_at is not None,
                 r.quit_scene, r.customer_id is not None) for r in rows]


def _idle(corp_id: int) -> bool:
    with session_scope() as s:
        return not s.scalar(select(func.count()).select_from(Job).where(
            Job.corp_id == corp_id, Job.state.in_(("queued", "running", "failed"))))


def test_a_group_kept_in_step_through_joins_leaves_renames_and_dismiss(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="grp-pipe")
    a, b = (emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": way.config_id, "name": name})
            ["external_userid"] for name in ("何女士", "罗先生"))
    wait_for(lambda: all(_known(corp_id, x) for x in (a, b)))

    emulator.post(f"/corps/{wecom_id}/faults", {"duplicate_callback_rate": 1.0})  # WeCom delivers everything twice
    chat = emulator.post(f"/corps/{wecom_id}/group_chats", {"owner": "zhangsan", "name": "稳健理财福利群",
                                                            "members": [a]}, expect=201)
    chat_id = chat["chat_id"]
    group = wait_for(lambda: _group(corp_id, chat_id))
    assert (group.name, group.owner_userid, group.member_count, group.customer_count) == (
        "稳健理财福利群", "zhangsan", 2, 1)
    assert group.owner_staff_id is not None

    emulator.post(f"/corps/{wecom_id}/group_chats/{chat_id}/join",
                  {"member_id": b, "scene": 2, "invitor": "zhangsan", "state": "set-1-way"})
    wait_for(lambda: _group(corp_id, chat_id).member_count == 3)
    emulator.post(f"/corps/{wecom_id}/group_chats/{chat_id}/leave", {"member_id": a, "scene": 1})
    wait_for(lambda: _group(corp_id, chat_id).member_count == 2)
    emulator.post(f"/corps/{wecom_id}/group_chats/{chat_id}/update",
                  {"name": "稳健理财福利2群", "notice": "每周五晚8点直播", "admins": ["zhangsan"]})
    wait_for(lambda: _group(corp_id, chat_id).notice == "每周五晚8点直播")
    wait_for(lambda: _idle(corp_id))

    group = _group(corp_id, chat_id)
    assert group.name == "稳健理财福利2群" and group.admin_userids == ["zhangsan"]
    assert sorted(_stays(corp_id, chat_id)) == sorted([
        ("zhangsan", "staff", 1, None, None, False, None, False),
        (a, "customer", 1, "zhangsan", None, True, 1, True),
        (b, "customer", 2, "zhangsan", "set-1-way", False, None, True),
    ]), "each delivery applied once: one stay per join, the leave with its quit scene"
    heard = sorted((kind, p["external_userid"], p["join_scene"], p["state"], p["quit_scene"])
                   for kind, p in HEARD if p["chat_id"] == chat_id)
    assert heard == sorted([("joined", a, 1, None, None), ("joined", b, 2, "set-1-way", None),
                            ("left", a, 1, None, 1)]), "one event per join and leave, never two"
    assert all(p["customer_id"] and p["group_id"] == group.id for _, p in HEARD if p["chat_id"] == chat_id)

    emulator.post(f"/corps/{wecom_id}/group_chats/{chat_id}/dismiss")
    assert wait_for(lambda: _group(corp_id, chat_id).dismissed_at is not None)


def _silently_created(emulator, wecom_id: str, name: str) -> str:  # noqa: F811
    """A group whose create callback Siyu never heard (lost on the way)."""
    from siyu.wecom.emulator.state import GroupChat as EmulatedChat
    from siyu.wecom.emulator.state import GroupMember as EmulatedMember

    state = emulator.state
    with state.lock:
        corp = state.corp(wecom_id)
        chat = EmulatedChat(chat_id=state.new_id("wr"), name=name, owner="zhangsan", create_time=int(state.now()))
        chat.members["zhangsan"] = EmulatedMember(userid="zhangsan", type=1, join_time=chat.create_time, join_scene=1)
        corp.group_chats[chat.chat_id] = chat
        return chat.chat_id


def _known(corp_id: int, external_userid: str) -> bool:
    with session_scope() as s:
        return contacts.get_by_external_id(s, corp_id=corp_id, external_userid=external_userid) is not None


def test_the_full_sync_finds_groups_it_missed_and_groups_gone(emulator, wired):  # noqa: F811
    corp_id, wecom_id, _ = wired
    chats = [_silently_created(emulator, wecom_id, f"新手课堂{i}期") for i in range(3)]
    emulator.state.corp(wecom_id).group_chats[chats[2]].dismissed = True
    with session_scope() as s:
        enqueue_sync(s, corp_id=corp_id, run="test-1")
    wait_for(lambda: all(_group(corp_id, c) for c in chats[:2]))
    assert _group(corp_id, chats[2]) is None, "a dismissed group is not listed"

    with emulator.state.lock:
        emulator.state.corp(wecom_id).group_chats[chats[1]].dismissed = True  # and the dismiss event is lost
    with session_scope() as s:
        enqueue_sync(s, corp_id=corp_id, run="test-2")
    assert wait_for(lambda: _group(corp_id, chats[1]).dismissed_at is not None)
    assert _group(corp_id, chats[0]).dismissed_at is None
