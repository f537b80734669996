"""REST API of acquisition (获客): channel codes with their live counters and cost, personas, and
keyword-reply rules with their counts. Read-only; scope `acquisition:read`. Every answer is limited
to the API key's corp: another corp's code is simply not found."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from sqlalchemy.orm import Session

from siyu.acquisition import keywords, service
from siyu.acquisition.schemas import (
    ChannelCodeDetailOut,
    ChannelCodeList,
    ChannelCodeOut,
    CodeAdvisorOut,
    CodeCountersOut,
    KeywordCountsOut,
    KeywordRuleList,
    KeywordRuleOut,
    PersonaList,
    PersonaOut,
)
from siyu.db import get_session
from siyu.tenancy.deps import API_ERRORS, require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(prefix="/api/v1/acquisition", tags=["acquisition"])

ERRORS = API_ERRORS
read_acquisition = require_scope("acquisition:read")


def _code_out(code, stats: service.CodeStats) -> dict:
    return dict(id=code.id, name=code.name, channel=code.channel, campaign=code.campaign, persona_id=code.persona_id,
                multi_advisor=code.multi_advisor, state=code.state, status=code.status, qr_url=code.qr_url,
                expires_at=code.expires_at, created_at=code.created_at,
                counters=CodeCountersOut(adds_today=stats.adds_today, adds_total=stats.adds_total, lost=stats.lost,
                                         active=stats.active, cost_fen=stats.cost_fen,
                                         cost_per_add_fen=stats.cost_per_add_fen))


@router.get("/channel-codes", response_model=ChannelCodeList, responses=ERRORS)
def list_channel_codes(principal: Principal = Depends(read_acquisition),
                       session: Session = Depends(get_session)) -> ChannelCodeList:
    """The corp's channel codes, newest first, with live counters (adds today / total / lost) and the
    cost per add in fen (scope `acquisition:read`)."""
    codes = service.list_channel_codes(session, corp_id=principal.corp_id)
    stats = service.code_stats(session, corp_id=principal.corp_id, codes=codes)
    return ChannelCodeList(items=[ChannelCodeOut(**_code_out(c, stats[c.id])) for c in codes])


@router.get("/channel-codes/{code_id}", response_model=ChannelCodeDetailOut,
            responses={**ERRORS, 404: {"description": "no such channel code in the key's corp"}})
def get_channel_code(code_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(read_acquisition),
                     session: Session = Depends(get_session)) -> ChannelCodeDetailOut:
    """One channel code with its counters and its advisors' daily caps and adds today (scope `acquisition:read`)."""
    corp_id = principal.corp_id
    code = service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
    stats = service.code_stats(session, corp_id=corp_id, codes=[code])[code.id]
    today = service.adds_today_by_advisor(session, corp_id=corp_id, code_id=code.id)
    advisors = [CodeAdvisorOut(userid=a.userid, daily_cap=a.daily_cap, adds_today=today.get(a.userid, 0))
                for a in service.code_advisors(session, corp_id=corp_id, code_id=code.id)]
    return ChannelCodeDetailOut(**_code_out(code, stats), advisors=advisors)


@router.get("/personas", response_model=PersonaList, responses=ERRORS)
def list_personas(principal: Principal = Depends(read_acquisition),
                  session: Session = Depends(get_session)) -> PersonaList:
    """The corp's personas (人设) that channel codes speak as (scope `acquisition:read`)."""
    return PersonaList(items=[PersonaOut.model_validate(p)
                              for p in service.list_personas(session, corp_id=principal.corp_id)])


@router.get("/keyword-rules", response_model=KeywordRuleList, responses=ERRORS)
def list_keyword_rules(principal: Principal = Depends(read_acquisition),
                       session: Session = Depends(get_session)) -> KeywordRuleList:
    """Keyword-reply rules by priority, with their counts: messages matched, replies sent, tasks
    made, cooldown skips, held by compliance or opt-out, failed (scope `acquisition:read`)."""
    counts = keywords.rule_counts(session, corp_id=principal.corp_id)
    empty = keywords.RuleCounts()
    return KeywordRuleList(items=[
        KeywordRuleOut(id=r.id, name=r.name, keyword=r.keyword, match_mode=r.match_mode, action=r.action,
                       reply_text=r.reply_text, attachments=list(r.attachments or []), advisors=list(r.advisors or []),
                       cooldown_minutes=r.cooldown_minutes, priority=r.priority, enabled=r.enabled,
                       updated_at=r.updated_at, counts=KeywordCountsOut(**counts.get(r.id, empty).__dict__))
        for r in keywords.list_rules(session, corp_id=principal.corp_id)])
