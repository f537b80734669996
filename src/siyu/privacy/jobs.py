"""Jobs of personal-information protection (see `privacy.service`).

- `compliance.retention_purge_all`: daily at 03:30 China time, one `compliance.retention_purge` per
  active corp (idempotency key per corp and day).
- `compliance.retention_purge`: one bounded chunk per record class in the job's transaction; while
  rows remain it enqueues its own continuation (with the run's id), so no transaction grows with
  the backlog. Also clears export bundles that expired.

A customer's "TD" / "退订" in a chat is read by the chat archive, which records the withdrawal
through `privacy.service.record_chat_reply` (`compliance.archive_jobs`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.jobs.registry import JobContext, builtin_schedule, job_handler
from siyu.jobs.service import enqueue
from siyu.privacy import service as privacy
from siyu.privacy.models import PurgeRun
from siyu.tenancy.models import Corp

log = logging.getLogger(__name__)


@job_handler("compliance.retention_purge_all")
def purge_all(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    day = utcnow().strftime("%Y%m%d")
    for corp_id in session.scalars(select(Corp.id).where(Corp.is_active.is_(True))):
        enqueue(session, name="compliance.retention_purge", payload={}, corp_id=corp_id,
                idempotency_key=f"compliance.retention_purge:{corp_id}:{day}")
    privacy.expire_bundles(session)


@job_handler("compliance.retention_purge", max_attempts=5)
def purge(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None:
        return
    run = None
    run_id = payload.get("run_id")
    if isinstance(run_id, int) and not isinstance(run_id, bool):
        run = session.get(PurgeRun, run_id)
        if run is None or run.corp_id != job.corp_id or run.status != "running":
            return
    run, more = privacy.purge_chunk(session, corp_id=job.corp_id, run=run)
    if more:
        enqueue(session, name="compliance.retention_purge", payload={"run_id": run.id}, corp_id=job.corp_id,
                idempotency_key=f"compliance.retention_purge:run:{run.id}:{run.chunks}")
    else:
        privacy.finish_run_audit(session, run=run)
        log.info("retention purge of corp %s: %s", job.corp_id, run.counts)


builtin_schedule("compliance.retention_purge_all", cron="30 3 * * *", name="compliance.retention_purge_all")
