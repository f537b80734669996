"""Console page 服务质量 (service quality): a day's report per advisor (sortable), the median
first-reply time per advisor and a 14-day trend (ECharts), open reply-timeout alerts, CSV download
(audited), and the working-hours settings. Advisors see only their own row (their department's when
granted). Thin: parse, check the role, call `siyu.quality`. Mounted by the app with every domain's views."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_, translations
from siyu.console.templating import render, request_locale
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.quality import service as quality
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

readers = require_roles(*quality.READER_ROLES)
editors = require_roles(*quality.EDITOR_ROLES)
PAGE = "/compliance/quality"
SORTS = ("staff_userid", "customer_messages", "replied", "median_minutes", "p90_minutes", "timeouts", "lost",
         "deleted")
COLUMN_LABELS = {
    "staff_userid": N_("Advisor"), "name": N_("Name"), "customer_messages": N_("Customer messages"),
    "waits": N_("Waits"), "replied": N_("Replied"), "median_minutes": N_("Median first reply (min)"),
    "p90_minutes": N_("P90 first reply (min)"), "timeouts": N_("Timeouts"), "lost": N_("Lost (deleted the advisor)"),
    "deleted": N_("Deleted by the advisor"),
}
WEEKDAY_LABELS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def _day(value: str | None) -> dt.date:
    if not value:
        return quality.china_today() - dt.timedelta(days=1)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("not a date (YYYY-MM-DD)", field="date") from None


def _sorted(rows: list[dict], key: str, descending: bool) -> list[dict]:
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]  # no figure: always last
    return sorted(present, key=lambda r: r[key], reverse=descending) + missing


@router.get(PAGE)
def quality_page(request: Request, date: str | None = Query(None, max_length=10),
                 sort: str | None = Query(None, max_length=32), dir: str | None = Query(None, max_length=4),
                 principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    errors = FieldErrors()
    try:
        day = _day(date)
    except SiyuError as exc:
        errors.add(request, exc, "date")
        day = quality.china_today() - dt.timedelta(days=1)
    key = sort if sort in SORTS else "median_minutes"
    descending = dir != "asc" if sort in SORTS else True
    visible = quality.viewer_userids(session, principal=principal)
    report = quality.restrict(quality.get_report(session, corp_id=principal.corp_id, day=day), visible)
    rows = _sorted(report["advisors"], key, descending)
    days = quality.trend(session, corp_id=principal.corp_id, last_day=day, staff_userids=visible)
    gettext = translations(request_locale(request)).gettext
    replied_rows = [r for r in report["advisors"] if r["median_minutes"] is not None]
    charts = []
    if replied_rows:
        charts.append({"key": "advisors", "title": gettext("Median first reply per advisor (working minutes)"),
                       "kind": "bar", "x": [r["name"] or r["staff_userid"] for r in replied_rows],
                       "series": [{"name": gettext("Median"), "values": [r["median_minutes"] for r in replied_rows]},
                                  {"name": "P90", "values": [r["p90_minutes"] for r in replied_rows]}]})
    charts.append({"key": "trend", "title": gettext("Last 14 days"), "kind": "line",
                   "x": [d["day"][5:] for d in days],
                   "series": [{"name": gettext("Median first reply (min)"),
                               "values": [d["median_minutes"] for d in days]},
                              {"name": gettext("Timeouts"), "values": [d["timeouts"] for d in days]}]})
    settings = quality.get_settings(session, corp_id=principal.corp_id)
    context = {
        "day": day.isoformat(), "report": report, "rows": rows, "sort": key, "descending": descending,
        "sorts": SORTS, "labels": COLUMN_LABELS, "charts": charts,
        "alerts": quality.open_alerts(session, corp_id=principal.corp_id, staff_userids=visible),
        "settings": settings, "hhmm": quality.hhmm, "weekday_labels": WEEKDAY_LABELS,
        "can_edit": principal.has_role(*quality.EDITOR_ROLES), "restricted": visible is not None,
        "date_errors": errors,
        "computed_at": dt.datetime.fromisoformat(report["computed_at"]),
    }
    return render(request, "quality/quality.html", context, status_code=422 if errors else 200)


@router.get(PAGE + "/report.csv")
def quality_csv(request: Request, date: str | None = Query(None, max_length=10),
                principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    try:
        day = _day(date)
    except SiyuError:  # the page, with the date named
        return quality_page(request, date=date, sort=None, dir=None, principal=principal, session=session)
    gettext = translations(request_locale(request)).gettext
    headers = [gettext(COLUMN_LABELS[c]) for c in quality.CSV_COLUMNS]
    text = quality.export_csv(session, principal=principal, day=day, headers=headers,
                              ip=request.client.host if request.client else None)
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="service-quality-{day.isoformat()}.csv"'})


def _settings_page(request: Request, session: Session, principal: Principal, *, form: dict | None = None,
                   errors: FieldErrors | None = None, status_code: int = 200) -> Response:
    s = quality.get_settings(session, corp_id=principal.corp_id)
    form = form or {"weekdays": [str(d) for d in s.weekdays], "day_start": quality.hhmm(s.day_start),
                    "day_end": quality.hhmm(s.day_end), "public_holidays": s.public_holidays,
                    "timeout_minutes": str(s.timeout_minutes), "count_off_days": s.count_off_days}
    context = {"form": form, "errors": errors or FieldErrors(), "weekday_labels": WEEKDAY_LABELS, "settings": s,
               "saved": request.query_params.get("saved") == "1"}
    return render(request, "quality/quality_settings.html", context, status_code=status_code)


@router.get(PAGE + "/settings")
def settings_page(request: Request, principal: Principal = Depends(editors), session: Session = Depends(get_session)):
    return _settings_page(request, session, principal)


@router.post(PAGE + "/settings")
def settings_save(request: Request, weekdays: list[str] = Form([]), day_start: str = Form("", max_length=5),
                  day_end: str = Form("", max_length=5), public_holidays: str = Form("", max_length=5),
                  timeout_minutes: str = Form("", max_length=6), count_off_days: str = Form("", max_length=5),
                  principal: Principal = Depends(editors), session: Session = Depends(get_session)):
    try:
        quality.update_settings(session, corp_id=principal.corp_id, actor=principal, weekdays=weekdays[:7],
                                day_start=day_start, day_end=day_end, public_holidays=bool(public_holidays),
                                timeout_minutes=timeout_minutes, count_off_days=bool(count_off_days))
    except SiyuError as exc:
        form = {"weekdays": weekdays, "day_start": day_start, "day_end": day_end,
                "public_holidays": bool(public_holidays), "timeout_minutes": timeout_minutes,
                "count_off_days": bool(count_off_days)}
        return _settings_page(request, session, principal, form=form,
                              errors=FieldErrors.of(request, exc, "form"), status_code=exc.status_code)
    return RedirectResponse(PAGE + "/settings?saved=1", status_code=303)
