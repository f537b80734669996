"""Console pages of audiences (客群):

- `/audiences`: the corp's saved segments with their last count and owner.
- `/audiences/new` and `/audiences/{id}`: the rule builder. A segment's rule is edited as one group
  (all / any / none of the conditions) of conditions, each with its kind's values picked by name
  (tags, stages, channel codes, join ways, groups and group sets, advisors and departments, products)
  and optionally negated. Adding or removing a condition re-renders the builder (HTMX, or a plain
  POST without script); any change asks for the live count and a sample of 20 masked members. A
  rule saved through the API with nested groups is shown as JSON and edited through the API.

Operations and administrators build and save segments; compliance officers and auditors read them.
Advisors do not: a segment counts the whole corp, beyond the customers an advisor may see. Thin:
parse the form into a rule, call the service."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from siyu.audiences import rules, service
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session, utcnow
from siyu.errors import InvalidInput, SiyuError, localized_message
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(include_in_schema=False)

WRITER_ROLES = ("administrator", "operations")
READER_ROLES = ("administrator", "operations", "compliance", "auditor")
writers = require_roles(*WRITER_ROLES)
readers = require_roles(*READER_ROLES)
PAGE = "/audiences"
SEGMENT_ID = Path(ge=1, le=MAX_ID)
MAX_ROWS = 30

KIND_LABELS = {
    "tags": N_("Tags"), "stage": N_("Lifecycle stage"), "risk_level": N_("Risk level"),
    "risk_expiry": N_("Risk assessment validity"), "added": N_("Added as a contact"), "gender": N_("Gender"),
    "firm_customer": N_("Linked to the firm's customer record"), "lost": N_("Lost (no advisor follows)"),
    "channel": N_("Channel code"), "join_way": N_("Group join way"), "group": N_("Group membership"),
    "event": N_("Timeline event"), "invested": N_("Invested"),
    "redeemed_not_reinvested": N_("Redeemed and not invested again"), "holds": N_("Holds a product"),
    "consent": N_("Consent"), "advisor": N_("Followed by"),
}
MATCH_LABELS = {"all": N_("all of the conditions"), "any": N_("any of the conditions"),
                "none": N_("none of the conditions")}
TAG_MATCH_LABELS = {"any": N_("has any of"), "all": N_("has all of"), "none": N_("has none of")}
STAGE_LABELS = {"new": N_("New"), "activated": N_("Activated"), "invested": N_("Invested"),
                "reinvested": N_("Reinvested"), "dormant": N_("Dormant"), "lost": N_("Lost")}
GENDER_LABELS = {"0": N_("Unknown"), "1": N_("Male"), "2": N_("Female")}
EXPIRY_LABELS = {"expired": N_("expired"), "expires_within": N_("expires within N days"),
                 "valid": N_("valid"), "unassessed": N_("never assessed")}
EVENT_LABELS = {"added": N_("Added"), "lost": N_("Deleted the advisor"),
                "deleted_by_staff": N_("Deleted by the advisor"),
                "transferred": N_("Handed over"), "firm_linked": N_("Verified (linked to the firm)"),
                "invested": N_("Invested"), "redeemed": N_("Redeemed"), "stage_changed": N_("Stage changed"),
                "tags_changed": N_("Tags changed"), "note_added": N_("Note added"),
                "product_recommended": N_("Product recommended")}
CONSENT_STATE_LABELS = {"granted": N_("granted"), "withdrawn": N_("withdrawn (opted out)"),
                        "unknown": N_("never asked")}
PURPOSE_LABELS = {"marketing": N_("Marketing messages"), "chat_archiving": N_("Chat archiving"),
                  "data_sharing": N_("Data sharing with the firm"), "profiling": N_("Profiling"),
                  "personal_info": N_("Personal information on H5 pages")}
YES_NO = {"1": N_("Yes"), "0": N_("No")}
# Fields of each kind as the form carries them: name -> how it is read (int list, str list, text, ...).
KIND_FIELDS: dict[str, dict[str, str]] = {
    "gender": {"values": "ints"},
    "added": {"within_days": "int", "from": "text", "to": "text"},
    "firm_customer": {"present": "bool"},
    "lost": {"lost": "bool"},
    "tags": {"match": "text", "tag_ids": "ints"},
    "stage": {"stages": "texts"},
    "risk_level": {"levels": "texts"},
    "risk_expiry": {"state": "text", "days": "int"},
    "channel": {"code_ids": "ints"},
    "join_way": {"join_way_ids": "ints"},
    "group": {"set_ids": "ints", "group_ids": "ints"},
    "event": {"event": "text", "within_days": "int", "from": "text", "to": "text"},
    "invested": {"within_days": "int", "from": "text", "to": "text", "product_codes": "texts"},
    "redeemed_not_reinvested": {"within_days": "int"},
    "holds": {"min_risk": "text", "product_codes": "texts"},
    "consent": {"purpose": "text", "state": "text"},
    "advisor": {"staff_ids": "ints", "department_ids": "ints"},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "tags": {"match": "any"}, "risk_expiry": {"state": "expired"}, "event": {"event": "added", "within_days": 7},
    "added": {"within_days": 7}, "invested": {"within_days": 30}, "redeemed_not_reinvested": {"within_days": 30},
    "holds": {"min_risk": "R3"}, "consent": {"purpose": "marketing", "state": "withdrawn"},
    "firm_customer": {"present": True}, "lost": {"lost": True},
}


# ---------------------------------------------------------------- form <-> rule

def _read(form, key: str, how: str) -> Any:
    if how in ("ints", "texts"):
        values = [v.strip() for v in form.getlist(key) if isinstance(v, str) and v.strip()]
        if how == "ints":
            return [int(v) if v.isdigit() else v for v in values]
        return values
    raw = form.get(key)
    raw = raw.strip() if isinstance(raw, str) else ""
    if how == "int":
        return (int(raw) if raw.isdigit() else raw) if raw else None
    if how == "bool":
        return raw != "0"
    return raw or None


def rows_from_form(form) -> tuple[str, list[dict]]:
    """The builder's match and its rows (each: kind, negate, values) from the posted form."""
    match = form.get("match") if form.get("match") in rules.GROUPS else "all"
    rows = []
    count = form.get("rows")
    n = int(count) if isinstance(count, str) and count.isdigit() else 0
    for i in range(min(n, MAX_ROWS)):
        kind = form.get(f"c{i}_kind")
        if kind not in KIND_FIELDS:
            continue
        values = {f: _read(form, f"c{i}_{f}", how) for f, how in KIND_FIELDS[kind].items()}
        rows.append({"kind": kind, "negate": form.get(f"c{i}_negate") == "1", "values": values})
    return match, rows


