"""What the console's analytics pages show: the reports (siyu.analytics.reports and .comparisons) run
for one viewer and one set of filters, with names instead of keys, as charts and as tables for Excel.

Who sees what: administrators, operations and auditors see the corp; an advisor sees the customers
added by them (their department's when granted), through a *scoped engine* — the same report SQL
reading only those customers' events, and no entered spend (spend belongs to channels, not to
advisors). The department filter narrows any viewer the same way, to the customers added by the
department's advisors (its sub-departments included).

The engine is DuckDB (SIYU_ANALYTICS_ENGINE: duckdb, clickhouse or sql)."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics import comparisons  # noqa: F401 - registers the comparison reports
from siyu.analytics.engines import AnalyticsEngine, open_engine
from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.reports import Filters, ReportError, run_report
from siyu.errors import InvalidInput
from siyu.tenancy.principal import Principal

DEFAULT_STEPS = ("customer.added", "customer.verified", "group.joined", "order.invested")
REINVESTED = "reinvested"  # the funnel's last step: invested again after a maturity or redemption
FUNNEL_CHOICES = (*EVENT_TYPES, REINVESTED)
DEFAULT_FUNNEL = (*DEFAULT_STEPS, REINVESTED)
MAX_RANGE_DAYS = 3 * 366


class SubsetEngine(AnalyticsEngine):
    """An engine over the events of some customers only (`customers`: SQL selecting `customer_key`
    from the relation it is given), optionally without the entered spend: the same report SQL over a
    narrower data set."""

    def __init__(self, inner: AnalyticsEngine, *, customers: str, spend: bool = True) -> None:
        self.inner, self.name, self.dialect = inner, inner.name, inner.dialect
        self.events = f"(SELECT * FROM {inner.events} sc WHERE sc.customer_key IN ({customers}))"
        self.spend = inner.spend if spend else f"(SELECT * FROM {inner.spend} sp0 WHERE 1 = 0)"

    def rows(self, sql: str) -> list[tuple]:
        return self.inner.rows(sql)

    def prepare(self) -> None:
        self.inner.prepare()

    def close(self) -> None:
        self.inner.close()


def scoped(inner: AnalyticsEngine, *, corp_id: int, advisors: Iterable[str]) -> SubsetEngine:
    """The customers added by `advisors` (WeCom user ids), without spend (spend is not an advisor's)."""
    d = inner.dialect
    names = sorted(set(advisors))
    listed = ", ".join(d.lit(a) for a in names) if names else "NULL"
    return SubsetEngine(inner, spend=False, customers=(
        f"SELECT a.customer_key FROM {inner.events} a WHERE a.corp_id = {int(corp_id)} "
        f"AND a.type = 'customer.added' AND a.advisor IN ({listed})"))


def reinvesters(inner: AnalyticsEngine, *, corp_id: int, days: int) -> SubsetEngine:
    """The customers who invested again at most `days` after a maturity or a redemption (the
    reinvestment report's rule), ever."""
    return SubsetEngine(inner, customers=(
        f"SELECT m.customer_key FROM {inner.events} m JOIN {inner.events} i ON i.customer_key = m.customer_key "
        f"AND i.corp_id = m.corp_id WHERE m.corp_id = {int(corp_id)} AND m.type IN ('order.matured', "
        f"'order.redeemed') AND i.type = 'order.invested' AND i.ts_s >= m.ts_s "
        f"AND i.ts_s <= m.ts_s + {int(days) * 86400}"))


def engine_name() -> str:
    return os.environ.get("SIYU_ANALYTICS_ENGINE", "duckdb")


@dataclass
class View:
    """The dashboard's filters, checked."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    channel: str | None = None
    campaign: str | None = None
    department_id: int | None = None
    steps: tuple[str, ...] = DEFAULT_FUNNEL
    window_days: int = 30
    errors: dict[str, str] = field(default_factory=dict)

    def filters(self, corp_id: int) -> Filters:
        return Filters(corp_id=corp_id, date_from=self.date_from, date_to=self.date_to, channel=self.channel,
                       campaign=self.campaign)

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for the export links)."""
        out = {"from": self.date_from.isoformat() if self.date_from else "",
               "to": self.date_to.isoformat() if self.date_to else "", "channel": self.channel or "",
               "campaign": self.campaign or "", "department": str(self.department_id or ""),
               "steps": ",".join(self.steps), "window": str(self.window_days)}
        return {k: v for k, v in out.items() if v}


def _date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("not a date (YYYY-MM-DD)", field=name) from None


def parse_view(*, date_from: str | None = None, date_to: str | None = None, channel: str | None = None,
               campaign: str | None = None, department: str | None = None, steps: str | list[str] | None = None,
               window: str | None = None) -> View:
    """The filters from the page's query; InvalidInput names the first bad field."""
    view = View(date_from=_date(date_from, "from"), date_to=_date(date_to, "to"),
                channel=(channel or "").strip()[:64] or None, campaign=(campaign or "").strip()[:64] or None)
    if view.date_from and view.date_to:
        if view.date_from > view.date_to:
            raise InvalidInput("the first day is after the last", field="from")
        if (view.date_to - view.date_from).days > MAX_RANGE_DAYS:
            raise InvalidInput("at most three years at a time", field="to")
    if department:
        if not (department.strip().isascii() and department.strip().isdigit()) or len(department.strip()) > 18:
            raise InvalidInput("choose a department from the list", field="department")
        view.department_id = int(department)
    if steps:
        chosen = [s.strip() for s in (steps.split(",") if isinstance(steps, str) else steps) if s.strip()]
        unknown = [s for s in chosen if s not in FUNNEL_CHOICES]
        if unknown:
            raise InvalidInput("unknown funnel step %(step)s", field="steps", params={"step": unknown[0][:40]})
        if not 2 <= len(chosen) <= 8:
            raise InvalidInput("a funnel has 2 to 8 steps", field="steps")
        if REINVESTED in chosen[:-1]:
            raise InvalidInput("reinvested can only be the last step", field="steps")
        view.steps = tuple(chosen)
    if window:
        if not (window.strip().isascii() and window.strip().isdigit()) or not 1 <= int(window) <= 365:
            raise InvalidInput("a window is 1 to 365 days", field="window")
        view.window_days = int(window)
    return view


# --- who sees what --------------------------------------------------------------------------------------

def scope_advisors(session: Session, *, principal: Principal, department_id: int | None) -> set[str] | None:
    """The advisors (WeCom user ids) whose customers the viewer sees with this filter; None: all."""
    from siyu.quality.service import viewer_userids
    from siyu.tenancy.models import Staff
    from siyu.tenancy.service import department_subtree_ids, get_department

    visible = viewer_userids(session, principal=principal)
    if department_id is None:
        return visible
    get_department(session, corp_id=principal.corp_id, department_id=department_id)  # NotFound: not the corp's
    depts = department_subtree_ids(session, corp_id=principal.corp_id, department_id=department_id)
    in_dept = {u for u in session.scalars(select(Staff.wecom_userid).where(
        Staff.corp_id == principal.corp_id, Staff.department_id.in_(depts))) if u}
    return in_dept if visible is None else in_dept & visible


# --- names instead of keys --------------------------------------------------------------------------------

@dataclass
class Names:
    channels: dict[str, str]
    advisors: dict[str, str]
    personas: dict[str, str]
    variants: dict[str, str]
    positions: dict[str, str]

    def channel(self, key: str | None) -> str:
        return self.channels.get(key, key) if key else "—"

    def advisor(self, key: str | None) -> str:
        return self.advisors.get(key, key) if key else "—"


def names(session: Session, *, corp_id: int) -> Names:
    from siyu.acquisition.models import ChannelCode, Persona, WelcomeVariant
    from siyu.communities.models import GroupChat
    from siyu.tenancy.models import Staff

    channels = {state: name for state, name in session.execute(
        select(ChannelCode.state, ChannelCode.name).where(ChannelCode.corp_id == corp_id)).all()}
    advisors = {u: n for u, n in session.execute(select(Staff.wecom_userid, Staff.name).where(
        Staff.corp_id == corp_id, Staff.wecom_userid.is_not(None))).all()}
    personas = {str(i): n for i, n in session.execute(select(Persona.id, Persona.display_name).where(
        Persona.corp_id == corp_id)).all()}
    variants = {}
    for vid, label, code_name in session.execute(
            select(WelcomeVariant.id, WelcomeVariant.label, ChannelCode.name)
            .join_from(WelcomeVariant, ChannelCode, _variant_code_join())
            .where(WelcomeVariant.corp_id == corp_id)).all():
        variants[str(vid)] = f"{code_name} · {label}"
    positions = {c: p for c, p in session.execute(select(GroupChat.chat_id, GroupChat.positioning).where(
        GroupChat.corp_id == corp_id)).all()}
    return Names(channels=channels, advisors=advisors, personas=personas, variants=variants, positions=positions)


def _variant_code_join():
    from siyu.acquisition.models import ChannelCode, WelcomeFlow, WelcomeVariant

    return ChannelCode.id == select(WelcomeFlow.code_id).where(WelcomeFlow.id == WelcomeVariant.flow_id) \
        .scalar_subquery()


# --- the reports of the page ---------------------------------------------------------------------------------

def funnel(engine: AnalyticsEngine, filters: Filters, view: View) -> list[dict[str, Any]]:
    """The funnel's steps. A last step `reinvested` counts the customers who reached the step before
    and who invested again within the window after a maturity or a redemption (the reinvestment
    report's rule): the same funnel run over those customers only."""
    steps = list(view.steps)
    if steps[-1] != REINVESTED:
        return run_report("funnel", engine, filters, steps=steps, window_days=view.window_days)["steps"]
    event_steps = steps[:-1]
    out = run_report("funnel", engine, filters, steps=event_steps, window_days=view.window_days)["steps"]
    again = run_report("funnel", reinvesters(engine, corp_id=filters.corp_id, days=view.window_days), filters,
                       steps=event_steps, window_days=view.window_days)["steps"]
    return [*out, {"name": REINVESTED, "customers": again[-1]["customers"]}]


def dashboard(session: Session, *, principal: Principal, view: View) -> dict[str, Any]:
    """Every report of the page for this viewer and these filters (keys), and `names` to show.

    The engine reads the main database through the request's own connection (on SQLite every
    transaction holds the process's write turn: a second connection of this process would wait for
    the request's), so the reports see what the request's transaction sees."""
    from siyu.quality.models import ReplyWait

    advisors = scope_advisors(session, principal=principal, department_id=view.department_id)
    shown = names(session, corp_id=principal.corp_id)
    # Reply times per advisor (the quality domain's reply waits, working seconds) in the date range.
    q = select(ReplyWait.staff_userid, ReplyWait.working_seconds).where(
        ReplyWait.corp_id == principal.corp_id, ReplyWait.working_seconds.is_not(None), ReplyWait.counted.is_(True))
    if view.date_from:
        q = q.where(ReplyWait.opened_at >= _shanghai_start(view.date_from))
    if view.date_to:
        q = q.where(ReplyWait.opened_at < _shanghai_start(view.date_to + dt.timedelta(days=1)))
    waits: dict[str, list[int]] = {}
    for userid, seconds in session.execute(q).all():
        waits.setdefault(userid, []).append(int(seconds))
    engine = open_engine(engine_name(), sa_engine=session.connection())
    if advisors is not None:
        engine = scoped(engine, corp_id=principal.corp_id, advisors=advisors)
    try:
        f = view.filters(principal.corp_id)
        out: dict[str, Any] = {
            "scoped": advisors is not None,
            "names": shown,
            "funnel": funnel(engine, f, view),
            "retention": run_report("retention", engine, f, by=None, weeks=8),
            "cac_channel": run_report("cac", engine, f, by="channel"),
            "cac_campaign": run_report("cac", engine, f, by="campaign"),
            "reinvestment": run_report("reinvestment", engine, f, days=view.window_days),
            "variants": run_report("experiments", engine, f, by="variant", window_days=view.window_days),
            "personas": run_report("experiments", engine, f, by="persona", window_days=view.window_days),
            "lifecycle": run_report("lifecycle", engine, f, weeks=12),
            "advisors": run_report("advisor_performance", engine, f),
            "groups": run_report("group_lifetime", engine, f, positions=shown.positions),
        }
    except ReportError as exc:
        raise InvalidInput(str(exc), field="steps") from None
    finally:
        engine.close()
    for row in out["advisors"]["rows"]:
        w = sorted(waits.get(row["advisor"], []))
        row["median_reply_minutes"] = round(_median_list(w) / 60, 1) if w else None
    return out


def _median_list(values: list[int]) -> float:
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def _shanghai_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - dt.timedelta(hours=8)


# --- tables for Excel -----------------------------------------------------------------------------------------

def fen_to_yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def xlsx(header: list[str], rows: list[list[Any]], *, sheet: str) -> bytes:
    """A workbook of one sheet; every cell through the project's formula neutraliser."""
    from siyu import tabular

    out = io.BytesIO()
    tabular.write_xlsx(out, header, rows, sheet=sheet[:31])
    return out.getvalue()
