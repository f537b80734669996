"""Jobs of service quality (服务质量).

- `compliance.quality_waits` (enqueued by each archive ingest with the ids it stored): recompute the
  waits of the chats that got messages. Idempotent: running it twice gives the same waits.
- `compliance.quality_timeouts` (every minute): raise the reply-timeout alerts that are due.
- `compliance.quality_daily_all` (08:00 Asia/Shanghai): one `compliance.quality_daily` per active corp,
  which stores the report of the day before (idempotency key per corp and day)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance import archive
from siyu.db import utcnow
from siyu.jobs.registry import JobContext, builtin_schedule, job_handler
from siyu.jobs.service import enqueue
from siyu.quality import service as quality
from siyu.tenancy.models import Corp

WAITS_JOB = archive.QUALITY_WAITS_JOB  # enqueued by each archive ingest, in its transaction


@job_handler(WAITS_JOB, max_attempts=5)
def update_waits(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    first, last = payload.get("first_id"), payload.get("last_id")
    if job.corp_id is None or not isinstance(first, int) or not isinstance(last, int):
        return
    quality.update_waits(session, corp_id=job.corp_id, first_id=first, last_id=last)


@job_handler("compliance.quality_timeouts")
def raise_timeouts(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    quality.raise_timeouts(session)


@job_handler("compliance.quality_daily_all")
def daily_all(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    day = quality.china_today() - dt.timedelta(days=1)
    for corp_id in session.scalars(select(Corp.id).where(Corp.is_active.is_(True))):
        enqueue(session, name="compliance.quality_daily", payload={"day": day.isoformat()}, corp_id=corp_id,
                idempotency_key=f"compliance.quality_daily:{corp_id}:{day.isoformat()}")


@job_handler("compliance.quality_daily", max_attempts=3)
def daily(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None:
        return
    try:
        day = dt.date.fromisoformat(str(payload.get("day")))
    except ValueError:
        return
    quality.store_report(session, corp_id=job.corp_id, day=day, now=utcnow())


builtin_schedule("compliance.quality_timeouts", cron="* * * * *", name="compliance.quality_timeouts")
builtin_schedule("compliance.quality_daily_all", cron="0 8 * * *", name="compliance.quality_daily_all")
