"""Console pages of keyword replies (关键词回复): the rules with their counts, the rule editor, and
the advisors' one-click tasks. Operations staff and administrators manage rules and see every task;
an advisor sees their own tasks. Thin: parse the form, check the role, call `keywords`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.acquisition import keywords
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import NotFound, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import get_staff

router = APIRouter(include_in_schema=False)

OPERATORS = ("administrator", "operations")
operators = require_roles(*OPERATORS)
anyone_serving = require_roles(*OPERATORS, "advisor")
PAGE = "/acquisition/keywords"
TASKS = "/acquisition/keyword-tasks"
MAX_ID = 2**63 - 1

MODE_LABELS = {"exact": N_("Exact"), "contains": N_("Contains")}
ACTION_LABELS = {"reply": N_("Reply automatically"), "task": N_("One-click task for the advisor")}
TASK_STATES = {"open": N_("To send"), "sending": N_("Being sent"), "sent": N_("Sent"), "failed": N_("Failed"),
               "unknown": N_("Unknown"), "blocked": N_("Held by compliance"), "dismissed": N_("Dismissed")}


def _own_userid(session: Session, principal: Principal) -> str | None:
    """None: the caller sees every advisor's tasks; else their own WeCom userid."""
    if principal.has_role(*OPERATORS):
        return None
    staff = get_staff(session, corp_id=principal.corp_id, staff_id=principal.staff_id) if principal.staff_id else None
    return (staff.wecom_userid if staff else None) or ""


def _index(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    corp_id = principal.corp_id
    manages = principal.has_role(*OPERATORS)
    context = {
        "manages": manages,
        "rules": keywords.list_rules(session, corp_id=corp_id) if manages else [],
        "counts": keywords.rule_counts(session, corp_id=corp_id) if manages else {},
        "empty_counts": keywords.RuleCounts(),
        "tasks": keywords.list_tasks(session, corp_id=corp_id, advisor_userid=_own_userid(session, principal)),
        "advisors": keywords.advisor_choices(session, corp_id=corp_id) if manages else [],
        "mode_labels": MODE_LABELS, "action_labels": ACTION_LABELS, "task_states": TASK_STATES,
        "form": {"match_mode": "contains", "action": "reply", "cooldown_hours": 24, "priority": 0, "advisors": []},
    }
    context.update(extra)
    return render(request, "acquisition/keywords.html", context, status_code=status_code)


@router.get(PAGE)
def keywords_page(request: Request, principal: Principal = Depends(anyone_serving),
                  session: Session = Depends(get_session)):
    return _index(request, session, principal)


def rule_form(
    name: str = Form("", max_length=1000),
    keyword: str = Form("", max_length=1000),
    match_mode: str = Form("contains", max_length=20),
    action: str = Form("reply", max_length=20),
    reply_text: str = Form("", max_length=10000),
    image_url: str = Form("", max_length=2000),
    link_url: str = Form("", max_length=2000),
    link_title: str = Form("", max_length=1000),
    link_desc: str = Form("", max_length=1000),
    advisors: list[str] = Form([]),
    cooldown_hours: str = Form("24", max_length=30),
    priority: str = Form("0", max_length=30),
    enabled: str = Form(""),
) -> tuple[keywords.RuleInput, dict]:
    """The rule form of the create and edit pages: the service's input, and the values to show again."""
    values = {"name": name, "keyword": keyword, "match_mode": match_mode, "action": action, "reply_text": reply_text,
              "image_url": image_url, "link_url": link_url, "link_title": link_title, "link_desc": link_desc,
              "advisors": advisors, "cooldown_hours": cooldown_hours, "priority": priority,
              "enabled": enabled in ("on", "1", "true")}
    return keywords.RuleInput(**{**values, "advisors": tuple(advisors)}), values


@router.post(PAGE)
def rule_create(
    request: Request,
    form: tuple[keywords.RuleInput, dict] = Depends(rule_form),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    data, values = form
    try:
        with session.begin_nested():  # a refusal leaves nothing half-written
            rule = keywords.save_rule(session, corp_id=principal.corp_id, actor=principal, data=data)
    except SiyuError as exc:
        return _index(request, session, principal, form=values, errors=FieldErrors.of(request, exc),
                      status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?saved=1#rule-{rule.id}", status_code=303)


def _edit(request: Request, session: Session, principal: Principal, rule_id: int, *, status_code: int = 200,
          **extra) -> Response:
    rule = keywords.get_rule(session, corp_id=principal.corp_id, rule_id=rule_id)
    context = {"rule": rule, "form": keywords.rule_form(rule),
               "advisors": keywords.advisor_choices(session, corp_id=principal.corp_id),
               "counts": keywords.rule_counts(session, corp_id=principal.corp_id).get(rule.id, keywords.RuleCounts()),
               "mode_labels": MODE_LABELS, "action_labels": ACTION_LABELS}
    context.update(extra)
    return render(request, "acquisition/keyword_rule.html", context, status_code=status_code)


@router.get(PAGE + "/{rule_id}")
def rule_page(request: Request, rule_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
              session: Session = Depends(get_session)):
    return _edit(request, session, principal, rule_id)


@router.post(PAGE + "/{rule_id}")
def rule_update(
    request: Request,
    rule_id: int = Path(ge=1, le=MAX_ID),
    form: tuple[keywords.RuleInput, dict] = Depends(rule_form),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    data, values = form
    try:
        with session.begin_nested():
            keywords.save_rule(session, corp_id=principal.corp_id, actor=principal, data=data, rule_id=rule_id)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _edit(request, session, principal, rule_id, form=values, errors=FieldErrors.of(request, exc),
                     status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?saved=1#rule-{rule_id}", status_code=303)


@router.post(TASKS + "/{task_id}/send")
def task_send(task_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(anyone_serving),
              session: Session = Depends(get_session)):
    """The one click: the prepared reply goes to the customer (through the queue, once)."""
    keywords.request_task_send(session, corp_id=principal.corp_id, actor=principal, task_id=task_id,
                               advisor_userid=_own_userid(session, principal))
    return RedirectResponse(f"{PAGE}?sent=1#tasks", status_code=303)


@router.post(TASKS + "/{task_id}/dismiss")
def task_dismiss(task_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(anyone_serving),
                 session: Session = Depends(get_session)):
    keywords.dismiss_task(session, corp_id=principal.corp_id, actor=principal, task_id=task_id,
                          advisor_userid=_own_userid(session, principal))
    return RedirectResponse(f"{PAGE}#tasks", status_code=303)
