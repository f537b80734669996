"""Jobs of audiences.

- `audiences.count_all` (06:00 Asia/Shanghai every day): one `audiences.count_corp` per active corp
  with segments (idempotency key per corp and day).
- `audiences.count_corp`: counts each of the corp's segments and records the day's figure
  (`segment_count`, the history behind the chart); a segment whose rule no longer compiles (a tag
  deleted since) is skipped and logged, the others still counted. Idempotent: a rerun the same day
  replaces the day's figure."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audiences import service
from siyu.audiences.models import Segment
from siyu.db import utcnow
from siyu.errors import SiyuError
from siyu.jobs.registry import JobContext, builtin_schedule, job_handler
from siyu.jobs.service import enqueue
from siyu.tenancy.models import Corp

log = logging.getLogger(__name__)

COUNT_ALL = "audiences.count_all"
COUNT_CORP = "audiences.count_corp"


@job_handler(COUNT_ALL)
def count_all(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    day = service.shanghai_today(utcnow()).isoformat()
    corps = select(Segment.corp_id).join(Corp, Corp.id == Segment.corp_id).where(Corp.is_active.is_(True)).distinct()
    for corp_id in session.scalars(corps):
        enqueue(session, name=COUNT_CORP, payload={"day": day}, corp_id=corp_id,
                idempotency_key=f"{COUNT_CORP}:{corp_id}:{day}")


@job_handler(COUNT_CORP, max_attempts=3)
def count_corp(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None:
        return
    now = utcnow()
    for segment_id in session.scalars(select(Segment.id).where(Segment.corp_id == job.corp_id).order_by(Segment.id)):
        try:
            with session.begin_nested():
                service.record_daily_count(session, corp_id=job.corp_id, segment_id=segment_id, now=now)
        except SiyuError as exc:
            log.warning("segment %s of corp %s not counted: %s (%s)", segment_id, job.corp_id, exc.message, exc.field)


builtin_schedule(COUNT_ALL, cron="0 6 * * *", name=COUNT_ALL)
