"""REST API of the job queue: read-only counts and listings of the caller's corp's jobs.

Installation-level jobs (no corp) are never listed here; an id of another corp's job is simply
not found."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from siyu.db import get_session
from siyu.jobs import service
from siyu.jobs.schemas import JobCounts, JobOut, JobPage
from siyu.tenancy.deps import require_scope
from siyu.tenancy.principal import Principal

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope `jobs:read`"},
    422: {"description": "a parameter is not valid"},
}
MAX_ID = 2**63 - 1
read_jobs = require_scope("jobs:read")
State = Literal["queued", "running", "failed", "done", "dead", "expired"]


@router.get("/counts", response_model=JobCounts, responses=ERRORS)
def counts(principal: Principal = Depends(read_jobs), session: Session = Depends(get_session)) -> JobCounts:
    """How many of the corp's jobs are queued, running, failed (waiting to retry) and dead."""
    return JobCounts(**service.counts_by_state(session, corp_id=principal.corp_id))


@router.get("", response_model=JobPage, responses=ERRORS)
def list_jobs(
    state: State | None = Query(None, description="only jobs in this state"),
    before_id: int | None = Query(None, ge=1, le=MAX_ID, description="the previous page's `next_before_id`"),
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(read_jobs),
    session: Session = Depends(get_session),
) -> JobPage:
    """The corp's jobs, newest first."""
    page = service.list_jobs(session, corp_id=principal.corp_id, state=state, limit=limit, before_id=before_id)
    return JobPage(items=[JobOut.model_validate(j) for j in page.items], next_before_id=page.next_before_id)


@router.get("/{job_id}", response_model=JobOut, responses={**ERRORS, 404: {"description": "no such job"}})
def get_job(
    job_id: int = Path(ge=1, le=MAX_ID),
    principal: Principal = Depends(read_jobs),
    session: Session = Depends(get_session),
) -> JobOut:
    return JobOut.model_validate(service.get_job(session, job_id=job_id, corp_id=principal.corp_id))