def _condition(row: dict, path: str) -> dict:
    kind, values = row["kind"], row["values"]
    cond: dict[str, Any] = {"kind": kind}
    if kind == "group":
        sets, groups = values.get("set_ids") or [], values.get("group_ids") or []
        if sets and groups:
            raise InvalidInput("choose group sets or groups, not both", field=f"{path}.group_ids")
        if groups:
            cond.update(scope="group", ids=groups)
        elif sets:
            cond.update(scope="group_set", ids=sets)
        return cond
    for f, v in values.items():
        if v is None or v == [] or (f == "product_codes" and not v):
            continue
        cond[f] = v
    return cond


def rule_from_rows(match: str, rows: list[dict]) -> dict | None:
    """The rule of the builder's rows; None without rows. `InvalidInput` for what the form alone
    can tell (the rest is checked by `rules.parse`)."""
    if not rows:
        return None
    items = []
    for i, row in enumerate(rows):
        cond = _condition(row, f"rule.{match}[{i}]")
        items.append({"not": cond} if row["negate"] else cond)
    return {match: items}


def rows_from_rule(rule: dict) -> tuple[str, list[dict]] | None:
    """The builder's rows for a saved rule, or None when the rule is deeper than the builder shows
    (one group of conditions, each maybe negated)."""
    if not isinstance(rule, dict):
        return None
    if "kind" in rule:
        rule = {"all": [rule]}
    elif "not" in rule:
        rule = {"all": [rule]}
    match = next((k for k in rules.GROUPS if k in rule), None)
    if match is None:
        return None
    rows = []
    for item in rule[match]:
        negate = isinstance(item, dict) and set(item) == {"not"}
        cond = item["not"] if negate else item
        if not isinstance(cond, dict) or cond.get("kind") not in KIND_FIELDS:
            return None
        kind = cond["kind"]
        values = {f: cond.get(f) for f in KIND_FIELDS[kind]}
        if kind == "group":
            scope, ids = cond.get("scope", "any"), cond.get("ids") or []
            values = {"set_ids": ids if scope == "group_set" else [], "group_ids": ids if scope == "group" else []}
        rows.append({"kind": kind, "negate": negate, "values": values})
    return match, rows


