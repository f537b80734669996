"""Console pages of acquisition (获客): channel codes with live counts, a code's detail with its
welcome flow editor, posters, personas, and the follow-ups advisors owe.

Operations staff and administrators manage; an advisor sees their own follow-ups. Thin: parse the
form, check the role, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.acquisition import service, welcome
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.qr import qr_png
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import InvalidInput, NotFound, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import get_staff

router = APIRouter(include_in_schema=False)

OPERATORS = ("administrator", "operations")
operators = require_roles(*OPERATORS)
anyone_serving = require_roles(*OPERATORS, "advisor")
PAGE = "/acquisition"
MAX_ID = 2**63 - 1

CHANNEL_LABELS = {
    "ad": N_("Advertising"),
    "official_account": N_("Official account"),
    "mobile_banking": N_("Mobile banking"),
    "mini_program": N_("Mini-program"),
    "sms": N_("SMS"),
    "branch_poster": N_("Branch poster"),
    "other": N_("Other"),
}
PERSONA_LABELS = {
    "lifestyle_sharer": N_("Lifestyle sharer"),
    "knowledge_expert": N_("Knowledge expert"),
    "dedicated_advisor": N_("Dedicated advisor"),
    "benefits_officer": N_("Benefits officer"),
}
STATUS_LABELS = {
    "pending": N_("Being created at WeCom"),
    "active": N_("Active"),
    "failed": N_("WeCom refused"),
    "expired": N_("Expired: stopped at WeCom"),
    "deleted": N_("Deleted at WeCom"),
}


# --- channel codes --------------------------------------------------------------------------------

def _index(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    corp_id = principal.corp_id
    codes = service.list_channel_codes(session, corp_id=corp_id)
    personas = service.list_personas(session, corp_id=corp_id)
    chart = service.daily_adds(session, corp_id=corp_id)
    context = {
        "codes": codes,
        "stats": service.code_stats(session, corp_id=corp_id, codes=codes),
        "personas": {p.id: p for p in personas},
        "active_personas": [p for p in personas if p.is_active],
        # the advisor picker lists advisors (staff with the role), not every member with a WeCom id
        "advisors": [s for s in service.advisor_staff(session, corp_id=corp_id) if "advisor" in s.role_names],
        "channels": service.CHANNELS,
        "channel_labels": CHANNEL_LABELS,
        "status_labels": STATUS_LABELS,
        "chart": {"key": "channel_adds", "kind": "bar", "x": chart["x"],
                  "series": [{"name": "", "values": chart["values"]}]},
        "open_follow_ups": len(welcome.list_follow_ups(session, corp_id=corp_id)),
    }
    context.update(extra)
    return render(request, "acquisition/index.html", context, status_code=status_code)


@router.get(PAGE)
def codes_page(request: Request, principal: Principal = Depends(operators), session: Session = Depends(get_session)):
    return _index(request, session, principal)


@router.post(PAGE + "/codes")
def code_create(
    request: Request,
    name: str = Form("", max_length=1000),
    channel: str = Form("", max_length=100),
    campaign: str = Form("", max_length=1000),
    persona_id: str = Form("", max_length=30),
    advisor: list[str] = Form([]),
    cap_userid: list[str] = Form([]),
    cap: list[str] = Form([]),
    cost: str = Form("", max_length=100),
    expires_on: str = Form("", max_length=100),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    form = {"name": name, "channel": channel, "campaign": campaign, "persona_id": persona_id, "advisor": advisor,
            "caps": dict(zip(cap_userid, cap, strict=False)), "cost": cost, "expires_on": expires_on}
    try:
        caps = {}
        for userid, value in zip(cap_userid, cap, strict=False):
            try:
                caps[userid] = int(value.strip() or "0")
            except ValueError:
                raise InvalidInput("a daily cap is a whole number", field="cap") from None
        persona = None
        if persona_id.strip():
            if not persona_id.strip().isdigit():
                raise InvalidInput("no such persona", field="persona_id")
            persona = int(persona_id)
        with session.begin_nested():  # a refusal leaves nothing half-written
            code = service.create_channel_code(
                session, corp_id=principal.corp_id, actor=principal, name=name, channel=channel, campaign=campaign,
                persona_id=persona, advisors=[service.AdvisorSpec(u, caps.get(u, 0)) for u in advisor],
                cost_fen=service.parse_yuan(cost), expires_at=service.parse_day_end(expires_on))
    except SiyuError as exc:
        return _index(request, session, principal, form=form, errors=FieldErrors.of(request, exc),
                      status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/codes/{code.id}?created=1", status_code=303)


def _code_page(request: Request, session: Session, principal: Principal, code_id: int, *, status_code: int = 200,
               **extra) -> Response:
    corp_id = principal.corp_id
    code = service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
    flow = welcome.get_flow(session, corp_id=corp_id, code_id=code.id)
    persona = service.get_persona(session, corp_id=corp_id, persona_id=code.persona_id) if code.persona_id else None
    chart = service.daily_adds(session, corp_id=corp_id, code_id=code.id)
    today = service.adds_today_by_advisor(session, corp_id=corp_id, code_id=code.id)
    staff_names = {a.wecom_userid: a.name for a in service.advisor_staff(session, corp_id=corp_id)}
    context = {
        "code": code,
        "stats": service.code_stats(session, corp_id=corp_id, codes=[code])[code.id],
        "persona": persona,
        "persona_labels": PERSONA_LABELS,
        "advisors": [{"userid": a.userid, "name": staff_names.get(a.userid, a.userid), "cap": a.daily_cap,
                      "today": today.get(a.userid, 0),
                      "offered": a.userid in (code.wecom_users or [])}
                     for a in service.code_advisors(session, corp_id=corp_id, code_id=code.id)],
        "channel_labels": CHANNEL_LABELS,
        "status_labels": STATUS_LABELS,
        "flow": flow,
        "results": welcome.variant_results(session, corp_id=corp_id, flow_id=flow.id) if flow else [],
        "approvals": welcome.variant_approvals(session, corp_id=corp_id, flow_id=flow.id) if flow else {},
        "variables": welcome.VARIABLES,
        "adds": service.recent_adds(session, corp_id=corp_id, code_id=code.id),
        "chart": {"key": "code_adds", "kind": "bar", "x": chart["x"],
                  "series": [{"name": "", "values": chart["values"]}]},
    }
    context.update(extra)
    return render(request, "acquisition/code.html", context, status_code=status_code)


@router.get(PAGE + "/codes/{code_id}")
def code_page(request: Request, code_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
              session: Session = Depends(get_session)):
    return _code_page(request, session, principal, code_id)


@router.get(PAGE + "/codes/{code_id}/poster.png")
def code_poster_png(code_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                    session: Session = Depends(get_session)):
    """The code's QR as a PNG (made with segno), large enough to print."""
    code = service.get_channel_code(session, corp_id=principal.corp_id, code_id=code_id)
    if not code.qr_url:
        raise NotFound("the code has no QR yet: WeCom has not created it", field="code_id")
    return qr_png(code.qr_url, filename=f"channel-code-{code.id}.png")


