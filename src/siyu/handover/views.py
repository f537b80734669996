"""Console page 客户继承 (customer handover): every handover with its counts per state and progress,
a handover's customers and groups with their state and reason, the create form, and retry and
escalation of failed items.

Administrators and operations staff create and act; compliance officers and auditors read. Thin:
parse the form, check the role, call `siyu.handover`. Mounted by the app with every domain's views."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.handover import service
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import names_by_login

router = APIRouter(include_in_schema=False)

writers = require_roles(*service.WRITER_ROLES)
readers = require_roles(*service.READER_ROLES)
PAGE = "/compliance/handovers"
HANDOVER_ID = Path(ge=1, le=2**63 - 1)
ITEM_ID = Path(ge=1, le=2**63 - 1)

KIND_LABELS = {"resigned": N_("Resigned advisor (离职继承)"), "in_service": N_("In-service transfer (在职继承)")}
STATUS_LABELS = {"running": N_("In progress"), "done": N_("Done"), "attention": N_("Needs attention")}
STATE_LABELS = {"pending": N_("Pending"), "waiting": N_("Waiting (24 h)"), "done": N_("Done"),
                "refused": N_("Refused"), "failed": N_("Failed"), "limit": N_("Limit reached"),
                "skipped": N_("Not handed over")}
# Reasons are stored as English message ids and translated where shown.
REASONS = (N_("not a customer of the handing advisor"), N_("already in another handover that has not finished"),
           N_("transferred twice in the last 90 days"), N_("every take-over advisor has this customer already"),
           N_("the customer refused the transfer"), N_("the take-over advisor has reached WeCom's customer limit"),
           N_("WeCom has no record of this transfer"), N_("retry requested"),
           N_("the call's answer was lost; the result query decides"),
           N_("WeCom lists no customers of this member waiting for a handover (not resigned, or all assigned)"),
           N_("WeCom does not list this customer as waiting for a handover"))


def _labels() -> dict:
    return {"kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS, "state_labels": STATE_LABELS,
            "states": service.CUSTOMER_STATES}


def _staff_options(session: Session, corp_id: int) -> list:
    from siyu.tenancy.service import list_staff

    return [s for s in list_staff(session, corp_id=corp_id, include_inactive=True) if s.wecom_userid]


def _staff_names(staff: list) -> dict[str, str]:
    return {s.wecom_userid: s.name for s in staff}


def _owned_groups(session: Session, corp_id: int, owner_userid: str) -> list:
    """The groups a member owns (names for the picker), from the communities domain."""
    from siyu.communities.service import groups_owned_by

    return groups_owned_by(session, corp_id=corp_id, owner_userid=owner_userid) if owner_userid else []


def _names(session: Session, corp_id: int, items) -> dict[str, str]:
    """Customers' masked names and groups' names of a handover's items, by their WeCom ids."""
    from siyu.communities.service import group_names
    from siyu.customers.service import masked_names

    customers = [i.target_id for i in items if i.kind == "customer"]
    groups = [i.target_id for i in items if i.kind == "group"]
    return {**masked_names(session, corp_id=corp_id, external_userids=customers),
            **group_names(session, corp_id=corp_id, chat_ids=groups)}


def _list(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
          errors: FieldErrors | None = None, form: dict | None = None) -> Response:
    handovers = service.list_handovers(session, corp_id=principal.corp_id)
    staff = _staff_options(session, principal.corp_id)
    form = form or {"kind": "resigned", "customers": "all", "groups": "none", "takeover_userids": [],
                    "external_userids": [], "chat_ids": []}
    chosen = form.get("external_userids") or []
    context = {
        "handovers": handovers,
        "counts": service.counts(session, corp_id=principal.corp_id, handover_ids=[h.id for h in handovers]),
        "escalated": service.escalation_count(session, corp_id=principal.corp_id),
        "staff": staff,
        "staff_names": _staff_names(staff),
        "can_write": principal.has_role(*service.WRITER_ROLES),
        "errors": errors or FieldErrors(),
        "form": form,
        "owned_groups": _owned_groups(session, principal.corp_id, form.get("handover_userid") or ""),
        "chosen_customers": _chosen(session, principal.corp_id, chosen),
        "message_max": service.MESSAGE_MAX_CHARS,
        **_labels(),
    }
    return render(request, "handover/handovers.html", context, status_code=status_code)


def _chosen(session: Session, corp_id: int, external_userids: list[str]) -> list[dict]:
    from siyu.customers.service import masked_names

    names = masked_names(session, corp_id=corp_id, external_userids=external_userids)
    return [{"value": e, "label": names.get(e, e)} for e in external_userids]


@router.get(PAGE + "/groups")
def handover_groups(request: Request, handover_userid: str = Query("", max_length=64),
                    principal: Principal = Depends(writers), session: Session = Depends(get_session)):
    """The group choices of the create form for the handing advisor chosen (a fragment)."""
    return render(request, "handover/_group_choices.html",
                  {"owned_groups": _owned_groups(session, principal.corp_id, handover_userid.strip()),
                   "form": {"chat_ids": []}, "chosen_userid": handover_userid.strip()})


