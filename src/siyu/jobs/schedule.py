"""Cron expressions for recurring jobs, evaluated in a time zone (Asia/Shanghai by default).

Standard 5 fields: minute hour day-of-month month day-of-week (0 or 7 = Sunday; names such as
`mon` and `jan` are accepted). When both day-of-month and day-of-week are restricted (neither is
`*`), a day matches if either does, as in cron. Evaluation is croniter's, wrapped so that callers
only ever see aware UTC datetimes, as everything else in Siyu."""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from siyu.errors import InvalidInput

DEFAULT_TIMEZONE = "Asia/Shanghai"
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (low, high, names) per field; day-of-week goes to 7, another name for Sunday.
_FIELDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS)]


class InvalidCron(InvalidInput):
    pass


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("unknown time zone %(zone)s", field="timezone", params={"zone": name}) from None


def _bad(expr: str) -> InvalidCron:
    return InvalidCron("invalid cron expression %(cron)s", field="cron", params={"cron": expr})


def _field(text: str, index: int, expr: str) -> tuple[str, set[int]]:
    """One field in a canonical form croniter reads as cron does, and the values it stands for.

    Only *, numbers, month/day names, a-b ranges (low to high), lists and /steps are accepted;
    croniter's extensions (L, #, H, ?, wrap-around ranges) are refused. Canonical because croniter
    7 reads a one-value range such as 3-3 as *, and a day field that covers every day as *, which
    in the day-of-month/day-of-week rule means something else (see `parse_cron`)."""
    low, high, names = _FIELDS[index]

    def number(token: str) -> int:
        if token.isdigit():
            value = int(token)
        elif token in names:
            value = names[token]
        else:
            raise _bad(expr)
        if not low <= value <= high:
            raise _bad(expr)
        return value

    parts: list[str] = []
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise _bad(expr)
        step = int(step_text) if slash else 1
        if span == "*":
            a, b = low, high if index != 4 else 6
            parts.append(part)
        else:
            first, dash, last = span.partition("-")
            a = number(first)
            # "5/15" is 5-high every 15, as in cron.
            b = number(last) if dash else (high if slash else a)
            if a > b:
                raise _bad(expr)
            if a == b or (not dash and not slash):
                parts.append(str(a))
            else:
                parts.append(f"{a}-{b}" + (f"/{step}" if slash else ""))
        values.update(range(a, b + 1, step))
    if index == 4:
        values = {v % 7 for v in values}
    return ",".join(parts), values


def parse_cron(expr: str) -> str:
    """Validate a 5-field expression; returns it in the canonical form that is stored."""
    fields = expr.strip().lower().split()
    if len(fields) != 5:
        raise InvalidCron("a schedule needs 5 fields: minute hour day-of-month month day-of-week", field="cron")
    canonical: list[str] = []
    sets: list[set[int]] = []
    for index, text in enumerate(fields):
        out, values = _field(text, index, expr)
        canonical.append(out)
        sets.append(values)
    dom_star, dow_star = canonical[2] == "*", canonical[4] == "*"
    if not dom_star and not dow_star and (sets[2] == set(range(1, 32)) or sets[4] == set(range(7))):
        # Both restricted: a day matches when either field does, so one that covers every day
        # makes every day match; croniter would read such a field as * and apply the other alone.
        canonical[2] = canonical[4] = "*"
    normalised = " ".join(canonical)
    if not croniter.is_valid(normalised):
        raise _bad(expr)
    try:
        # An expression that can never fire (e.g. 30 February) is an error, not a silent no-op.
        croniter(normalised, dt.datetime(2000, 1, 1)).get_next(dt.datetime)
    except CroniterError:
        raise InvalidCron("the cron expression %(cron)s never fires", field="cron", params={"cron": expr}) from None
    return normalised


_canonical = functools.lru_cache(maxsize=256)(parse_cron)


def next_fire(expr: str, after: dt.datetime, timezone: str = DEFAULT_TIMEZONE) -> dt.datetime:
    """The first fire time strictly after `after` (an aware datetime), in UTC."""
    if after.tzinfo is None:
        raise ValueError("naive datetime given")
    local = after.astimezone(zone(timezone))
    # croniter rounds a start with seconds up to the next whole minute, except when the seconds
    # are zero but microseconds are not; cut sub-second parts so "strictly after" always holds.
    local = local.replace(microsecond=0)
    fire = croniter(_canonical(expr), local).get_next(dt.datetime)
    return fire.astimezone(dt.UTC)


def fire_times(expr: str, after: dt.datetime, count: int, timezone: str = DEFAULT_TIMEZONE) -> list[dt.datetime]:
    """The next `count` fire times after `after` (for showing a schedule to a person)."""
    out: list[dt.datetime] = []
    t = after
    for _ in range(count):
        t = next_fire(expr, t, timezone)
        out.append(t)
    return out
