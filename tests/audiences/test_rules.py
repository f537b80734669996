"""Each condition of the rule language with a member and a non-member built by hand; groups, negation,
windows at their edges in Asia/Shanghai days, tenancy and bad rules."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from audiences.factories import NOW, customer, event, follow, link, order, sh, tag
from siyu.audiences import service
from siyu.errors import InvalidInput
from tenancy.factories import make_corp, make_staff


@pytest.fixture
def corp(session):
    return make_corp(session)


def members(session, corp_id: int, rule: dict, now: dt.datetime = NOW) -> set[int]:
    ids = set(session.scalars(service.rule_customer_ids(session, corp_id=corp_id, rule=rule, now=now)))
    assert service.count_rule(session, corp_id=corp_id, rule=rule, now=now) == len(ids)
    return ids


def test_gender_stage_firm_customer_lost(session, corp):
    a = customer(session, corp.id, gender=2, stage="invested", firm_customer_id="F1")
    b = customer(session, corp.id, gender=1, stage="lost")
    assert members(session, corp.id, {"kind": "gender", "values": [2]}) == {a.id}
    assert members(session, corp.id, {"kind": "stage", "stages": ["invested", "reinvested"]}) == {a.id}
    assert members(session, corp.id, {"kind": "firm_customer", "present": True}) == {a.id}
    assert members(session, corp.id, {"kind": "firm_customer", "present": False}) == {b.id}
    assert members(session, corp.id, {"kind": "lost"}) == {b.id}
    assert members(session, corp.id, {"kind": "lost", "lost": False}) == {a.id}


def test_added_within_days_counts_shanghai_calendar_days(session, corp):
    # NOW is 10:00 on 2026-03-02 in Shanghai. "Within 2 days" is from 00:00 on 03-01 (Shanghai),
    # which is 16:00 UTC on 02-28.
    first_second = customer(session, corp.id, added=sh(2026, 3, 1, 0, 0, 0))
    last_second_before = customer(session, corp.id, added=sh(2026, 2, 28, 23, 59, 59))
    assert members(session, corp.id, {"kind": "added", "within_days": 2}) == {first_second.id}
    assert members(session, corp.id, {"kind": "added", "within_days": 1}) == set()
    assert members(session, corp.id, {"kind": "added", "within_days": 3}) == {first_second.id, last_second_before.id}


def test_added_between_dates_includes_both_whole_days(session, corp):
    start = customer(session, corp.id, added=sh(2026, 2, 1, 0, 0, 0))
    end = customer(session, corp.id, added=sh(2026, 2, 10, 23, 59, 59))
    before = customer(session, corp.id, added=sh(2026, 1, 31, 23, 59, 59))
    after = customer(session, corp.id, added=sh(2026, 2, 11, 0, 0, 0))
    got = members(session, corp.id, {"kind": "added", "from": "2026-02-01", "to": "2026-02-10"})
    assert got == {start.id, end.id}
    assert before.id not in got and after.id not in got
    assert members(session, corp.id, {"kind": "added", "from": "2026-02-11"}) == {after.id}


def test_tags_all_any_none(session, corp):
    t1, t2, t3 = tag(session, corp.id), tag(session, corp.id), tag(session, corp.id)
    both = customer(session, corp.id)
    link(session, both, t1, t2)
    one = customer(session, corp.id)
    link(session, one, t1)
    other = customer(session, corp.id)
    link(session, other, t3)
    bare = customer(session, corp.id)
    ids = [t1.id, t2.id]
    assert members(session, corp.id, {"kind": "tags", "match": "all", "tag_ids": ids}) == {both.id}
    assert members(session, corp.id, {"kind": "tags", "match": "any", "tag_ids": ids}) == {both.id, one.id}
    assert members(session, corp.id, {"kind": "tags", "match": "none", "tag_ids": ids}) == {other.id, bare.id}


def _assess(session, corp_id, ref, level, *, assessed, expires):
    from siyu.compliance.models import CustomerRiskAssessment

    session.add(CustomerRiskAssessment(corp_id=corp_id, customer_ref=ref, level=level, source="manual",
                                       assessed_at=assessed, expires_at=expires, recorded_by="test"))
    session.flush()


def test_risk_level_is_the_latest_assessment_by_either_reference(session, corp):
    up = customer(session, corp.id, firm_customer_id="F-up")
    _assess(session, corp.id, up.external_userid, "C2", assessed=NOW - dt.timedelta(days=300),
            expires=NOW + dt.timedelta(days=60))
    _assess(session, corp.id, "F-up", "C4", assessed=NOW - dt.timedelta(days=10), expires=NOW + dt.timedelta(days=355))
    down = customer(session, corp.id)
    _assess(session, corp.id, down.external_userid, "C4", assessed=NOW - dt.timedelta(days=300),
            expires=NOW + dt.timedelta(days=60))
    _assess(session, corp.id, down.external_userid, "C1", assessed=NOW - dt.timedelta(days=5),
            expires=NOW + dt.timedelta(days=360))
    never = customer(session, corp.id)
    assert members(session, corp.id, {"kind": "risk_level", "levels": ["C4", "C5"]}) == {up.id}
    assert members(session, corp.id, {"kind": "risk_level", "levels": ["C1"]}) == {down.id}
    assert members(session, corp.id, {"kind": "risk_expiry", "state": "unassessed"}) == {never.id}


def test_risk_expiry_at_its_edges(session, corp):
    expired = customer(session, corp.id)
    _assess(session, corp.id, expired.external_userid, "C3", assessed=NOW - dt.timedelta(days=400), expires=NOW)
    # expires at the last second of the 7th day after today (Shanghai): within 7 days; the next second is not.
    last = customer(session, corp.id)
    _assess(session, corp.id, last.external_userid, "C3", assessed=NOW - dt.timedelta(days=300),
            expires=sh(2026, 3, 9, 23, 59, 59))
    later = customer(session, corp.id)
    _assess(session, corp.id, later.external_userid, "C3", assessed=NOW - dt.timedelta(days=300),
            expires=sh(2026, 3, 10, 0, 0, 0))
    assert members(session, corp.id, {"kind": "risk_expiry", "state": "expired"}) == {expired.id}
    assert members(session, corp.id, {"kind": "risk_expiry", "state": "expires_within", "days": 7}) == {last.id}
    assert members(session, corp.id, {"kind": "risk_expiry", "state": "valid"}) == {last.id, later.id}


def test_channel_and_join_way(session, corp):
    from siyu.acquisition.models import ChannelAdd, ChannelCode
    from siyu.communities.joinway_models import GroupJoin, GroupJoinWay
    from siyu.communities.models import GroupChat, GroupMember, GroupSet

    code = ChannelCode(corp_id=corp.id, name="手机银行", channel="mobile_banking", state="c1")
    other_code = ChannelCode(corp_id=corp.id, name="短信", channel="sms", state="c2")
    session.add_all([code, other_code])
    session.flush()
    came = customer(session, corp.id)
    elsewhere = customer(session, corp.id)
    for c, k in ((came, code), (elsewhere, other_code)):
        session.add(ChannelAdd(corp_id=corp.id, code_id=k.id, advisor_userid="a1", external_userid=c.external_userid,
                               inbox_event_id=c.id, at=NOW, day="2026-03-02"))
    gset = GroupSet(corp_id=corp.id, name="理财学习群")
    session.add(gset)
    session.flush()
    way = GroupJoinWay(corp_id=corp.id, group_set_id=gset.id, state="jw1")
    chat = GroupChat(corp_id=corp.id, chat_id="wr1", group_set_id=gset.id)
    session.add_all([way, chat])
    session.flush()
    stay = GroupMember(corp_id=corp.id, group_id=chat.id, member_id=came.external_userid, member_type="external",
                       customer_id=came.id, joined_at=NOW)
    session.add(stay)
    session.flush()
    session.add(GroupJoin(corp_id=corp.id, stay_id=stay.id, group_id=chat.id, join_way_id=way.id, customer_id=came.id,
                          joined_at=NOW))
    session.flush()
    assert members(session, corp.id, {"kind": "channel", "code_ids": [code.id]}) == {came.id}
    assert members(session, corp.id, {"kind": "join_way", "join_way_ids": [way.id]}) == {came.id}


def test_group_membership_any_set_group_and_none(session, corp):
    from siyu.communities.models import GroupChat, GroupMember, GroupSet

    gset = GroupSet(corp_id=corp.id, name="新客群")
    session.add(gset)
    session.flush()
    in_set = GroupChat(corp_id=corp.id, chat_id="wr-a", group_set_id=gset.id)
    loose = GroupChat(corp_id=corp.id, chat_id="wr-b")
    session.add_all([in_set, loose])
    session.flush()
    a, b, left, none = (customer(session, corp.id) for _ in range(4))
    for c, g, left_at in ((a, in_set, None), (b, loose, None), (left, in_set, NOW)):
        session.add(GroupMember(corp_id=corp.id, group_id=g.id, member_id=c.external_userid, member_type="external",
                                customer_id=c.id, joined_at=NOW - dt.timedelta(days=3), left_at=left_at))
    session.flush()
    assert members(session, corp.id, {"kind": "group"}) == {a.id, b.id}
    assert members(session, corp.id, {"kind": "group", "scope": "group_set", "ids": [gset.id]}) == {a.id}
    assert members(session, corp.id, {"kind": "group", "scope": "group", "ids": [loose.id]}) == {b.id}
    assert members(session, corp.id, {"not": {"kind": "group"}}) == {left.id, none.id}


def test_added_in_the_last_7_days_and_not_verified(session, corp):
    """The issue's example: an event in a window, with negation."""
    fresh = customer(session, corp.id, added=sh(2026, 2, 24))
    event(session, fresh, "added", sh(2026, 2, 24, 0, 0, 0))  # the first second of the 7th day back
    verified = customer(session, corp.id, added=sh(2026, 2, 28))
    event(session, verified, "added", sh(2026, 2, 28, 9))
    event(session, verified, "firm_linked", sh(2026, 3, 1, 9))
    old = customer(session, corp.id)
    event(session, old, "added", sh(2026, 2, 23, 23, 59, 59))
    rule = {"all": [{"kind": "event", "event": "added", "within_days": 7},
                    {"not": {"kind": "event", "event": "firm_linked"}}]}
    assert members(session, corp.id, rule) == {fresh.id}


