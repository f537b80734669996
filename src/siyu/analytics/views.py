"""Console pages of analytics (数据分析): the dashboard (/analytics: the funnel with selectable steps,
the cohort heat map, CAC by channel and campaign, reinvestment over time, experiments with p-values,
lifecycle stages, group lifetime, advisor performance; filters by date, channel, campaign and
department; every chart as an Excel workbook) and the spend entry (/analytics/spend). Advisors see
the customers they added only. Thin: parse, check the role, call `siyu.analytics.dashboard` and
`siyu.analytics.service`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.analytics import dashboard as dash
from siyu.analytics import service
from siyu.communities.service import POSITIONINGS as POSITION_LABELS
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_, translations
from siyu.console.templating import render, request_locale
from siyu.db import get_session
from siyu.errors import NotFound, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

READER_ROLES = ("administrator", "operations", "auditor", "advisor")
SPEND_ROLES = ("administrator", "operations")
readers = require_roles(*READER_ROLES)
spenders = require_roles(*SPEND_ROLES)
PAGE = "/analytics"
MAX_ID = 2**62  # ids are 64-bit: a larger one names no row (and is refused as the path's field)

STEP_LABELS = {
    "customer.added": N_("Added as a contact"), "customer.verified": N_("Verified as the firm's customer"),
    "customer.lost": N_("Deleted the advisor"),
    "group.joined": N_("Joined a group"), "group.left": N_("Left a group"),
    "message.received": N_("Wrote to the advisor"), "message.sent": N_("Advisor wrote"),
    "campaign.reward_paid": N_("Reward paid"), "coupon.redeemed": N_("Coupon used"),
    "order.invested": N_("Invested"), "order.redeemed": N_("Redeemed"), "order.matured": N_("Matured"),
    "reinvested": N_("Reinvested"),
}
STAGE_LABELS = {"new": N_("New"), "activated": N_("Activated"), "invested": N_("Invested"),
                "reinvested": N_("Reinvested"), "lost": N_("Lost")}
OUTCOME_LABELS = {"replied": N_("Replied"), "joined": N_("Joined a group"), "verified": N_("Verified"),
                  "invested": N_("Invested")}
CHARTS = ("funnel", "cohorts", "cac_channel", "cac_campaign", "reinvestment", "variants", "personas", "lifecycle",
          "groups", "advisors")


def _view(request: Request, errors: FieldErrors, **raw: Any) -> dash.View:
    try:
        return dash.parse_view(**raw)
    except SiyuError as exc:
        errors.add(request, exc, "from")
        return dash.View()


def _yuan(fen: int | None) -> str:
    return dash.fen_to_yuan(fen) if fen is not None else "—"


def _pct(share: float | None) -> str:
    return f"{share * 100:.1f}%" if share is not None else "—"


def _tables(data: dict[str, Any], names: dash.Names, gettext) -> dict[str, dict[str, Any]]:
    """Each chart's table: a title, a header and rows of display values (what the page lists and the
    Excel workbook holds), and the chart's spec."""
    g = gettext
    t: dict[str, dict[str, Any]] = {}
    steps = data["funnel"]
    first = steps[0]["customers"] if steps else 0
    t["funnel"] = {
        "title": g("Funnel"), "header": [g("Step"), g("Customers"), g("Of the first step")],
        "rows": [[g(STEP_LABELS.get(s["name"], s["name"])), s["customers"],
                  _pct(s["customers"] / first if first else None)] for s in steps],
        "chart": {"kind": "funnel", "data": [{"name": g(STEP_LABELS.get(s["name"], s["name"])),
                                              "value": s["customers"]} for s in steps]}}
    ret = data["retention"]
    offsets = list(range(ret["weeks"] + 1))
    t["cohorts"] = {
        "title": g("Cohorts: active customers by week after the add"),
        "header": [g("Add week"), g("Customers"), *[g("Week %(n)s") % {"n": o} for o in offsets]],
        "rows": [[r["cohort_week"], r["customers"], *[_pct(w["active_share"]) for w in r["weeks"]]]
                 for r in ret["rows"]],
        "chart": {"kind": "heatmap", "x": [g("Week %(n)s") % {"n": o} for o in offsets],
                  "y": [r["cohort_week"] for r in ret["rows"]],
                  "values": [[w["offset"], yi, round((w["active_share"] or 0) * 100, 1)]
                             for yi, r in enumerate(ret["rows"]) for w in r["weeks"]]}}
    for key, by, label in (("cac_channel", "channel", g("Channel")), ("cac_campaign", "campaign", g("Campaign"))):
        rows = data[key]["rows"]
        shown = [(names.channel(r[by]) if r[by] else g("No channel")) if by == "channel"
                 else (r[by] or g("No campaign")) for r in rows]
        t[key] = {
            "title": g("Cost per acquired customer by channel") if by == "channel"
            else g("Cost per acquired customer by campaign"),
            "header": [label, g("Cost (yuan)"), g("Customers"), g("Cost per customer (yuan)")],
            "rows": [[n, _yuan(r["cost_fen"]), r["customers"], _yuan(r["cac_fen"])] for n, r in zip(shown, rows,
                                                                                                   strict=True)],
            "chart": {"kind": "bar", "x": shown, "series": [
                {"name": g("Cost per customer (yuan)"),
                 "values": [round(r["cac_fen"] / 100, 2) if r["cac_fen"] is not None else None for r in rows]}]}}
    rei = data["reinvestment"]
    t["reinvestment"] = {
        "title": g("Reinvestment by month of maturity or redemption"),
        "header": [g("Month"), g("Customers"), g("Reinvested"), g("Rate"), g("Median days to reinvest")],
        "rows": [[m["month"], m["customers"], m["reinvested_customers"], _pct(m["rate"]),
                  m["median_days"] if m["median_days"] is not None else "—"] for m in rei["by_month"]],
        "chart": {"kind": "line", "x": [m["month"] for m in rei["by_month"]], "percent": True,
                  "series": [{"name": g("Reinvestment rate (%)"),
                              "values": [round((m["rate"] or 0) * 100, 1) for m in rei["by_month"]]}]}}
    for key, label, lookup in (("variants", g("Welcome variant"), names.variants),
                               ("personas", g("Persona"), names.personas)):
        exp = data[key]
        header = [label, g("Customers")]
        for o in OUTCOME_LABELS:
            header += [g(OUTCOME_LABELS[o]), g("p-value")]
        rows = []
        for i, arm in enumerate(exp["arms"]):
            row = [lookup.get(arm["key"], arm["key"]), arm["customers"]]
            for o in OUTCOME_LABELS:
                test = exp["tests"][o]
                p = None if i == 0 else next((v["p"] for v in test["versus_control"] if v["key"] == arm["key"]), None)
                row += [_pct(arm[f"{o}_rate"]), g("control") if i == 0 else (f"{p:.4f}" if p is not None else "—")]
            rows.append(row)
        t[key] = {"title": g("Welcome variants compared") if key == "variants" else g("Personas compared"),
                  "header": header, "rows": rows, "tests": exp["tests"],
                  "chart": {"kind": "bar", "x": [r[0] for r in rows], "percent": True,
                            "series": [{"name": g(OUTCOME_LABELS[o]),
                                        "values": [round((a[f"{o}_rate"] or 0) * 100, 1) for a in exp["arms"]]}
                                       for o in OUTCOME_LABELS]}}
    life = data["lifecycle"]
    t["lifecycle"] = {
        "title": g("Lifecycle stages by week"),
        "header": [g("Week"), *[g(STAGE_LABELS[s]) for s in life["stages"]]],
        "rows": [[w["week"], *[w[s] for s in life["stages"]]] for w in life["weeks"]],
        "chart": {"kind": "line", "stack": True, "x": [w["week"] for w in life["weeks"]],
                  "series": [{"name": g(STAGE_LABELS[s]), "values": [w[s] for w in life["weeks"]]}
                             for s in life["stages"]]}}
    groups = data["groups"]["rows"]
    t["groups"] = {
        "title": g("Group lifetime by positioning"),
        "header": [g("Positioning"), g("Groups"), g("Alive"), g("Joined"), g("Left"), g("Median lifetime (days)"),
                   g("Median stay (days)")],
        "rows": [[g(POSITION_LABELS.get(r["positioning"], r["positioning"])), r["groups"], r["alive"], r["joined"],
                  r["left"], r["median_lifetime_days"] if r["median_lifetime_days"] is not None else "—",
                  r["median_stay_days"] if r["median_stay_days"] is not None else "—"] for r in groups],
        "chart": {"kind": "bar", "x": [g(POSITION_LABELS.get(r["positioning"], r["positioning"])) for r in groups],
                  "series": [{"name": g("Median stay (days)"), "values": [r["median_stay_days"] for r in groups]}]}}
    adv = data["advisors"]["rows"]
    t["advisors"] = {
        "title": g("Advisor performance"),
        "header": [g("Advisor"), g("Customers added"), g("Verified"), g("Invested"), g("Lost"),
                   g("Median first reply (min)")],
        "rows": [[names.advisor(r["advisor"]), r["added"], f'{r["verified"]} ({_pct(r["verified_rate"])})',
                  f'{r["invested"]} ({_pct(r["invested_rate"])})', r["lost"],
                  r["median_reply_minutes"] if r["median_reply_minutes"] is not None else "—"] for r in adv],
        "chart": {"kind": "bar", "x": [names.advisor(r["advisor"]) for r in adv],
                  "series": [{"name": g("Customers added"), "values": [r["added"] for r in adv]},
                             {"name": g("Invested"), "values": [r["invested"] for r in adv]}]}}
    return t


