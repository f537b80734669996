"""REST API of audiences (/api/v1/audiences): saved segments (CRUD), their count, a sample and the
daily count history, and the count and sample of a rule not saved. Scopes `audiences:read` and
`audiences:write`; every answer is limited to the API key's corp, and a rule naming another corp's
tag, group, code or member of staff is answered 422 with the field path."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy.orm import Session

from siyu.audiences import service
from siyu.audiences.schemas import (
    CountOut,
    HistoryOut,
    HistoryPointOut,
    MemberOut,
    RuleIn,
    SampleOut,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
)
from siyu.db import get_session, utcnow
from siyu.tenancy.deps import require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(prefix="/api/v1/audiences", tags=["audiences"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    422: {"description": "a field is not valid (`field` names it, e.g. `rule.all[1].tag_ids`)"},
}
NOT_FOUND = {404: {"description": "no such segment in the key's corp"}}
CONFLICT = {409: {"description": "a segment with this name exists (`field`: name)"}}
read_audiences = require_scope("audiences:read")
write_audiences = require_scope("audiences:write")
SegmentId = Path(ge=1, le=MAX_ID)


def _out(s) -> SegmentOut:
    return SegmentOut(id=s.id, name=s.name, description=s.description, rule=s.rule, owner_staff_id=s.owner_staff_id,
                      created_by=s.created_by, created_at=s.created_at, updated_at=s.updated_at,
                      last_count=s.last_count, last_counted_at=s.last_counted_at)


def _sample(session: Session, corp_id: int, rule) -> SampleOut:
    count = service.count_rule(session, corp_id=corp_id, rule=rule)
    rows = service.sample_rule(session, corp_id=corp_id, rule=rule)
    return SampleOut(count=count, members=[MemberOut(id=r.id, name=r.name_masked, gender=r.gender, stage=r.stage,
                                                     first_added_at=r.first_added_at) for r in rows])


@router.get("/segments", response_model=list[SegmentOut], responses=ERRORS)
def list_segments(principal: Principal = Depends(read_audiences), session: Session = Depends(get_session)):
    """The corp's saved segments with their last count (scope `audiences:read`)."""
    return [_out(s) for s in service.list_segments(session, corp_id=principal.corp_id)]


@router.post("/segments", response_model=SegmentOut, status_code=201, responses={**ERRORS, **CONFLICT})
def create_segment(body: SegmentIn, principal: Principal = Depends(write_audiences),
                   session: Session = Depends(get_session)):
    """Save a segment (scope `audiences:write`); the rule is checked and stored normalised."""
    segment = service.create_segment(session, principal=principal, name=body.name, description=body.description,
                                     rule=body.rule, owner_staff_id=body.owner_staff_id)
    return _out(segment)


@router.get("/segments/{segment_id}", response_model=SegmentOut, responses={**ERRORS, **NOT_FOUND})
def get_segment(segment_id: int = SegmentId, principal: Principal = Depends(read_audiences),
                session: Session = Depends(get_session)):
    return _out(service.get_segment(session, corp_id=principal.corp_id, segment_id=segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentOut, responses={**ERRORS, **NOT_FOUND, **CONFLICT})
def update_segment(body: SegmentPatch, segment_id: int = SegmentId, principal: Principal = Depends(write_audiences),
                   session: Session = Depends(get_session)):
    """Change a segment's name, description, rule or owner (scope `audiences:write`); fields left out stay."""
    given = body.model_dump(exclude_unset=True)
    segment = service.update_segment(session, principal=principal, segment_id=segment_id, **given)
    return _out(segment)


@router.delete("/segments/{segment_id}", status_code=204, responses={**ERRORS, **NOT_FOUND})
def delete_segment(segment_id: int = SegmentId, principal: Principal = Depends(write_audiences),
                   session: Session = Depends(get_session)):
    service.delete_segment(session, principal=principal, segment_id=segment_id)
    return Response(status_code=204)


@router.post("/segments/{segment_id}/count", response_model=CountOut, responses={**ERRORS, **NOT_FOUND})
def count_segment(segment_id: int = SegmentId, principal: Principal = Depends(read_audiences),
                  session: Session = Depends(get_session)):
    """Count the segment's members now (scope `audiences:read`); the figure is kept as its last count."""
    now = utcnow()
    count = service.count_segment(session, corp_id=principal.corp_id, segment_id=segment_id, now=now)
    return CountOut(count=count, counted_at=now)


@router.get("/segments/{segment_id}/sample", response_model=SampleOut, responses={**ERRORS, **NOT_FOUND})
def sample_segment(segment_id: int = SegmentId, principal: Principal = Depends(read_audiences),
                   session: Session = Depends(get_session)):
    """The count and up to 20 members, the latest added first, names masked (scope `audiences:read`)."""
    segment = service.get_segment(session, corp_id=principal.corp_id, segment_id=segment_id)
    return _sample(session, principal.corp_id, segment.rule)


@router.get("/segments/{segment_id}/history", response_model=HistoryOut, responses={**ERRORS, **NOT_FOUND})
def segment_history(segment_id: int = SegmentId, principal: Principal = Depends(read_audiences),
                    session: Session = Depends(get_session)):
    """The daily counts (Asia/Shanghai days) of the last 90 days that the daily job recorded."""
    points = service.count_history(session, corp_id=principal.corp_id, segment_id=segment_id)
    return HistoryOut(segment_id=segment_id, points=[HistoryPointOut(day=p.day, count=p.count) for p in points])


@router.post("/preview", response_model=SampleOut, responses=ERRORS)
def preview_rule(body: RuleIn, principal: Principal = Depends(read_audiences), session: Session = Depends(get_session)):
    """The count and sample of a rule not saved (scope `audiences:read`): what the rule builder shows."""
    return _sample(session, principal.corp_id, body.rule)