def test_invested_redeemed_not_reinvested_and_holdings(session, corp):
    recent = customer(session, corp.id)
    order(session, recent, "investment", sh(2026, 2, 1, 0, 0, 0), risk="R3")  # within 30 days, at the edge
    stale = customer(session, corp.id)
    order(session, stale, "investment", sh(2026, 1, 31, 23, 59, 59), risk="R4")
    order(session, stale, "redemption", sh(2026, 2, 20), risk="R4")  # all of it back: holds nothing
    winback = customer(session, corp.id)
    order(session, winback, "investment", sh(2025, 12, 1), product="P2", risk="R2")
    order(session, winback, "redemption", sh(2026, 2, 25), product="P2", risk="R2", amount_fen=40_000)
    back = customer(session, corp.id)
    order(session, back, "redemption", sh(2026, 2, 10), product="P3")
    order(session, back, "investment", sh(2026, 2, 12), product="P4", risk="R5")

    assert members(session, corp.id, {"kind": "invested", "within_days": 30}) == {recent.id, back.id}
    assert members(session, corp.id, {"kind": "invested", "within_days": 30, "product_codes": ["P4"]}) == {back.id}
    assert members(session, corp.id, {"kind": "redeemed_not_reinvested", "within_days": 30}) == {stale.id, winback.id}
    assert members(session, corp.id, {"kind": "holds", "min_risk": "R3"}) == {recent.id, back.id}
    assert members(session, corp.id, {"kind": "holds"}) == {recent.id, winback.id, back.id}  # 600 yuan of P2 left
    assert members(session, corp.id, {"kind": "holds", "product_codes": ["P1"]}) == {recent.id}