def _options(session: Session, principal: Principal) -> dict[str, Any]:
    from siyu.acquisition.service import list_channel_codes
    from siyu.tenancy.service import list_departments

    codes = list_channel_codes(session, corp_id=principal.corp_id)
    campaigns = sorted({c.campaign for c in codes if c.campaign})
    return {"channels": [(c.state, c.name) for c in codes], "campaigns": campaigns,
            "departments": [(d.id, d.name) for d in list_departments(session, corp_id=principal.corp_id)]}


@router.get(PAGE)
def dashboard_page(request: Request, date_from: str | None = Query(None, alias="from", max_length=10),
                   date_to: str | None = Query(None, alias="to", max_length=10),
                   channel: str | None = Query(None, max_length=64), campaign: str | None = Query(None, max_length=64),
                   department: str | None = Query(None, max_length=12),
                   steps: list[str] = Query([], max_length=20), window: str | None = Query(None, max_length=4),
                   principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    errors = FieldErrors()
    view = _view(request, errors, date_from=date_from, date_to=date_to, channel=channel, campaign=campaign,
                 department=department, steps=[s for s in steps if s][:8] or None, window=window)
    gettext = translations(request_locale(request)).gettext
    try:
        data = dash.dashboard(session, principal=principal, view=view)
    except SiyuError as exc:
        errors.add(request, exc, "from")
        view = dash.View()
        data = dash.dashboard(session, principal=principal, view=view)
    context = {"view": view, "query": view.query(), "tables": _tables(data, data["names"], gettext), "charts": CHARTS,
               "scoped": data["scoped"], "errors": errors, "step_labels": STEP_LABELS, "outcome_labels": OUTCOME_LABELS,
               "step_choices": dash.FUNNEL_CHOICES, **_options(session, principal),
               "can_spend": principal.has_role(*SPEND_ROLES)}
    return render(request, "analytics/dashboard.html", context, status_code=422 if errors else 200)


@router.get(PAGE + "/export/{chart}.xlsx")
def export_chart(request: Request, chart: str, date_from: str | None = Query(None, alias="from", max_length=10),
                 date_to: str | None = Query(None, alias="to", max_length=10),
                 channel: str | None = Query(None, max_length=64), campaign: str | None = Query(None, max_length=64),
                 department: str | None = Query(None, max_length=12), steps: str | None = Query(None, max_length=400),
                 window: str | None = Query(None, max_length=4),
                 principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    """One chart's table as an Excel workbook (the figures the viewer sees, names not keys)."""
    if chart not in CHARTS:
        raise NotFound("no such chart", field="chart")
    view = dash.parse_view(date_from=date_from, date_to=date_to, channel=channel, campaign=campaign,
                           department=department, steps=steps, window=window)
    gettext = translations(request_locale(request)).gettext
    data = dash.dashboard(session, principal=principal, view=view)
    table = _tables(data, data["names"], gettext)[chart]
    body = dash.xlsx(table["header"], table["rows"], sheet=table["title"])
    stamp = dt.date.today().isoformat()
    return Response(body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="analytics-{chart}-{stamp}.xlsx"'})


@router.post(PAGE + "/backfill")
def backfill(request: Request, principal: Principal = Depends(spenders), session: Session = Depends(get_session)):
    """Ask a worker to write the events of what is already stored (`siyu.analytics.backfill`)."""
    from siyu.analytics.backfill import enqueue_backfill

    enqueue_backfill(session, corp_id=principal.corp_id)
    return RedirectResponse(PAGE + "/spend?backfill=1", status_code=303)


# --- spend ------------------------------------------------------------------------------------------------

def _spend_page(request: Request, session: Session, principal: Principal, *, form: dict | None = None,
                errors: FieldErrors | None = None, status_code: int = 200) -> Response:
    names = dash.names(session, corp_id=principal.corp_id)
    rows = service.list_spend(session, corp_id=principal.corp_id)
    context = {"form": form or {}, "errors": errors or FieldErrors(), "rows": rows, "names": names,
               "yuan": dash.fen_to_yuan, "saved": request.query_params.get("saved") == "1",
               "backfill_queued": request.query_params.get("backfill") == "1",
               **_options(session, principal)}
    return render(request, "analytics/spend.html", context, status_code=status_code)


@router.get(PAGE + "/spend")
def spend_page(request: Request, principal: Principal = Depends(spenders), session: Session = Depends(get_session)):
    return _spend_page(request, session, principal)


@router.post(PAGE + "/spend")
def spend_add(request: Request, amount: str = Form("", max_length=40), day_from: str = Form("", max_length=10),
              day_to: str = Form("", max_length=10), channel: str = Form("", max_length=64),
              campaign: str = Form("", max_length=64), note: str = Form("", max_length=400),
              principal: Principal = Depends(spenders), session: Session = Depends(get_session)):
    try:
        service.add_spend(session, corp_id=principal.corp_id, actor=principal, amount=amount, day_from=day_from,
                          day_to=day_to, channel=channel, campaign=campaign, note=note)
    except SiyuError as exc:
        form = {"amount": amount, "day_from": day_from, "day_to": day_to, "channel": channel, "campaign": campaign,
                "note": note}
        return _spend_page(request, session, principal, form=form, errors=FieldErrors.of(request, exc, "amount"),
                           status_code=422)
    return RedirectResponse(PAGE + "/spend?saved=1", status_code=303)


@router.post(PAGE + "/spend/{spend_id}/delete")
def spend_delete(request: Request, spend_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(spenders),
                 session: Session = Depends(get_session)):
    service.delete_spend(session, corp_id=principal.corp_id, actor=principal, spend_id=spend_id)
    return RedirectResponse(PAGE + "/spend", status_code=303)
