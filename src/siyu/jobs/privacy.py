"""The job queue's part in retention (see `siyu.compliance.privacy`): a corp's finished jobs (done or
dead) older than the corp's keep period for record class "job". Queued and running jobs are never
touched."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.compliance.privacy import register_purger
from siyu.jobs.models import Job, JobState

FINISHED = (JobState.DONE.value, JobState.DEAD.value)


def purge(session: Session, *, corp_id: int, before: dt.datetime, limit: int) -> int:
    ids = list(session.scalars(select(Job.id).where(Job.corp_id == corp_id, Job.state.in_(FINISHED),
                                                    Job.finished_at < before).order_by(Job.id).limit(limit)))
    if ids:
        session.execute(delete(Job).where(Job.id.in_(ids)))
    return len(ids)


register_purger("job", purge)