_PATH = re.compile(r"^rule\.(?:all|any|none)\[(\d+)\](?:\.not)?(?:\.([a-z_]+))?")


def _row_errors(request: Request, exc: SiyuError) -> FieldErrors:
    """A rule's error next to its row's field (`c2_tag_ids`), or its row (`c2`), or the form."""
    errors = FieldErrors()
    m = _PATH.match(exc.field or "")
    if m:
        i, f = m.group(1), m.group(2)
        if f == "ids":
            f = "group_ids"
        key = f"c{i}_{f}" if f and f != "kind" else f"c{i}"
        errors[key] = localized_message(request, exc)
    else:
        errors.add(request, exc, "rule")
    return errors


# ---------------------------------------------------------------- pickers (names, never ids, where people read)

def _pickers(session: Session, corp_id: int) -> dict:
    from siyu.acquisition.models import ChannelCode
    from siyu.communities.joinway_models import GroupJoinWay
    from siyu.communities.models import GroupChat, GroupSet
    from siyu.compliance.models import Product
    from siyu.customers.models import CustomerTag, CustomerTagGroup
    from siyu.tenancy import service as tenancy

    tags = [(t.id, f"{g.name} · {t.name}") for t, g in session.execute(
        select(CustomerTag, CustomerTagGroup).join(CustomerTagGroup, CustomerTagGroup.id == CustomerTag.group_id)
        .where(CustomerTag.corp_id == corp_id).order_by(CustomerTagGroup.sort_order, CustomerTagGroup.name,
                                                         CustomerTag.sort_order, CustomerTag.name))]
    sets = list(session.scalars(select(GroupSet).where(GroupSet.corp_id == corp_id).order_by(GroupSet.name)))
    set_names = {s.id: s.name for s in sets}
    ways = [(w.id, f"{set_names.get(w.group_set_id, '')} · {w.state}") for w in session.scalars(
        select(GroupJoinWay).where(GroupJoinWay.corp_id == corp_id).order_by(GroupJoinWay.id))]
    groups = [(g.id, g.name or g.chat_id) for g in session.scalars(
        select(GroupChat).where(GroupChat.corp_id == corp_id, GroupChat.dismissed_at.is_(None))
        .order_by(GroupChat.name).limit(2000))]
    codes = [(c.id, c.name) for c in session.scalars(
        select(ChannelCode).where(ChannelCode.corp_id == corp_id).order_by(ChannelCode.name))]
    staff = [(s.id, s.name) for s in tenancy.list_staff(session, corp_id=corp_id, include_inactive=False)]
    departments = [(n.department.id, n.path) for n in tenancy.department_tree(session, corp_id=corp_id)]
    products = [(p.code, f"{p.name} ({p.risk_level})") for p in session.scalars(
        select(Product).where(Product.corp_id == corp_id).order_by(Product.code))]
    return {"tag_ids": tags, "set_ids": [(s.id, s.name) for s in sets], "group_ids": groups, "join_way_ids": ways,
            "code_ids": codes, "staff_ids": staff, "department_ids": departments, "product_codes": products}


def _labels() -> dict:
    return {"kind_labels": KIND_LABELS, "match_labels": MATCH_LABELS, "tag_match_labels": TAG_MATCH_LABELS,
            "stage_labels": STAGE_LABELS, "gender_labels": GENDER_LABELS, "expiry_labels": EXPIRY_LABELS,
            "event_labels": EVENT_LABELS, "consent_state_labels": CONSENT_STATE_LABELS,
            "purpose_labels": PURPOSE_LABELS, "yes_no": YES_NO,
            "level_options": [(c, c) for c in rules.CUSTOMER_LEVELS],
            "product_level_options": [(r, r) for r in rules.PRODUCT_LEVELS]}


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# ---------------------------------------------------------------- pages

