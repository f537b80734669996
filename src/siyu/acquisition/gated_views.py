"""Console pages of the verification gate (门槛社群): gated communities with their counts, a
community's links and masked verification log, the firm's hook and the SMS outbox.

Operations and administrators edit; compliance officers and auditors read. The hook and the SMS
outbox are the administrator's. Included in `siyu.acquisition.views.router`."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.acquisition import verification
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.edge import upload_route
from siyu.errors import InvalidInput, NotFound, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

EDITORS = ("administrator", "operations")
editors = require_roles(*EDITORS)
readers = require_roles(*EDITORS, "compliance", "auditor")
administrators = require_roles("administrator")
PAGE = "/acquisition/gated"
upload_route(re.escape(PAGE) + r"(/[0-9]+)?")  # group QR images: the larger body limit
MAX_ID = 2**63 - 1

VERIFY_LABELS = {
    "sms": N_("SMS code"),
    "both": N_("Firm's system and SMS code"),
}
VISIT_LABELS = {
    "opened": N_("Opened the link"),
    "code_sent": N_("Code sent"),
    "verified": N_("Verified"),
    "refused": N_("Not a customer of the firm"),
    "failed": N_("Code entered wrongly too often"),
}


def _absolute(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


async def _image(upload: UploadFile | None) -> bytes | None:
    if upload is None or not getattr(upload, "filename", None):
        return None
    data = await upload.read(verification.MAX_IMAGE_BYTES + 1)
    return data or None


def _index(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    corp_id = principal.corp_id
    communities = verification.list_communities(session, corp_id=corp_id)
    hook = verification.get_hook(session, corp_id=corp_id) if principal.has_role("administrator") else None
    context = {
        "communities": communities,
        "stats": verification.community_stats(session, corp_id=corp_id, community_ids=[c.id for c in communities]),
        "verify_labels": VERIFY_LABELS,
        "may_edit": principal.has_role(*EDITORS),
        "hook": hook,
        "has_hook": verification.get_hook(session, corp_id=corp_id) is not None,
    }
    context.update(extra)
    return render(request, "acquisition/gated.html", context, status_code=status_code)


@router.get(PAGE)
def gated_page(request: Request, principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    return _index(request, session, principal)


@router.post(PAGE)
async def gated_create(
    request: Request,
    name: str = Form("", max_length=1000),
    verify_by: str = Form("", max_length=20),
    join_url: str = Form("", max_length=2000),
    qr_image_url: str = Form("", max_length=2000),
    qr_image: UploadFile | None = File(None),
    principal: Principal = Depends(editors),
    session: Session = Depends(get_session),
):
    form = {"name": name, "verify_by": verify_by, "join_url": join_url, "qr_image_url": qr_image_url}
    try:
        image = await _image(qr_image)
        with session.begin_nested():  # a refusal leaves nothing half-written
            community = verification.save_community(session, corp_id=principal.corp_id, actor=principal,
                                                    qr_image=image, **form)
    except SiyuError as exc:
        return _index(request, session, principal, form=form, errors=FieldErrors.of(request, exc),
                      status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/{community.id}?saved=1", status_code=303)


def _detail(request: Request, session: Session, principal: Principal, community_id: int, *, status_code: int = 200,
            **extra) -> Response:
    corp_id = principal.corp_id
    community = verification.get_community(session, corp_id=corp_id, community_id=community_id)
    context = {
        "community": community,
        "stats": verification.community_stats(session, corp_id=corp_id, community_ids=[community.id])[community.id],
        "general_link": _absolute(request, verification.link_path(community)),
        "log": verification.verification_log(session, corp_id=corp_id, community_id=community.id),
        "verify_labels": VERIFY_LABELS,
        "visit_labels": VISIT_LABELS,
        "may_edit": principal.has_role(*EDITORS),
        "has_hook": verification.get_hook(session, corp_id=corp_id) is not None,
    }
    context.update(extra)
    return render(request, "acquisition/gated_detail.html", context, status_code=status_code)


@router.get(PAGE + "/{community_id}")
def gated_detail(request: Request, community_id: int = Path(ge=1, le=MAX_ID),
                 external_userid: str = Query("", max_length=200), principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)):
    """The community; with `external_userid`, the link to send to that WeCom contact."""
    if not external_userid.strip():
        return _detail(request, session, principal, community_id)
    community = verification.get_community(session, corp_id=principal.corp_id, community_id=community_id)
    try:
        link = _absolute(request, verification.link_path(community, external_userid=external_userid.strip()))
    except InvalidInput as exc:
        return _detail(request, session, principal, community_id, link_errors=FieldErrors.of(request, exc),
                       external_userid=external_userid, status_code=exc.status_code)
    return _detail(request, session, principal, community_id, personal_link=link,
                   external_userid=external_userid.strip())


@router.get(PAGE + "/{community_id}/qr")
def gated_qr(community_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
             session: Session = Depends(get_session)):
    """The uploaded group QR, for the console's preview."""
    community = verification.get_community(session, corp_id=principal.corp_id, community_id=community_id)
    if not community.qr_image:
        raise NotFound("no group QR image was uploaded", field="community_id")
    return Response(community.qr_image, media_type=community.qr_image_type, headers={"Cache-Control": "no-store"})


@router.post(PAGE + "/{community_id}")
async def gated_update(
    request: Request,
    community_id: int = Path(ge=1, le=MAX_ID),
    name: str = Form("", max_length=1000),
    verify_by: str = Form("", max_length=20),
    join_url: str = Form("", max_length=2000),
    qr_image_url: str = Form("", max_length=2000),
    qr_image: UploadFile | None = File(None),
    remove_image: str = Form(""),
    is_active: str = Form(""),
    principal: Principal = Depends(editors),
    session: Session = Depends(get_session),
):
    form = {"name": name, "verify_by": verify_by, "join_url": join_url, "qr_image_url": qr_image_url}
    verification.get_community(session, corp_id=principal.corp_id, community_id=community_id)
    try:
        image = await _image(qr_image)
        with session.begin_nested():
            verification.save_community(session, corp_id=principal.corp_id, actor=principal, qr_image=image,
                                        remove_image=remove_image in ("on", "1", "true"),
                                        is_active=is_active in ("on", "1", "true"), community_id=community_id,
                                        **form)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _detail(request, session, principal, community_id, form=form, errors=FieldErrors.of(request, exc),
                       status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/{community_id}?saved=1", status_code=303)


@router.post("/acquisition/gated-hook")
def hook_save(request: Request, url: str = Form("", max_length=2000), secret: str = Form("", max_length=1000),
              principal: Principal = Depends(administrators), session: Session = Depends(get_session)):
    try:
        with session.begin_nested():
            verification.save_hook(session, corp_id=principal.corp_id, actor=principal, url=url, secret=secret)
    except SiyuError as exc:
        return _index(request, session, principal, hook_form={"url": url},
                      hook_errors=FieldErrors.of(request, exc, "url"), status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?saved=hook#hook", status_code=303)


@router.get("/acquisition/sms-outbox")
def outbox_page(request: Request, principal: Principal = Depends(administrators),
                session: Session = Depends(get_session)):
    from siyu.config import get_settings

    return render(request, "acquisition/sms_outbox.html",
                  {"rows": verification.sms_outbox(session, corp_id=principal.corp_id),
                   "show_codes": get_settings().sms_show_codes})