@router.get(PAGE)
def handovers_page(request: Request, principal: Principal = Depends(readers),
                   session: Session = Depends(get_session)):
    return _list(request, session, principal)


@router.post(PAGE)
def handover_create(
    request: Request,
    kind: str = Form("", max_length=20),
    handover_userid: str = Form("", max_length=64),
    takeover_userids: list[str] = Form([]),
    customers: str = Form("all", max_length=10),
    external_userids: list[str] = Form([]),
    groups: str = Form("none", max_length=10),
    chat_ids: list[str] = Form([]),
    message: str = Form("", max_length=1000),
    principal: Principal = Depends(writers),
    session: Session = Depends(get_session),
):
    form = {"kind": kind, "handover_userid": handover_userid, "takeover_userids": takeover_userids,
            "customers": customers, "external_userids": external_userids, "groups": groups, "chat_ids": chat_ids,
            "message": message}
    try:
        if customers not in ("all", "selected", "none"):
            raise InvalidInput("choose all, selected or no customers", field="customers")
        if groups not in ("none", "all", "selected"):
            raise InvalidInput("choose no, all or selected groups", field="groups")
        ext_ids: list[str] | None = None
        if customers == "selected":
            ext_ids = service.parse_ids(external_userids[:service.MAX_TARGETS + 1], field="external_userids")
            if not ext_ids:
                raise InvalidInput("choose the customers", field="external_userids")
        elif customers == "none":
            ext_ids = []
        handover = service.create_handover(
            session, corp_id=principal.corp_id, actor=principal, kind=kind, handover_userid=handover_userid,
            takeover_userids=[t for t in takeover_userids if t.strip()][:service.MAX_TAKEOVERS + 1],
            external_userids=ext_ids, all_groups=groups == "all",
            chat_ids=chat_ids[:service.MAX_TARGETS + 1] if groups == "selected" else [], message=message,
            ip=client_ip(request))
    except SiyuError as exc:
        return _list(request, session, principal, status_code=exc.status_code,
                     errors=FieldErrors.of(request, exc, "form"), form=form)
    return RedirectResponse(f"{PAGE}/{handover.id}", status_code=303)


def _detail(request: Request, session: Session, principal: Principal, handover_id: int, *, status_code: int = 200,
            errors: FieldErrors | None = None) -> Response:
    handover = service.get_handover(session, corp_id=principal.corp_id, handover_id=handover_id)
    items = service.list_items(session, handover=handover)
    context = {
        "handover": handover,
        "names": _names(session, principal.corp_id, items),
        "staff_names": _staff_names(_staff_options(session, principal.corp_id)),
        "creator_name": names_by_login(session, corp_id=principal.corp_id,
                                       logins=[handover.created_by]).get(handover.created_by, handover.created_by),
        "count": service.counts(session, corp_id=principal.corp_id, handover_ids=[handover.id])[handover.id],
        "customers": [i for i in items if i.kind == "customer"],
        "groups": [i for i in items if i.kind == "group"],
        "escalated": [i for i in items if i.escalated],
        "can_write": principal.has_role(*service.WRITER_ROLES),
        "failed_states": service.FAILED_STATES,
        "errors": errors or FieldErrors(),
        "max_attempts": service.MAX_ATTEMPTS,
        **_labels(),
    }
    return render(request, "handover/handover_detail.html", context, status_code=status_code)


@router.get(PAGE + "/{handover_id}")
def handover_detail(request: Request, handover_id: int = HANDOVER_ID, principal: Principal = Depends(readers),
                    session: Session = Depends(get_session)):
    return _detail(request, session, principal, handover_id)


def _act(request: Request, session: Session, principal: Principal, handover_id: int, action) -> Response:
    service.get_handover(session, corp_id=principal.corp_id, handover_id=handover_id)  # 404 for another corp's
    try:
        action()
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        return _detail(request, session, principal, handover_id, status_code=exc.status_code,
                       errors=FieldErrors.of(request, exc, "item"))
    return RedirectResponse(f"{PAGE}/{handover_id}", status_code=303)


@router.post(PAGE + "/{handover_id}/items/{item_id}/retry")
def item_retry(request: Request, handover_id: int = HANDOVER_ID, item_id: int = ITEM_ID,
               principal: Principal = Depends(writers), session: Session = Depends(get_session)):
    return _act(request, session, principal, handover_id, lambda: service.retry_item(
        session, corp_id=principal.corp_id, actor=principal, handover_id=handover_id, item_id=item_id,
        ip=client_ip(request)))


@router.post(PAGE + "/{handover_id}/items/{item_id}/escalate")
def item_escalate(request: Request, handover_id: int = HANDOVER_ID, item_id: int = ITEM_ID,
                  principal: Principal = Depends(writers), session: Session = Depends(get_session)):
    return _act(request, session, principal, handover_id, lambda: service.escalate_item(
        session, corp_id=principal.corp_id, actor=principal, handover_id=handover_id, item_id=item_id,
        ip=client_ip(request)))