@router.get(PAGE)
def segment_list(request: Request, principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)) -> Response:
    from siyu.tenancy.models import Staff

    segments = service.list_segments(session, corp_id=principal.corp_id)
    owners = {s.id: s.name for s in session.scalars(select(Staff).where(
        Staff.id.in_({s.owner_staff_id for s in segments if s.owner_staff_id}), Staff.corp_id == principal.corp_id))}
    return render(request, "audiences/list.html", {
        "segments": segments, "owners": owners, "may_write": principal.has_role(*WRITER_ROLES),
        "deleted": request.query_params.get("deleted") == "1"}, principal=principal)


def _builder(request: Request, session: Session, principal: Principal, *, segment=None, match: str = "all",
             rows: list[dict] | None = None, form: dict | None = None, errors: FieldErrors | None = None,
             status_code: int = 200, fragment: bool = False, advanced: bool = False) -> Response:
    rows = [{**r, "values": {f: r["values"].get(f) for f in KIND_FIELDS[r["kind"]]}} for r in rows or []]
    history = []
    if segment is not None:
        history = service.count_history(session, corp_id=principal.corp_id, segment_id=segment.id)
    context = {
        "segment": segment, "match": match, "rows": rows or [], "form": form or {}, "errors": errors or {},
        "pickers": _pickers(session, principal.corp_id), "kinds": list(KIND_LABELS), "defaults": DEFAULTS,
        "may_write": principal.has_role(*WRITER_ROLES), "history": history, "chart": history_chart(history),
        "advanced": advanced,
        "saved": request.query_params.get("saved") == "1", **_labels(),
    }
    template = "audiences/_builder.html" if fragment else "audiences/builder.html"
    return render(request, template, context, principal=principal, status_code=status_code)


@router.get(PAGE + "/new")
def segment_new(request: Request, principal: Principal = Depends(writers),
                session: Session = Depends(get_session)) -> Response:
    rows = [{"kind": "stage", "negate": False, "values": {"stages": []}}]
    return _builder(request, session, principal, rows=rows)


@router.get(PAGE + "/{segment_id}")
def segment_page(request: Request, segment_id: int = SEGMENT_ID, principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)) -> Response:
    segment = service.get_segment(session, corp_id=principal.corp_id, segment_id=segment_id)
    shown = rows_from_rule(segment.rule)
    form = {"name": segment.name, "description": segment.description}
    if shown is None:
        return _builder(request, session, principal, segment=segment, form=form, advanced=True)
    match, rows = shown
    return _builder(request, session, principal, segment=segment, match=match, rows=rows, form=form)


def _posted(form) -> tuple[dict, str, list[dict]]:
    match, rows = rows_from_form(form)
    values = {"name": (form.get("name") or "").strip(), "description": (form.get("description") or "").strip()}
    return values, match, rows


@router.post(PAGE + "/builder")
async def builder_action(request: Request, principal: Principal = Depends(writers),
                         session: Session = Depends(get_session)) -> Response:
    """Add or remove a condition: the builder again with the rows as posted."""
    form = await request.form()
    values, match, rows = _posted(form)
    action = form.get("action") or ""
    if action == "add" and form.get("add_kind") in KIND_FIELDS and len(rows) < MAX_ROWS:
        kind = form.get("add_kind")
        rows.append({"kind": kind, "negate": False, "values": dict(DEFAULTS.get(kind, {}))})
    elif isinstance(action, str) and action.startswith("remove:") and action[7:].isdigit():
        i = int(action[7:])
        if 0 <= i < len(rows):
            rows.pop(i)
    segment_id = form.get("segment_id")
    segment = None
    if isinstance(segment_id, str) and segment_id.isdigit():
        segment = service.get_segment(session, corp_id=principal.corp_id, segment_id=int(segment_id))
    response = _builder(request, session, principal, segment=segment, match=match, rows=rows, form=values,
                        fragment=_is_htmx(request))
    response.headers["HX-Trigger"] = "rule-changed"
    return response


