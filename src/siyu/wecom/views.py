"""Console page of the WeCom connection (企业微信接入): credentials, callback URL, default
welcome, and what came in and went out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import SiyuError
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.models import Corp, Role
from siyu.tenancy.principal import Principal
from siyu.wecom import service
from siyu.wecom.crypto import generate_aes_key

router = APIRouter(include_in_schema=False)
administrator = require_roles(Role.ADMINISTRATOR)


def _page(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    corp = session.get(Corp, principal.corp_id)
    base = str(request.base_url).rstrip("/")
    context = {
        "conn": service.connection_view(session, corp_id=principal.corp_id),
        "callback_url": f"{base}/wecom/callback/{corp.slug}",
        "inbox": service.inbox_summary(session, corp_id=principal.corp_id),
        "events": service.recent_events(session, corp_id=principal.corp_id),
        "outbound_counts": service.outbound_counts(session, corp_id=principal.corp_id),
        "outbound": service.recent_outbound(session, corp_id=principal.corp_id),
        "suggested_aes_key": generate_aes_key(),
    }
    context.update(extra)
    return render(request, "wecom/connection.html", context, status_code=status_code)


@router.get("/wecom")
def connection_page(request: Request, principal: Principal = Depends(administrator),
                    session: Session = Depends(get_session)):
    return _page(request, session, principal)


@router.post("/wecom/connection")
def connection_save(
    request: Request,
    wecom_corp_id: str = Form("", max_length=200),
    secret: str = Form("", max_length=1000),
    token: str = Form("", max_length=200),
    aes_key: str = Form("", max_length=200),
    base_url: str = Form("", max_length=1000),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    try:
        service.configure_connection(session, corp_id=principal.corp_id, actor=principal, wecom_corp_id=wecom_corp_id,
                                     secret=secret, token=token, aes_key=aes_key, base_url=base_url,
                                     ip=client_ip(request))
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc)
        return _page(request, session, principal, errors=errors, status_code=exc.status_code,
                     form={"wecom_corp_id": wecom_corp_id, "base_url": base_url, "token": token})
    return RedirectResponse("/wecom?saved=connection", status_code=303)


@router.post("/wecom/welcome")
def welcome_save(
    request: Request,
    welcome_text: str = Form("", max_length=20000),
    welcome_enabled: str = Form(""),
    principal: Principal = Depends(administrator),
    session: Session = Depends(get_session),
):
    try:
        service.set_default_welcome(session, corp_id=principal.corp_id, actor=principal, text=welcome_text,
                                    enabled=welcome_enabled in ("on", "1", "true"), ip=client_ip(request))
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, default_field="welcome_text")
        return _page(request, session, principal, errors=errors, status_code=exc.status_code,
                     welcome_form={"text": welcome_text, "enabled": bool(welcome_enabled)})
    return RedirectResponse("/wecom?saved=welcome", status_code=303)
