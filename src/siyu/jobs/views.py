"""Console page of the job queue: counts by state, a list per state, retry for failed/dead jobs.

Administrators and operations staff of a corp see their corp's jobs only; installation-level
jobs (no corp) are shown to no corp."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.i18n import N_, translations
from siyu.console.templating import render, request_locale
from siyu.db import get_session
from siyu.errors import Conflict
from siyu.jobs import service
from siyu.jobs.models import JobState
from siyu.tenancy import audit
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

operators = require_roles("administrator", "operations")
STATES = [s.value for s in JobState]
PAGE_SIZE = 50
MAX_ID = 2**63 - 1
# How the console names each state (message ids, translated where shown).
STATE_LABELS = {
    JobState.QUEUED.value: N_("Queued"),
    JobState.RUNNING.value: N_("Running"),
    JobState.FAILED.value: N_("Failed, will retry"),
    JobState.DONE.value: N_("Done"),
    JobState.DEAD.value: N_("Dead"),
    JobState.EXPIRED.value: N_("Expired (deadline passed)"),
}


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


@router.get("/jobs")
def jobs_page(
    request: Request,
    state: str = Query("", max_length=16),
    before: int | None = Query(None, ge=1, le=MAX_ID),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    state = state if state in STATES else ""
    page = service.list_jobs(session, corp_id=principal.corp_id, state=state or None, limit=PAGE_SIZE,
                             before_id=before)
    # Queue lag of this corp's work, per queue, for administrators (how long due jobs wait).
    queue_stats = service.queue_stats(session, corp_id=principal.corp_id) if principal.is_admin else None
    return render(request, "jobs/index.html", {
        "queue_stats": queue_stats,
        "recent_minutes": int(service.RECENT_OUTCOMES.total_seconds() // 60),
        "counts": service.counts_by_state(session, corp_id=principal.corp_id),
        "jobs": page.items,
        "next_before_id": page.next_before_id,
        "state": state,
        "states": STATES,
        "state_labels": STATE_LABELS,
        "before": before,
    })


@router.post("/jobs/{job_id}/retry")
def job_retry(
    request: Request,
    job_id: int = Path(ge=1, le=MAX_ID),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
) -> Response:
    try:
        job = service.retry_job(session, job_id=job_id, corp_id=principal.corp_id)
    except Conflict as exc:
        # Name the job's state as the page does, in the reader's language, not by its code.
        state = str(exc.params.get("state", ""))
        label = translations(request_locale(request)).gettext(STATE_LABELS.get(state, state))
        raise Conflict(exc.msgid, field=exc.field, params={**exc.params, "state": label}) from None
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="job.retried", target_type="job",
                 target_id=job.id, detail={"name": job.name})
    if _is_htmx(request):
        context = {"job": job, "state_labels": STATE_LABELS, "notice": N_("Queued to run again.")}
        return render(request, "jobs/_row.html", context)
    return RedirectResponse(f"/jobs#job-{job.id}", status_code=303)