def test_consent_in_force_is_the_latest_record(session, corp):
    from siyu.privacy.models import ConsentRecord

    def consent(c, granted):
        session.add(ConsentRecord(corp_id=corp.id, external_userid=c.external_userid, purpose="marketing",
                                  granted=granted, source="h5", actor="test"))
        session.flush()

    opted_out = customer(session, corp.id)
    consent(opted_out, True)
    consent(opted_out, False)
    changed_mind = customer(session, corp.id)
    consent(changed_mind, False)
    consent(changed_mind, True)
    never = customer(session, corp.id)
    assert members(session, corp.id, {"kind": "consent", "state": "withdrawn"}) == {opted_out.id}
    assert members(session, corp.id, {"kind": "consent", "state": "granted"}) == {changed_mind.id}
    assert members(session, corp.id, {"kind": "consent", "state": "unknown"}) == {never.id}


def test_advisor_by_member_or_department_below(session, corp):
    from siyu.tenancy.models import Department

    head = Department(corp_id=corp.id, name="财富管理部")
    session.add(head)
    session.flush()
    branch = Department(corp_id=corp.id, name="一支行", parent_id=head.id)
    session.add(branch)
    session.flush()
    alice = make_staff(session, corp, department_id=branch.id, wecom_userid="alice")
    bob = make_staff(session, corp, wecom_userid="bob")
    a, b, gone = (customer(session, corp.id) for _ in range(3))
    follow(session, a, staff_id=alice.id, userid="alice")
    follow(session, b, staff_id=bob.id, userid="bob")
    follow(session, gone, staff_id=alice.id, userid="alice", status="lost")
    assert members(session, corp.id, {"kind": "advisor", "staff_ids": [bob.id]}) == {b.id}
    assert members(session, corp.id, {"kind": "advisor", "department_ids": [head.id]}) == {a.id}


