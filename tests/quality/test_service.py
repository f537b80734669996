"""Service quality (服务质量): working-time arithmetic (China's holidays and make-up days included),
reply waits built from archived chats whatever the order and repetition of the messages, reply-timeout
alerts raised once and closed by the reply, and the daily report's figures on a hand-made day."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from siyu.compliance import archive
from siyu.jobs.events import job_name_for, subscribe, unsubscribe
from siyu.jobs.models import Job
from siyu.quality import service as quality
from siyu.quality.jobs import WAITS_JOB
from siyu.quality.models import QualityReport, ReplyWait
from siyu.quality.service import WorkingHours

ZONE = quality.ZONE
MIN = dt.timedelta(minutes=1)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZONE)


# --- working time ------------------------------------------------------------------------------------

DEFAULT = WorkingHours()


def test_friday_evening_to_monday_morning():
    assert DEFAULT.working_time(at("2026-11-27 17:50"), at("2026-11-30 09:10")) == 20 * MIN  # Fri → Mon
    assert DEFAULT.working_time(at("2026-11-30 09:10"), at("2026-11-27 17:50")) == dt.timedelta()


def test_national_day_and_its_make_up_days():
    # 国庆节 2026: 1–7 October off; Sunday 20 September and Saturday 10 October are working days.
    for d in range(1, 8):
        assert not DEFAULT.is_working_day(dt.date(2026, 10, d))
        assert DEFAULT.working_time(at(f"2026-10-0{d} 00:00"), at(f"2026-10-0{d} 23:59")) == dt.timedelta()
    assert DEFAULT.working_time(at("2026-09-30 17:50"), at("2026-10-08 09:10")) == 20 * MIN
    assert DEFAULT.working_time(at("2026-10-10 00:00"), at("2026-10-11 00:00")) == dt.timedelta(hours=9)
    assert DEFAULT.working_time(at("2026-09-20 08:00"), at("2026-09-20 12:00")) == dt.timedelta(hours=3)
    plain = WorkingHours(public_holidays=False)  # weekdays only: 1 Oct (Thursday) works, 10 Oct (Saturday) not
    assert plain.working_time(at("2026-10-01 00:00"), at("2026-10-02 00:00")) == dt.timedelta(hours=9)
    assert plain.working_time(at("2026-10-10 00:00"), at("2026-10-11 00:00")) == dt.timedelta()


def test_a_year_the_calendar_does_not_know_falls_back_to_weekdays():
    assert DEFAULT.is_working_day(dt.date(2099, 1, 5)) and not DEFAULT.is_working_day(dt.date(2099, 1, 3))


instants = st.datetimes(min_value=dt.datetime(2025, 12, 20), max_value=dt.datetime(2027, 1, 10)).map(
    lambda d: d.replace(tzinfo=ZONE))
hours_st = st.builds(
    lambda days, a, b, hol: WorkingHours(weekdays=frozenset(days), start_minute=min(a, b), end_minute=max(a, b) + 1,
                                         public_holidays=hol),
    st.sets(st.integers(0, 6), min_size=1), st.integers(0, 1438), st.integers(0, 1438), st.booleans())


@settings(max_examples=300, deadline=None)
@given(hours_st, instants, instants, instants)
def test_working_time_adds_up_over_split_intervals(hours, a, b, c):
    a, b, c = sorted((a, b, c))
    whole = hours.working_time(a, c)
    assert whole == hours.working_time(a, b) + hours.working_time(b, c)
    assert dt.timedelta() <= whole <= c - a


@settings(max_examples=200, deadline=None)
@given(hours_st, st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2026, 12, 31)), st.integers(0, 1439),
       st.integers(0, 1439))
def test_no_working_time_outside_the_hours(hours, day, x, y):
    midnight = dt.datetime.combine(day, dt.time(), ZONE)
    lo, hi = sorted((x, y))
    span = (midnight + lo * MIN, midnight + hi * MIN)
    got = hours.working_time(*span)
    if not hours.is_working_day(day) or hi <= hours.start_minute or lo >= hours.end_minute:
        assert got == dt.timedelta()
    else:
        assert got == (min(hi, hours.end_minute) - max(lo, hours.start_minute)) * MIN


# --- waits -------------------------------------------------------------------------------------------


def record(sender: str, to: str, when: dt.datetime, *, msgid: str | None = None, roomid: str = ""):
    return archive.parse_record({"msgid": msgid or uuid.uuid4().hex, "from": sender, "tolist": [to], "roomid": roomid,
                                 "msgtime": int(when.timestamp() * 1000), "msgtype": "text",
                                 "text": {"content": "您好"}})


def ingest(session, corp, records) -> None:
    """Ingest as the feed or an import does, then run the waits jobs the ingest enqueued."""
    archive.ingest_records(session, corp_id=corp.id, records=records, source="file")
    for job in session.scalars(select(Job).where(Job.name == WAITS_JOB, Job.corp_id == corp.id)):
        quality.update_waits(session, corp_id=corp.id, **job.payload)


def waits_of(session, corp, customer=None):
    q = select(ReplyWait).where(ReplyWait.corp_id == corp.id).order_by(ReplyWait.opened_at)
    if customer:
        q = q.where(ReplyWait.customer_userid == customer)
    return [(w.opened_msgid, w.opened_at.astimezone(ZONE).strftime("%m-%d %H:%M"), w.customer_messages,
             w.reply_msgid, w.working_seconds) for w in session.scalars(q)]


def chat(customer: str, staff: str = "a1") -> list:
    """A day of one chat: two questions answered after 15 minutes, one answered the next working day."""
    return [
        record(customer, staff, at("2026-11-27 10:00"), msgid=f"{customer}-1"),
        record(customer, staff, at("2026-11-27 10:02"), msgid=f"{customer}-2"),
        record(staff, customer, at("2026-11-27 10:15"), msgid=f"{customer}-3"),
        record(customer, staff, at("2026-11-27 17:50"), msgid=f"{customer}-4"),
        record(staff, customer, at("2026-11-30 09:10"), msgid=f"{customer}-5"),
        record(customer, staff, at("2026-11-30 11:00"), msgid=f"{customer}-6"),
    ]


def expected(customer: str) -> list:
    return [(f"{customer}-1", "11-27 10:00", 2, f"{customer}-3", 900),
            (f"{customer}-4", "11-27 17:50", 1, f"{customer}-5", 1200),
            (f"{customer}-6", "11-30 11:00", 1, "", None)]


def test_waits_in_order(session, corp):
    ingest(session, corp, chat("wmOrder"))
    assert waits_of(session, corp) == expected("wmOrder")


def test_waits_do_not_depend_on_order_or_repetition(session, corp):
    rng = random.Random(6)
    for n in range(8):
        customer = f"wmShuffle{n}"
        messages = chat(customer)
        messages += rng.sample(messages, 3)  # duplicates, in the same batch or a later one
        rng.shuffle(messages)
        cut = sorted(rng.sample(range(1, len(messages)), 3))
        for batch in (messages[:cut[0]], messages[cut[0]:cut[1]], messages[cut[1]:cut[2]], messages[cut[2]:]):
            ingest(session, corp, batch)
        assert waits_of(session, corp, customer) == expected(customer), n


def test_a_late_reply_splits_a_wait_and_keeps_ids(session, corp):
    ingest(session, corp, [record("wmLate", "a1", at("2026-11-27 10:00"), msgid="L1"),
                           record("wmLate", "a1", at("2026-11-27 10:30"), msgid="L2")])
    first_id = session.scalar(select(ReplyWait.id).where(ReplyWait.opened_msgid == "L1"))
    assert waits_of(session, corp, "wmLate") == [("L1", "11-27 10:00", 2, "", None)]
    ingest(session, corp, [record("a1", "wmLate", at("2026-11-27 10:10"), msgid="L3")])
    assert waits_of(session, corp, "wmLate") == [("L1", "11-27 10:00", 1, "L3", 600),
                                                 ("L2", "11-27 10:30", 1, "", None)]
    assert session.scalar(select(ReplyWait.id).where(ReplyWait.opened_msgid == "L1")) == first_id


def test_group_chats_open_no_wait(session, corp):
    ingest(session, corp, [record("wmGroup", "a1", at("2026-11-27 10:00"), roomid="wrRoom1")])
    assert waits_of(session, corp, "wmGroup") == []


# --- timeouts ----------------------------------------------------------------------------------------


def test_timeout_alert_raised_once_and_closed_by_the_reply(session, corp):
    got = []
    name = "test.quality_timeout"
    subscribe(quality.TIMEOUT_EVENT, name=name)(lambda s, p, j: got.append(p))
    try:
        ingest(session, corp, [record("wmWait", "a1", at("2026-11-27 17:50"), msgid="W1")])
        assert quality.raise_timeouts(session, now=at("2026-11-30 09:10"), corp_id=corp.id) == []  # 20 working minutes
        raised = quality.raise_timeouts(session, now=at("2026-11-30 09:25"), corp_id=corp.id)  # 35
        assert [w.opened_msgid for w in raised] == ["W1"]
        assert quality.raise_timeouts(session, now=at("2026-11-30 10:25"), corp_id=corp.id) == []
        jobs = session.scalars(select(Job).where(Job.name == job_name_for(quality.TIMEOUT_EVENT, name),
                                                 Job.corp_id == corp.id)).all()
        assert len(jobs) == 1 and jobs[0].payload["staff_userid"] == "a1"
        alerts = quality.open_alerts(session, corp_id=corp.id, now=at("2026-11-30 09:40"))
        assert [(a.staff_userid, a.customer_userid, a.working_minutes) for a in alerts] == [("a1", "wmWait", 50)]
        assert quality.open_alerts(session, corp_id=corp.id, staff_userids={"a2"}) == []
        ingest(session, corp, [record("a1", "wmWait", at("2026-11-30 09:45"), msgid="W2")])
        assert quality.open_alerts(session, corp_id=corp.id) == []
        wait = session.scalar(select(ReplyWait).where(ReplyWait.opened_msgid == "W1"))
        assert wait.working_seconds == 55 * 60 and wait.timeout_at is not None
    finally:
        unsubscribe(quality.TIMEOUT_EVENT, name)


def test_off_day_messages_can_be_left_out(session, corp):
    quality.update_settings(session, corp_id=corp.id, actor="test", weekdays=[0, 1, 2, 3, 4], day_start="09:00",
                            day_end="18:00", public_holidays=True, timeout_minutes="30", count_off_days=False)
    ingest(session, corp, [record("wmSat", "a1", at("2026-11-28 11:00"), msgid="S1")])  # a Saturday
    assert quality.raise_timeouts(session, now=at("2026-11-30 12:00"), corp_id=corp.id) == []
    assert quality.compute_report(session, corp_id=corp.id, day=dt.date(2026, 11, 28))["totals"]["waits"] == 0


# --- the daily report --------------------------------------------------------------------------------


def _day(session, corp):
    """Friday 27 November 2026: a1 answers in 10, 20 and 40 working minutes (4 customer messages); a2
    leaves a customer waiting from 17:00; one customer deletes a1, a1 deletes another."""
    from siyu.customers import contacts
    from siyu.customers.models import FollowStatus

    rows = []
    for i, (start, minutes) in enumerate([("09:30", 10), ("11:00", 20), ("17:40", 40)]):
        c = f"wmR{i}"
        rows.append(record(c, "a1", at(f"2026-11-27 {start}")))
        if i == 0:
            rows.append(record(c, "a1", at(f"2026-11-27 {start}") + MIN))
        end = at(f"2026-11-27 {start}") + minutes * MIN
        if end > at("2026-11-27 18:00"):
            end = at("2026-11-30 09:00") + (end - at("2026-11-27 18:00"))
        assert quality.WorkingHours().working_time(at(f"2026-11-27 {start}"), end) == minutes * MIN
        rows.append(record("a1", c, end))
    rows.append(record("wmR9", "a2", at("2026-11-27 17:00")))
    rows.append(record("wmR8", "a2", at("2026-11-26 17:00")))  # the day before: not in this report
    ingest(session, corp, rows)
    for ext, status in (("wmGone1", FollowStatus.LOST), ("wmGone2", FollowStatus.DELETED_BY_STAFF)):
        contacts.record_add(session, corp_id=corp.id, external_userid=ext, wecom_userid="a1",
                            at=at("2026-11-20 10:00"), source_key=f"t:{ext}:{corp.id}")
        contacts.record_end(session, corp_id=corp.id, external_userid=ext, wecom_userid="a1",
                            at=at("2026-11-27 15:00"), status=status)


def test_report_figures(session, corp):
    _day(session, corp)
    report = quality.compute_report(session, corp_id=corp.id, day=dt.date(2026, 11, 27), now=at("2026-11-30 08:00"))
    by = {r["staff_userid"]: r for r in report["advisors"]}
    assert {k: by["a1"][k] for k in ("customer_messages", "waits", "replied", "median_minutes", "p90_minutes",
                                      "timeouts", "lost", "deleted")} == {
        "customer_messages": 4, "waits": 3, "replied": 3, "median_minutes": 20.0, "p90_minutes": 40.0,
        "timeouts": 1, "lost": 1, "deleted": 1}
    assert {k: by["a2"][k] for k in ("customer_messages", "waits", "replied", "median_minutes", "timeouts")} == {
        "customer_messages": 1, "waits": 1, "replied": 0, "median_minutes": None, "timeouts": 1}  # 60 working min
    assert report["totals"] == {"customer_messages": 5, "waits": 4, "replied": 3, "median_minutes": 20.0,
                                "p90_minutes": 40.0, "timeouts": 2, "lost": 1, "deleted": 1}
    mine = quality.restrict(report, {"a2"})
    assert [r["staff_userid"] for r in mine["advisors"]] == ["a2"] and mine["totals"]["customer_messages"] == 1

    quality.store_report(session, corp_id=corp.id, day=dt.date(2026, 11, 27), now=at("2026-11-30 08:00"))
    quality.store_report(session, corp_id=corp.id, day=dt.date(2026, 11, 27), now=at("2026-11-30 08:00"))
    assert len(session.scalars(select(QualityReport).where(QualityReport.corp_id == corp.id)).all()) == 1
    stored = quality.get_report(session, corp_id=corp.id, day=dt.date(2026, 11, 27))
    assert stored["stored"] is True and stored["totals"] == report["totals"]
    days = quality.trend(session, corp_id=corp.id, last_day=dt.date(2026, 11, 27), now=at("2026-11-30 08:00"))
    assert len(days) == 14 and days[-1]["median_minutes"] == 20.0 and days[-2]["timeouts"] == 1


def test_cli_prints_the_report(database_url):
    from siyu.cli import app
    from siyu.db import session_scope
    from siyu.tenancy import service as tenancy

    slug = "q-" + uuid.uuid4().hex[:8]
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug=slug, name="质量银行")
        _day(s, corp)
    runner = CliRunner()
    result = runner.invoke(app, ["quality", "report", "--date", "2026-11-27", "--corp", slug])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["day"] == "2026-11-27" and out["stored"] is False
    assert out["totals"]["replied"] == 3 and out["totals"]["median_minutes"] == 20.0
    assert runner.invoke(app, ["quality", "report", "--date", "27/11/2026", "--corp", slug]).exit_code == 2
    assert runner.invoke(app, ["quality", "report", "--date", "2026-11-27", "--corp", "nobody-here"]).exit_code == 2
