"""A set's join way (群活码) over the emulated WeCom, end to end: Siyu makes the join way through
`add_join_way`, customers scan it (the emulator puts each into the first listed group with room and
pushes `change_external_chat`), a real worker reads each group back, attributes each join, and rolls
the join way over (`update_join_way`) when a group reaches the threshold — no join is lost, every
join is recorded once and attributed to the join way, its channel and the advisor."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from communities.test_pipeline import _idle, _known, wait_for, wired  # noqa: F401 - fixtures
from siyu.acquisition import service as acquisition
from siyu.acquisition.models import ChannelAdd
from siyu.communities import joinways, service, sync
from siyu.communities.joinway_models import GroupJoin, GroupJoinWay
from siyu.communities.models import GroupMember
from siyu.db import session_scope, utcnow
from siyu.tenancy.models import Role
from tenancy.factories import make_staff, principal_of
from wecom.conftest import emulator  # noqa: F401 - the emulator fixture
from wecom.test_pipeline import siyu_server, worker  # noqa: F401 - a real server and worker

pytestmark = pytest.mark.slow

# Six groups of 6 (owner included) rolled over at 5: 22 customers reach the sixth group, which is not
# in the first list, while the set keeps a group below the threshold (the exhausted set is the
# second test). Customers scan one after another (each join read back before the next scan), so the
# groups fill in the order the rollover gives.
CAPACITY, ROTATE_AT, GROUPS, CUSTOMERS = 6, 5, 6, 22


def _way(way_id: int) -> GroupJoinWay:
    with session_scope() as s:
        way = s.get(GroupJoinWay, way_id)
        s.expunge(way)
        return way


def test_a_join_way_rolls_over_at_capacity_without_a_lost_join(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    # The emulator's explicit friendlier mode: groups of 6 instead of 200, so the test fills them.
    emulator.admin.patch(f"/corps/{wecom_id}/limits", json={"group_capacity": CAPACITY}).raise_for_status()
    contact = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="jw-pipe")
    customers = [emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": contact.config_id,
                                                                  "name": f"客户{i}"})["external_userid"]
                 for i in range(CUSTOMERS)]
    chats = [emulator.post(f"/corps/{wecom_id}/group_chats", {"owner": "zhangsan", "name": f"稳健理财{i + 1}群",
                                                              "members": []}, expect=201)["chat_id"]
             for i in range(GROUPS)]
    wait_for(lambda: all(_known(corp_id, c) for c in customers) and _idle(corp_id), timeout=60)

    with session_scope() as s:
        ops = principal_of(make_staff(s, corp_id, roles=(Role.OPERATIONS,), name="运营小王"))
        code = acquisition.create_channel_code(s, corp_id=corp_id, actor=ops, name="手机银行Banner",
                                               channel="mobile_banking",
                                               advisors=[acquisition.AdvisorSpec(userid="zhangsan")])
        # The customers came through this channel code (as its welcome flow attributes them).
        for i, external in enumerate(customers):
            s.add(ChannelAdd(corp_id=corp_id, code_id=code.id, advisor_userid="zhangsan", external_userid=external,
                             inbox_event_id=10_000 + i, at=utcnow(), day="2026-12-07"))
        group_set = service.create_set(s, principal=ops, name="稳健理财福利群组", positioning="benefit")
        groups = [sync.get_by_chat_id(s, corp_id=corp_id, chat_id=c) for c in chats]
        service.assign_groups(s, principal=ops, set_id=group_set.id, group_ids=[g.id for g in groups])
        joinways.configure(s, principal=ops, set_id=group_set.id, capacity=CAPACITY, rotate_at=ROTATE_AT,
                           when_full="alert")
        way = joinways.create_way(s, principal=ops, set_id=group_set.id, channel_code_id=code.id)
        way_id, set_id, code_id = way.id, group_set.id, code.id

    made = wait_for(lambda: (w := _way(way_id)).qr_code and w, timeout=30)
    at_wecom = client.get_join_way(made.config_id)
    first = at_wecom.chat_id_list
    assert len(first) == 5 and set(first) < set(chats), "five groups with room (WeCom lists at most five)"
    (sixth,) = set(chats) - set(first)
    assert at_wecom.state == made.state == f"jw{way_id}" and at_wecom.qr_code == made.qr_code

    landed = []
    for n, external in enumerate(customers, start=1):  # every scan gets a group: none is turned away
        landed.append(emulator.post(f"/corps/{wecom_id}/join_ways/{made.config_id}/scan",
                                    {"member_id": external})["chat_id"])
        wait_for(lambda n=n: _joins(corp_id) == n and _idle(corp_id), timeout=60)
    wait_for(lambda: _joins(corp_id) == CUSTOMERS and _idle(corp_id), timeout=90)

    members = {c: len(emulator.state.corp(wecom_id).group_chats[c].members) for c in chats}
    assert all(n <= CAPACITY for n in members.values())
    assert sum(members.values()) == CUSTOMERS + GROUPS, "every customer is in a group (plus each owner)"
    assert landed[:ROTATE_AT - 1] == [first[0]] * (ROTATE_AT - 1), "the first listed group fills first"
    assert sixth in landed, "the sixth group — not in the first list — took later joins"
    way = _way(way_id)
    assert way.rotations >= 1 and first[0] not in way.chat_ids
    assert client.get_join_way(way.config_id).chat_id_list == way.chat_ids, "WeCom lists what Siyu says"

    with session_scope() as s:
        rows = list(s.scalars(select(GroupJoin).where(GroupJoin.corp_id == corp_id)))
        stays = s.scalar(select(func.count()).select_from(GroupMember).where(
            GroupMember.corp_id == corp_id, GroupMember.member_type == "customer"))
        overview = joinways.overview(s, principal=ops, set_id=set_id)
    assert stays == CUSTOMERS and len(rows) == CUSTOMERS and len({r.stay_id for r in rows}) == CUSTOMERS
    assert {(r.join_way_id, r.group_set_id, r.channel_code_id, r.advisor_userid, r.join_scene) for r in rows} == {
        (way_id, set_id, code_id, "zhangsan", 3)}, "each join attributed to the way, set, channel and advisor"
    assert sum(sum(s["values"]) for s in overview.series["series"]) == CUSTOMERS
    assert [s["name"] for s in overview.series["series"]] == ["手机银行Banner"]
    assert overview.ways[0].joins == CUSTOMERS


def test_a_set_out_of_groups_alerts_operations_and_turns_no_one_away(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    emulator.admin.patch(f"/corps/{wecom_id}/limits", json={"group_capacity": 4}).raise_for_status()
    contact = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="jw-full")
    customers = [emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": contact.config_id,
                                                                  "name": f"客户{i}"})["external_userid"]
                 for i in range(3)]
    chat = emulator.post(f"/corps/{wecom_id}/group_chats", {"owner": "zhangsan", "name": "高净值1群",
                                                            "members": []}, expect=201)["chat_id"]
    wait_for(lambda: all(_known(corp_id, c) for c in customers) and _idle(corp_id), timeout=60)
    with session_scope() as s:
        ops = principal_of(make_staff(s, corp_id, roles=(Role.OPERATIONS,), name="运营小李"))
        group_set = service.create_set(s, principal=ops, name="高净值群组", positioning="high_net_worth")
        service.assign_groups(s, principal=ops, set_id=group_set.id,
                              group_ids=[sync.get_by_chat_id(s, corp_id=corp_id, chat_id=chat).id])
        joinways.configure(s, principal=ops, set_id=group_set.id, capacity=4, rotate_at=2, when_full="alert")
        way_id = joinways.create_way(s, principal=ops, set_id=group_set.id).id
    made = wait_for(lambda: (w := _way(way_id)).qr_code and w, timeout=30)
    for external in customers[:2]:
        emulator.post(f"/corps/{wecom_id}/join_ways/{made.config_id}/scan", {"member_id": external})
    way = wait_for(lambda: (w := _way(way_id)).status == "exhausted" and w, timeout=60)
    assert way.exhausted_at is not None and way.chat_ids == [chat], "the nearly full group stays listed"
    emulator.post(f"/corps/{wecom_id}/join_ways/{made.config_id}/scan", {"member_id": customers[2]})
    wait_for(lambda: _joins(corp_id) == 3, timeout=30)
    with session_scope() as s:
        assert group_set.id in joinways.exhausted_sets(s, corp_id=corp_id)


def _joins(corp_id: int) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(GroupJoin).where(GroupJoin.corp_id == corp_id)) or 0