def test_groups_any_none_and_nested_not(session, corp):
    a = customer(session, corp.id, gender=2, stage="invested")
    b = customer(session, corp.id, gender=1, stage="invested")
    c = customer(session, corp.id, gender=1, stage="new")
    women = {"kind": "gender", "values": [2]}
    new = {"kind": "stage", "stages": ["new"]}
    assert members(session, corp.id, {"any": [women, new]}) == {a.id, c.id}
    assert members(session, corp.id, {"none": [women, new]}) == {b.id}
    assert members(session, corp.id, {"all": [{"not": women}, {"not": new}]}) == {b.id}
    assert members(session, corp.id, {"not": {"any": [women, {"all": [new]}]}}) == {b.id}


def test_another_corps_customers_never_match(session, corp):
    other = make_corp(session)
    t = tag(session, other.id)
    theirs = customer(session, other.id, gender=2)
    link(session, theirs, t)
    mine = customer(session, corp.id, gender=2)
    assert members(session, corp.id, {"kind": "gender", "values": [2]}) == {mine.id}
    # a tag of another corp is refused by name of the field, never matched
    with pytest.raises(InvalidInput) as err:
        members(session, corp.id, {"all": [{"kind": "tags", "tag_ids": [t.id]}]})
    assert err.value.field == "rule.all[0].tag_ids"


@pytest.mark.parametrize(("rule", "field"), [
    ({"kind": "tags", "tag_ids": []}, "rule.tag_ids"),
    ({"all": [{"kind": "stage", "stages": ["rich"]}]}, "rule.all[0].stages[0]"),
    ({"any": [{"kind": "nope"}]}, "rule.any[0].kind"),
    ({"all": [{"kind": "added"}]}, "rule.all[0]"),
    ({"all": [{"kind": "added", "within_days": 7, "from": "2026-01-01"}]}, "rule.all[0]"),
    ({"all": [{"kind": "risk_expiry", "state": "expires_within"}]}, "rule.all[0]"),
    ({"not": {"all": [{"kind": "gender", "values": [3]}]}}, "rule.not.all[0].values[0]"),
    ({"all": [{"kind": "gender", "values": [1], "extra": 1}]}, "rule.all[0].extra"),
    ({"all": [], "any": []}, "rule"),
    ({"all": []}, "rule.all"),
    ([], "rule"),
    ({"all": [{"kind": "risk_level", "levels": ["R3"]}]}, "rule.all[0].levels[0]"),
])
def test_bad_rules_name_the_field_path(session, corp, rule, field):
    with pytest.raises(InvalidInput) as err:
        service.rule_customer_ids(session, corp_id=corp.id, rule=rule)
    assert err.value.field == field