@router.get(PAGE + "/codes/{code_id}/poster")
def code_poster(request: Request, code_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                session: Session = Depends(get_session)):
    """A printable poster: the code's title, its persona and the QR."""
    code = service.get_channel_code(session, corp_id=principal.corp_id, code_id=code_id)
    persona = (service.get_persona(session, corp_id=principal.corp_id, persona_id=code.persona_id)
               if code.persona_id else None)
    return render(request, "acquisition/poster.html", {"code": code, "persona": persona,
                                                       "persona_labels": PERSONA_LABELS})


@router.post(PAGE + "/codes/{code_id}/welcome")
def flow_save(
    request: Request,
    code_id: int = Path(ge=1, le=MAX_ID),
    enabled: str = Form(""),
    group_keyword: str = Form("", max_length=1000),
    group_invitation: str = Form("", max_length=1000),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    try:
        with session.begin_nested():
            welcome.save_flow(session, corp_id=principal.corp_id, actor=principal, code_id=code_id,
                              enabled=enabled in ("on", "1", "true"), group_keyword=group_keyword,
                              group_invitation=group_invitation)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _code_page(request, session, principal, code_id, flow_errors=FieldErrors.of(request, exc, "enabled"),
                          flow_form={"enabled": bool(enabled), "group_keyword": group_keyword,
                                     "group_invitation": group_invitation}, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/codes/{code_id}?saved=welcome#welcome", status_code=303)


@router.post(PAGE + "/codes/{code_id}/variants")
def variant_add(
    request: Request,
    code_id: int = Path(ge=1, le=MAX_ID),
    text: str = Form("", max_length=20000),
    weight: str = Form("1", max_length=30),
    image_url: str = Form("", max_length=2000),
    link_url: str = Form("", max_length=2000),
    link_title: str = Form("", max_length=1000),
    link_desc: str = Form("", max_length=1000),
    miniprogram_appid: str = Form("", max_length=100),
    miniprogram_page: str = Form("", max_length=1000),
    miniprogram_title: str = Form("", max_length=1000),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    values = {"text": text, "weight": weight, "image_url": image_url, "link_url": link_url, "link_title": link_title,
              "link_desc": link_desc, "miniprogram_appid": miniprogram_appid, "miniprogram_page": miniprogram_page,
              "miniprogram_title": miniprogram_title}
    try:
        attachments = welcome.build_attachments(
            image_url=image_url, link_url=link_url, link_title=link_title, link_desc=link_desc,
            miniprogram_appid=miniprogram_appid, miniprogram_page=miniprogram_page,
            miniprogram_title=miniprogram_title)
        with session.begin_nested():
            welcome.add_variant(session, corp_id=principal.corp_id, actor=principal, code_id=code_id, text=text,
                                weight=weight, attachments=attachments)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _code_page(request, session, principal, code_id, variant_errors=FieldErrors.of(request, exc, "text"),
                          variant_form=values, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/codes/{code_id}?saved=variant#welcome", status_code=303)


@router.post(PAGE + "/variants/{variant_id}/edit")
def variant_edit(request: Request, variant_id: int = Path(ge=1, le=MAX_ID), text: str = Form("", max_length=20000),
                 principal: Principal = Depends(operators), session: Session = Depends(get_session)):
    """A new version of the variant's text, for approval: what goes out stays the approved one until then."""
    variant = welcome.get_variant(session, corp_id=principal.corp_id, variant_id=variant_id)
    code_id = welcome.code_id_of_flow(session, corp_id=principal.corp_id, flow_id=variant.flow_id)
    try:
        with session.begin_nested():
            welcome.edit_variant(session, corp_id=principal.corp_id, actor=principal, variant_id=variant_id,
                                 text=text, attachments=list(variant.attachments or []))
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _code_page(request, session, principal, code_id, edit_errors=FieldErrors.of(request, exc, "text"),
                          edit_variant=variant_id, edit_text=text, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/codes/{code_id}?saved=variant#variant-{variant_id}", status_code=303)


def _set_variant(session: Session, principal: Principal, variant_id: int, active: bool) -> Response:
    variant = welcome.set_variant_active(session, corp_id=principal.corp_id, actor=principal, variant_id=variant_id,
                                        active=active)
    code_id = welcome.code_id_of_flow(session, corp_id=principal.corp_id, flow_id=variant.flow_id)
    return RedirectResponse(f"{PAGE}/codes/{code_id}#welcome", status_code=303)


@router.post(PAGE + "/variants/{variant_id}/pause")
def variant_pause(variant_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                  session: Session = Depends(get_session)):
    return _set_variant(session, principal, variant_id, False)


@router.post(PAGE + "/variants/{variant_id}/resume")
def variant_resume(variant_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                   session: Session = Depends(get_session)):
    return _set_variant(session, principal, variant_id, True)


# --- personas ----------------------------------------------------------------------------------------

def _personas(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
              **extra) -> Response:
    context = {"personas": service.list_personas(session, corp_id=principal.corp_id),
               "kinds": service.PERSONA_KINDS, "persona_labels": PERSONA_LABELS}
    context.update(extra)
    return render(request, "acquisition/personas.html", context, status_code=status_code)


@router.get(PAGE + "/personas")
def personas_page(request: Request, principal: Principal = Depends(operators),
                  session: Session = Depends(get_session)):
    return _personas(request, session, principal)


def persona_form(
    kind: str = Form("", max_length=100),
    display_name: str = Form("", max_length=1000),
    title: str = Form("", max_length=1000),
    years_experience: str = Form("0", max_length=30),
    avatar_url: str = Form("", max_length=2000),
    introduction: str = Form("", max_length=5000),
) -> dict[str, str]:
    """The persona form of the create and edit rows (also what is shown again after a refusal)."""
    return {"kind": kind, "display_name": display_name, "title": title, "years_experience": years_experience,
            "avatar_url": avatar_url, "introduction": introduction}


@router.post(PAGE + "/personas")
def persona_create(
    request: Request,
    values: dict[str, str] = Depends(persona_form),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    try:
        with session.begin_nested():
            service.create_persona(session, corp_id=principal.corp_id, actor=principal, **values)
    except SiyuError as exc:
        return _personas(request, session, principal, form=values, errors=FieldErrors.of(request, exc),
                         status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/personas?saved=1", status_code=303)


@router.post(PAGE + "/personas/{persona_id}")
def persona_update(
    request: Request,
    persona_id: int = Path(ge=1, le=MAX_ID),
    values: dict[str, str] = Depends(persona_form),
    is_active: str = Form(""),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    try:
        with session.begin_nested():
            service.update_persona(session, corp_id=principal.corp_id, actor=principal, persona_id=persona_id,
                                   is_active=is_active in ("on", "1", "true"), **values)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _personas(request, session, principal, edit_id=persona_id, edit_form=values,
                         edit_errors=FieldErrors.of(request, exc), status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/personas?saved=1#persona-{persona_id}", status_code=303)


# --- follow-ups ----------------------------------------------------------------------------------------

def _own_userid(session: Session, principal: Principal) -> str | None:
    """None: the caller sees everyone's (operations, administrators); else their own WeCom userid."""
    if principal.has_role(*OPERATORS):
        return None
    staff = get_staff(session, corp_id=principal.corp_id, staff_id=principal.staff_id) if principal.staff_id else None
    return (staff.wecom_userid if staff else None) or ""


@router.get(PAGE + "/follow-ups")
def follow_ups_page(request: Request, principal: Principal = Depends(anyone_serving),
                    session: Session = Depends(get_session)):
    rows = welcome.list_follow_ups(session, corp_id=principal.corp_id,
                                   advisor_userid=_own_userid(session, principal))
    codes = {c.id: c for c in service.list_channel_codes(session, corp_id=principal.corp_id)}
    return render(request, "acquisition/follow_ups.html", {"rows": rows, "codes": codes})


@router.post(PAGE + "/follow-ups/{follow_up_id}/done")
def follow_up_done(follow_up_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(anyone_serving),
                   session: Session = Depends(get_session)):
    welcome.complete_follow_up(session, corp_id=principal.corp_id, actor=principal, follow_up_id=follow_up_id,
                               advisor_userid=_own_userid(session, principal))
    return RedirectResponse(f"{PAGE}/follow-ups", status_code=303)


# --- keyword replies: the pages live in keyword_views.py -------------------------------------------------

from siyu.acquisition.keyword_views import router as _keyword_router  # noqa: E402

router.include_router(_keyword_router)


# --- gated communities (verification gate): their own module, served by this router -----------------------

from siyu.acquisition.gated_views import router as _gated_router  # noqa: E402

router.include_router(_gated_router)


# --- leads and outbound calls: the pages live in lead_views.py --------------------------------------------

from siyu.acquisition.lead_views import router as _lead_router  # noqa: E402

router.include_router(_lead_router)