@router.post(PAGE + "/preview")
async def preview(request: Request, principal: Principal = Depends(readers),
                  session: Session = Depends(get_session)) -> Response:
    """The live count and sample of the rule as it stands in the builder (a fragment)."""
    form = await request.form()
    _values, match, rows = _posted(form)
    segment_id = form.get("segment_id")
    advanced = form.get("advanced") == "1" and isinstance(segment_id, str) and segment_id.isdigit()

    def work():
        try:
            if advanced:  # a rule the builder cannot show: the saved one
                rule = service.get_segment(session, corp_id=principal.corp_id, segment_id=int(segment_id)).rule
            else:
                rule = rule_from_rows(match, rows)
            if rule is None:
                return None, None, [], None
            return (rule, service.count_rule(session, corp_id=principal.corp_id, rule=rule),
                    service.sample_rule(session, corp_id=principal.corp_id, rule=rule), None)
        except SiyuError as exc:
            return {}, None, [], exc

    rule, count, sample, exc = await run_in_threadpool(work)
    errors = _row_errors(request, exc) if exc is not None else {}
    return render(request, "audiences/_preview.html", {
        "count": count, "sample": sample, "errors": errors, "empty": rule is None, "counted_at": utcnow(),
        "stage_labels": STAGE_LABELS, "gender_labels": GENDER_LABELS},
        principal=principal, status_code=200)


async def _save(request: Request, session: Session, principal: Principal, segment_id: int | None) -> Response:
    form = await request.form()
    values, match, rows = _posted(form)
    segment = service.get_segment(session, corp_id=principal.corp_id, segment_id=segment_id) if segment_id else None
    advanced = form.get("advanced") == "1" and segment is not None
    try:
        with session.begin_nested():
            rule = segment.rule if advanced else rule_from_rows(match, rows)
            if rule is None:
                raise InvalidInput("add at least one condition", field="rule")
            if segment is None:
                segment = service.create_segment(session, principal=principal, name=values["name"],
                                                 description=values["description"], rule=rule)
            else:
                service.update_segment(session, principal=principal, segment_id=segment.id, name=values["name"],
                                       description=values["description"], rule=rule)
            service.count_segment(session, corp_id=principal.corp_id, segment_id=segment.id)
    except SiyuError as exc:
        session.expire_all()
        current = service.get_segment(session, corp_id=principal.corp_id, segment_id=segment_id) if segment_id else None
        return _builder(request, session, principal, segment=current, match=match, rows=rows, form=values,
                        errors=_row_errors(request, exc), status_code=exc.status_code, advanced=advanced)
    return RedirectResponse(f"{PAGE}/{segment.id}?saved=1", status_code=303)


@router.post(PAGE)
async def segment_create(request: Request, principal: Principal = Depends(writers),
                         session: Session = Depends(get_session)) -> Response:
    return await _save(request, session, principal, None)


@router.post(PAGE + "/{segment_id}")
async def segment_update(request: Request, segment_id: int = SEGMENT_ID, principal: Principal = Depends(writers),
                         session: Session = Depends(get_session)) -> Response:
    return await _save(request, session, principal, segment_id)


@router.post(PAGE + "/{segment_id}/delete")
def segment_delete(request: Request, segment_id: int = SEGMENT_ID, principal: Principal = Depends(writers),
                   session: Session = Depends(get_session)) -> Response:
    service.delete_segment(session, principal=principal, segment_id=segment_id)
    return RedirectResponse(f"{PAGE}?deleted=1", status_code=303)


def history_chart(points: list, *, width: int = 560, height: int = 120) -> dict:
    """Bars of a segment's daily counts, scaled for an inline SVG."""
    if not points:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(p.count for p in points) or 1
    step = width / max(len(points), 1)
    bars = [{"x": round(i * step, 1), "w": max(1.0, round(step * 0.8, 1)),
             "h": round((height - 16) * p.count / top, 1), "day": p.day.isoformat(), "count": p.count}
            for i, p in enumerate(points)]
    return {"bars": bars, "width": width, "height": height, "max": top}
