"""Console pages of broadcasts: the list and the new-broadcast form, a broadcast's page (its plan
preview with the exclusions by reason as a bar chart, send now or at a time, progress per advisor,
lift over the holdout), and the delivery policy's settings.

Administrators and operations build and send; compliance and auditors read. Thin: parse the form,
call the service."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.broadcasts import service
from siyu.broadcasts.service import audiences_module
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session, utcnow
from siyu.delivery import service as delivery
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

WRITERS = ("administrator", "operations")
readers = require_roles(*WRITERS, "compliance", "auditor")
writers = require_roles(*WRITERS)
MAX_ID = 2**63 - 1

REASON_LABELS = {
    "not_friend": N_("Not a friend any more"), "no_advisor": N_("No advisor"), "opted_out": N_("Opted out"),
    "holdout_global": N_("Global control group"), "holdout_broadcast": N_("This broadcast's holdout"),
    "unsuitable": N_("Unsuitable for the product"), "capped_day": N_("Capped: today's limit"),
    "capped_7_days": N_("Capped: 7-day limit"), "capped_30_days": N_("Capped: 30-day limit"),
    "capped_wecom": N_("Capped: WeCom's allowance"),
}
STATUS_LABELS = {"draft": N_("Draft"), "scheduled": N_("Scheduled"), "sending": N_("Sending"), "sent": N_("Sent"),
                 "cancelled": N_("Cancelled")}
STAGE_LABELS = {"new": N_("New"), "activated": N_("Activated"), "invested": N_("Invested"),
                "reinvested": N_("Reinvested"), "dormant": N_("Dormant"), "lost": N_("Lost")}
METRIC_LABELS = {"verified": N_("Verified"), "joined": N_("Joined a group"), "invested": N_("Invested"),
                 "reinvested": N_("Reinvested"), "amount_fen": N_("Amount invested per customer (yuan)")}
SEND_STATES = {"planned": N_("Planned"), "calling": N_("Handing to WeCom"), "waiting": N_("Waiting for the advisor"),
               "done": N_("Done"), "failed": N_("Failed")}


def _segments(session: Session, corp_id: int) -> list[tuple[int, str]]:
    """Saved segments by name, when the audiences domain is there."""
    models = audiences_module("models")
    segment = getattr(models, "Segment", None) if models else None
    if segment is None:
        return []
    from sqlalchemy import select

    return [(i, n) for i, n in session.execute(select(segment.id, segment.name).where(segment.corp_id == corp_id)
                                               .order_by(segment.name).limit(500))]


def _products(session: Session, corp_id: int):
    from siyu.compliance import suitability

    return suitability.list_products(session, corp_id=corp_id, active_only=True)


def _labels() -> dict:
    return {"reason_labels": REASON_LABELS, "status_labels": STATUS_LABELS, "stage_labels": STAGE_LABELS,
            "metric_labels": METRIC_LABELS, "send_states": SEND_STATES}


def _index(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    context = {"broadcasts": service.list_broadcasts(session, corp_id=principal.corp_id),
               "segments": _segments(session, principal.corp_id), "products": _products(session, principal.corp_id),
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), "form": {}, **_labels()}
    context.update(extra)
    return render(request, "broadcasts/index.html", context, status_code=status_code)


@router.get("/broadcasts")
def index(request: Request, principal: Principal = Depends(readers), session: Session = Depends(get_session)
          ) -> Response:
    return _index(request, session, principal)


def _int(value: str, field: str) -> int:
    value = value.strip()
    if not value.isdigit() or int(value) > MAX_ID:
        raise InvalidInput("a whole number", field=field)
    return int(value)


@router.post("/broadcasts")
def create(request: Request, name: str = Form("", max_length=200), text: str = Form("", max_length=4000),
           segment_id: str = Form("", max_length=20), holdout_percent: str = Form("", max_length=10),
           stages: list[str] = Form([]), product_codes: list[str] = Form([]),
           principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    values = {"name": name, "text": text, "segment_id": segment_id, "holdout_percent": holdout_percent}
    stages, products = [str(x)[:20] for x in stages][:10], [str(x)[:64] for x in product_codes][:20]
    try:
        audience = ({"segment_id": _int(values["segment_id"], "segment_id")} if values["segment_id"].strip()
                    else {"stages": stages})
        percent = values["holdout_percent"].strip() or "0"
        try:
            bp = round(float(percent) * 100)
        except ValueError:
            raise InvalidInput("the holdout is 0–50%", field="holdout_percent") from None
        with session.begin_nested():
            row = service.create_broadcast(session, principal=principal, name=values["name"], text=values["text"],
                                           audience=audience, product_codes=products,
                                           holdout_basis_points=bp if 0 <= bp <= 5000 else -1)
    except SiyuError as exc:
        field = "holdout_percent" if exc.field == "holdout_basis_points" else None
        errors = FieldErrors.of(request, exc)
        if field:
            errors = FieldErrors({field: errors[exc.field]})
        return _index(request, session, principal, status_code=exc.status_code, errors=errors,
                      form={**values, "stages": stages, "product_codes": products})
    return RedirectResponse(f"/broadcasts/{row.id}", status_code=303)


def _page(request: Request, session: Session, principal: Principal, broadcast_id: int, *, status_code: int = 200,
          **extra) -> Response:
    from siyu.broadcasts import lift as lifts
    from siyu.broadcasts.content import KIND, OWNER
    from siyu.compliance.service import content_for_send

    row = service.get_broadcast(session, corp_id=principal.corp_id, broadcast_id=broadcast_id)
    sendable = content_for_send(session, corp_id=row.corp_id, kind=KIND, owner=(OWNER, row.id))
    now = utcnow()
    plan = service.preview(session, row=row, at=now) if row.status in ("draft", "scheduled") else None
    recorded = row.plan if row.plan else None
    shown = plan.as_dict() if plan else recorded
    widest = max([shown["recipients"], *shown["excluded"].values()]) if shown else 0
    segments = dict(_segments(session, principal.corp_id))
    context = {"row": row, "sendable": sendable, "plan": shown, "live": plan is not None, "widest": widest or 1,
               "progress": service.progress(session, row=row) if row.started_at else None,
               "lift": lifts.lift(session, row=row), "segment_name": segments.get(row.audience.get("segment_id")),
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), **_labels()}
    context.update(extra)
    return render(request, "broadcasts/broadcast.html", context, status_code=status_code)


@router.get("/broadcasts/{broadcast_id}")
def page(request: Request, broadcast_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
         session: Session = Depends(get_session)) -> Response:
    return _page(request, session, principal, broadcast_id)


def _local_time(value: str) -> dt.datetime | None:
    """"YYYY-MM-DDTHH:MM" in Beijing time -> UTC; empty: now."""
    if not value.strip():
        return None
    try:
        local = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("a time is YYYY-MM-DD HH:MM", field="scheduled_at") from None
    return local.replace(tzinfo=delivery.SHANGHAI).astimezone(dt.UTC)


@router.post("/broadcasts/{broadcast_id}/send")
def send(request: Request, broadcast_id: int = Path(ge=1, le=MAX_ID), scheduled_at: str = Form("", max_length=32),
         principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            service.schedule(session, principal=principal, broadcast_id=broadcast_id, at=_local_time(scheduled_at))
    except SiyuError as exc:
        return _page(request, session, principal, broadcast_id, status_code=exc.status_code,
                     errors=FieldErrors.of(request, exc, "scheduled_at"))
    return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)


@router.post("/broadcasts/{broadcast_id}/cancel")
def cancel(request: Request, broadcast_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(writers),
           session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            service.cancel(session, principal=principal, broadcast_id=broadcast_id)
    except SiyuError as exc:
        return _page(request, session, principal, broadcast_id, status_code=exc.status_code,
                     errors=FieldErrors.of(request, exc, "scheduled_at"))
    return RedirectResponse(f"/broadcasts/{broadcast_id}", status_code=303)


# --- the delivery policy ---------------------------------------------------------------------------------------


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _policy(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    policy = delivery.policy_for(session, corp_id=principal.corp_id)
    context = {"policy": policy, "hhmm": _hhmm, "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(),
               "form": {}, "allowances": {"month": N_("As many a month as the month has days"),
                                          "week": N_("7 a week"), "day": N_("1 a day")}}
    context.update(extra)
    return render(request, "broadcasts/policy.html", context, status_code=status_code)


@router.get("/delivery")
def policy_page(request: Request, principal: Principal = Depends(readers), session: Session = Depends(get_session)
                ) -> Response:
    return _policy(request, session, principal)


def _minute(value: str, field: str) -> int:
    try:
        hh, mm = value.strip().split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise InvalidInput("a time is HH:MM", field=field) from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise InvalidInput("a time is HH:MM", field=field)
    return h * 60 + m


@router.post("/delivery")
def policy_save(request: Request, per_day: str = Form("", max_length=20), per_7_days: str = Form("", max_length=20),
                per_30_days: str = Form("", max_length=20), sends_per_minute: str = Form("", max_length=20),
                wecom_allowance: str = Form("", max_length=20), quiet_start: str = Form("", max_length=20),
                quiet_end: str = Form("", max_length=20), holdout_percent: str = Form("", max_length=20),
                principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    values = {"per_day": per_day, "per_7_days": per_7_days, "per_30_days": per_30_days,
              "sends_per_minute": sends_per_minute, "wecom_allowance": wecom_allowance, "quiet_start": quiet_start,
              "quiet_end": quiet_end, "holdout_percent": holdout_percent}
    try:
        numbers = {k: _int(values[k], k) for k in ("per_day", "per_7_days", "per_30_days", "sends_per_minute")}
        try:
            bp = round(float(values["holdout_percent"] or "0") * 100)
        except ValueError:
            raise InvalidInput("the control group is 0–50%", field="holdout_percent") from None
        if not 0 <= bp <= 5000:
            raise InvalidInput("the control group is 0–50%", field="holdout_percent")
        with session.begin_nested():
            delivery.update_policy(session, principal=principal, **numbers, wecom_allowance=values["wecom_allowance"],
                                   quiet_start_minute=_minute(values["quiet_start"], "quiet_start"),
                                   quiet_end_minute=_minute(values["quiet_end"], "quiet_end"),
                                   holdout_basis_points=bp)
    except SiyuError as exc:
        return _policy(request, session, principal, status_code=exc.status_code, form=values,
                       errors=FieldErrors.of(request, exc))
    return RedirectResponse("/delivery", status_code=303)


@router.post("/delivery/redraw")
def policy_redraw(request: Request, principal: Principal = Depends(writers),
                  session: Session = Depends(get_session)) -> Response:
    delivery.redraw_holdout(session, principal=principal)
    return RedirectResponse("/delivery", status_code=303)
