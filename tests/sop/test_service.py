"""The SOP calendar's arithmetic: slot times in Asia/Shanghai stored in UTC, working days with
China's holidays and make-up days, times parsed strictly, and each slot time's state from its sends."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.errors import InvalidInput
from siyu.sop import service
from siyu.sop.models import SopSlot

NOW = dt.datetime(2026, 6, 1, 4, 0, tzinfo=dt.UTC)
LATE, WINDOW = dt.timedelta(minutes=10), dt.timedelta(hours=2)


def test_a_weekly_slot_is_at_its_beijing_time_in_utc():
    slot = SopSlot(weekday=0, minute_of_day=9 * 60 + 30, working_days_only=False)
    times = service.occurrences(slot, dt.date(2026, 6, 1), dt.date(2026, 6, 14))
    assert times == [dt.datetime(2026, 6, 1, 1, 30, tzinfo=dt.UTC), dt.datetime(2026, 6, 8, 1, 30, tzinfo=dt.UTC)]


def test_working_days_only_follows_chinas_calendar():
    slot = SopSlot(weekday=None, on_date=None, minute_of_day=600, working_days_only=True)
    every_day = [SopSlot(weekday=d, minute_of_day=600, working_days_only=True) for d in range(7)]
    days = {service.local_day(t) for s in every_day
            for t in service.occurrences(s, dt.date(2026, 9, 28), dt.date(2026, 10, 11))}
    assert dt.date(2026, 10, 1) not in days and dt.date(2026, 10, 5) not in days, "National Day holidays"
    assert dt.date(2026, 10, 10) in days, "a Saturday made a working day"
    assert dt.date(2026, 9, 29) in days
    assert slot.working_days_only


@given(st.integers(0, 23), st.integers(0, 59))
def test_times_round_trip(hour, minute):
    assert service.format_time(service.parse_time(f"{hour:02d}:{minute:02d}")) == f"{hour:02d}:{minute:02d}"


@pytest.mark.parametrize("bad", ["24:00", "9:60", "0930", "", " : ", "09:30:00", None, 930, "０９:３０"])
def test_bad_times_are_refused_on_their_field(bad):
    with pytest.raises(InvalidInput) as err:
        service.parse_time(bad)
    assert err.value.field == "time"


@pytest.mark.parametrize(("states", "due", "held", "expected"), [
    ([], NOW + dt.timedelta(hours=1), False, "planned"),
    (["planned", "planned"], NOW + dt.timedelta(hours=1), False, "planned"),
    (["waiting", "planned"], NOW - dt.timedelta(minutes=5), False, "waiting"),
    (["waiting", "sent"], NOW - dt.timedelta(minutes=30), False, "late"),
    (["sent", "sent"], NOW - dt.timedelta(minutes=30), False, "sent"),
    (["sent", "missed"], NOW - dt.timedelta(hours=3), False, "partly"),
    (["sent", "waiting"], NOW - dt.timedelta(hours=3), False, "partly"),
    (["planned"], NOW - dt.timedelta(hours=3), False, "missed"),
    (["held", "held"], NOW + dt.timedelta(hours=1), False, "held"),
    (["planned"], NOW + dt.timedelta(hours=1), True, "held"),
])
def test_a_slot_times_state(states, due, held, expected):
    assert service.run_state(states, due_at=due, now=NOW, late_after=LATE, held=held, window=WINDOW) == expected
