"""The customer-facing H5 page of the verification gate (门槛社群): opened on the customer's phone
from a gated community's link, no login. Phone → (firm check) → SMS code → the group code.

The group code is rendered only on the answer for a visit whose status is "verified": before that
it is not in the page, nor in its source. Thin: parse the form, call the service, render."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from siyu import pii
from siyu.acquisition import verification
from siyu.acquisition.models import GatedCommunity, GatedVisit
from siyu.console.forms import FieldErrors
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import SiyuError, localized_message
from siyu.privacy import notices
from siyu.tenancy.deps import client_ip

router = APIRouter(include_in_schema=False)

PAGE = "/h5/gated/{token}"
TOKEN = Path(min_length=1, max_length=200)


def _headers(response: Response) -> Response:
    # A page with a one-time flow and, once verified, a group code: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _error(request: Request, token: str, exc: SiyuError) -> Response:
    return _headers(render(request, "h5/error.html", {"message": localized_message(request, exc),
                                                      "field": exc.field, "token": token},
                           status_code=exc.status_code))


def step_of(visit: GatedVisit) -> str:
    """The page's next step. A number the firm does not know ("refused") shows the code step like a
    customer's: the page never tells whether a number is the firm's customer's."""
    if visit.status == "verified":
        return "verified"
    return "code" if visit.status in ("code_sent", "refused") else "phone"


def _page(request: Request, session: Session, *, token: str, community: GatedCommunity, visit: GatedVisit, key: str,
          errors: FieldErrors | None = None, phone: str = "", ticked: str = "", status_code: int = 200) -> Response:
    step = step_of(visit)
    verified = step == "verified"
    context = {
        "token": token, "community": community, "key": key, "step": step, "errors": errors,
        "notice": notices.current(session, corp_id=community.corp_id),
        # the box stays ticked on a page answered with an error (a mistyped number)
        "agreed_version": visit.notice_version if visit.notice_version is not None
        else int(ticked) if ticked.isascii() and ticked.isdigit() else None,
        "phone": phone, "masked_phone": pii.mask_phone(visit.phone) if visit.phone else "",
        "sms": True,  # the one-time code is always asked for
        "code_minutes": int(verification.CODE_TTL.total_seconds() // 60),
    }
    if verified:  # the only place the group code enters a page
        context["group_image"] = verification.group_code_image(community)
        context["join_url"] = community.join_url
    return _headers(render(request, "h5/gate.html", context, status_code=status_code))


@router.get(PAGE)
def gate_open(request: Request, token: str = TOKEN, session: Session = Depends(get_session)):
    try:
        community, visit, key = verification.open_visit(session, token=token, ip=client_ip(request))
    except SiyuError as exc:
        return _error(request, token, exc)
    return _page(request, session, token=token, community=community, visit=visit, key=key)


@router.get(PAGE + "/privacy")
def gate_privacy_notice(request: Request, token: str = TOKEN, version: int | None = None,
                        session: Session = Depends(get_session)):
    """The corp's privacy notice, as the gate's tick box links to it (a version, or the one in force)."""
    try:
        community, _ext = verification.read_token(session, token=token)
        notice = notices.current(session, corp_id=community.corp_id) if version is None else notices.get_version(
            session, corp_id=community.corp_id, version=version)
    except SiyuError as exc:
        return _error(request, token, exc)
    return _headers(render(request, "h5/notice.html", {"community": community, "notice": notice, "token": token}))


@router.post(PAGE + "/phone")
def gate_phone(request: Request, token: str = TOKEN, visit: str = Form("", max_length=100),
               phone: str = Form("", max_length=100), consent: str = Form("", max_length=20),
               session: Session = Depends(get_session)):
    try:
        community, current = verification.get_visit(session, token=token, key=visit)
    except SiyuError as exc:
        return _error(request, token, exc)
    try:
        current = verification.request_code(session, token=token, key=visit, phone=phone, ip=client_ip(request),
                                            consent_version=consent)
    except SiyuError as exc:
        # What the refusal recorded (a wrong number the firm does not know) is committed with the page.
        return _page(request, session, token=token, community=community, visit=current, key=visit, phone=phone,
                     ticked=consent, errors=FieldErrors.of(request, exc, "phone"), status_code=exc.status_code)
    return _page(request, session, token=token, community=community, visit=current, key=visit, phone=phone)


@router.post(PAGE + "/code")
def gate_code(request: Request, token: str = TOKEN, visit: str = Form("", max_length=100),
              code: str = Form("", max_length=100), session: Session = Depends(get_session)):
    try:
        community, current = verification.get_visit(session, token=token, key=visit)
    except SiyuError as exc:
        return _error(request, token, exc)
    try:
        current = verification.enter_code(session, token=token, key=visit, code=code, ip=client_ip(request))
    except SiyuError as exc:
        # Wrong entries are counted in this transaction, which commits with the page.
        return _page(request, session, token=token, community=community, visit=current, key=visit,
                     errors=FieldErrors.of(request, exc, "code"), status_code=exc.status_code)
    return _page(request, session, token=token, community=community, visit=current, key=visit)
