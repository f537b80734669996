"""Cron evaluation in Asia/Shanghai, checked against a plain reference evaluator."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.jobs.schedule import InvalidCron, fire_times, next_fire, parse_cron

SHANGHAI = ZoneInfo("Asia/Shanghai")
# (low, high) of each field: minute hour day-of-month month day-of-week (7 is Sunday too)
BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


# --- a reference: expand every field to its set of values, then search day by day ----------------


def expand(field: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            a, b = (int(x) for x in rng.split("-"))
        else:
            a = b = int(rng)
            if step:  # "5/15" means 5-high every 15
                b = high
        values.update(range(a, b + 1, int(step or 1)))
    return values


def reference_next(expr: str, after: dt.datetime) -> dt.datetime:
    fields = expr.split()
    minutes, hours, days, months, weekdays = (expand(f, lo, hi) for f, (lo, hi) in zip(fields, BOUNDS, strict=True))
    weekdays = {d % 7 for d in weekdays}
    dom_restricted, dow_restricted = fields[2] != "*", fields[4] != "*"
    local = after.astimezone(SHANGHAI).replace(tzinfo=None)
    start = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    day = start.date()
    for _ in range(366 * 12):
        cron_dow = (day.weekday() + 1) % 7  # cron: 0 = Sunday
        dom_ok, dow_ok = day.day in days, cron_dow in weekdays
        day_ok = (dom_ok or dow_ok) if (dom_restricted and dow_restricted) else (dom_ok and dow_ok)
        if day.month in months and day_ok:
            for h in sorted(hours):
                for m in sorted(minutes):
                    candidate = dt.datetime(day.year, day.month, day.day, h, m)
                    if candidate >= start:
                        return candidate.replace(tzinfo=SHANGHAI).astimezone(dt.UTC)
        day += dt.timedelta(days=1)
    raise AssertionError(f"{expr} never fires")


@st.composite
def cron_field(draw, low: int, high: int) -> str:
    def one() -> st.SearchStrategy[str]:
        value = st.integers(low, high)
        step = st.integers(1, max(1, high - low))
        span = st.tuples(value, value).map(sorted)
        return st.one_of(
            st.just("*"),
            value.map(str),
            span.map(lambda ab: f"{ab[0]}-{ab[1]}"),
            step.map(lambda k: f"*/{k}"),
            st.tuples(span, step).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        )

    parts = draw(st.lists(one(), min_size=1, max_size=3))
    if "*" in parts and len(parts) > 1:
        parts = [p for p in parts if p != "*"] or ["*"]
    return ",".join(parts)


@st.composite
def cron_expr(draw) -> str:
    fields = [draw(cron_field(lo, hi)) for lo, hi in BOUNDS]
    # Days that exist in every month keep "never fires" expressions (31 February) out.
    if fields[2] != "*" and fields[4] == "*" and not expand(fields[2], 1, 31) & set(range(1, 29)):
        fields[2] = "1-28"
    return " ".join(fields)


moments = st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2090, 12, 31),
                       timezones=st.just(dt.UTC))


@settings(max_examples=150, deadline=None)
@given(expr=cron_expr(), after=moments)
def test_next_fire_matches_the_reference(expr, after):
    """Found croniter 7 reading one-value ranges (3-3) as *, and day fields covering every day as
    * in the day-of-month/day-of-week rule; parse_cron's canonical form works around both."""
    fire = next_fire(expr, after)
    assert fire == next_fire(parse_cron(expr), after)
    assert fire.tzinfo is not None and fire.utcoffset() == dt.timedelta(0)
    assert fire > after
    assert fire == reference_next(expr, after)


@settings(max_examples=50, deadline=None)
@given(expr=cron_expr(), after=moments)
def test_fire_times_increase_and_each_follows_the_previous(expr, after):
    times = fire_times(expr, after, 3)
    assert times == sorted(set(times))
    assert times[1] == next_fire(expr, times[0])


def test_evaluated_in_beijing_time():
    # 09:00 every weekday in Shanghai is 01:00 UTC; Friday evening UTC is already Saturday there.
    friday_evening_utc = dt.datetime(2024, 5, 10, 20, 0, tzinfo=dt.UTC)  # Sat 04:00 in Shanghai
    assert next_fire("0 9 * * 1-5", friday_evening_utc) == dt.datetime(2024, 5, 13, 1, 0, tzinfo=dt.UTC)
    assert next_fire("0 9 * * 1-5", friday_evening_utc, "UTC") == dt.datetime(2024, 5, 13, 9, 0, tzinfo=dt.UTC)


def test_strictly_after_even_on_a_fire_time():
    on_time = dt.datetime(2024, 1, 1, 1, 0, tzinfo=dt.UTC)
    assert next_fire("0 9 * * *", on_time) == dt.datetime(2024, 1, 2, 1, 0, tzinfo=dt.UTC)
    assert next_fire("* * * * *", on_time + dt.timedelta(microseconds=1)) == on_time + dt.timedelta(minutes=1)


def test_names_and_sunday_as_seven():
    t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert next_fire("0 0 * jan sun", t) == next_fire("0 0 * 1 7", t) == next_fire("0 0 * 1 0", t)
    assert parse_cron("  0  9 * *   MON-FRI ") == "0 9 * * 1-5"


def test_canonical_form():
    assert parse_cron("0-0 3-3 * * *") == "0 3 * * *"
    assert parse_cron("5/15 * * * *") == "5-59/15 * * * *"
    # Both day fields restricted and one covers every day: every day matches.
    assert parse_cron("0 0 15 * 0-6") == parse_cron("0 0 1-31 * mon") == "0 0 * * *"
    assert parse_cron("0 0 15 * mon") == "0 0 15 * 1"


@pytest.mark.parametrize("expr", ["", "* * * *", "* * * * * *", "60 * * * *", "0 24 * * *", "0 0 0 * *",
                                  "0 0 31 2 *", "0 0 L * *", "0 0 * * 1#2", "0 0 ? * *", "H * * * *", "@daily",
                                  "5-1 * * * *", "*/0 * * * *", "0 0 * * 8", "0 0 * 13 *", "1,,2 * * * *"])
def test_invalid_expressions(expr):
    with pytest.raises(InvalidCron):
        parse_cron(expr)