def test_a_rule_is_one_statement(session, corp):
    """Compiled to one SELECT, evaluated by the database (no customer is read into Python)."""
    from sqlalchemy import event as sa_event

    customer(session, corp.id, gender=2)
    statements = []
    rule = {"all": [{"kind": "gender", "values": [2]}, {"kind": "event", "event": "added", "within_days": 7},
                    {"kind": "holds", "min_risk": "R3"}, {"kind": "consent", "state": "unknown"}]}
    query = service.rule_customer_ids(session, corp_id=corp.id, rule=rule, now=NOW)
    conn = session.connection()
    sa_event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
    session.execute(select(query.subquery()))
    assert len(statements) == 1


def test_a_saved_segment_as_a_subquery_of_other_queries(session, corp):
    """How broadcasts, SOP and campaigns take a segment: its ids inside their own query, also one over
    `customer` (the subquery keeps its own FROM)."""
    from sqlalchemy import func

    from siyu.customers.models import Customer, CustomerFollow
    from tenancy.factories import principal_of

    me = principal_of(make_staff(session, corp))
    t = tag(session, corp.id)
    inside = customer(session, corp.id, stage="invested")
    link(session, inside, t)
    outside = customer(session, corp.id, stage="invested")
    follow(session, inside, staff_id=None, userid="a1")
    follow(session, outside, staff_id=None, userid="a1")
    seg = service.create_segment(session, principal=me, name="未打标已投",
                                 rule={"all": [{"kind": "stage", "stages": ["invested"]},
                                               {"not": {"kind": "tags", "tag_ids": [t.id]}}]})
    ids = service.segment_customer_ids(session, corp_id=corp.id, segment_id=seg.id)
    found = set(session.scalars(select(Customer.external_userid).where(Customer.id.in_(ids))))
    assert found == {outside.external_userid}
    assert session.scalar(select(func.count()).select_from(Customer).where(Customer.corp_id == corp.id,
                                                                            Customer.id.in_(ids))) == 1
    assert set(session.scalars(select(CustomerFollow.customer_id).where(CustomerFollow.customer_id.in_(ids)))) == {
        outside.id}
    other = make_corp(session)
    with pytest.raises(Exception) as err:
        service.segment_customer_ids(session, corp_id=other.id, segment_id=seg.id)
    assert err.value.field == "segment_id"


def test_tags_beside_a_stage_follow_stage_changes(session, corp):
    """With a stage beside tags, the tag set is read by (tag, stage): a stage change moves the customer."""
    from siyu.customers import contacts

    t = tag(session, corp.id)
    c = customer(session, corp.id, stage="new")
    link(session, c, t)
    rule = {"all": [{"kind": "stage", "stages": ["invested", "reinvested"]}, {"kind": "tags", "tag_ids": [t.id]}]}
    assert members(session, corp.id, rule) == set()
    contacts.change_stage(session, c, "invested", at=NOW, actor="test")
    session.flush()
    assert members(session, corp.id, rule) == {c.id}
    both = {"all": [{"kind": "stage", "stages": ["invested"]}, {"kind": "stage", "stages": ["new", "invested"]},
                    {"kind": "tags", "match": "all", "tag_ids": [t.id]}]}
    assert members(session, corp.id, both) == {c.id}
    assert members(session, corp.id, {"all": [{"kind": "stage", "stages": ["invested"]},
                                              {"kind": "tags", "match": "none", "tag_ids": [t.id]}]}) == set()
