"""The job queue's own jobs: housekeeping, and a no-op the demo and benchmarks use."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs import service
from siyu.jobs.registry import JobContext, builtin_schedule, job_handler

log = logging.getLogger(__name__)


@job_handler("jobs.noop")
def noop(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Does nothing (the demo shows it in the console; a smoke test of a running worker)."""


PRUNE_BATCH = 5000


@job_handler("jobs.prune")
def prune(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Deletes old finished jobs a batch at a time, each batch its own short transaction: when a
    batch was full it enqueues its own continuation instead of holding one long delete."""
    deleted = service.prune(session, batch=PRUNE_BATCH)
    if deleted:
        log.info("pruned %d finished jobs", deleted)
    if deleted >= PRUNE_BATCH:
        service.enqueue(session, name="jobs.prune", idempotency_key=f"jobs.prune:after:{job.id}", priority=10)


# Hourly, so each run has little to do.
builtin_schedule("jobs.prune", cron="17 * * * *", name="jobs.prune")


@job_handler("jobs.audit_anchor")
def audit_anchor(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Writes the signed anchors of the audit chains' heads (tenancy.anchors) to the anchor directory."""
    from siyu.tenancy.anchors import write_anchors

    path = write_anchors(session)
    log.info("audit anchors written to %s", path)


# Daily just after midnight in Shanghai: at most a day's entries can be cut undetected once the
# directory is shipped off the machine.
builtin_schedule("jobs.audit_anchor", cron="7 0 * * *", name="jobs.audit_anchor")
